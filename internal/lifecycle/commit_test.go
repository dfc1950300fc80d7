package lifecycle_test

import (
	"context"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

const repoURL = "https://git.example.com/acme/app.git"

// addGitTask stores a task on repoURL whose Dockerfile is df.
func (f *fixture) addGitTask(t *testing.T, spec task.Spec, df string) {
	t.Helper()
	res, err := dockerfile.Parse(strings.NewReader(df), dockerfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec.Source = task.Source{Git: repoURL, Ref: "main"}
	if _, err := f.st.CreateTask(context.Background(), store.Task{Spec: spec.Defaults(), Bases: res.Bases}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) push(t *testing.T, sha, delivery string, files ...string) {
	t.Helper()
	p := plan.Push{Repos: []string{"git@git.example.com:acme/app"}, Ref: "refs/heads/main", SHA: sha, Author: "Ada <a@x>",
		Message: "msg " + sha[:4], Files: files, FilesKnown: len(files) > 0, Source: "webhook"}
	if _, err := f.l.Push(context.Background(), p, delivery, false); err != nil {
		t.Fatal(err)
	}
}

// TestCommitAndBaseUpdateBuildOnce: a commit and a base update for the
// same task, within the debounce and in either order, make one run
// whose cause is the commit (it decides what is built) and which keeps
// the base update in also; a newer commit replaces the older one; a
// replayed delivery changes nothing.
func TestCommitAndBaseUpdateBuildOnce(t *testing.T) {
	sha1, sha2 := strings.Repeat("1", 40), strings.Repeat("2", 40)
	for _, commitFirst := range []bool{true, false} {
		f := newFixture(t)
		ref := "docker.io/library/debian:12"
		f.addGitTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
		f.observe(t, ref, "sha256:0", "linux/amd64", "sha256:00") // baseline
		if commitFirst {
			f.push(t, sha1, "d1")
			f.observe(t, ref, "sha256:1", "linux/amd64", "sha256:11")
		} else {
			f.observe(t, ref, "sha256:1", "linux/amd64", "sha256:11")
			f.push(t, sha1, "d1")
		}
		runs := f.runs(t)
		if len(runs) != 1 {
			t.Fatalf("commit first %v: %d runs, want 1", commitFirst, len(runs))
		}
		c := runs[0].Cause
		if c.Kind != "commit" || c.SHA != sha1 || c.Repo != "git@git.example.com:acme/app" || c.Author != "Ada <a@x>" || c.Message != "msg 1111" ||
			len(c.Also) != 1 || c.Also[0].Kind != "base" || c.Also[0].NewDigest != "sha256:11" {
			t.Errorf("commit first %v: cause %+v, want commit %s with the base update in also", commitFirst, c, sha1)
		}
		// A newer commit and a newer digest: still one run, the newest of each.
		f.push(t, sha2, "d2")
		f.observe(t, ref, "sha256:2", "linux/amd64", "sha256:22")
		f.push(t, sha2, "d2") // a replay
		runs = f.runs(t)
		if len(runs) != 1 {
			t.Fatalf("commit first %v, after more: %d runs, want 1", commitFirst, len(runs))
		}
		if c := runs[0].Cause; c.SHA != sha2 || len(c.Also) != 1 || c.Also[0].NewDigest != "sha256:22" {
			t.Errorf("commit first %v: cause %+v, want commit %s and base → sha256:22 in also", commitFirst, c, sha2)
		}
	}
}

// TestPushFilters: the branch and paths filters decide which tasks a
// push builds and say why the others do not; a replay queues nothing; a
// polled push remembers the head.
func TestPushFilters(t *testing.T) {
	f := newFixture(t)
	f.addGitTask(t, task.Spec{Name: "api", Triggers: &task.Triggers{Commit: task.CommitTrigger{Enabled: true,
		Branches: []string{"main", "release/*"}, Paths: []string{"services/api/**"}}}}, "FROM scratch\n")
	f.addGitTask(t, task.Spec{Name: "web"}, "FROM scratch\n")
	f.addGitTask(t, task.Spec{Name: "off", Triggers: &task.Triggers{Manual: true}}, "FROM scratch\n")
	ctx := context.Background()
	sha := strings.Repeat("a", 40)
	p := plan.Push{Repos: []string{repoURL}, Ref: "refs/heads/main", SHA: sha, Files: []string{"docs/x.md"}, FilesKnown: true, Source: "poll"}
	res, err := f.l.Push(ctx, p, "p1", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 1 || res.Runs[0].Task != "web" || len(res.Skipped) != 2 {
		t.Fatalf("docs-only push: runs %v, skipped %+v; want web only", res.Runs, res.Skipped)
	}
	why := map[string]string{}
	for _, s := range res.Skipped {
		why[s.Task] = s.Reason
	}
	if !strings.Contains(why["api"], "no changed file is under triggers.commit.paths") || why["off"] != "commit trigger is off" {
		t.Errorf("skip reasons = %v", why)
	}
	heads, err := f.st.GitHeads(ctx, task.RepoKey(repoURL))
	if err != nil || heads["refs/heads/main"] != sha {
		t.Errorf("heads after a polled push = %v, %v; want main at %s", heads, err, sha)
	}
	if res, err := f.l.Push(ctx, p, "p1", true); err != nil || !res.Replay || len(res.Runs) != 0 {
		t.Errorf("replay: %+v, %v; want a replay, no runs", res, err)
	}
	p = plan.Push{Repos: []string{repoURL}, Ref: "refs/heads/release/2", SHA: strings.Repeat("b", 40), Files: []string{"services/api/main.go"}, FilesKnown: true}
	res, err = f.l.Push(ctx, p, "p2", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 1 || res.Runs[0].Task != "api" || res.Runs[0].Cause.SHA != p.SHA {
		t.Errorf("push to release/2 under services/api: runs %+v, want api's at %s", res.Runs, p.SHA)
	}
	if res, _ := f.l.Push(ctx, plan.Push{Repos: []string{"https://git.example.com/acme/other"}, Ref: "refs/heads/main", SHA: sha}, "", false); !res.Unused {
		t.Errorf("push of a repository no task uses: %+v, want Unused", res)
	}
}
