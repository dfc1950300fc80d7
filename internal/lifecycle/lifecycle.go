// Package lifecycle owns a run's life from queued to its end: the River
// client (run only while the queue has work, ondemand.go) and job args,
// enqueue (manual, scheduled — the Scheduler of schedule.go — and
// debounced for base updates),
// coalescing base updates into waiting runs, the transaction that commits
// an observation and its wave, the finish transaction, release and cancel
// of the runs that waited for a run, and cascade; testing, awaiting
// approval, approvals, supersede and promotion (promote.go). It decides every state a run takes; the work itself
// is an Executor's (internal/runner), which it calls and never the other
// way round. What to run is plan's decision; rows are store's.
//
// A run's row and its job commit in one transaction (the queue shares the
// store's writer connection), so nothing accepted is lost.
package lifecycle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
)

// Executor does a run's work — for refit, fetch the source, pin the bases
// and build (internal/runner) — and reports what it produced. The
// lifecycle decides the run's state from what it returns: succeeded on a
// nil error, canceled when ctx ended, else failed (at the step a
// *StepError names). The Outcome is recorded on the run in every case, so
// it should hold what was learned before a failure.
type Executor interface {
	Execute(ctx context.Context, run store.Run, logs Logs) (Outcome, error)
}

// Logs receives a run's log as it is made: each chunk one JSON document
// (a BuildKit status update), stored in order. Append never blocks for
// long and is safe for concurrent use.
type Logs interface {
	Append(chunk []byte)
}

// Outcome is what a run produced.
type Outcome struct {
	Commit string           // source commit built
	Bases  []store.UsedBase // bases resolved and pinned
	Digest string           // digest pushed
	Image  string           // repository@digest pushed
	Tags   []string         // tags pushed
	// Platforms are the pushed image's per-platform manifest digests:
	// what decides whether the push changed anything (see finish).
	Platforms []store.PlatformDigest
	// Timings are the steps' durations ("source": "1.2s"); the lifecycle
	// adds "queued" and "total".
	Timings map[string]string
}

// Pushed returns run with what the execution recorded of its push: the
// commit, bases, digest, image, tags and platforms (not the timings).
func (o Outcome) Pushed(run store.Run) store.Run {
	run.Commit, run.Bases, run.Digest, run.Image, run.Tags, run.Platforms = o.Commit, o.Bases, o.Digest, o.Image, o.Tags, o.Platforms
	return run
}

// StepError is a run's failure at a named step (source, dockerfile,
// resolve, tags, build): it ends the run as failed, naming the step.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// runStore is what the lifecycle needs of the store.
type runStore interface {
	DB() *sql.DB
	Postgres() bool
	InTx(ctx context.Context, fn func(*store.Tx) error) error
	GetTask(ctx context.Context, name string) (store.Task, error)
	CreateRun(ctx context.Context, r store.Run, enqueue store.Enqueuer) (store.Run, error)
	StartRun(ctx context.Context, id, jobID int64) (store.Run, error)
	AppendLogs(ctx context.Context, runID int64, chunks [][]byte) error
	RequeueInterrupted(ctx context.Context, enqueue store.Enqueuer) ([]int64, error)
	GetRun(ctx context.Context, id int64) (store.Run, error)
	PlannedPromotions(ctx context.Context, key string) ([]store.Promotion, error)
	PlanPromotions(ctx context.Context, ps []store.Promotion) error
	NoteDecision(ctx context.Context, runID int64, decision string) error
	listener
}

var _ runStore = (*store.Store)(nil)

// Config configures Runs.
type Config struct {
	// Store holds runs, tasks and the base index (required).
	Store runStore
	// Executor does the runs' work (required).
	Executor Executor
	// Registry is the embedded registry's host:port: tasks whose image
	// names no registry push there, which is how their outputs are
	// matched to other tasks' bases (required).
	Registry string
	// Debounce delays the start of runs caused by a base update, so a
	// burst of updates (a flapping tag) yields one run built on the newest
	// digest. Default 30 s; negative means none.
	Debounce time.Duration
	// Interval is when a reference is next checked after an observation
	// that names no time. Default 5 min.
	Interval time.Duration
	// Workers is how many runs execute at once. Default 2.
	Workers int
	// RunTimeout bounds one run's execution. Default 1 h.
	RunTimeout time.Duration
	// Poll is how often the queue looks for jobs nobody woke it for:
	// committed by another process while this one was not listening
	// for them (on PostgreSQL a notification wakes it, listen.go), or
	// left queued by a restart (River's
	// fetch poll while its client runs; one look at the queue while it
	// is stopped, see Idle). Jobs
	// this process commits wake the queue at once (see wake.go), and a
	// debounced one when it falls due (also one left by a restart: Start
	// sets its wake-up again). Default 5 s on PostgreSQL, where other
	// refit processes may commit jobs; 30 s on SQLite, whose database one
	// process owns, so that an idle server rarely wakes.
	Poll time.Duration
	// Idle is how long the queue's River client keeps running with
	// nothing to do before it is stopped (see ondemand.go): a stopped
	// client costs nothing, and a commit, or a debounced job falling due,
	// starts it again. Default 5 s.
	Idle time.Duration
	// Logger gets one line per run state change and per base update.
	// nil = discard.
	Logger *slog.Logger
	// Tagger moves promote tags (a *regclient.Client); nil = promotions
	// fail at step promote, saying so (needed by tasks with a promote
	// section).
	Tagger Tagger
	// Differ computes base updates' diffs: each changed platform of an
	// observation gets a diff job (off the critical path: the runs are
	// queued at once), announced as a base.diff event, and runs whose
	// task policy (triggers.baseChange) needs the diff wait for it. nil =
	// no diffs, and every base update rebuilds.
	Differ Differ
}

