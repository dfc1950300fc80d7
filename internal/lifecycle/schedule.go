package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// scheduleStore is what the scheduler needs of the store.
type scheduleStore interface {
	ScheduledTasks(ctx context.Context) ([]store.Task, error)
	Schedules(ctx context.Context) ([]store.ScheduleState, error)
	SyncSchedules(ctx context.Context, want []store.ScheduleState) (bool, error)
	InTx(ctx context.Context, fn func(*store.Tx) error) error
}

var _ scheduleStore = (*store.Store)(nil)

// SchedulerConfig configures a Scheduler.
type SchedulerConfig struct {
	// Runs queues the scheduled runs (required).
	Runs *Runs
	// Store holds the tasks and their schedules' due times (required).
	Store scheduleStore
	// Now is the clock. Default time.Now; tests inject one.
	Now func() time.Time
	// Late is how late a tick may be found and still be on time: a tick
	// found later was missed (refit was down), and a schedule with
	// catchUp skip does not run it. Default 1 min.
	Late time.Duration
	// Resync is the longest the scheduler sleeps without reading the
	// schedules again, for those another refit process on the same
	// database added. Default 5 min. (Changes made through this process
	// wake it at once: see Committed.)
	Resync time.Duration
	// Logger gets a line per scheduled run and per skipped tick. nil =
	// discard.
	Logger *slog.Logger
}

// Scheduler runs tasks on their schedules (triggers.schedule). The due
// time of every (task, schedule) is kept in the store; one timer waits
// for the earliest; a tick is claimed in the transaction that queues its
// run, so of several processes on one database exactly one queues it.
//
// Each tick is one of the cron library's (robfig/cron v3) in the
// schedule's zone, and makes one run. Across daylight-saving changes
// this means: a wall time that does not exist that day (02:30 in Berlin
// when clocks spring from 02:00 to 03:00) has no tick that day, and a
// wall time that happens twice (02:30 when clocks fall back from 03:00
// to 02:00) has two ticks, an hour apart.
//
// Missed ticks (refit was down) give at most one run when the scheduler
// starts — catchUp once, the default; its DueAt is the first tick
// missed — or none — catchUp skip; the schedule then goes on from the
// next tick after now.
type Scheduler struct {
	cfg  SchedulerConfig
	wake chan struct{}
}

