package serve_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/serve"
)

// tagLists counts the tag listings of repo (a path like
// "library/python") among reqs.
func tagLists(reqs []loggedReq, repo string) int {
	n := 0
	for _, q := range reqs {
		if q.method == http.MethodGet && q.path == "/v2/"+repo+"/tags/list" {
			n++
		}
	}
	return n
}

// waitTagLists waits until repo has been listed n times since t0.
func waitTagLists(t *testing.T, reg *testRegistry, repo string, t0 time.Time, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for tagLists(reg.since(t0), repo) < n {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %d listings of %s", n, repo)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the listing's commit follows its request
}

// TestBaseTagRebuildE2E: refit with a real BuildKit follows the python
// tags of a second registry under "~3.12": 3.12.9 appearing rebuilds the
// task with PYTHON_TAG=3.12.9 — on the run record, in the task's
// effective args, and in the image, whose base is 3.12.9's — while
// 3.13.0 and 3.12.10-rc1 rebuild nothing; a watched reference moving
// emits base.updated and queues no run.
func TestBaseTagRebuildE2E(t *testing.T) {
	reg := newTestRegistry(t, nil)
	const interval = 2 * time.Second
	r := startRefitWith(t, serve.Config{PollInterval: interval, Debounce: -1, Insecure: []string{reg.host}})
	ctx := context.Background()
	python := reg.host + "/library/python"
	pushBase(t, python+":3.12.8", "")

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "ARG PYTHON_TAG=3.12.8\nFROM " + python + ":${PYTHON_TAG}\nRUN echo built > /built\n"})
	t0 := time.Now()
	spec := api.TaskSpec{Name: "py", Source: api.TaskSource{Dir: dir},
		BuildArgs: map[string]string{"PYTHON_TAG": "3.12.8"},
		Triggers: &api.Triggers{Base: true, Manual: true, BaseTags: []api.BaseTag{
			{Ref: python, Arg: "PYTHON_TAG", Semver: "~3.12"}}}}
	_, err := r.c.CreateTask(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	waitTagLists(t, reg, "library/python", t0, 1)
	if runs := allRuns(t, r.c); len(runs) != 0 {
		t.Fatalf("the first listing queued runs: %+v", runs)
	}

	base9, d9 := pushBase(t, python+":3.12.9", "p9")
	runs := settle(t, r.c, 1)
	run := runs[0]
	if run.State != api.StateSucceeded {
		t.Fatalf("run %s: %s at %s: %s", run.ID, run.State, run.Step, run.Error)
	}
	if c := run.Cause; c.Kind != "baseTag" || c.Base != python || c.OldTag != "3.12.8" || c.NewTag != "3.12.9" || c.NewDigest != d9 {
		t.Errorf("cause = %+v, want baseTag %s 3.12.8 → 3.12.9 at %s", c, python, d9)
	}
	if got := run.Spec.BuildArgs["PYTHON_TAG"]; got != "3.12.9" {
		t.Errorf("run's PYTHON_TAG = %q, want 3.12.9", got)
	}
	checkBuiltOn(t, run, base9, python+":3.12.9", d9)
	if tk, err := r.c.GetTask(ctx, "py"); err != nil || tk.TagArgs["PYTHON_TAG"] != "3.12.9" {
		t.Errorf("task's effective args = %v, %v; want PYTHON_TAG=3.12.9", tk.TagArgs, err)
	}
	// refit task triggers shows the newest tag seen and the arg's value.
	trg, err := r.c.Triggers(ctx, "py")
	if err != nil {
		t.Fatal(err)
	}
	if es := trg.BaseTags.Entries; len(es) != 1 || es[0].Newest != "3.12.9" || es[0].NewestDigest != d9 || es[0].Current != "3.12.9" || es[0].Repository != python {
		t.Errorf("triggers' baseTags = %+v, want newest and current 3.12.9", es)
	}
	// The task put again as written (PYTHON_TAG=3.12.8 in its buildArgs)
	// keeps the base its runs build on, the one the index watches.
	put, err := r.c.PutTask(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(put.Task.Bases) != 1 || put.Task.Bases[0].Ref != python+":3.12.9" {
		t.Errorf("bases after a put = %+v, want %s:3.12.9", put.Task.Bases, python)
	}

	t1 := time.Now()
	pushBase(t, python+":3.13.0", "p13")
	pushBase(t, python+":3.12.10-rc1", "rc")
	waitTagLists(t, reg, "library/python", t1, 2)
	if runs := allRuns(t, r.c); len(runs) != 1 {
		t.Errorf("3.13.0 and 3.12.10-rc1: %d runs, want still 1", len(runs))
	}

	debian := reg.host + "/library/debian:12"
	_, first := pushBase(t, debian, "")
	if _, err := r.c.AddWatch(ctx, api.WatchRequest{Ref: debian}); err != nil {
		t.Fatal(err)
	}
	waitChecked(t, r.c, debian, first)
	_, moved := pushBase(t, debian, "p1")
	deadline := time.Now().Add(time.Minute)
	for {
		evs, err := r.c.ListEvents(ctx, api.EventFilter{Type: "base.updated", Subject: debian})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) > 0 {
			var d struct {
				TopDigest string   `json:"topDigest"`
				Tasks     []string `json:"tasks"`
			}
			json.Unmarshal(evs[0].Data, &d)
			if d.TopDigest != moved || len(d.Tasks) != 0 {
				t.Errorf("base.updated of the watch = %s, want topDigest %s and no tasks", evs[0].Data, moved)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no base.updated for the watched reference within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if runs := allRuns(t, r.c); len(runs) != 1 {
		t.Errorf("the watch queued runs: %d runs, want still 1", len(runs))
	}
	evs, err := r.c.ListEvents(ctx, api.EventFilter{Type: "base.tagged"})
	if err != nil {
		t.Fatal(err)
	}
	var tagged struct{ Tag, OldTag string }
	if len(evs) == 1 {
		json.Unmarshal(evs[0].Data, &tagged)
	}
	if len(evs) != 1 || tagged.Tag != "3.12.9" || tagged.OldTag != "3.12.8" {
		t.Errorf("base.tagged events = %d (%+v), want one for 3.12.8 → 3.12.9", len(evs), tagged)
	}
}
