-- The last delivery of a push per repository (keyed as task.RepoKey
-- normalizes its URL) and source: a webhook format (github, gitlab,
-- gitea, generic) or "poll". One row per pair, replaced on each
-- delivery, so the table is bounded by the repositories tasks use (a
-- refused delivery is recorded only for those). Never a body or a secret.
CREATE TABLE git_deliveries (
    repo_key  TEXT NOT NULL,
    source    TEXT NOT NULL,
    at        TEXT NOT NULL,
    delivery  TEXT NOT NULL,
    ref       TEXT NOT NULL,
    sha       TEXT NOT NULL,
    status    INTEGER NOT NULL,
    message   TEXT NOT NULL,
    runs      TEXT NOT NULL,
    PRIMARY KEY (repo_key, source)
);
