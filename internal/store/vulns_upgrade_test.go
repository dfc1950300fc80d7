package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/refit-dev/refit/internal/pgtest"
)

// TestUpgradeKeepsVulnDB: a vulnerability database imported before
// generations (version 17) is the current generation after the upgrade:
// the same status and matches, and the next import replaces it.
func TestUpgradeKeepsVulnDB(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "refit.db")}
	if pgtest.Wanted() {
		cfg = Config{URL: pgtest.URL(t)}
	}
	ctx := context.Background()
	old := cfg
	old.migrateUpTo = 17
	s, err := Open(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO vuln_advisories (id, summary, aliases, modified) VALUES ('DSA-1', 'old', 'CVE-2024-1', '')`,
		`INSERT INTO vuln_affected (advisory_id, ecosystem, package, severity, match) VALUES ('DSA-1', 'Debian:12', 'openssl', 'high', '{}')`,
		`INSERT INTO vuln_ecosystems (ecosystem, advisories, packages, newest_modified) VALUES ('Debian:12', 1, 1, '')`,
		`INSERT INTO vuln_import (id, imported_at, sha256, size, advisories, skipped, newest_modified) VALUES (1, '2026-11-01T00:00:00.000000000Z', 'abc', 10, 1, 0, '')`,
	} {
		if _, err := s.write.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	s, err = Open(ctx, cfg) // the upgrade
	if err != nil {
		t.Fatalf("upgrading: %v", err)
	}
	defer s.Close()
	st, err := s.VulnStatus(ctx)
	if err != nil || st.SHA256 != "abc" || st.Advisories != 1 || len(st.Ecosystems) != 1 || st.Ecosystems[0].Ecosystem != "Debian:12" {
		t.Errorf("status after the upgrade = %+v, %v; want the old import", st, err)
	}
	ms, err := s.VulnMatches(ctx, "Debian:12", "openssl")
	if err != nil || len(ms) != 1 || ms[0].AdvisoryID != "DSA-1" || len(ms[0].Aliases) != 1 {
		t.Errorf("matches after the upgrade = %+v, %v", ms, err)
	}
	if _, err := s.ReplaceVulns(ctx, VulnImport{SHA256: "def"}, func(put func(VulnAdvisory) error) (int, error) {
		return 0, put(VulnAdvisory{ID: "DSA-2", Affected: []VulnAffected{{Ecosystem: "Debian:12", Package: "curl", Severity: "low", Match: "{}"}}})
	}); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := s.write.QueryRowContext(ctx, `SELECT COUNT(*) FROM vuln_advisories`).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("%d advisory rows after the next import (%v), want 1: the upgraded generation deleted", rows, err)
	}
}
