package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/store"
)

// advisories returns n advisories named PREFIX-0000… for package pkg in
// Debian:12.
func advisories(prefix, pkg string, n int) []store.VulnAdvisory {
	out := make([]store.VulnAdvisory, n)
	for i := range out {
		out[i] = store.VulnAdvisory{ID: fmt.Sprintf("%s-%04d", prefix, i), Summary: "s",
			Affected: []store.VulnAffected{{Ecosystem: "Debian:12", Package: pkg, Severity: "high", Match: "{}"}}}
	}
	return out
}

func replace(ctx context.Context, s *store.Store, sha string, advs []store.VulnAdvisory) (store.VulnImport, error) {
	return s.ReplaceVulns(ctx, store.VulnImport{ImportedAt: time.Now(), SHA256: sha}, func(put func(store.VulnAdvisory) error) (int, error) {
		for _, a := range advs {
			if err := put(a); err != nil {
				return 0, err
			}
		}
		return 0, nil
	})
}

// matches counts what VulnMatches finds for pkg.
func matches(t *testing.T, s *store.Store, pkg string) int {
	t.Helper()
	ms, err := s.VulnMatches(context.Background(), "Debian:12", pkg)
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// An import writes in batches of its own: while it is half written,
// another write (a task created) commits at once, and readers see the
// old database whole — never part of the new one — until the import
// ends; then they see the new one whole.
func TestVulnImportLeavesTheWriterFree(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	if _, err := replace(ctx, s, "old", advisories("OLD", "a", 3)); err != nil {
		t.Fatal(err)
	}
	midway, resume := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	const n = 5000 // several batches before the pause
	go func() {
		_, err := s.ReplaceVulns(ctx, store.VulnImport{ImportedAt: time.Now(), SHA256: "new"}, func(put func(store.VulnAdvisory) error) (int, error) {
			for i, a := range advisories("NEW", "b", n) {
				if i == n/2 {
					close(midway)
					<-resume
				}
				if err := put(a); err != nil {
					return 0, err
				}
			}
			return 0, nil
		})
		done <- err
	}()
	<-midway
	// The import is half written: a write does not wait for it (bounded,
	// so that a writer held by the import fails here instead of hanging).
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.CreateTask(wctx, store.Task{Spec: spec("during-import")}); err != nil {
		t.Fatalf("creating a task during an import: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("the import ended (%v) before the write: nothing was shown", err)
	default:
	}
	st, err := s.VulnStatus(ctx)
	if err != nil || st.SHA256 != "old" || st.Advisories != 3 || len(st.Ecosystems) != 1 || st.Ecosystems[0].Advisories != 3 {
		t.Errorf("status during the import = %+v, %v; want the old import's", st, err)
	}
	if a, b := matches(t, s, "a"), matches(t, s, "b"); a != 3 || b != 0 {
		t.Errorf("during the import %d old and %d new matches, want 3 and 0", a, b)
	}
	close(resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, err = s.VulnStatus(ctx)
	if err != nil || st.SHA256 != "new" || st.Advisories != n || st.Ecosystems[0].Advisories != n {
		t.Errorf("status after the import = %+v, %v; want the new one's %d", st, err, n)
	}
	if a, b := matches(t, s, "a"), matches(t, s, "b"); a != 0 || b != n {
		t.Errorf("after the import %d old and %d new matches, want 0 and %d", a, b, n)
	}
	if rows := vulnRows(t, s); rows != n {
		t.Errorf("%d advisory rows kept, want only the current %d (the old generation deleted)", rows, n)
	}
}

func vulnRows(t *testing.T, s *store.Store) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(context.Background(), `SELECT COUNT(*) FROM vuln_advisories`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// An import that dies in its middle (its batches written, the switch
// never made) leaves the old database whole; its rows are deleted when
// refit starts again (CleanVulns) or by the next import.
func TestVulnImportCrashLeavesOldDatabase(t *testing.T) {
	s, where := open(t)
	ctx := t.Context()
	if _, err := replace(ctx, s, "old", advisories("OLD", "a", 3)); err != nil {
		t.Fatal(err)
	}
	crash := func(s *store.Store) {
		t.Helper()
		g, err := s.BeginVulns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range advisories("HALF", "b", 2000) {
			if err := g.Put(a); err != nil {
				t.Fatal(err)
			}
		}
		// … and the process is gone: neither Commit nor Abort.
	}
	crash(s)
	if rows := vulnRows(t, s); rows <= 3 {
		t.Fatalf("%d advisory rows: the half import wrote none", rows)
	}
	if st, err := s.VulnStatus(ctx); err != nil || st.SHA256 != "old" || matches(t, s, "b") != 0 || matches(t, s, "a") != 3 {
		t.Errorf("after the crash: status %+v, %v, b has %d matches; want the old database whole", st, err, matches(t, s, "b"))
	}
	s.Close()

	// refit starts again.
	s = openAt(t, where)
	if s.Postgres() {
		// Another process may be importing into PostgreSQL: only an
		// import silent for minutes counts as dead.
		if err := s.CleanVulns(ctx); err != nil {
			t.Fatal(err)
		}
		if rows := vulnRows(t, s); rows == 3 {
			t.Fatal("a fresh import's rows were deleted from PostgreSQL at start")
		}
		if _, err := s.DB().ExecContext(ctx, `UPDATE vuln_generations SET heartbeat_at = '2000-01-01T00:00:00.000000000Z' WHERE state = 'staging'`); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CleanVulns(ctx); err != nil {
		t.Fatal(err)
	}
	if rows := vulnRows(t, s); rows != 3 {
		t.Errorf("%d advisory rows after the start, want the old database's 3", rows)
	}

	// Crashed again, then the next import cleans up and replaces.
	crash(s)
	if _, err := replace(ctx, s, "next", advisories("NEXT", "c", 4)); err != nil {
		t.Fatal(err)
	}
	if rows := vulnRows(t, s); rows != 4 {
		t.Errorf("%d advisory rows after the next import, want its 4", rows)
	}
	if st, err := s.VulnStatus(ctx); err != nil || st.SHA256 != "next" || matches(t, s, "c") != 4 || matches(t, s, "b") != 0 {
		t.Errorf("after the next import: %+v, %v", st, err)
	}
}

// The newest import wins: one started while another is half written
// makes the older fail at its next batch, saying so.
func TestVulnImportNewestWins(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	older, err := s.BeginVulns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replace(ctx, s, "newer", advisories("NEWER", "a", 2)); err != nil {
		t.Fatal(err)
	}
	var failed error
	for _, a := range advisories("OLDER", "b", 2000) {
		if failed = older.Put(a); failed != nil {
			break
		}
	}
	if failed == nil {
		failed = older.Commit(ctx, store.VulnImport{SHA256: "older"})
	}
	if !errors.Is(failed, store.ErrVulnImportReplaced) {
		t.Errorf("the older import = %v, want ErrVulnImportReplaced", failed)
	}
	older.Abort(ctx)
	if st, err := s.VulnStatus(ctx); err != nil || st.SHA256 != "newer" || vulnRows(t, s) != 2 {
		t.Errorf("status %+v, %v, %d rows; want the newer import alone", st, err, vulnRows(t, s))
	}
}
