package store_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// TestTagRepos: a task with baseTags follows its repository as soon as
// it is stored (due at once); SyncTagRepos replaces the constraints,
// keeps the newest tag of those still followed and removes repositories
// nothing follows; a failed listing backs the repository off.
func TestTagRepos(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	sp := spec("py")
	sp.Triggers = &task.Triggers{Base: true, BaseTags: []task.BaseTag{{Ref: "python", Arg: "PYTHON_TAG", Semver: "~3.12"}}}
	if _, err := s.CreateTask(ctx, store.Task{Spec: sp}); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueTagRepos(ctx, time.Now(), 10)
	if err != nil || len(due) != 1 || due[0].Repository != "docker.io/library/python" || !slices.Equal(due[0].Rules, []string{"~3.12"}) {
		t.Fatalf("due after create = %+v, %v; want python following ~3.12", due, err)
	}
	err = s.InTx(ctx, func(tx *store.Tx) error {
		r, err := tx.TagRepo("docker.io/library/python")
		if err != nil {
			return err
		}
		r.Newest["~3.12"] = store.TagSeen{Tag: "3.12.8", Digest: "sha256:a"}
		r.TagCount, r.NextListAt = 3, time.Now().Add(time.Hour)
		return tx.SaveTagList(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	if due, _ := s.DueTagRepos(ctx, time.Now(), 10); len(due) != 0 {
		t.Errorf("listed repository still due: %+v", due)
	}
	n, err := s.SyncTagRepos(ctx, map[string][]string{"docker.io/library/python": {"~3.12", "^3"}, "docker.io/library/node": {"^22"}})
	if err != nil || n != 0 {
		t.Fatal(n, err)
	}
	rs, _ := s.ListTagRepos(ctx)
	if len(rs) != 2 || rs[1].Repository != "docker.io/library/python" || rs[1].Newest["~3.12"].Tag != "3.12.8" || !slices.Equal(rs[1].Rules, []string{"^3", "~3.12"}) {
		t.Errorf("after sync = %+v", rs)
	}
	if n, err := s.SyncTagRepos(ctx, map[string][]string{"docker.io/library/python": {"^3"}}); err != nil || n != 1 {
		t.Errorf("sync dropping node: removed %d, %v; want 1", n, err)
	}
	rs, _ = s.ListTagRepos(ctx)
	if len(rs) != 1 || len(rs[0].Newest) != 0 {
		t.Errorf("after the second sync = %+v, want python alone, its ~3.12 newest dropped with the rule", rs)
	}
	// A push of a tag of a followed repository makes it due at once.
	if n, _, err := s.HintRefs(ctx, []string{"docker.io/library/python:3.12.9"}, "push", ""); err != nil || n != 1 {
		t.Errorf("hinting a new tag: %d, %v; want the followed repository counted", n, err)
	}
	if due, _ := s.DueTagRepos(ctx, time.Now(), 10); len(due) != 1 || due[0].Repository != "docker.io/library/python" {
		t.Errorf("due after a push hint = %+v, want python", due)
	}
	next := time.Now().Add(time.Minute)
	if err := s.RecordTagListError(ctx, "docker.io/library/python", "429 Too Many Requests", next); err != nil {
		t.Fatal(err)
	}
	rs, _ = s.ListTagRepos(ctx)
	if rs[0].Failures != 1 || rs[0].LastError != "429 Too Many Requests" || rs[0].ErrorSince.IsZero() || !rs[0].NextListAt.After(time.Now()) {
		t.Errorf("after an error = %+v", rs[0])
	}
}

// TestTaskTagArgs: an arg a baseTags rebuild set applies to every run
// created for the task (and only for entries still asking a rebuild),
// shows on GetTask, and goes with the task.
func TestTaskTagArgs(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	sp := spec("py")
	sp.BuildArgs = map[string]string{"PYTHON_TAG": "3.12.8"}
	sp.Triggers = &task.Triggers{Base: true, BaseTags: []task.BaseTag{{Ref: "python", Arg: "PYTHON_TAG", Semver: "~3.12"}}}
	if _, err := s.CreateTask(ctx, store.Task{Spec: sp}); err != nil {
		t.Fatal(err)
	}
	if err := s.InTx(ctx, func(tx *store.Tx) error {
		return tx.SetTaskTagArg("py", "PYTHON_TAG", "3.12.9", "docker.io/library/python")
	}); err != nil {
		t.Fatal(err)
	}
	r, err := s.CreateRun(ctx, store.Run{Task: "py", Spec: sp, Cause: store.Cause{Kind: "manual"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetRun(ctx, r.ID); got.Spec.BuildArgs["PYTHON_TAG"] != "3.12.9" {
		t.Errorf("run's PYTHON_TAG = %q, want 3.12.9", got.Spec.BuildArgs["PYTHON_TAG"])
	}
	if tk, _ := s.GetTask(ctx, "py"); tk.TagArgs["PYTHON_TAG"] != "3.12.9" {
		t.Errorf("task's tag args = %v", tk.TagArgs)
	}
	if es, err := s.AuditEntries(ctx, store.AuditFilter{Action: "task.tagarg"}); err != nil || len(es) != 1 || es[0].Actor != "system" ||
		!strings.Contains(string(es[0].Details), `"tag":"3.12.9"`) {
		t.Errorf("audit of the tag arg = %+v, %v; want one by system naming 3.12.9", es, err)
	}
	if err := s.DeleteTask(ctx, "py"); err != nil {
		t.Fatal(err)
	}
	if args, err := s.TaskTagArgs(ctx, "py"); err != nil || args != nil {
		t.Errorf("tag args of a deleted task = %v, %v", args, err)
	}
}

// TestWatches: a watch tracks what it watches in its own transaction,
// is updated by a second put, and deleting an unknown one is ErrNotFound.
func TestWatches(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	w := store.Watch{Ref: "docker.io/library/debian:12", Repository: "docker.io/library/debian", ByDigest: true, Semver: "^12"}
	if created, err := s.PutWatch(ctx, w); err != nil || !created {
		t.Fatal(created, err)
	}
	if _, err := s.GetBaseRef(ctx, w.Ref); err != nil {
		t.Errorf("watched reference not tracked: %v", err)
	}
	if rs, _ := s.ListTagRepos(ctx); len(rs) != 1 || rs[0].Repository != w.Repository {
		t.Errorf("watched repository not followed: %+v", rs)
	}
	w.Semver = "^13"
	if created, err := s.PutWatch(ctx, w); err != nil || created {
		t.Errorf("second put: created %v, %v; want an update", created, err)
	}
	ws, _ := s.ListWatches(ctx)
	if len(ws) != 1 || ws[0].Semver != "^13" || !ws[0].ByDigest {
		t.Errorf("watches = %+v", ws)
	}
	if err := s.DeleteWatch(ctx, "docker.io/library/nope:1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting an unknown watch: %v", err)
	}
	if err := s.DeleteWatch(ctx, w.Ref); err != nil {
		t.Error(err)
	}
	var actions []string
	es, err := s.AuditEntries(ctx, store.AuditFilter{Subject: w.Ref})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		actions = append(actions, e.Action)
	}
	if !slices.Equal(actions, []string{"watch.set", "watch.set", "watch.delete"}) {
		t.Errorf("audit of the watch = %q, want set, set, delete", actions)
	}
}
