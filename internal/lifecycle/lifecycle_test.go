package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/index"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// fakeExecutor does each run's "work" with the function given for its
// task (default: succeed, pushing a digest named after the run), and
// records which runs it executed.
type fakeExecutor struct {
	mu     sync.Mutex
	byTask map[string]func(ctx context.Context, run store.Run, logs lifecycle.Logs) (lifecycle.Outcome, error)
	ran    []string // task names, in order of execution
}

func (e *fakeExecutor) Execute(ctx context.Context, run store.Run, logs lifecycle.Logs) (lifecycle.Outcome, error) {
	e.mu.Lock()
	e.ran = append(e.ran, run.Task)
	f := e.byTask[run.Task]
	e.mu.Unlock()
	if f != nil {
		return f(ctx, run, logs)
	}
	d := fmt.Sprintf("sha256:%064d", run.ID)
	return lifecycle.Outcome{Digest: d, Image: reg + "/" + run.Task + "@" + d, Tags: []string{"latest"}}, nil
}

func (e *fakeExecutor) executed() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ran)
}

// life is a real store (SQLite, or PostgreSQL with REFIT_TEST_POSTGRES=1)
// and a started lifecycle: River works the jobs with the fake executor.
type life struct {
	fixture
	exec *fakeExecutor
}

func startLife(t *testing.T, debounce time.Duration) *life {
	t.Helper()
	st := openStore(t)
	e := &fakeExecutor{byTask: map[string]func(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error){}}
	l, err := lifecycle.New(t.Context(), lifecycle.Config{Store: st, Executor: e, Registry: reg, Debounce: debounce})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })
	return &life{fixture: fixture{st: st, l: l}, exec: e}
}

// on sets what executing the task's runs does.
func (f *life) on(taskName string, fn func(ctx context.Context, run store.Run, logs lifecycle.Logs) (lifecycle.Outcome, error)) {
	f.exec.mu.Lock()
	defer f.exec.mu.Unlock()
	f.exec.byTask[taskName] = fn
}

