-- The vulnerability database in generations: an import writes a new
-- generation in short transactions of bounded size (other writes go
-- between them), then makes it current in one small transaction
-- (vuln_import.generation), so readers see the old database or the new
-- one, never half. Rows of a generation that is no longer current, or of
-- an import that died, are deleted in batches afterwards.
CREATE TABLE vuln_generations (
    generation BIGINT PRIMARY KEY,
    state TEXT NOT NULL,          -- staging, current, retired (rows being deleted) or gone
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL    -- a staging import's last batch
);
CREATE TABLE vuln_advisories_g (
    generation BIGINT NOT NULL,
    id TEXT NOT NULL,
    summary TEXT NOT NULL,
    aliases TEXT NOT NULL,   -- space-separated
    modified TEXT NOT NULL,  -- '' = not given
    PRIMARY KEY (generation, id)
);
INSERT INTO vuln_advisories_g (generation, id, summary, aliases, modified)
    SELECT 1, id, summary, aliases, modified FROM vuln_advisories;
-- No foreign key to vuln_advisories: both are written in the same
-- transactions by the store, and the check would cost every import row.
CREATE TABLE vuln_affected_g (
    generation BIGINT NOT NULL,
    advisory_id TEXT NOT NULL,
    ecosystem TEXT NOT NULL, -- OSV ecosystem: Debian:12, Alpine:v3.19
    package TEXT NOT NULL,
    severity TEXT NOT NULL,  -- low, medium, high, critical or unknown
    match TEXT NOT NULL
);
INSERT INTO vuln_affected_g (generation, advisory_id, ecosystem, package, severity, match)
    SELECT 1, advisory_id, ecosystem, package, severity, match FROM vuln_affected;
CREATE TABLE vuln_ecosystems_g (
    generation BIGINT NOT NULL,
    ecosystem TEXT NOT NULL,
    advisories INTEGER NOT NULL,
    packages INTEGER NOT NULL,
    newest_modified TEXT NOT NULL,
    PRIMARY KEY (generation, ecosystem)
);
INSERT INTO vuln_ecosystems_g (generation, ecosystem, advisories, packages, newest_modified)
    SELECT 1, ecosystem, advisories, packages, newest_modified FROM vuln_ecosystems;
DROP TABLE vuln_affected;
DROP TABLE vuln_advisories;
DROP TABLE vuln_ecosystems;
ALTER TABLE vuln_advisories_g RENAME TO vuln_advisories;
ALTER TABLE vuln_affected_g RENAME TO vuln_affected;
ALTER TABLE vuln_ecosystems_g RENAME TO vuln_ecosystems;
CREATE INDEX vuln_affected_package ON vuln_affected (generation, ecosystem, package);
ALTER TABLE vuln_import ADD COLUMN generation BIGINT NOT NULL DEFAULT 1;
INSERT INTO vuln_generations (generation, state, started_at, heartbeat_at)
    SELECT 1, 'current', imported_at, imported_at FROM vuln_import;
