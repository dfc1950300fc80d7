-- Back to one database without generations: the current one is kept.
CREATE TABLE vuln_advisories_o (
    id TEXT PRIMARY KEY,
    summary TEXT NOT NULL,
    aliases TEXT NOT NULL,
    modified TEXT NOT NULL
);
INSERT INTO vuln_advisories_o (id, summary, aliases, modified)
    SELECT id, summary, aliases, modified FROM vuln_advisories
    WHERE generation = (SELECT generation FROM vuln_import WHERE id = 1);
CREATE TABLE vuln_affected_o (
    advisory_id TEXT NOT NULL REFERENCES vuln_advisories_o (id),
    ecosystem TEXT NOT NULL,
    package TEXT NOT NULL,
    severity TEXT NOT NULL,
    match TEXT NOT NULL
);
INSERT INTO vuln_affected_o (advisory_id, ecosystem, package, severity, match)
    SELECT advisory_id, ecosystem, package, severity, match FROM vuln_affected
    WHERE generation = (SELECT generation FROM vuln_import WHERE id = 1);
CREATE TABLE vuln_ecosystems_o (
    ecosystem TEXT PRIMARY KEY,
    advisories INTEGER NOT NULL,
    packages INTEGER NOT NULL,
    newest_modified TEXT NOT NULL
);
INSERT INTO vuln_ecosystems_o (ecosystem, advisories, packages, newest_modified)
    SELECT ecosystem, advisories, packages, newest_modified FROM vuln_ecosystems
    WHERE generation = (SELECT generation FROM vuln_import WHERE id = 1);
DROP TABLE vuln_affected;
DROP TABLE vuln_advisories;
DROP TABLE vuln_ecosystems;
DROP TABLE vuln_generations;
ALTER TABLE vuln_advisories_o RENAME TO vuln_advisories;
ALTER TABLE vuln_affected_o RENAME TO vuln_affected;
ALTER TABLE vuln_ecosystems_o RENAME TO vuln_ecosystems;
CREATE INDEX vuln_affected_package ON vuln_affected (ecosystem, package);
ALTER TABLE vuln_import DROP COLUMN generation;
