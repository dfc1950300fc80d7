package plan_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

const reg = "127.0.0.1:5000"

func TestCycleRejected(t *testing.T) {
	mk := func(name, image, from string) store.Task {
		res, err := dockerfile.Parse(strings.NewReader("FROM "+from+"\n"), dockerfile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return store.Task{Spec: task.Spec{Name: name, Image: image, Source: task.Source{Dir: "/"}}.Defaults(), Bases: res.Bases}
	}
	tasks := []store.Task{mk("a", "a", reg+"/c"), mk("b", "b", reg+"/a")}
	if err := plan.CheckCycle(tasks, mk("c", "c", "debian"), reg); err != nil {
		t.Errorf("no cycle yet: %v", err)
	}
	err := plan.CheckCycle(tasks, mk("c", "c", reg+"/b"), reg)
	if err == nil || !strings.Contains(err.Error(), "a") || !strings.Contains(err.Error(), "c") || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle a→b→c→a: got %v, want an error naming the tasks", err)
	}
}

// TestGraphCheckCycles: the check on a graph of stored tasks sees each
// changed task in place of the stored one (its old edges gone), finds a
// cycle through a changed task, and leaves the graph as it was.
func TestGraphCheckCycles(t *testing.T) {
	mk := func(name, from string) store.Task {
		res, err := dockerfile.Parse(strings.NewReader("FROM "+from+"\n"), dockerfile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return store.Task{Spec: task.Spec{Name: name, Source: task.Source{Dir: "/"}}, Bases: res.Bases}
	}
	// a builds on c, b on a; c on debian.
	g := plan.NewGraph([]store.Task{mk("a", reg+"/c"), mk("b", reg+"/a"), mk("c", "debian")}, reg)
	var ce *plan.CycleError
	if err := g.CheckCycles([]store.Task{mk("c", reg+"/b")}); !errors.As(err, &ce) || ce.Task != "c" || len(ce.Cycle) != 4 {
		t.Errorf("c changed to build on b: %v, want a cycle of a, b and c naming c", err)
	}
	// With a changed off c at the same time, c on b closes nothing.
	if err := g.CheckCycles([]store.Task{mk("c", reg+"/b"), mk("a", "debian")}); err != nil {
		t.Errorf("c on b with a on debian: %v, want no cycle (a's old base is gone)", err)
	}
	if err := g.CheckCycles([]store.Task{mk("d", reg+"/d")}); err != nil {
		t.Errorf("a task on its own output: %v, want no cycle", err)
	}
	if err := g.CheckCycles(nil); err != nil || g.Cycle() != nil || !g.Watches("a", reg+"/c:latest") {
		t.Errorf("after the checks the graph changed: %v %v", err, g.Cycle())
	}
}

// TestExplainBaseTags: explain says what a task's baseTags entries do.
func TestExplainBaseTags(t *testing.T) {
	tk := store.Task{Spec: task.Spec{Name: "py", Source: task.Source{Dir: "/s"}, Triggers: &task.Triggers{Base: true, BaseTags: []task.BaseTag{
		{Ref: "python", Arg: "PYTHON_TAG", Semver: "~3.12"}, {Ref: "node", Semver: "^22", Action: "notify"}}}}}
	e := plan.Explain(plan.NewGraph([]store.Task{tk}, "127.0.0.1:5000"), tk, nil, nil)
	for _, want := range []string{"a new tag of python matching ~3.12 rebuilds it with PYTHON_TAG set to that tag",
		"new tags of node matching ^22 are announced (base.tagged), not built"} {
		if !strings.Contains(e.Trigger, want) {
			t.Errorf("trigger = %q, want it to say %q", e.Trigger, want)
		}
	}
}

// A waiting run that absorbs a newer digest of its base forgets the
// summary of the older update's diff: it no longer describes the run.
func TestCoalesceDropsStaleChanges(t *testing.T) {
	waiting := store.Run{ID: 1, Cause: store.Cause{Kind: "base", Base: "debian:12", Platform: "linux/amd64",
		OldDigest: "sha256:a", NewDigest: "sha256:b", Changes: "openssl 1 → 2"}}
	r := plan.Coalesce(waiting, store.Cause{Kind: "base", Base: "debian:12", Platform: "linux/amd64", OldDigest: "sha256:b", NewDigest: "sha256:c"}, true, nil)
	if r.Cause.OldDigest != "sha256:a" || r.Cause.NewDigest != "sha256:c" || r.Cause.Changes != "" {
		t.Errorf("coalesced cause = %+v, want a → c without the old changes", r.Cause)
	}
}