// NewScheduler returns a Scheduler, not yet running (see Run).
func NewScheduler(cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.Runs == nil || cfg.Store == nil {
		return nil, errors.New("lifecycle: scheduler needs Runs and Store")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Late <= 0 {
		cfg.Late = time.Minute
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

// Wake makes a running scheduler read the tasks' schedules again. It
// never blocks.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Committed wakes the scheduler when a committed transaction changed a
// task (store.Store.OnCommit). It never blocks.
func (s *Scheduler) Committed(c store.Commit) {
	for _, e := range c.Events {
		if e.Type == store.EventTaskChanged {
			s.Wake()
			return
		}
	}
}

// retry is how soon the scheduler tries again after an error.
const retry = 30 * time.Second

// Run syncs the schedules with the tasks, then queues each tick as it
// falls due, until ctx ends. It sleeps on one timer between ticks.
func (s *Scheduler) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	dirty := true
	for {
		wait := s.cfg.Resync
		if dirty {
			if err := s.Sync(ctx); err != nil {
				s.cfg.Logger.Error("reading the tasks' schedules; trying again", "err", err, "in", retry)
				wait = retry
			} else {
				dirty = false
			}
		}
		next, err := s.RunDue(ctx)
		if err != nil {
			s.cfg.Logger.Error("queueing scheduled runs; trying again", "err", err, "in", retry)
			wait = min(wait, retry)
		}
		if !next.IsZero() {
			wait = min(wait, next.Sub(s.cfg.Now()))
		}
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			dirty = true
		case <-timer.C:
		}
	}
}

// scheduleSpec is how a schedule is stored (store.ScheduleState.Spec):
// its fields with defaults, so a change of any restarts it.
func scheduleSpec(e task.Schedule) string {
	b, _ := json.Marshal(e) // a struct of strings always encodes
	return string(b)
}

// Sync makes the stored schedules those of the tasks: a new or changed
// schedule is next due at its first tick after now; a removed one goes.
func (s *Scheduler) Sync(ctx context.Context) error {
	tasks, err := s.cfg.Store.ScheduledTasks(ctx)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	var want []store.ScheduleState
	for _, t := range tasks {
		spec := t.Spec.Defaults()
		for _, e := range spec.Triggers.Schedule {
			sched, err := e.Parse()
			if err != nil { // validated when stored: a zone gone from the system's database
				s.cfg.Logger.Error("schedule cannot be read; it does not run", "task", t.Name(), "schedule", e.Name, "err", err)
				continue
			}
			want = append(want, store.ScheduleState{Task: t.Name(), Name: e.Name, Spec: scheduleSpec(e), NextDue: sched.Next(now)})
		}
	}
	_, err = s.cfg.Store.SyncSchedules(ctx, want)
	return err
}

// RunDue queues a run for every schedule due at the clock's now (or
// skips the tick, see catchUp) and returns when the next is due (zero:
// no schedule). A schedule that could not be queued is left due and
// the error returned; the others are done.
func (s *Scheduler) RunDue(ctx context.Context) (time.Time, error) {
	rows, err := s.cfg.Store.Schedules(ctx)
	if err != nil {
		return time.Time{}, err
	}
	now := s.cfg.Now()
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	var errs []error
	for _, row := range rows {
		if row.NextDue.After(now) {
			soonest(row.NextDue) // rows are soonest first
			break
		}
		n, err := s.fire(ctx, row, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		soonest(n)
	}
	return next, errors.Join(errs...)
}

// fire queues the run of row's tick (or skips it) and returns the
// schedule's next due time.
func (s *Scheduler) fire(ctx context.Context, row store.ScheduleState, now time.Time) (time.Time, error) {
	var e task.Schedule
	if err := json.Unmarshal([]byte(row.Spec), &e); err != nil {
		return time.Time{}, fmt.Errorf("schedule %s of task %s: %w", row.Name, row.Task, err)
	}
	sched, err := e.Parse()
	if err != nil {
		return time.Time{}, fmt.Errorf("schedule %s of task %s: %w", row.Name, row.Task, err)
	}
	next := sched.Next(now)
	due := row.NextDue.In(e.Location())
	log := s.cfg.Logger.With("task", row.Task, "schedule", row.Name, "due", due.Format(time.RFC3339))
	if late := now.Sub(due); late > s.cfg.Late && e.CatchUp == "skip" {
		var claimed bool
		err := s.cfg.Store.InTx(ctx, func(tx *store.Tx) error {
			var err error
			claimed, err = tx.AdvanceSchedule(row.Task, row.Name, row.NextDue, next)
			return err
		})
		if err != nil {
			return time.Time{}, err
		}
		if claimed {
			log.Info("missed scheduled run skipped (catchUp: skip)", "late", late.Round(time.Second).String(), "next", next.Format(time.RFC3339))
		}
		return next, nil
	}
	run, claimed, err := s.cfg.Runs.queueTick(ctx, row.Task, e, due, row.NextDue, next)
	if err != nil {
		return time.Time{}, err
	}
	if claimed {
		log.Info("scheduled run queued", "run", store.FormatRunID(run.ID), "next", next.Format(time.RFC3339))
	}
	return next, nil
}

// queueTick claims the tick at (stored as) at of a task's schedule,
// moving it on to next, and queues its run, all in one transaction. It
// reports false, with nothing written, when the tick was not there to
// claim (another process has it, or the schedule changed).
func (l *Runs) queueTick(ctx context.Context, taskName string, e task.Schedule, due, at, next time.Time) (store.Run, bool, error) {
	t, err := l.cfg.Store.GetTask(ctx, taskName)
	if err != nil {
		return store.Run{}, false, fmt.Errorf("queueing scheduled run of task %s: %w", taskName, err)
	}
	cause := store.Cause{Kind: "schedule", Schedule: e.Cron, ScheduleName: e.Name, DueAt: due}
	var run store.Run
	var claimed bool
	err = l.inTx(ctx, func(tx *store.Tx) error {
		var err error
		if claimed, err = tx.AdvanceSchedule(taskName, e.Name, at, next); err != nil || !claimed {
			return err
		}
		if run, err = tx.CreateRun(store.Run{Task: t.Spec.Name, Spec: t.Spec, Cause: cause}, l.enqueuer(0)); err != nil {
			return err
		}
		return tx.SetScheduleRun(taskName, e.Name, at, run.ID)
	})
	if err != nil {
		return store.Run{}, false, fmt.Errorf("queueing scheduled run of task %s: %w", taskName, err)
	}
	return run, claimed, nil
}
