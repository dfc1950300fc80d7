package store_test

import (
	"fmt"
	"testing"

	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/store"
)

// TestPutTasks: a set of tasks is put in one transaction, each reported
// created, updated or unchanged, with one task.changed event per change
// and its bases tracked.
func TestPutTasks(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	base := []dockerfile.Base{{Ref: "docker.io/library/debian:12", Name: "debian:12", Stage: "0", Role: dockerfile.RoleRuntime}}
	res, err := s.PutTasks(ctx, []store.Task{{Spec: spec("a"), Bases: base}, {Spec: spec("b")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(res); got != "a created, b created" {
		t.Errorf("first PutTasks: %s, want both created", got)
	}
	b2 := spec("b")
	b2.Tags = []string{"stable"}
	res, err = s.PutTasks(ctx, []store.Task{{Spec: spec("a"), Bases: base}, {Spec: b2}, {Spec: spec("c")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(res); got != "a unchanged, b updated, c created" {
		t.Errorf("second PutTasks: %s", got)
	}
	evs, err := s.ListEvents(ctx, store.EventFilter{Type: store.EventTaskChanged})
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, e := range evs {
		subjects = append(subjects, e.Subject)
	}
	if got := fmt.Sprint(subjects); got != "[a b b c]" {
		t.Errorf("task.changed subjects %s, want [a b b c]", got)
	}
	if _, err := s.GetBaseRef(ctx, base[0].Ref); err != nil {
		t.Errorf("base of a put task is not tracked: %v", err)
	}
	if got, err := s.GetTask(ctx, "b"); err != nil || fmt.Sprint(got.Spec.Tags) != "[stable]" {
		t.Errorf("task b after update: %v %v", got.Spec.Tags, err)
	}
}

func outcomes(rs []store.PutResult) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += ", "
		}
		action := "unchanged"
		switch {
		case r.Created:
			action = "created"
		case r.Changed:
			action = "updated"
		}
		s += r.Task.Spec.Name + " " + action
	}
	return s
}

// TestPutTasksHash: a put that changes only a task's hash stores the hash
// and nothing else (no event, the tasks version stays); bases a run finds
// different from the stored ones clear the hash, the same ones keep it.
// Many tasks on one reference track it once.
func TestPutTasksHash(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	base := []dockerfile.Base{{Ref: "docker.io/library/debian:12", Name: "debian:12", Stage: "0", Role: dockerfile.RoleRuntime}}
	var ts []store.Task
	for i := range 50 {
		ts = append(ts, store.Task{Spec: spec(fmt.Sprintf("t%d", i)), Bases: base, Hash: "h1"})
	}
	if _, err := s.PutTasks(ctx, ts); err != nil {
		t.Fatal(err)
	}
	version := func() (v int64) {
		t.Helper()
		if err := s.InTx(ctx, func(tx *store.Tx) (err error) { v, err = tx.TasksVersion(); return err }); err != nil {
			t.Fatal(err)
		}
		return v
	}
	events := func() int {
		t.Helper()
		evs, err := s.ListEvents(ctx, store.EventFilter{Type: store.EventTaskChanged})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	hash := func(name string) string {
		t.Helper()
		hs, err := s.TaskHashes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return hs[name]
	}
	if refs, err := s.ListBaseRefs(ctx); err != nil || len(refs) != 1 {
		t.Errorf("base refs after 50 tasks on one base: %d (%v), want 1", len(refs), err)
	}
	v, n := version(), events()
	res, err := s.PutTasks(ctx, []store.Task{{Spec: spec("t0"), Bases: base, Hash: "h2"}})
	if err != nil || res[0].Changed || res[0].Created {
		t.Fatalf("put of t0 with only a new hash: %+v, %v; want unchanged", res, err)
	}
	if got := hash("t0"); got != "h2" {
		t.Errorf("hash of t0 = %q, want h2", got)
	}
	if version() != v || events() != n {
		t.Errorf("a put of a new hash moved the tasks version (%d → %d) or wrote events (%d → %d)", v, version(), n, events())
	}
	if err := s.SetTaskBases(ctx, "t0", base); err != nil || hash("t0") != "h2" {
		t.Errorf("same bases from a run: hash %q (%v), want h2 kept", hash("t0"), err)
	}
	other := []dockerfile.Base{{Ref: "docker.io/library/alpine:3", Name: "alpine:3", Stage: "0", Role: dockerfile.RoleRuntime}}
	if err := s.SetTaskBases(ctx, "t0", other); err != nil || hash("t0") != "" {
		t.Errorf("other bases from a run: hash %q (%v), want it cleared", hash("t0"), err)
	}
	if hash("t1") != "h1" {
		t.Errorf("hash of t1 = %q, want h1 untouched", hash("t1"))
	}
}

// TestCommitReportsWhatPutTasksWrote: the commit of PutTasks (refit
// apply) tells the OnCommit hook its task.changed events — the event
// dispatcher is woken that way — and that it tracked new base
// references (the index watcher is woken that way); putting the same
// bases again tracks nothing new.
func TestCommitReportsWhatPutTasksWrote(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	var commits []store.Commit
	s.OnCommit(func(c store.Commit) { commits = append(commits, c) })
	base := []dockerfile.Base{{Stage: "0", Role: dockerfile.RoleRuntime, Kind: dockerfile.KindFrom, Ref: "docker.io/library/debian:12"}}
	if _, err := s.PutTasks(ctx, []store.Task{{Spec: spec("a"), Bases: base}, {Spec: spec("b"), Bases: base}}); err != nil {
		t.Fatal(err)
	}
	if len(commits) != 1 || len(commits[0].Events) != 2 || commits[0].Events[0].Type != store.EventTaskChanged || !commits[0].RefsDue {
		t.Fatalf("commits = %+v, want one with 2 task.changed events and RefsDue", commits)
	}
	b := spec("b")
	b.Image = "other"
	if _, err := s.PutTasks(ctx, []store.Task{{Spec: b, Bases: base}}); err != nil {
		t.Fatal(err)
	}
	if len(commits) != 2 || len(commits[1].Events) != 1 || commits[1].RefsDue {
		t.Errorf("second commit = %+v, want one task.changed event and no new reference due", commits[1:])
	}
}

// TestCommitReportsWatchesDue: a watch of a new reference, or of a new
// repository's tags, makes something due at once, so its commit wakes
// the index watcher (RefsDue) as a task's new base does; watching it
// again makes nothing new due.
func TestCommitReportsWatchesDue(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	var commits []store.Commit
	s.OnCommit(func(c store.Commit) { commits = append(commits, c) })
	for _, w := range []store.Watch{
		{Ref: "docker.io/library/redis:7", Repository: "docker.io/library/redis", ByDigest: true},
		{Ref: "docker.io/library/python", Repository: "docker.io/library/python", Semver: "~3.12"},
	} {
		commits = nil
		if _, err := s.PutWatch(ctx, w); err != nil {
			t.Fatal(err)
		}
		if len(commits) != 1 || !commits[0].RefsDue {
			t.Errorf("watch of %s: %d commits, RefsDue %v; want one with RefsDue", w.Ref, len(commits), refsDue(commits))
		}
		commits = nil
		if _, err := s.PutWatch(ctx, w); err != nil {
			t.Fatal(err)
		}
		if len(commits) != 1 || commits[0].RefsDue {
			t.Errorf("watch of %s again: %d commits, RefsDue %v; want one without RefsDue", w.Ref, len(commits), refsDue(commits))
		}
	}
}

func refsDue(cs []store.Commit) []bool {
	out := make([]bool, len(cs))
	for i, c := range cs {
		out[i] = c.RefsDue
	}
	return out
}
