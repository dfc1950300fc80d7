package serve

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/refit-dev/refit/internal/githook"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// TestRecordGitDeliveryBounded: a refused (unauthenticated) delivery is
// kept only under a repository that tasks build, found among the URLs the
// payload names; one naming only other repositories leaves no row, so an
// unauthenticated caller cannot add rows. An authenticated one is kept
// under its own repository.
func TestRecordGitDeliveryBounded(t *testing.T) {
	cfg := store.Config{Path: filepath.Join(t.TempDir(), "refit.db")}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(t)}
	}
	st, err := store.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	used := "https://git.example.com/acme/api.git"
	repos := func(context.Context) (map[string]plan.RepoInfo, error) {
		return map[string]plan.RepoInfo{task.RepoKey(used): {URL: used}}, nil
	}
	record := recordGitDelivery(st, repos, slog.New(slog.DiscardHandler))
	ctx := t.Context()
	stranger := "https://evil.example.com/x/y"
	record(ctx, githook.Delivery{Format: githook.FormatGitHub, Repos: []string{stranger}, Status: 401, Message: "refused"})
	record(ctx, githook.Delivery{Format: githook.FormatGitHub, Repos: []string{stranger, "https://user:pw@git.example.com/acme/api"}, Status: 401, Message: "refused"})
	record(ctx, githook.Delivery{Format: githook.FormatGitLab, Repos: []string{"https://git.example.com/acme/lonely"}, Authenticated: true, Status: 202, Message: "no task"})

	if got, err := st.GitDeliveries(ctx, task.RepoKey(stranger)); err != nil || len(got) != 0 {
		t.Errorf("rows of a repository no task uses after refusals: %+v (%v), want none", got, err)
	}
	got, err := st.GitDeliveries(ctx, task.RepoKey(used))
	if err != nil || len(got) != 1 || got[0].Status != 401 || got[0].Source != "github" {
		t.Errorf("rows of the used repository: %+v (%v), want the github 401", got, err)
	}
	if got, err := st.GitDeliveries(ctx, task.RepoKey("https://git.example.com/acme/lonely")); err != nil || len(got) != 1 || got[0].Source != "gitlab" {
		t.Errorf("rows of the authenticated repository: %+v (%v), want the gitlab 202", got, err)
	}
}
