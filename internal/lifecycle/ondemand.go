package lifecycle

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// River's client does periodic work whether or not there are jobs: its
// job completer ticks every 50 ms, its leader is re-elected every 5 s,
// its scheduler runs every 5 s, its producer reads the queue's settings
// every 2 s (none of these is configurable in River v0.51.2). That was
// nearly all an idle refit serve spent, 3–5 ms of CPU per second. So the
// client runs only while the queue has work: onDemand starts it when a
// job can be worked and stops it once nothing has happened for a while
// (Config.Idle) and nothing is due.
//
// What starts it:
//   - a wake-up after a commit that made a job available (wake), and the
//     wake-up of a debounced job when it falls due (wake.go) — the same
//     signals that made the running producer fetch;
//   - a look at the queue (due): when Start begins, after each stop,
//     on PostgreSQL when another process notifies that it committed jobs
//     (listen.go), and every Config.Poll while stopped (jobs another
//     process committed while this one did not listen, or a restart
//     left). It finds jobs available now, retryable or
//     scheduled jobs whose time has come (River's scheduler makes them
//     available; it runs while the client runs), and running jobs older
//     than RescueStuckJobsAfter (River's rescuer retries them, as it
//     would have); for the earliest such time still ahead, it sets a
//     wake-up.
//
// River's maintenance (job cleaner, rescuer, scheduler) runs on the
// leader while its client runs: each service within a second of the
// client gaining leadership (at once when no other client holds it),
// then at its interval. So old jobs are cleaned when there is new work,
// not on an idle server, which adds none. A commit that queued only
// debounced runs starts the client too (for one Idle period), which
// costs a little and keeps the wake-up simple.
//
// A job committed while the client is stopping is not lost: a wake-up
// that finds the client not running is kept (pending) and starts it
// again once the stop has finished, and the look at the queue after
// each stop finds jobs nobody woke it for.
type onDemand struct {
	client      *river.Client[*sql.Tx]
	fetch       func()          // makes the running producer fetch now
	at          func(time.Time) // sets a wake-up at a time
	idle        time.Duration   // stop after this long with nothing to do
	poll        time.Duration   // look at the queue this often while stopped
	rescueAfter time.Duration   // River's RescueStuckJobsAfter
	logger      *slog.Logger

	kick chan struct{} // cap 1: state changed, the loop should look

	mu      sync.Mutex
	running bool      // started and not stopping: wake-ups go to the producer
	pending bool      // woken while not running: start
	busy    int       // jobs executing in this process
	seq     uint64    // counts wake-ups and job ends
	last    time.Time // of the last wake-up or job end

	// stopping, when set (tests), is called after the client stopped
	// taking wake-ups and before it is stopped.
	stopping func()
}

// wake is called after a commit that may have made a job available,
// and when a debounced job falls due: the running producer fetches at
// once, or a stopped client starts.
func (q *onDemand) wake() {
	q.mu.Lock()
	q.seq++
	q.last = time.Now()
	if q.running {
		q.fetch()
		q.mu.Unlock()
		return
	}
	q.pending = true
	q.mu.Unlock()
	q.signal()
}

// look is called when another process may have committed a job (a
// notification, listen.go): the running producer fetches, or a stopped
// client looks at the queue and starts if a job can be worked now. It
// counts as no activity, so a notification of a job that another
// process (or this one) took already does not put off the idle stop.
func (q *onDemand) look() {
	q.mu.Lock()
	if q.running {
		q.fetch()
		q.mu.Unlock()
		return
	}
	q.mu.Unlock()
	q.signal()
}

func (q *onDemand) signal() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// begin and end bracket a job's execution in this process.
func (q *onDemand) begin() {
	q.mu.Lock()
	q.busy++
	q.mu.Unlock()
}

func (q *onDemand) end() {
	q.mu.Lock()
	q.busy--
	q.seq++
	q.last = time.Now()
	idle := q.busy == 0
	q.mu.Unlock()
	if idle {
		q.signal()
	}
}