// Runs owns the lives of runs. It is safe for concurrent use (the store
// serializes its transactions).
type Runs struct {
	cfg   Config
	river *river.Client[*sql.Tx]
	pilot *wakePilot // wakes river's producer after a commit
	queue *onDemand  // runs river's client while the queue has work

	stopQueue func()        // ends queue.run and listen
	queueDone chan struct{} // closed when queue.run has returned
	listening chan struct{} // PostgreSQL: closed when listen has returned

	mu    sync.Mutex
	ended map[int64]*waiters

	graphMu sync.Mutex
	graph   *plan.Graph // the task graph at graphAt, read-only once built
	graphAt int64       // store.Tx.TasksVersion the graph was built at
}

// waiters are the followers of one run.
type waiters struct {
	ch chan struct{}
	n  int
}

// Args is the job that executes one run. The run row holds everything
// else, so a redelivered job reads the current state.
type Args struct {
	RunID int64 `json:"run_id"`
}

// Kind names the job kind in the queue.
func (Args) Kind() string { return "refit.run" }

// New migrates the queue's tables and returns Runs, not yet working
// (Start begins).
func New(ctx context.Context, cfg Config) (*Runs, error) {
	if cfg.Store == nil || cfg.Executor == nil || cfg.Registry == "" {
		return nil, errors.New("lifecycle: Store, Executor and Registry are required")
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = 30 * time.Second
	}
	if cfg.Debounce < 0 {
		cfg.Debounce = 0
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Minute
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.RunTimeout <= 0 {
		cfg.RunTimeout = time.Hour
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 30 * time.Second
		if cfg.Store.Postgres() {
			cfg.Poll = 5 * time.Second
		}
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// The queue shares the store's writer connection, so a run row and its
	// job commit together.
	var driver riverdriver.Driver[*sql.Tx] = riversqlite.New(cfg.Store.DB())
	if cfg.Store.Postgres() {
		driver = riverdatabasesql.New(cfg.Store.DB())
	}
	m, err := rivermigrate.New(driver, nil)
	if err != nil {
		return nil, fmt.Errorf("preparing queue migrations: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("migrating queue tables: %w", err)
	}
	l := &Runs{cfg: cfg, ended: map[int64]*waiters{}, pilot: &wakePilot{}}
	rescueAfter := cfg.RunTimeout + time.Minute
	l.queue = &onDemand{
		fetch:       l.pilot.fetch,
		at:          l.pilot.at,
		idle:        cfg.Idle,
		poll:        cfg.Poll,
		rescueAfter: rescueAfter,
		logger:      cfg.Logger,
		kick:        make(chan struct{}, 1),
	}
	l.pilot.due = l.wake
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &worker{l: l}); err != nil {
		return nil, fmt.Errorf("registering run worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &promoteWorker{l: l}); err != nil {
		return nil, fmt.Errorf("registering promotion worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &diffWorker{l: l}); err != nil {
		return nil, fmt.Errorf("registering diff worker: %w", err)
	}
	l.river, err = river.NewClient[*sql.Tx](&wakeDriver{Driver: driver, pilot: l.pilot}, &river.Config{
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		Workers:              workers,
		JobTimeout:           cfg.RunTimeout,
		RescueStuckJobsAfter: rescueAfter,
		// Jobs committed here wake the producer (wake.go); the poll
		// only finds what nobody woke it for.
		FetchPollInterval: cfg.Poll,
		FetchCooldown:     5 * time.Millisecond,
		Middleware:        []rivertype.Middleware{&busyMiddleware{q: l.queue}},
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, fmt.Errorf("creating job queue client: %w", err)
	}
	l.queue.client = l.river
	return l, nil
}

// Start requeues runs a previous process left running (it died: they
// are executed again, idempotently) and begins working queued runs; it
// returns at once. The queue works until ctx ends or Stop.
func (l *Runs) Start(ctx context.Context) error {
	ids, err := l.cfg.Store.RequeueInterrupted(ctx, l.enqueuer(0))
	if err != nil {
		return err
	}
	for _, id := range ids {
		l.cfg.Logger.Warn("run was interrupted by a restart; queued again", "run", store.FormatRunID(id))
	}
	qctx, cancel := context.WithCancel(ctx)
	now, next, err := l.queue.due(qctx)
	if err == nil && now {
		err = l.queue.start(qctx)
	}
	if err == nil {
		err = l.rearm(qctx)
	}
	if err != nil {
		cancel()
		l.river.StopAndCancel(context.WithoutCancel(ctx))
		return err
	}
	if !next.IsZero() {
		l.pilot.at(next)
	}
	l.stopQueue, l.queueDone = cancel, make(chan struct{})
	go func() {
		defer close(l.queueDone)
		l.queue.run(qctx, now)
	}()
	if l.cfg.Store.Postgres() {
		l.listening = make(chan struct{})
		go func() {
			defer close(l.listening)
			l.listen(qctx, l.cfg.Store)
		}()
	}
	return nil
}

// wake is called after a transaction that may have made a job available
// commits, and when a debounced job falls due: the queue works it at
// once.
func (l *Runs) wake() { l.queue.wake() }

// rearm sets the wake-ups of debounced jobs a previous process left in
// the queue: theirs were in that process's memory, and without them
// such a job would wait for the fetch poll.
func (l *Runs) rearm(ctx context.Context) error {
	const page = 1000
	params := river.NewJobListParams().States(rivertype.JobStateAvailable).First(page)
	now := time.Now()
	for {
		res, err := l.river.JobList(ctx, params)
		if err != nil {
			return fmt.Errorf("listing debounced runs left in the queue: %w", err)
		}
		for _, j := range res.Jobs {
			if j.ScheduledAt.After(now) {
				l.pilot.at(j.ScheduledAt)
			}
		}
		if len(res.Jobs) < page || res.LastCursor == nil {
			return nil
		}
		params = params.After(res.LastCursor)
	}
}

// Stop cancels running executions (their runs end canceled) and waits
// for the workers to return, bounded by ctx.
func (l *Runs) Stop(ctx context.Context) error {
	l.pilot.stop()
	if l.stopQueue != nil {
		l.stopQueue()
		<-l.queueDone
		if l.listening != nil {
			<-l.listening
		}
	}
	if err := l.river.StopAndCancel(ctx); err != nil {
		return fmt.Errorf("stopping job queue: %w", err)
	}
	return nil
}

// Queue creates a run of the task with the given cause and enqueues its
// job in the same transaction. The run snapshots the task's spec.
func (l *Runs) Queue(ctx context.Context, taskName string, cause store.Cause) (store.Run, error) {
	t, err := l.cfg.Store.GetTask(ctx, taskName)
	if err != nil {
		return store.Run{}, err
	}
	run := store.Run{Task: t.Spec.Name, Spec: t.Spec, Cause: cause}
	run, err = l.cfg.Store.CreateRun(ctx, run, l.enqueuer(0))
	if err == nil {
		l.wake()
	}
	return run, err
}

// inTx runs fn in one write transaction and, once it committed, wakes
// the queue for the jobs it may have made available.
func (l *Runs) inTx(ctx context.Context, fn func(*store.Tx) error) error {
	if err := l.cfg.Store.InTx(ctx, fn); err != nil {
		return err
	}
	l.wake()
	return nil
}

// runJobOpts are the options of a run's job, one that may start after
// delay: enqueuer and manyEnqueuer both insert with them.
func runJobOpts(delay time.Duration) *river.InsertOpts {
	opts := &river.InsertOpts{MaxAttempts: 5}
	if delay > 0 {
		opts.ScheduledAt = time.Now().Add(delay)
	}
	return opts
}

// enqueuer returns the job inserter for runs that may start after delay,
// called inside the transaction that stores or releases the run.
func (l *Runs) enqueuer(delay time.Duration) store.Enqueuer {
	return func(ctx context.Context, tx *sql.Tx, runID int64) (int64, error) {
		res, err := l.river.InsertTx(ctx, tx, Args{RunID: runID}, runJobOpts(delay))
		if err != nil {
			return 0, err
		}
		return res.Job.ID, nil
	}
}

// Ended returns a channel closed when the run, worked by this process,
// has ended and been recorded, and a release function to call when done
// waiting. A run that ended before the call, or is worked elsewhere,
// never closes it: callers still poll, this only wakes them early.
func (l *Runs) Ended(runID int64) (<-chan struct{}, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.ended[runID]
	if !ok {
		w = &waiters{ch: make(chan struct{})}
		l.ended[runID] = w
	}
	w.n++
	return w.ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if w.n--; w.n == 0 && l.ended[runID] == w {
			delete(l.ended, runID)
		}
	}
}

// markEnded wakes the followers of a run that has been recorded as ended.
func (l *Runs) markEnded(runID int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w, ok := l.ended[runID]; ok {
		close(w.ch)
		delete(l.ended, runID)
	}
}
