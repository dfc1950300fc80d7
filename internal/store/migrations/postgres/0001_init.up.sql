-- Tasks, runs, their logs and API tokens. Timestamps are UTC text in a
-- fixed-width RFC 3339 form so they sort as strings on every dialect.
CREATE TABLE tasks (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    bases      TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE runs (
    id          BIGSERIAL PRIMARY KEY,
    task_name   TEXT NOT NULL,
    spec        TEXT NOT NULL,
    state       TEXT NOT NULL,
    cause       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    job_id      BIGINT NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    started_at  TEXT NOT NULL DEFAULT '',
    finished_at TEXT NOT NULL DEFAULT '',
    commit_sha  TEXT NOT NULL DEFAULT '',
    image       TEXT NOT NULL DEFAULT '',
    digest      TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '[]',
    bases       TEXT NOT NULL DEFAULT '[]',
    step        TEXT NOT NULL DEFAULT '',
    error       TEXT NOT NULL DEFAULT '',
    timings     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_task ON runs (task_name, id);
CREATE INDEX runs_state ON runs (state);

CREATE TABLE run_logs (
    run_id BIGINT NOT NULL,
    seq    BIGINT NOT NULL,
    data   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
