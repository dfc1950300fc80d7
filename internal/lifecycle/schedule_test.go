package lifecycle_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// clock is an injected clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// addScheduled stores a task with the given schedules.
func (f *fixture) addScheduled(t testing.TB, name string, list ...task.Schedule) {
	t.Helper()
	spec := task.Spec{Name: name, Source: task.Source{Dir: "/src/" + name}, Triggers: &task.Triggers{Manual: true, Schedule: list}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.CreateTask(context.Background(), store.Task{Spec: spec.Defaults()}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) scheduler(t testing.TB, c *clock) *lifecycle.Scheduler {
	t.Helper()
	s, err := lifecycle.NewScheduler(lifecycle.SchedulerConfig{Runs: f.l, Store: f.st, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// scheduledDues returns the DueAt of every scheduled run, oldest first,
// as "name RFC-3339-time" in the schedule's zone, checking each has a
// job.
func (f *fixture) scheduledDues(t testing.TB) []string {
	t.Helper()
	runs := f.runs(t)
	jobs := map[int64]bool{}
	for _, id := range f.jobs(t) {
		jobs[id] = true
	}
	var out []string
	for _, r := range runs {
		if r.Cause.Kind != "schedule" {
			continue
		}
		if !jobs[r.ID] {
			t.Errorf("scheduled run %s has no job", store.FormatRunID(r.ID))
		}
		out = append(out, r.Cause.ScheduleName+" "+r.Cause.DueAt.Format(time.RFC3339))
	}
	return out
}

// follow moves the clock from start to each due time the scheduler
// names, as its timer would, until end.
func follow(t *testing.T, s *lifecycle.Scheduler, c *clock, end time.Time) {
	t.Helper()
	for range 1000 {
		next, err := s.RunDue(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if next.IsZero() || next.After(end) {
			return
		}
		if !next.After(c.Now()) {
			t.Fatalf("RunDue at %s says next is %s, not later", c.Now(), next)
		}
		c.Set(next)
	}
	t.Fatal("scheduler never got past the end")
}

func sameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// TestScheduleAcrossDST drives the scheduler with an injected clock over
// Europe/Berlin's two changes of 2026: 02:30 does not exist on March 29
// (no run that day), and happens twice on October 25 (two runs, an hour
// apart, as robfig/cron's schedule has two ticks). Hourly and 03:00
// schedules keep one run per tick.
func TestScheduleAcrossDST(t *testing.T) {
	for _, tt := range []struct {
		name       string
		start, end time.Time
		want       []string
	}{
		{"spring forward", time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC), time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC), []string{
			"daily 2026-03-28T02:30:00+01:00", "at3 2026-03-28T03:00:00+01:00",
			"hourly 2026-03-29T00:30:00+01:00", "hourly 2026-03-29T01:30:00+01:00",
			"at3 2026-03-29T03:00:00+02:00", "hourly 2026-03-29T03:30:00+02:00", "hourly 2026-03-29T04:30:00+02:00",
			"daily 2026-03-30T02:30:00+02:00", "at3 2026-03-30T03:00:00+02:00",
		}},
		{"fall back", time.Date(2026, 10, 23, 12, 0, 0, 0, time.UTC), time.Date(2026, 10, 26, 12, 0, 0, 0, time.UTC), []string{
			"daily 2026-10-24T02:30:00+02:00", "at3 2026-10-24T03:00:00+02:00",
			"hourly 2026-10-25T00:30:00+02:00", "hourly 2026-10-25T01:30:00+02:00",
			"daily 2026-10-25T02:30:00+02:00", "hourly 2026-10-25T02:30:00+02:00",
			"daily 2026-10-25T02:30:00+01:00", "hourly 2026-10-25T02:30:00+01:00",
			"at3 2026-10-25T03:00:00+01:00", "hourly 2026-10-25T03:30:00+01:00", "hourly 2026-10-25T04:30:00+01:00",
			"daily 2026-10-26T02:30:00+01:00", "at3 2026-10-26T03:00:00+01:00",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			c := &clock{t: tt.start}
			f.addScheduled(t, "api",
				task.Schedule{Name: "daily", Cron: "30 2 * * *", Timezone: "Europe/Berlin"},
				task.Schedule{Name: "at3", Cron: "0 3 * * *", Timezone: "Europe/Berlin"})
			f.addScheduled(t, "night", task.Schedule{Name: "hourly", Cron: "30 0-4 * * *", Timezone: "Europe/Berlin"})
			s := f.scheduler(t, c)
			follow(t, s, c, tt.end)
			got := filterDays(f.scheduledDues(t), tt.want)
			sameList(t, "scheduled runs", got, tt.want)
		})
	}
}

// filterDays keeps the runs of the hourly schedule on the days the want
// list has some (the day of the change), and every other run.
func filterDays(got, want []string) []string {
	days := map[string]bool{}
	for _, w := range want {
		if name, when, _ := strings.Cut(w, " "); name == "hourly" {
			days[when[:10]] = true
		}
	}
	var out []string
	for _, g := range got {
		if name, when, _ := strings.Cut(g, " "); name != "hourly" || days[when[:10]] {
			out = append(out, g)
		}
	}
	return out
}

// TestScheduleCatchUpOnce: refit is down over two ticks; when the
// scheduler starts again it queues exactly one catch-up run (for the
// first tick missed), then goes on from the next tick to come.
func TestScheduleCatchUpOnce(t *testing.T) {
	f := newFixture(t)
	c := &clock{t: time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)}
	f.addScheduled(t, "api", task.Schedule{Name: "hourly", Cron: "0 * * * *"})
	s := f.scheduler(t, c)
	c.Set(time.Date(2026, 6, 1, 11, 0, 0, 0, time.UTC))
	if _, err := s.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Down from 11:00:01 to 13:20: the 12:00 and 13:00 ticks are missed.
	c.Set(time.Date(2026, 6, 1, 13, 20, 0, 0, time.UTC))
	restarted := f.scheduler(t, c) // a new process: sync changes nothing
	next, err := restarted.RunDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 6, 1, 14, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Errorf("after the catch-up, next due %s, want %s", next, want)
	}
	if _, err := restarted.RunDue(context.Background()); err != nil { // again: nothing more
		t.Fatal(err)
	}
	sameList(t, "scheduled runs", f.scheduledDues(t), []string{"hourly 2026-06-01T11:00:00Z", "hourly 2026-06-01T12:00:00Z"})
}

// TestScheduleCatchUpSkip: with catchUp skip the missed ticks make no
// run; the schedule goes on from the next tick to come.
func TestScheduleCatchUpSkip(t *testing.T) {
	f := newFixture(t)
	c := &clock{t: time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)}
	f.addScheduled(t, "api", task.Schedule{Name: "hourly", Cron: "0 * * * *", CatchUp: "skip"})
	s := f.scheduler(t, c)
	c.Set(time.Date(2026, 6, 1, 11, 0, 0, 0, time.UTC))
	if _, err := s.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Set(time.Date(2026, 6, 1, 13, 20, 0, 0, time.UTC))
	restarted := f.scheduler(t, c)
	next, err := restarted.RunDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 6, 1, 14, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Errorf("after skipping, next due %s, want %s", next, want)
	}
	c.Set(next)
	if _, err := restarted.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameList(t, "scheduled runs", f.scheduledDues(t), []string{"hourly 2026-06-01T11:00:00Z", "hourly 2026-06-01T14:00:00Z"})
}

