package lifecycle_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/catalog"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// newIdle returns a lifecycle, not started, whose queue stops after idle
// with nothing to do and polls every poll while stopped.
func newIdle(t *testing.T, st *store.Store, idle, poll time.Duration, differ lifecycle.Differ) *life {
	t.Helper()
	e := &fakeExecutor{byTask: map[string]func(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error){}}
	l, err := lifecycle.New(t.Context(), lifecycle.Config{Store: st, Executor: e, Registry: reg, Debounce: -1,
		Idle: idle, Poll: poll, Differ: differ})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })
	return &life{fixture: fixture{st: st, l: l}, exec: e}
}

func start(t *testing.T, f *life) {
	t.Helper()
	if err := f.l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// waitQueueStopped waits up to d for the queue's River client to stop.
func waitQueueStopped(t *testing.T, l *lifecycle.Runs, d time.Duration, why string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for lifecycle.QueueRunning(l) {
		if time.Now().After(deadline) {
			t.Fatalf("queue's River client still running %v later: %s", d, why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestQueueRunsOnlyWithWork: an idle server's queue does not run River's
// client (which ticks every 50 ms whether or not there are jobs); a
// commit starts it and the run is worked at once; once idle it stops
// again, and the next commit starts it again.
func TestQueueRunsOnlyWithWork(t *testing.T) {
	f := newIdle(t, openStore(t), 100*time.Millisecond, time.Hour, nil)
	start(t, f)
	if lifecycle.QueueRunning(f.l) {
		t.Fatal("queue's River client started with no job in the queue")
	}
	f.addTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
	for i := range 3 {
		run, err := f.l.Queue(t.Context(), "app", store.Cause{Kind: "manual", User: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		got := f.waitEndedWithin(t, run.ID, 5*time.Second, "the commit did not start the stopped queue")
		if got.State != store.StateSucceeded {
			t.Fatalf("run %s, want succeeded (error %q)", got.State, got.Error)
		}
		t.Logf("run %d: started %v after its commit, from a stopped queue", i+1, got.StartedAt.Sub(got.CreatedAt))
		waitQueueStopped(t, f.l, 5*time.Second, "it did not stop once idle")
	}
}

// TestQueueCommitWhileStopping: jobs committed while the idle queue is
// stopping River's client are worked, with the fetch poll an hour long:
// at the first stop, one committed by another process (no wake-up here:
// the look at the queue after the stop finds it); at the second, one
// committed here as the client stops (its wake-up finds the client
// stopping).
func TestQueueCommitWhileStopping(t *testing.T) {
	st := openStore(t)
	f := newIdle(t, st, 50*time.Millisecond, time.Hour, nil)
	other := newIdle(t, st, 50*time.Millisecond, time.Hour, nil) // another process, never started
	f.addTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
	queued := make(chan int64, 2)
	stops := 0
	lifecycle.OnQueueStopping(f.l, func() { // called by one goroutine
		stops++
		switch stops {
		case 1:
			r, err := other.l.Queue(context.Background(), "app", store.Cause{Kind: "manual", User: "other"})
			if err != nil {
				t.Error(err)
			}
			queued <- r.ID
		case 2:
			go func() { // concurrent with the stop
				r, err := f.l.Queue(context.Background(), "app", store.Cause{Kind: "manual", User: "here"})
				if err != nil {
					t.Error(err)
				}
				queued <- r.ID
			}()
		}
	})
	start(t, f)
	first, err := f.l.Queue(t.Context(), "app", store.Cause{Kind: "manual", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	f.waitEndedWithin(t, first.ID, 5*time.Second, "the commit did not start the queue")
	for _, by := range []string{"another process", "this process"} {
		var id int64
		select {
		case id = <-queued:
		case <-time.After(10 * time.Second):
			t.Fatal("the queue did not stop when idle")
		}
		got := f.waitEndedWithin(t, id, 5*time.Second, "committed by "+by+" while the queue was stopping, and lost")
		if got.State != store.StateSucceeded {
			t.Fatalf("run %s, want succeeded (error %q)", got.State, got.Error)
		}
	}
}

// TestQueueFindsOtherProcessJobs: a run committed by another process
// while this one's queue is stopped is found by the poll and worked.
func TestQueueFindsOtherProcessJobs(t *testing.T) {
	st := openStore(t)
	f := newIdle(t, st, 50*time.Millisecond, 200*time.Millisecond, nil)
	other := newIdle(t, st, 50*time.Millisecond, time.Hour, nil) // never started
	f.addTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
	start(t, f)
	run, err := other.l.Queue(t.Context(), "app", store.Cause{Kind: "manual", User: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.waitEndedWithin(t, run.ID, 5*time.Second, "the poll did not find it"); got.State != store.StateSucceeded {
		t.Fatalf("run %s, want succeeded (error %q)", got.State, got.Error)
	}
	if got := other.exec.executed(); len(got) != 0 {
		t.Errorf("the process that never started its queue executed %v", got)
	}
}

// flakyDiffer fails its first diff, then returns an empty one.
type flakyDiffer struct {
	mu    sync.Mutex
	calls int
}

func (d *flakyDiffer) Diff(context.Context, string, string, string) (catalog.Diff, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.calls == 1 {
		return catalog.Diff{}, errors.New("registry unavailable")
	}
	return catalog.Diff{}, nil
}

func (d *flakyDiffer) StoredDiff(context.Context, string, string) (catalog.Diff, error) {
	return catalog.Diff{}, store.ErrNotFound
}

func (d *flakyDiffer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

// TestQueueRetriesWhenDue: a job that failed is retried when its retry
// falls due (River's backoff, about a second), though the queue stopped
// in between with the fetch poll an hour long.
func TestQueueRetriesWhenDue(t *testing.T) {
	d := &flakyDiffer{}
	f := newIdle(t, openStore(t), 50*time.Millisecond, time.Hour, d)
	start(t, f)
	ref := "docker.io/library/debian:12"
	f.addTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
	f.observe(t, ref, "sha256:0", "linux/amd64", "sha256:00")
	f.observe(t, ref, "sha256:1", "linux/amd64", "sha256:11")
	stopped := false
	deadline := time.Now().Add(20 * time.Second)
	for d.count() < 2 {
		if d.count() == 1 && !lifecycle.QueueRunning(f.l) {
			stopped = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("diff computed %d times in 20s, want a retry after the failure", d.count())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !stopped {
		t.Log("the queue did not stop between the failure and the retry; the retry's wake-up was not exercised")
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		evs, err := f.st.ListEvents(context.Background(), store.EventFilter{Type: store.EventBaseDiff})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d base.diff events after the retry, want 1", len(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestQueueStopStartStress: with the queue stopping after 1 ms idle,
// runs committed at random moments — while it runs, stops, is stopped
// and starts — are all worked, the fetch poll an hour long.
func TestQueueStopStartStress(t *testing.T) {
	f := newIdle(t, openStore(t), time.Millisecond, time.Hour, nil)
	var stops atomic.Int32
	lifecycle.OnQueueStopping(f.l, func() { stops.Add(1) })
	start(t, f)
	f.addTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
	var ids []int64
	for i := range 40 {
		time.Sleep(time.Duration(i%7) * 3 * time.Millisecond)
		r, err := f.l.Queue(t.Context(), "app", store.Cause{Kind: "manual", User: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	for _, id := range ids {
		if got := f.waitEndedWithin(t, id, 10*time.Second, "lost between a stop and a start"); got.State != store.StateSucceeded {
			t.Fatalf("run %s, want succeeded (error %q)", got.State, got.Error)
		}
	}
	waitQueueStopped(t, f.l, 5*time.Second, "it did not stop once idle")
	t.Logf("the queue began to stop %d times during 40 commits", stops.Load())
}

// TestDebouncedRunStartsFromStoppedQueue: a run debounced for longer
// than the queue stays idle starts when its debounce ends, the queue's
// client having stopped meanwhile (the fetch poll an hour long).
func TestDebouncedRunStartsFromStoppedQueue(t *testing.T) {
	const debounce = 500 * time.Millisecond
	st := openStore(t)
	e := &fakeExecutor{byTask: map[string]func(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error){}}
	l, err := lifecycle.New(t.Context(), lifecycle.Config{Store: st, Executor: e, Registry: reg, Debounce: debounce,
		Idle: 50 * time.Millisecond, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })
	f := &life{fixture: fixture{st: st, l: l}, exec: e}
	start(t, f)
	ref := "docker.io/library/debian:12"
	f.addTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
	f.observe(t, ref, "sha256:0", "linux/amd64", "sha256:00")
	res := f.observe(t, ref, "sha256:1", "linux/amd64", "sha256:11")
	if len(res.Runs) != 1 {
		t.Fatalf("base update queued %d runs, want 1", len(res.Runs))
	}
	waitQueueStopped(t, l, debounce/2, "it kept running through the debounce")
	got := f.waitEndedWithin(t, res.Runs[0].ID, 3*time.Second, "nothing started the stopped queue when the debounce ended")
	if got.State != store.StateSucceeded {
		t.Fatalf("run %s, want succeeded (error %q)", got.State, got.Error)
	}
	late := got.StartedAt.Sub(got.CreatedAt) - debounce
	if late < 0 {
		t.Errorf("run started %v before its debounce ended", -late)
	}
	t.Logf("run started %v after its debounce ended, from a stopped queue", late.Round(time.Millisecond))
}
