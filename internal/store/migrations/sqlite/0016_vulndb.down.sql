DROP TABLE vuln_import;
DROP TABLE vuln_ecosystems;
DROP TABLE vuln_affected;
DROP TABLE vuln_advisories;
