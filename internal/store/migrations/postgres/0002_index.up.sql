-- The base image index: every distinct reference tasks build on, what it
-- points to now (per platform), and the history of what it pointed to.
CREATE TABLE base_refs (
    ref           TEXT PRIMARY KEY,
    digest        TEXT NOT NULL DEFAULT '',
    media_type    TEXT NOT NULL DEFAULT '',
    platforms     TEXT NOT NULL DEFAULT '[]',
    added_at      TEXT NOT NULL,
    checked_at    TEXT NOT NULL DEFAULT '',
    changed_at    TEXT NOT NULL DEFAULT '',
    next_check_at TEXT NOT NULL,
    failures      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT '',
    error_since   TEXT NOT NULL DEFAULT '',
    -- set by a push or webhook: check now, and say so in the observation
    hint_source   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX base_refs_due ON base_refs (next_check_at);

CREATE TABLE observations (
    id         BIGSERIAL PRIMARY KEY,
    ref        TEXT NOT NULL,
    platform   TEXT NOT NULL,
    digest     TEXT NOT NULL,
    old_digest TEXT NOT NULL DEFAULT '',
    top_digest TEXT NOT NULL,
    source     TEXT NOT NULL,
    seen_at    TEXT NOT NULL
);
CREATE INDEX observations_ref ON observations (ref, id);

-- Webhook notifications already taken, for idempotency.
CREATE TABLE hook_events (
    event_id    TEXT PRIMARY KEY,
    received_at TEXT NOT NULL
);

-- Runs of a wave wait for their upstream runs before being enqueued.
ALTER TABLE runs ADD COLUMN blocked_by TEXT NOT NULL DEFAULT '[]';
