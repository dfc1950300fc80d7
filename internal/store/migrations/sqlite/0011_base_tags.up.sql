-- Repositories whose version tags are followed (triggers.baseTags of
-- tasks, watches with a semver range): when they were last listed, when
-- they are next due, and per followed constraint the newest matching tag
-- seen ({"~3.12": {"tag":"3.12.9","digest":"sha256:…","seenAt":"…"}}).
CREATE TABLE tag_repos (
    repository   TEXT PRIMARY KEY,
    rules        TEXT NOT NULL DEFAULT '[]',
    newest       TEXT NOT NULL DEFAULT '{}',
    added_at     TEXT NOT NULL,
    listed_at    TEXT NOT NULL DEFAULT '',
    next_list_at TEXT NOT NULL,
    tag_count    INTEGER NOT NULL DEFAULT 0,
    failures     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '',
    error_since  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX tag_repos_due ON tag_repos (next_list_at);

-- References watched without building (refit watch add): polled like a
-- base, and with a semver range their repository's tags are followed.
CREATE TABLE watches (
    ref        TEXT PRIMARY KEY,
    repository TEXT NOT NULL,
    by_digest  INTEGER NOT NULL DEFAULT 1,
    semver     TEXT NOT NULL DEFAULT '',
    prerelease INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

-- Build arguments a baseTags rebuild set to the newest tag: every later
-- run of the task builds with them (a task's effective args).
CREATE TABLE task_tag_args (
    task_name  TEXT NOT NULL,
    arg        TEXT NOT NULL,
    value      TEXT NOT NULL,
    repository TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (task_name, arg)
);
