package gitpoll_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/gitpoll"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

type never struct{}

func (never) Execute(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error) {
	return lifecycle.Outcome{}, nil
}

func gitT(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@x", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPollRemembersHeads: with a real store and lifecycle, the first
// listing records the heads and builds nothing; a new poller (a restart)
// builds nothing either; a moved branch queues one run at its commit,
// with the paths filter applied to the diff; a deleted branch queues
// nothing for a task not asking for deletions.
func TestPollRemembersHeads(t *testing.T) {
	ctx := context.Background()
	cfg := store.Config{Path: filepath.Join(t.TempDir(), "refit.db")}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(t)}
	}
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	runs, err := lifecycle.New(ctx, lifecycle.Config{Store: st, Executor: never{}, Registry: "127.0.0.1:5000"})
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	gitT(t, repo, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "README"), []byte("1"), 0o644)
	gitT(t, repo, "add", ".")
	gitT(t, repo, "commit", "-q", "-m", "one")
	gitT(t, repo, "branch", "topic")
	spec := task.Spec{Name: "app", Source: task.Source{Git: repo, Ref: "main"},
		Triggers: &task.Triggers{Commit: task.CommitTrigger{Enabled: true, Paths: []string{"src"}}}}
	if _, err := st.CreateTask(ctx, store.Task{Spec: spec.Defaults()}); err != nil {
		t.Fatal(err)
	}
	newPoller := func() *gitpoll.Poller {
		p, err := gitpoll.New(gitpoll.Config{Repos: runs.CommitRepos, Store: st, Pusher: runs})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	count := func() int {
		rs, err := st.ListRuns(ctx, store.RunFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(rs)
	}
	newPoller().Poll(ctx)
	newPoller().Poll(ctx)
	if n := count(); n != 0 {
		t.Fatalf("%d runs after a first sight and a restart, want 0", n)
	}
	// A commit outside src: skipped by the paths filter (from the diff).
	os.WriteFile(filepath.Join(repo, "README"), []byte("2"), 0o644)
	gitT(t, repo, "commit", "-q", "-am", "docs")
	newPoller().Poll(ctx)
	if n := count(); n != 0 {
		t.Fatalf("%d runs after a commit outside src, want 0", n)
	}
	// A commit under src: one run at it.
	os.MkdirAll(filepath.Join(repo, "src"), 0o755)
	os.WriteFile(filepath.Join(repo, "src", "main.go"), []byte("package main"), 0o644)
	gitT(t, repo, "add", ".")
	gitT(t, repo, "commit", "-q", "-m", "code")
	sha := gitT(t, repo, "rev-parse", "HEAD")
	p := newPoller()
	p.Poll(ctx)
	p.Poll(ctx)
	rs, err := st.ListRuns(ctx, store.RunFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Cause.SHA != sha || rs[0].Cause.Source != "poll" || rs[0].Cause.Ref != "refs/heads/main" {
		t.Fatalf("runs after a commit under src: %+v, want one at %s", rs, sha)
	}
	// Deleting a branch: nothing for a task without deletions.
	gitT(t, repo, "branch", "-D", "topic")
	newPoller().Poll(ctx)
	if n := count(); n != 1 {
		t.Errorf("%d runs after deleting topic, want still 1", n)
	}
	heads, err := st.GitHeads(ctx, task.RepoKey(repo))
	if err != nil || heads["refs/heads/main"] != sha || heads["refs/heads/topic"] != "" {
		t.Errorf("heads = %v (%v), want main at %s and topic gone", heads, err, sha)
	}
}

// staleHeads is the store as a second refit process saw it before the
// first committed a move: its GitHeads answer is an older snapshot.
type staleHeads struct {
	*store.Store
	heads map[string]string
}

func (s staleHeads) GitHeads(context.Context, string) (map[string]string, error) { return s.heads, nil }

// TestPollRecordsDelivery: with a real store and lifecycle, a polled move
// skipped by the paths filter is recorded as the repository's last "poll"
// delivery with the skip's reason; a second process committing the same
// move (a replay) leaves that verdict in place.
func TestPollRecordsDelivery(t *testing.T) {
	ctx := context.Background()
	cfg := store.Config{Path: filepath.Join(t.TempDir(), "refit.db")}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(t)}
	}
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	runs, err := lifecycle.New(ctx, lifecycle.Config{Store: st, Executor: never{}, Registry: "127.0.0.1:5000"})
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	gitT(t, repo, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "README"), []byte("1"), 0o644)
	gitT(t, repo, "add", ".")
	gitT(t, repo, "commit", "-q", "-m", "one")
	spec := task.Spec{Name: "app", Source: task.Source{Git: repo, Ref: "main"},
		Triggers: &task.Triggers{Commit: task.CommitTrigger{Enabled: true, Paths: []string{"src"}}}}
	if _, err := st.CreateTask(ctx, store.Task{Spec: spec.Defaults()}); err != nil {
		t.Fatal(err)
	}
	poller := func(s gitpoll.Store) *gitpoll.Poller {
		p, err := gitpoll.New(gitpoll.Config{Repos: runs.CommitRepos, Store: s, Pusher: runs, Record: st.RecordGitDelivery})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := task.RepoKey(repo)
	poller(st).Poll(ctx)
	before, err := st.GitHeads(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if ds, err := st.GitDeliveries(ctx, key); err != nil || len(ds) != 0 {
		t.Fatalf("deliveries after the first sight: %+v (%v), want none", ds, err)
	}
	os.WriteFile(filepath.Join(repo, "README"), []byte("2"), 0o644)
	gitT(t, repo, "commit", "-q", "-am", "docs")
	sha := gitT(t, repo, "rev-parse", "HEAD")
	poller(st).Poll(ctx)
	ds, err := st.GitDeliveries(ctx, key)
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries after a docs commit: %+v (%v), want one", ds, err)
	}
	d := ds[0]
	if d.Source != "poll" || d.SHA != sha || d.Ref != "refs/heads/main" || d.Status != 0 || len(d.Runs) != 0 ||
		d.Message != "no task builds refs/heads/main: app: no changed file is under triggers.commit.paths [src]" {
		t.Errorf("poll delivery = %+v, want the paths skip of %s", d, sha)
	}
	// Another process, which listed before the move was committed.
	poller(staleHeads{st, before}).Poll(ctx)
	if again, err := st.GitDeliveries(ctx, key); err != nil || len(again) != 1 || !again[0].At.Equal(d.At) || again[0].Message != d.Message {
		t.Errorf("deliveries after a replayed move: %+v (%v), want the first verdict kept", again, err)
	}
}