// TestScheduleChange: a changed cron restarts the schedule from its next
// tick; a removed schedule stops; an unchanged re-sync moves nothing.
func TestScheduleChange(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 6, 1, 10, 30, 0, 0, time.UTC)}
	f.addScheduled(t, "api", task.Schedule{Name: "a", Cron: "0 * * * *"})
	s := f.scheduler(t, c)
	c.Set(time.Date(2026, 6, 1, 10, 45, 0, 0, time.UTC))
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if next, _ := s.RunDue(ctx); !next.Equal(time.Date(2026, 6, 1, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("unchanged schedule next due %s, want 11:00", next)
	}
	spec := task.Spec{Name: "api", Source: task.Source{Dir: "/src/api"}, Triggers: &task.Triggers{Schedule: task.Schedules{{Name: "a", Cron: "50 * * * *"}}}}
	if _, _, _, err := f.st.PutTask(ctx, store.Task{Spec: spec.Defaults()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if next, _ := s.RunDue(ctx); !next.Equal(time.Date(2026, 6, 1, 10, 50, 0, 0, time.UTC)) {
		t.Errorf("changed schedule next due %s, want 10:50", next)
	}
	spec.Triggers.Schedule = nil
	if _, _, _, err := f.st.PutTask(ctx, store.Task{Spec: spec.Defaults()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if next, _ := s.RunDue(ctx); !next.IsZero() {
		t.Errorf("removed schedule next due %s, want none", next)
	}
}

// TestScheduleTwoProcesses: two schedulers, each with its own store
// connection and queue as two refit processes would have, share one
// database (PostgreSQL with REFIT_TEST_POSTGRES=1, else one SQLite file)
// and run every tick at the same moment: each tick makes exactly one run.
func TestScheduleTwoProcesses(t *testing.T) {
	ctx := context.Background()
	cfg := store.Config{Path: filepath.Join(t.TempDir(), "refit.db")}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(t)}
	}
	start := time.Date(2026, 6, 1, 10, 0, 30, 0, time.UTC)
	c := &clock{t: start}
	var procs [2]*fixture
	var scheds [2]*lifecycle.Scheduler
	for i := range procs {
		st, err := store.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		l, err := lifecycle.New(ctx, lifecycle.Config{Store: st, Executor: noExecutor{}, Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		procs[i] = &fixture{st: st, l: l}
		if i == 0 {
			procs[0].addScheduled(t, "api", task.Schedule{Name: "minutely", Cron: "* * * * *"}, task.Schedule{Name: "other", Cron: "*/2 * * * *"})
			procs[0].addScheduled(t, "web", task.Schedule{Name: "minutely", Cron: "* * * * *"})
		}
		scheds[i] = procs[i].scheduler(t, c)
	}
	const ticks = 20
	var want []string
	for m := 1; m <= ticks; m++ {
		due := start.Truncate(time.Minute).Add(time.Duration(m) * time.Minute)
		c.Set(due)
		var wg sync.WaitGroup
		errs := make([]error, len(scheds))
		for i, s := range scheds {
			wg.Go(func() { _, errs[i] = s.RunDue(ctx) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		stamp := due.Format(time.RFC3339)
		want = append(want, "api/minutely "+stamp, "web/minutely "+stamp)
		if m%2 == 0 {
			want = append(want, "api/other "+stamp)
		}
	}
	var got []string
	for _, r := range procs[0].runs(t) {
		got = append(got, r.Task+"/"+r.Cause.ScheduleName+" "+r.Cause.DueAt.Format(time.RFC3339))
	}
	slices.Sort(got)
	slices.Sort(want)
	sameList(t, "runs of 20 ticks run by two schedulers", got, want)
	if jobs := len(procs[0].jobs(t)); jobs != len(want) {
		t.Errorf("%d jobs queued, want %d (one per run)", jobs, len(want))
	}
}

// TestSchedulerRunWakesAndStops: a running scheduler with no schedule
// sleeps; a task created through the store wakes it (OnCommit), its
// "@every 1s" schedule queues a run within seconds, and canceling the
// context returns Run.
func TestSchedulerRunWakesAndStops(t *testing.T) {
	f := newFixture(t)
	s, err := lifecycle.NewScheduler(lifecycle.SchedulerConfig{Runs: f.l, Store: f.st})
	if err != nil {
		t.Fatal(err)
	}
	f.st.OnCommit(s.Committed)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	time.Sleep(100 * time.Millisecond) // asleep, with nothing scheduled
	f.addScheduled(t, "api", task.Schedule{Name: "often", Cron: "@every 1s"})
	deadline := time.Now().Add(10 * time.Second)
	for len(f.scheduledDues(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no scheduled run 10 s after creating a task with an @every 1s schedule")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return 5 s after its context ended")
	}
}