// waitEnded waits until the run has ended and returns it.
func (f *fixture) waitEnded(t *testing.T, id int64) store.Run {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := f.st.GetRun(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State.Done() {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %s after 20s", store.FormatRunID(id), r.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runOf returns the newest run of the task, waiting for one to exist.
func (f *fixture) runOf(t *testing.T, taskName string) store.Run {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rs, err := f.st.ListRuns(context.Background(), store.RunFilter{Task: taskName, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) > 0 {
			return rs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no run of task %s after 20s", taskName)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestQueueExecuteSucceeds: a queued run is executed by the executor and
// recorded as succeeded with what it produced, its log stored, its
// timings completed, and its followers woken.
func TestQueueExecuteSucceeds(t *testing.T) {
	f := startLife(t, -1)
	f.addTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
	bases := []store.UsedBase{{Ref: "docker.io/library/debian:12", Name: "debian:12", Stage: "0", Role: "runtime", Digest: "sha256:d"}}
	f.on("app", func(_ context.Context, run store.Run, logs lifecycle.Logs) (lifecycle.Outcome, error) {
		logs.Append([]byte(`{"step":"build"}`))
		return lifecycle.Outcome{Commit: "c0ffee", Bases: bases, Digest: "sha256:img", Image: reg + "/app@sha256:img",
			Tags: []string{"latest"}, Timings: map[string]string{"build": "5ms"}}, nil
	})
	run, err := f.l.Queue(t.Context(), "app", store.Cause{Kind: "manual", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	ended, release := f.l.Ended(run.ID)
	defer release()
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("Ended not closed 20s after queuing")
	}
	got := f.waitEnded(t, run.ID)
	if got.State != store.StateSucceeded || got.Digest != "sha256:img" || got.Image != reg+"/app@sha256:img" ||
		got.Commit != "c0ffee" || !slices.Equal(got.Tags, []string{"latest"}) || len(got.Bases) != 1 || got.Error != "" {
		t.Errorf("run after executing = %+v, want succeeded with the outcome recorded", got)
	}
	for _, k := range []string{"queued", "build", "total"} {
		if got.Timings[k] == "" {
			t.Errorf("timings %v lack %q", got.Timings, k)
		}
	}
	logs, err := f.st.Logs(t.Context(), run.ID, 0, 10)
	if err != nil || len(logs) != 1 || string(logs[0].Data) != `{"step":"build"}` {
		t.Errorf("stored logs = %v, %v; want the one chunk appended", logs, err)
	}
}

// TestExecuteFailsAtStep: a *StepError fails the run at that step, and
// what was learned before the failure is still recorded.
func TestExecuteFailsAtStep(t *testing.T) {
	f := startLife(t, -1)
	f.addTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
	f.on("app", func(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error) {
		return lifecycle.Outcome{Commit: "c0ffee"}, &lifecycle.StepError{Step: "build", Err: errors.New("RUN exited 1")}
	})
	run, err := f.l.Queue(t.Context(), "app", store.Cause{Kind: "manual", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	got := f.waitEnded(t, run.ID)
	if got.State != store.StateFailed || got.Step != "build" || got.Error != "RUN exited 1" || got.Commit != "c0ffee" || got.Image != "" {
		t.Errorf("run = %s step %q error %q commit %q image %q; want failed at build, \"RUN exited 1\", commit kept, no image",
			got.State, got.Step, got.Error, got.Commit, got.Image)
	}
}

// TestShutdownCancelsRun: stopping the lifecycle cancels a run being
// executed; it ends canceled, at the step it was in.
func TestShutdownCancelsRun(t *testing.T) {
	f := startLife(t, -1)
	f.addTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
	started := make(chan struct{})
	f.on("app", func(ctx context.Context, _ store.Run, _ lifecycle.Logs) (lifecycle.Outcome, error) {
		close(started)
		<-ctx.Done()
		return lifecycle.Outcome{}, &lifecycle.StepError{Step: "build", Err: ctx.Err()}
	})
	run, err := f.l.Queue(t.Context(), "app", store.Cause{Kind: "manual", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("run not executed 20s after queuing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.l.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	got, err := f.st.GetRun(t.Context(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.StateCanceled || got.Step != "build" || !strings.HasPrefix(got.Error, "canceled: ") {
		t.Errorf("run after shutdown = %s step %q error %q; want canceled at build, \"canceled: …\"", got.State, got.Step, got.Error)
	}
}

// TestCascade: a successful run of a task rebuilds, once, the tasks
// built on its image, each with a cascade cause naming the run.
func TestCascade(t *testing.T) {
	f := startLife(t, -1)
	f.addTask(t, task.Spec{Name: "base", Image: "acme/base"}, "FROM debian:12\n")
	f.addTask(t, task.Spec{Name: "app"}, "FROM "+reg+"/acme/base:latest\n")
	f.addTask(t, task.Spec{Name: "other"}, "FROM debian:12\n")
	up, err := f.l.Queue(t.Context(), "base", store.Cause{Kind: "manual", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.waitEnded(t, up.ID); got.State != store.StateSucceeded {
		t.Fatalf("base run %s, want succeeded", got.State)
	}
	app := f.waitEnded(t, f.runOf(t, "app").ID)
	if app.State != store.StateSucceeded {
		t.Errorf("cascaded app run %s (%s), want succeeded", app.State, app.Error)
	}
	if c := app.Cause; c.Kind != "cascade" || c.UpstreamRun != up.ID || c.Upstream == nil || c.Upstream.User != "alice" {
		t.Errorf("app's cause = %+v, want a cascade of %s carrying the manual cause", c, store.FormatRunID(up.ID))
	}
	if got, want := f.exec.executed(), []string{"base", "app"}; !slices.Equal(got, want) {
		t.Errorf("executed %v, want %v (other does not build on base)", got, want)
	}
}

// TestUnchangedImageCascadesNothing: a succeeded run whose platform
// image digests equal the task's previous succeeded run's (a rebuild of
// the same inputs; only the index digest differs) rebuilds nothing built
// on it; a run whose digests differ, or are unknown, cascades.
func TestUnchangedImageCascadesNothing(t *testing.T) {
	f := startLife(t, -1)
	f.addTask(t, task.Spec{Name: "base", Image: "acme/base"}, "FROM debian:12\n")
	f.addTask(t, task.Spec{Name: "app"}, "FROM "+reg+"/acme/base:latest\n")
	f.on("app", func(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error) {
		return lifecycle.Outcome{}, nil
	})
	same := []store.PlatformDigest{{Platform: "linux/amd64", Digest: "sha256:a1"}, {Platform: "linux/arm64", Digest: "sha256:b1"}}
	for i, step := range []struct {
		name      string
		platforms []store.PlatformDigest
		cascades  bool
	}{
		{"first build", same, true},
		{"same platform digests, new index", []store.PlatformDigest{same[1], same[0]}, false},
		{"one platform changed", []store.PlatformDigest{same[0], {Platform: "linux/arm64", Digest: "sha256:b2"}}, true},
		{"digests unknown", nil, true},
	} {
		f.on("base", func(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error) {
			d := fmt.Sprintf("sha256:index%d", i)
			return lifecycle.Outcome{Digest: d, Image: reg + "/acme/base@" + d, Platforms: step.platforms}, nil
		})
		before := len(f.exec.executed())
		up, err := f.l.Queue(t.Context(), "base", store.Cause{Kind: "manual", User: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.waitEnded(t, up.ID); got.State != store.StateSucceeded || !slices.Equal(got.Platforms, step.platforms) {
			t.Fatalf("%s: base run %s platforms %v, want succeeded with %v", step.name, got.State, got.Platforms, step.platforms)
		}
		// The cascade, if any, was created in the finish transaction.
		app, err := f.st.ListRuns(t.Context(), store.RunFilter{Task: "app", Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		cascaded := len(app) > 0 && app[0].Cause.UpstreamRun == up.ID
		if cascaded != step.cascades {
			t.Errorf("%s: app rebuilt = %v, want %v", step.name, cascaded, step.cascades)
		}
		if cascaded {
			f.waitEnded(t, app[0].ID)
			if n := len(f.exec.executed()) - before; n != 2 {
				t.Errorf("%s: %d runs executed, want base and app", step.name, n)
			}
		}
	}
}

// TestFailureCancelsDependents: when a run of a wave fails, the runs that
// waited for it end canceled at step "upstream", saying which run stopped
// them, transitively — also a run that waited for two of them — and none
// is executed.
func TestFailureCancelsDependents(t *testing.T) {
	f := startLife(t, -1)
	debian := "docker.io/library/debian:12"
	f.addTask(t, task.Spec{Name: "base", Image: "acme/base"}, "FROM debian:12\n")
	f.addTask(t, task.Spec{Name: "python", Image: "acme/python"}, "FROM "+reg+"/acme/base\n")
	f.addTask(t, task.Spec{Name: "app"}, "FROM "+reg+"/acme/python:latest\n")
	// Waits for base and python both.
	f.addTask(t, task.Spec{Name: "tool", Triggers: &task.Triggers{Base: true, BaseScope: "all"}},
		"FROM "+reg+"/acme/base AS b\nFROM "+reg+"/acme/python\n")
	f.on("base", func(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error) {
		return lifecycle.Outcome{}, &lifecycle.StepError{Step: "build", Err: errors.New("RUN exited 1")}
	})
	f.observe(t, debian, "sha256:a", "linux/amd64", "sha256:a1")
	res := f.observe(t, debian, "sha256:b", "linux/amd64", "sha256:b1")
	if len(res.Runs) != 4 {
		t.Fatalf("wave of %d runs, want 4", len(res.Runs))
	}
	byTask := map[string]store.Run{}
	for _, r := range res.Runs {
		byTask[r.Task] = f.waitEnded(t, r.ID)
	}
	if b := byTask["base"]; b.State != store.StateFailed {
		t.Fatalf("base run %s, want failed", b.State)
	}
	want := map[string]string{
		"python": fmt.Sprintf("not built: upstream run %s (task base) failed", store.FormatRunID(byTask["base"].ID)),
		"app":    fmt.Sprintf("not built: upstream run %s (task python) canceled", store.FormatRunID(byTask["python"].ID)),
	}
	for _, name := range []string{"python", "app", "tool"} {
		r := byTask[name]
		if r.State != store.StateCanceled || r.Step != "upstream" || !strings.HasPrefix(r.Error, "not built: upstream run ") {
			t.Errorf("%s run = %s step %q error %q; want canceled at upstream, \"not built: upstream run …\"", name, r.State, r.Step, r.Error)
		}
		if w, ok := want[name]; ok && r.Error != w {
			t.Errorf("%s run error %q, want %q", name, r.Error, w)
		}
	}
	if got := f.exec.executed(); !slices.Equal(got, []string{"base"}) {
		t.Errorf("executed %v, want only base", got)
	}
}

// TestBaseUpdateWaveOnceAndCoalesced: with the queue running, a base
// update creates its wave once; a second update while the run waits for
// its debounce coalesces into it (newest digest), and one job exists.
func TestBaseUpdateWaveOnceAndCoalesced(t *testing.T) {
	f := startLife(t, time.Hour)
	ref := "docker.io/library/debian:12"
	f.addTask(t, task.Spec{Name: "a"}, "FROM debian:12\n")
	if res := f.observe(t, ref, "sha256:0", "linux/amd64", "sha256:00"); len(res.Runs) != 0 {
		t.Fatalf("baseline queued %d runs", len(res.Runs))
	}
	first := f.observe(t, ref, "sha256:1", "linux/amd64", "sha256:11")
	second := f.observe(t, ref, "sha256:2", "linux/amd64", "sha256:22")
	if len(first.Runs) != 1 || first.Coalesced != 0 || len(second.Runs) != 1 || second.Coalesced != 1 || second.Runs[0].ID != first.Runs[0].ID {
		t.Fatalf("two updates: %d runs (%d coalesced), then %d (%d coalesced); want one run, the second coalesced into it",
			len(first.Runs), first.Coalesced, len(second.Runs), second.Coalesced)
	}
	runs := f.runs(t)
	if len(runs) != 1 || runs[0].State != store.StateQueued {
		t.Fatalf("runs = %+v, want one queued", runs)
	}
	if c := runs[0].Cause; c.OldDigest != "sha256:00" || c.NewDigest != "sha256:22" {
		t.Errorf("coalesced cause %s → %s, want sha256:00 → sha256:22", c.OldDigest, c.NewDigest)
	}
	if jobs := f.jobs(t); !slices.Equal(jobs, []int64{runs[0].ID}) {
		t.Errorf("jobs for runs %v, want one for %s", jobs, store.FormatRunID(runs[0].ID))
	}
	var _ index.Observer = f.l
}