// due looks at the queue: whether a job can be worked now (or needs the
// client's maintenance now), and else when the earliest will (zero:
// none).
func (q *onDemand) due(ctx context.Context) (now bool, next time.Time, err error) {
	t0 := time.Now()
	res, err := q.client.JobList(ctx, river.NewJobListParams().
		States(rivertype.JobStateAvailable, rivertype.JobStateRetryable, rivertype.JobStateScheduled).
		OrderBy(river.JobListOrderByScheduledAt, river.SortOrderAsc).First(1))
	if err != nil {
		return false, time.Time{}, fmt.Errorf("looking for queued jobs: %w", err)
	}
	if len(res.Jobs) > 0 {
		next = res.Jobs[0].ScheduledAt
	}
	// Running jobs: nothing to do unless one is stuck (its process died),
	// which River's rescuer retries after rescueAfter.
	res, err = q.client.JobList(ctx, river.NewJobListParams().
		States(rivertype.JobStateRunning).
		OrderBy(river.JobListOrderByTime, river.SortOrderAsc).First(1))
	if err != nil {
		return false, time.Time{}, fmt.Errorf("looking for running jobs: %w", err)
	}
	if len(res.Jobs) > 0 && res.Jobs[0].AttemptedAt != nil {
		if r := res.Jobs[0].AttemptedAt.Add(q.rescueAfter); next.IsZero() || r.Before(next) {
			next = r
		}
	}
	if !next.IsZero() && !next.After(t0) {
		return true, time.Time{}, nil
	}
	return false, next, nil
}

// start starts the client; a wake-up that came meanwhile makes the
// producer fetch (its first fetch may have run before that commit).
func (q *onDemand) start(ctx context.Context) error {
	q.mu.Lock()
	q.pending = false
	q.mu.Unlock()
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("starting job queue: %w", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.running = true
	q.seq++
	q.last = time.Now()
	if q.pending {
		q.pending = false
		q.fetch()
	}
	return nil
}

// run starts and stops the client until ctx ends, then leaves it as it
// is (Runs.Stop stops it). running says whether Runs.Start started it.
func (q *onDemand) run(ctx context.Context, running bool) {
	timer := time.NewTimer(q.poll)
	if running {
		timer.Reset(q.idle)
	}
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.kick:
		case <-timer.C:
		}
		if running {
			wait := q.maybeStop(ctx)
			if wait > 0 {
				timer.Reset(wait)
				continue
			}
			running = false
			if ctx.Err() != nil {
				return
			}
		}
		// Stopped: start if woken or if the queue has work now; else
		// look again when the earliest job is due, or at the next poll.
		q.mu.Lock()
		woken := q.pending
		q.mu.Unlock()
		if !woken {
			now, next, err := q.due(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				q.logger.Warn("job queue: looking at the queue failed; trying again at the next poll", "error", err)
				timer.Reset(q.poll)
				continue
			}
			if !now {
				if !next.IsZero() {
					q.at(next)
				}
				timer.Reset(q.poll)
				continue
			}
		}
		if err := q.start(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			q.logger.Warn("job queue: starting failed; trying again at the next poll", "error", err)
			timer.Reset(q.poll)
			continue
		}
		running = true
		timer.Reset(q.idle)
	}
}

// maybeStop stops the client if it has had nothing to do for q.idle and
// nothing is due; else it returns how long to wait before asking again
// (0: stopped).
func (q *onDemand) maybeStop(ctx context.Context) time.Duration {
	q.mu.Lock()
	busy, seq, since := q.busy, q.seq, time.Since(q.last)
	q.mu.Unlock()
	if busy > 0 {
		return q.idle // and the job's end signals
	}
	if since < q.idle {
		return q.idle - since
	}
	now, _, err := q.due(ctx)
	if err != nil {
		if ctx.Err() == nil {
			q.logger.Warn("job queue: looking at the queue failed", "error", err)
		}
		return q.idle
	}
	if now {
		// Due work nobody woke the producer for (committed by another
		// process), or that needs the maintenance of a running client.
		q.mu.Lock()
		q.fetch()
		q.mu.Unlock()
		return q.idle
	}
	q.mu.Lock()
	if q.busy > 0 || q.seq != seq {
		q.mu.Unlock()
		return q.idle
	}
	q.running = false
	q.mu.Unlock()
	if q.stopping != nil {
		q.stopping()
	}
	// Graceful: should the producer have fetched a job after the look,
	// it finishes it. A wake-up meanwhile is kept as pending.
	if err := q.client.Stop(ctx); err != nil && ctx.Err() == nil {
		q.logger.Warn("job queue: stopping the idle queue failed", "error", err)
	}
	return 0
}

// busyMiddleware counts the jobs executing in this process, so the
// client is not stopped under them.
type busyMiddleware struct {
	river.MiddlewareDefaults
	q *onDemand
}

// Work brackets the job's execution.
func (m *busyMiddleware) Work(ctx context.Context, _ *rivertype.JobRow, doInner func(context.Context) error) error {
	m.q.begin()
	defer m.q.end()
	return doInner(ctx)
}
