-- Tokens carry a user and roles (JSON list: viewer, operator, approver,
-- admin), an ID to list and revoke them by, who created them, and when
-- they were revoked ('' = active). Tokens from before roles were all
-- admin tokens: they keep that power, as user <their name>.
ALTER TABLE tokens ADD COLUMN id TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN revoked_at TEXT NOT NULL DEFAULT '';
UPDATE tokens SET id = 't-' || substr(hash, 1, 12), user_name = name, roles = '["admin"]';
CREATE UNIQUE INDEX tokens_id ON tokens (id);
CREATE INDEX tokens_user ON tokens (user_name);

-- The audit log: append-only, each entry hashing its predecessor (see
-- package internal/audit for the canonical encoding). Entries are
-- numbered from 1 without gaps, drawn under the one writer connection.
-- refit never updates or deletes an entry; these triggers refuse it to
-- any other client too (someone who can drop them can alter the log,
-- and `refit audit verify` then names the first entry changed).
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    time      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);
CREATE INDEX audit_log_time ON audit_log (time);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
