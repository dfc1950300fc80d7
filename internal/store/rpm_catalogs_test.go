package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/refit-dev/refit/internal/pgtest"
)

// TestUpgradeDropsUnreadRPMCatalogs: catalogs stored before refit read
// rpm databases ("rpm (not read: …)", no packages) and the diffs made
// from them are dropped by the upgrade (migration 18), so they are read
// again; every other catalog and diff is kept.
func TestUpgradeDropsUnreadRPMCatalogs(t *testing.T) {
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
	unread := `{"digest":"sha256:aa","db":["rpm (not read: var/lib/rpm/Packages)"],"packages":[]}`
	deb := `{"digest":"sha256:bb","db":["dpkg"],"packages":[{"name":"bash","version":"5.2","type":"deb"}]}`
	for d, data := range map[string]string{"sha256:aa": unread, "sha256:bb": deb, "sha256:cc": deb} {
		if err := s.PutCatalog(ctx, d, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range [][2]string{{"sha256:aa", "sha256:bb"}, {"sha256:bb", "sha256:aa"}, {"sha256:bb", "sha256:cc"}} {
		if err := s.PutImageDiff(ctx, p[0], p[1], []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	s, err = Open(ctx, cfg) // the upgrade
	if err != nil {
		t.Fatalf("upgrading: %v", err)
	}
	defer s.Close()
	if _, err := s.Catalog(ctx, "sha256:aa"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the unread rpm catalog after the upgrade: %v, want it dropped", err)
	}
	for _, d := range []string{"sha256:bb", "sha256:cc"} {
		if _, err := s.Catalog(ctx, d); err != nil {
			t.Errorf("catalog %s after the upgrade: %v, want it kept", d, err)
		}
	}
	for _, p := range [][2]string{{"sha256:aa", "sha256:bb"}, {"sha256:bb", "sha256:aa"}} {
		if _, err := s.ImageDiff(ctx, p[0], p[1]); !errors.Is(err, ErrNotFound) {
			t.Errorf("diff %s → %s after the upgrade: %v, want it dropped", p[0], p[1], err)
		}
	}
	if _, err := s.ImageDiff(ctx, "sha256:bb", "sha256:cc"); err != nil {
		t.Errorf("diff of two dpkg catalogs after the upgrade: %v, want it kept", err)
	}
}
