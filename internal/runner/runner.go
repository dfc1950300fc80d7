// Package runner owns executing runs: queuing a run (row and job in one
// transaction), and the job worker that takes it from queued to a pushed
// image — fetch the source at an exact commit, discover and pin the base
// images, build with BuildKit, record everything on the run. It does not
// decide when a task should run (that is the planner's job).
package runner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/refit-dev/refit/internal/build"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/source"
	"github.com/refit-dev/refit/internal/store"
)

// runStore is what the runner needs of the store.
type runStore interface {
	DB() *sql.DB
	Postgres() bool
	GetTask(ctx context.Context, name string) (store.Task, error)
	CreateRun(ctx context.Context, r store.Run, enqueue store.Enqueuer) (store.Run, error)
	StartRun(ctx context.Context, id, jobID int64) (store.Run, error)
	FinishRun(ctx context.Context, r store.Run, enqueue store.Enqueuer, after func(*store.Tx, []int64) error) error
	AppendLogs(ctx context.Context, runID int64, chunks [][]byte) error
	SetTaskBases(ctx context.Context, name string, bases []dockerfile.Base) error
	RequeueInterrupted(ctx context.Context, enqueue store.Enqueuer) ([]int64, error)
	SeedBaseRef(ctx context.Context, ref, digest string) error
}

// builder builds and pushes an image.
type builder interface {
	Build(ctx context.Context, req build.Request, status chan *client.SolveStatus) (build.Result, error)
}

// resolver returns the digest a reference points to now.
type resolver interface {
	Resolve(ctx context.Context, ref string) (string, error)
}

var (
	_ builder  = (*build.Builder)(nil)
	_ runStore = (*store.Store)(nil)
)

// Config configures a Runner.
type Config struct {
	// Store holds runs and tasks (required).
	Store runStore
	// Builder builds images (required).
	Builder builder
	// Resolver resolves base tags to digests (required).
	Resolver resolver
	// Registry is the embedded registry's host:port; images named without
	// a registry host are pushed there (required).
	Registry string
	// Insecure lists registry hosts reached over plain HTTP; the embedded
	// registry is always included.
	Insecure []string
	// WorkDir holds source checkouts while a run builds (required).
	WorkDir string
	// SourceDirs bounds the server directories a task's dir source may
	// name (checked when a task is inspected and when a run starts). The
	// zero value allows any directory.
	SourceDirs source.DirPolicy
	// BuilderReady, when set, is called before each build and waits until
	// the build daemon answers (a managed daemon may be restarting).
	BuilderReady func(ctx context.Context) error
	// Workers is how many runs build at once. Default 2.
	Workers int
	// BuildTimeout bounds one run. Default 1 h.
	BuildTimeout time.Duration
	// Logger gets one line per run state change. nil = discard.
	Logger *slog.Logger
	// AfterFinish, when set, runs in the transaction that records a run's
	// end, after the runs waiting for it were released (the planner
	// cascades a successful push to the tasks built on it).
	AfterFinish func(tx *store.Tx, run store.Run, released []int64) error
}

// Runner queues runs and works them.
type Runner struct {
	cfg   Config
	river *river.Client[*sql.Tx]

	mu    sync.Mutex
	ended map[int64]*waiters
}

// waiters are the followers of one run.
type waiters struct {
	ch chan struct{}
	n  int
}

// Ended returns a channel closed when the run, worked by this process,
// has ended and been recorded, and a release function to call when done
// waiting. A run that ended before the call, or is worked elsewhere,
// never closes it: callers still poll, this only wakes them early.
func (r *Runner) Ended(runID int64) (<-chan struct{}, func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.ended[runID]
	if !ok {
		w = &waiters{ch: make(chan struct{})}
		r.ended[runID] = w
	}
	w.n++
	return w.ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if w.n--; w.n == 0 && r.ended[runID] == w {
			delete(r.ended, runID)
		}
	}
}

