-- The offline vulnerability database (refit vulndb import): OSV advisories
-- and, per advisory, the packages they affect with the ranges that say
-- which versions (match: JSON written and read by internal/vulndb; the
-- store does not interpret it). An import replaces every row in one
-- transaction. Looked up by (ecosystem, package), never scanned.
CREATE TABLE vuln_advisories (
    id TEXT PRIMARY KEY,
    summary TEXT NOT NULL,
    aliases TEXT NOT NULL,   -- space-separated
    modified TEXT NOT NULL   -- '' = not given
);
CREATE TABLE vuln_affected (
    advisory_id TEXT NOT NULL REFERENCES vuln_advisories (id),
    ecosystem TEXT NOT NULL, -- OSV ecosystem: Debian:12, Alpine:v3.19
    package TEXT NOT NULL,
    severity TEXT NOT NULL,  -- low, medium, high, critical or unknown
    match TEXT NOT NULL
);
CREATE INDEX vuln_affected_package ON vuln_affected (ecosystem, package);
-- What the last import held, per ecosystem, for refit vulndb status.
CREATE TABLE vuln_ecosystems (
    ecosystem TEXT PRIMARY KEY,
    advisories INTEGER NOT NULL,
    packages INTEGER NOT NULL,
    newest_modified TEXT NOT NULL
);
-- The last import (one row at most).
CREATE TABLE vuln_import (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    imported_at TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    advisories INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    newest_modified TEXT NOT NULL
);
