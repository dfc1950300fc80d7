package lifecycle_test

import (
	"context"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// startQuiet starts a lifecycle whose queue never polls (within a test):
// every job must be picked up through the wake-up after its commit, or
// when its debounce ends.
func startQuiet(t *testing.T, debounce time.Duration) *life {
	t.Helper()
	st := openStore(t)
	e := &fakeExecutor{byTask: map[string]func(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error){}}
	l, err := lifecycle.New(t.Context(), lifecycle.Config{Store: st, Executor: e, Registry: reg, Debounce: debounce, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })
	return &life{fixture: fixture{st: st, l: l}, exec: e}
}

// waitEndedWithin waits up to d for the run to end, failing with what
// the run's state says when it does not.
func (f *fixture) waitEndedWithin(t *testing.T, id int64, d time.Duration, why string) store.Run {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r, err := f.st.GetRun(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State.Done() {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s (task %s) still %s after %v: %s", store.FormatRunID(id), r.Task, r.State, d, why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestQueueWakesWithoutPolling: with the fetch poll an hour long, a
// manual run, a base update's wave and the cascade a finished run
// releases are each worked at once — the commit that made each job
// available woke the queue.
func TestQueueWakesWithoutPolling(t *testing.T) {
	f := startQuiet(t, -1)
	f.addTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
	run, err := f.l.Queue(t.Context(), "app", store.Cause{Kind: "manual", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.waitEndedWithin(t, run.ID, 5*time.Second, "queuing did not wake the queue"); got.State != store.StateSucceeded {
		t.Fatalf("manual run %s, want succeeded (error %q)", got.State, got.Error)
	}

	// A wave: base → a → b, b built on a's image.
	ref := "docker.io/library/alpine:3"
	f.addTask(t, task.Spec{Name: "a", Image: "acme/a"}, "FROM alpine:3\n")
	f.addTask(t, task.Spec{Name: "b"}, "FROM "+reg+"/acme/a:latest\n")
	f.observe(t, ref, "sha256:0", "linux/amd64", "sha256:00")
	res := f.observe(t, ref, "sha256:1", "linux/amd64", "sha256:11")
	if len(res.Runs) != 2 {
		t.Fatalf("base update queued %d runs, want 2 (a, then b)", len(res.Runs))
	}
	f.waitEndedWithin(t, res.Runs[0].ID, 5*time.Second, "the observation's commit did not wake the queue")
	if got := f.waitEndedWithin(t, res.Runs[1].ID, 5*time.Second, "finishing a did not wake the queue for b, which it released"); got.State != store.StateSucceeded {
		t.Fatalf("run of b %s, want succeeded (error %q)", got.State, got.Error)
	}
}

// TestDebouncedRunStartsWhenDue: a run debounced by 300 ms starts once
// the debounce has passed — not before, and not when River's scheduler
// next runs (every 5 s) or the queue next polls (an hour here).
func TestDebouncedRunStartsWhenDue(t *testing.T) {
	const debounce = 300 * time.Millisecond
	f := startQuiet(t, debounce)
	ref := "docker.io/library/debian:12"
	f.addTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
	f.observe(t, ref, "sha256:0", "linux/amd64", "sha256:00")
	res := f.observe(t, ref, "sha256:1", "linux/amd64", "sha256:11")
	if len(res.Runs) != 1 {
		t.Fatalf("base update queued %d runs, want 1", len(res.Runs))
	}
	got := f.waitEndedWithin(t, res.Runs[0].ID, 1500*time.Millisecond, "nothing woke the queue when the debounce ended")
	if got.State != store.StateSucceeded {
		t.Fatalf("run %s, want succeeded (error %q)", got.State, got.Error)
	}
	if waited := got.StartedAt.Sub(got.CreatedAt); waited < debounce {
		t.Errorf("run started %v after it was queued, before its %v debounce ended", waited, debounce)
	}
}

// TestDebouncedRunSurvivesRestart: a run still in its debounce when the
// process stops starts when its debounce ends under the next process,
// not at that process's next fetch poll (an hour here).
func TestDebouncedRunSurvivesRestart(t *testing.T) {
	const debounce = time.Second
	st := openStore(t)
	e := &fakeExecutor{byTask: map[string]func(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error){}}
	first, err := lifecycle.New(t.Context(), lifecycle.Config{Store: st, Executor: e, Registry: reg, Debounce: debounce, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := &life{fixture: fixture{st: st, l: first}, exec: e}
	ref := "docker.io/library/debian:12"
	f.addTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
	f.observe(t, ref, "sha256:0", "linux/amd64", "sha256:00")
	res := f.observe(t, ref, "sha256:1", "linux/amd64", "sha256:11")
	if len(res.Runs) != 1 {
		t.Fatalf("base update queued %d runs, want 1", len(res.Runs))
	}
	if err := first.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	second, err := lifecycle.New(t.Context(), lifecycle.Config{Store: st, Executor: e, Registry: reg, Debounce: debounce, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Stop(context.Background()) })
	f.l = second
	got := f.waitEndedWithin(t, res.Runs[0].ID, 3*time.Second, "nothing woke the restarted queue when the debounce ended")
	if got.State != store.StateSucceeded {
		t.Fatalf("run %s, want succeeded (error %q)", got.State, got.Error)
	}
	late := got.StartedAt.Sub(got.CreatedAt) - debounce
	if late < 0 {
		t.Errorf("run started %v before its debounce ended", -late)
	}
	t.Logf("run started %v after its debounce ended, across a restart", late.Round(time.Millisecond))
}
