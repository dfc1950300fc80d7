-- Package catalogs of images, one per platform manifest digest (the same
-- base digest is catalogued once, whatever number of tasks use it), and
-- the diffs between two of them. Both hold internal/catalog's JSON.
CREATE TABLE catalogs (
    digest     TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE image_diffs (
    old_digest TEXT NOT NULL,
    new_digest TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (old_digest, new_digest)
);
