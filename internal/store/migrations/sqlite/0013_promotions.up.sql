-- Approvals and promotions (issue 13). An approval (or rejection) is one
-- user's decision on one run's digest: never for a tag. A promotion row is
-- one tag moved to a digest: planned (old digest read, done_at empty)
-- before the registry write, done in the transaction that records the
-- run's end, so a promotion retried after a crash keeps the old digest it
-- first saw and is recorded once. promo_key names the promotion: "run:<id>"
-- for a run's, "rollback:<n>" for a rollback.
CREATE TABLE approvals (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     BIGINT NOT NULL,
    user_name  TEXT NOT NULL,
    decision   TEXT NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    digest     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (run_id, user_name)
);

CREATE TABLE promotions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    promo_key  TEXT NOT NULL,
    task_name  TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag        TEXT NOT NULL,
    old_digest TEXT NOT NULL DEFAULT '',
    new_digest TEXT NOT NULL,
    run_id     BIGINT NOT NULL,
    by_user    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    done_at    TEXT NOT NULL DEFAULT '',
    UNIQUE (promo_key, tag)
);
CREATE INDEX promotions_task ON promotions (task_name, id);