// markEnded wakes the followers of a run that has been recorded as ended.
func (r *Runner) markEnded(runID int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.ended[runID]; ok {
		close(w.ch)
		delete(r.ended, runID)
	}
}

// Args is the job that executes one run. The run row holds everything
// else, so a redelivered job reads the current state.
type Args struct {
	RunID int64 `json:"run_id"`
}

// Kind names the job kind in the queue.
func (Args) Kind() string { return "refit.run" }

// New migrates the queue's tables and returns a Runner, not yet working.
func New(ctx context.Context, cfg Config) (*Runner, error) {
	if cfg.Store == nil || cfg.Builder == nil || cfg.Resolver == nil || cfg.Registry == "" || cfg.WorkDir == "" {
		return nil, errors.New("runner: Store, Builder, Resolver, Registry and WorkDir are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.BuildTimeout <= 0 {
		cfg.BuildTimeout = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Insecure = append([]string{cfg.Registry}, cfg.Insecure...)
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
	r := &Runner{cfg: cfg, ended: map[int64]*waiters{}}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &worker{r: r}); err != nil {
		return nil, fmt.Errorf("registering run worker: %w", err)
	}
	r.river, err = river.NewClient(driver, &river.Config{
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		Workers:              workers,
		JobTimeout:           cfg.BuildTimeout,
		RescueStuckJobsAfter: cfg.BuildTimeout + time.Minute,
		// With SQLite, River only learns of a job inserted in a
		// transaction by polling; a short interval keeps the queue wait
		// (and refit's overhead over a plain build) to tens of ms.
		FetchPollInterval: 50 * time.Millisecond,
		FetchCooldown:     10 * time.Millisecond,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, fmt.Errorf("creating job queue client: %w", err)
	}
	return r, nil
}

// Start requeues runs a previous process left running (it died: they
// are built again, idempotently) and begins working queued runs; it
// returns at once.
func (r *Runner) Start(ctx context.Context) error {
	ids, err := r.cfg.Store.RequeueInterrupted(ctx, r.enqueue)
	if err != nil {
		return err
	}
	for _, id := range ids {
		r.cfg.Logger.Warn("run was interrupted by a restart; queued again", "run", store.FormatRunID(id))
	}
	if err := r.river.Start(ctx); err != nil {
		return fmt.Errorf("starting job queue: %w", err)
	}
	return nil
}

// Stop cancels running builds (their runs are marked canceled) and waits
// for the workers to return, bounded by ctx.
func (r *Runner) Stop(ctx context.Context) error {
	if err := r.river.StopAndCancel(ctx); err != nil {
		return fmt.Errorf("stopping job queue: %w", err)
	}
	return nil
}

// Queue creates a run of the task with the given cause and enqueues its
// job in the same transaction. The run snapshots the task's spec.
func (r *Runner) Queue(ctx context.Context, taskName string, cause store.Cause) (store.Run, error) {
	t, err := r.cfg.Store.GetTask(ctx, taskName)
	if err != nil {
		return store.Run{}, err
	}
	run := store.Run{Task: t.Spec.Name, Spec: t.Spec, Cause: cause}
	return r.cfg.Store.CreateRun(ctx, run, r.enqueue)
}

// enqueue inserts the job of a run inside the transaction that stores it.
func (r *Runner) enqueue(ctx context.Context, tx *sql.Tx, runID int64) (int64, error) {
	return r.Enqueuer(0)(ctx, tx, runID)
}

// Enqueuer returns a job inserter for runs that may start after delay
// (the planner debounces base updates with it).
func (r *Runner) Enqueuer(delay time.Duration) store.Enqueuer {
	return func(ctx context.Context, tx *sql.Tx, runID int64) (int64, error) {
		opts := &river.InsertOpts{MaxAttempts: 5}
		if delay > 0 {
			opts.ScheduledAt = time.Now().Add(delay)
		}
		res, err := r.river.InsertTx(ctx, tx, Args{RunID: runID}, opts)
		if err != nil {
			return 0, err
		}
		return res.Job.ID, nil
	}
}
