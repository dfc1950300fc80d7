-- Git webhook secrets, one per repository (keyed as task.RepoKey
-- normalizes its URL), sealed with the server's secret key like registry
-- passwords; never returned by the API.
CREATE TABLE git_secrets (
    repo_key   TEXT PRIMARY KEY,
    repo       TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    updated_at TEXT NOT NULL
);

-- The heads git polling last saw, per repository and ref, so that a
-- restart does not take every head for a new commit.
CREATE TABLE git_heads (
    repo_key TEXT NOT NULL,
    ref      TEXT NOT NULL,
    sha      TEXT NOT NULL,
    seen_at  TEXT NOT NULL,
    PRIMARY KEY (repo_key, ref)
);
