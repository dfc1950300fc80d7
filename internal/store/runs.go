package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/refit-dev/refit/internal/task"
)

// State is where a run is in its life.
type State string

// Run states. Queued, Running, Testing, AwaitingApproval and Promoting
// are live; the rest are ends.
const (
	StateQueued     State = "queued"
	StateRunning    State = "running"
	StateTesting    State = "testing"
	StateSucceeded  State = "succeeded"
	StateFailed     State = "failed"
	StateCanceled   State = "canceled"
	StateSuperseded State = "superseded"
	// StateAwaitingApproval: built, tested and pushed by digest; its
	// promotion waits for approvals.
	StateAwaitingApproval State = "awaiting_approval"
	// StatePromoting: its promotion job moves the promote tags; it ends
	// succeeded once they are moved.
	StatePromoting State = "promoting"
	// StateRejected: an approver rejected it; it is never promoted.
	StateRejected State = "rejected"
	// StateSkipped: a base update's run that the task's rebuild policy
	// (triggers.baseChange) decided not to build; Error says why.
	StateSkipped State = "skipped"
)

// Done reports whether the state is an end: the run will not change again.
func (s State) Done() bool {
	switch s {
	case StateSucceeded, StateFailed, StateCanceled, StateSuperseded, StateRejected, StateSkipped:
		return true
	}
	return false
}

// Cause says why a run exists. Kind selects which other fields are set.
type Cause struct {
	// Kind is manual, commit, base, schedule, cascade or baseTag.
	Kind string `json:"kind"`
	// User started a manual run.
	User string `json:"user,omitempty"`
	// Repo, Ref, SHA and Author describe a commit.
	Repo   string `json:"repo,omitempty"`
	Ref    string `json:"ref,omitempty"`
	SHA    string `json:"sha,omitempty"`
	Author string `json:"author,omitempty"`
	// Base, Platform, OldDigest and NewDigest describe a base update.
	Base      string `json:"base,omitempty"`
	Platform  string `json:"platform,omitempty"`
	OldDigest string `json:"oldDigest,omitempty"`
	NewDigest string `json:"newDigest,omitempty"`
	// Schedule is the cron spec of a scheduled run.
	Schedule string `json:"schedule,omitempty"`
	// OldTag and NewTag describe a new base version tag (kind baseTag):
	// Base is the repository, NewDigest what NewTag pointed to, OldTag
	// the newest matching tag seen before.
	OldTag string `json:"oldTag,omitempty"`
	NewTag string `json:"newTag,omitempty"`
	// ScheduleName names the task's schedule (triggers.schedule[].name)
	// and DueAt is the tick the run is for, in the schedule's zone (a
	// catch-up run's is the first tick missed).
	ScheduleName string    `json:"scheduleName,omitempty"`
	DueAt        time.Time `json:"dueAt,omitzero"`
	// Observation is the index observation a base update came from.
	Observation int64 `json:"observation,omitempty"`
	// Source says how a base update was seen: poll, webhook or push.
	Source string `json:"source,omitempty"`
	// UpstreamRun is the run whose push caused this cascade; Upstream
	// is that run's cause (the base update the wave started from).
	UpstreamRun int64  `json:"upstreamRun,omitempty"`
	Upstream    *Cause `json:"upstream,omitempty"`
	// Decision is what the task's baseChange policy made of a base
	// update's diff, e.g. "base moved, not rebuilt: no package changed".
	Decision string `json:"decision,omitempty"`
	// Changes summarizes a base update's diff once it is ready, e.g.
	// "openssl 3.0.11-1 → 3.0.13-1; +curl" (refit bases diff has it all).
	Changes string `json:"changes,omitempty"`
	// Message is a commit's message (its first 4 KiB).
	Message string `json:"message,omitempty"`
	// Also are the other causes a queued run absorbed before it started
	// (a base update arriving while a commit's run waited, or the other
	// way round): the run builds once, for all of them.
	Also []Cause `json:"also,omitempty"`
}

// UsedBase is a base image a run resolved and pinned.
type UsedBase struct {
	Ref    string `json:"ref"`    // normalized reference, as discovered
	Name   string `json:"name"`   // as written in the Dockerfile
	Stage  string `json:"stage"`  // stage that uses it
	Role   string `json:"role"`   // runtime or build
	Digest string `json:"digest"` // digest pinned into the build
}

// Run is one execution of a task.
type Run struct {
	ID         int64     `json:"-"`
	Task       string    `json:"task"`
	Spec       task.Spec `json:"spec"`
	State      State     `json:"state"`
	Cause      Cause     `json:"cause"`
	Attempts   int       `json:"attempts"`
	CreatedAt  time.Time `json:"createdAt"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	Commit     string    `json:"commit,omitempty"`
	Image      string    `json:"image,omitempty"`  // repository@digest pushed
	Digest     string    `json:"digest,omitempty"` // digest pushed
	// Platforms are the pushed image's per-platform manifest digests
	// (Digest is the index's, which moves with provenance alone).
	Platforms []PlatformDigest  `json:"platforms,omitempty"`
	Tags      []string          `json:"tags,omitempty"`
	Bases     []UsedBase        `json:"bases,omitempty"`
	Step      string            `json:"step,omitempty"`  // step that failed
	Error     string            `json:"error,omitempty"` // why it failed
	Timings   map[string]string `json:"timings,omitempty"`
	// BlockedBy lists upstream runs of the same wave this run waits for.
	BlockedBy []int64 `json:"blockedBy,omitempty"`
}

// FormatRunID renders a run ID the way users see it: "r-7".
func FormatRunID(id int64) string { return "r-" + strconv.FormatInt(id, 10) }

// Enqueuer is called inside the transaction that creates (or requeues) a
// run, so the job that executes it commits, or not, together with the run
// row. It returns the job's ID; only that job may start the run.
type Enqueuer func(ctx context.Context, tx *sql.Tx, runID int64) (int64, error)

// ManyEnqueuer is Enqueuer for many runs in one call (a wave's): it
// returns each run's job ID by run ID.
type ManyEnqueuer func(ctx context.Context, tx *sql.Tx, runIDs []int64) (map[int64]int64, error)

// CreateRun stores a new queued run and, in the same transaction, calls
// enqueue (nil = none).
func (s *Store) CreateRun(ctx context.Context, r Run, enqueue Enqueuer) (Run, error) {
	err := s.InTx(ctx, func(tx *Tx) error {
		var err error
		r, err = tx.CreateRun(r, enqueue)
		return err
	})
	if err != nil {
		return Run{}, err
	}
	return r, nil
}

const runColumns = `id, task_name, spec, state, cause, attempts, created_at, started_at, finished_at,
	commit_sha, image, digest, tags, bases, step, error, timings, blocked_by, platforms`

// GetRun returns the run or ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id int64) (Run, error) {
	r, err := scanRun(s.read.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = $1`, id))
	if err != nil {
		return Run{}, fmt.Errorf("run %s: %w", FormatRunID(id), err)
	}
	return r, nil
}

// RunFilter selects runs for ListRuns.
type RunFilter struct {
	Task  string // "" = all tasks
	State State  // "" = any state
	Limit int    // 0 = 50
}

// ListRuns returns runs, newest first.
func (s *Store) ListRuns(ctx context.Context, f RunFilter) ([]Run, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+runColumns+` FROM runs
		WHERE ($1 = '' OR task_name = $1) AND ($2 = '' OR state = $2)
		ORDER BY id DESC LIMIT $3`, f.Task, string(f.State), f.Limit)
	if err != nil {
		return nil, fmt.Errorf("listing runs: %w", translate(err))
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("listing runs: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func setJob(ctx context.Context, tx *sql.Tx, runID int64, enqueue Enqueuer) error {
	jobID, err := enqueue(ctx, tx, runID)
	if err != nil {
		return fmt.Errorf("enqueuing run %s: %w", FormatRunID(runID), err)
	}
	markJobs(tx)
	_, err = execPrepared(ctx, tx, setJobSQL, jobID, runID)
	return err
}

// ErrStaleJob is returned by StartRun to a job that no longer owns its run
// (the run was requeued under a new job after a restart).
var ErrStaleJob = errors.New("job no longer owns the run")

// StartRun moves a queued (or interrupted running) run to running for the
// job jobID and counts the attempt. It returns the run as stored; a run
// that has already ended is returned unchanged, so a redelivered job can
// see it is done. A job that does not own the run gets ErrStaleJob.
func (s *Store) StartRun(ctx context.Context, id, jobID int64) (Run, error) {
	var r Run
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var owner int64
		if err := tx.QueryRowContext(ctx, `SELECT job_id FROM runs WHERE id = $1`, id).Scan(&owner); err != nil {
			return translate(err)
		}
		if owner != jobID {
			return ErrStaleJob
		}
		res, err := tx.ExecContext(ctx, `UPDATE runs SET state = $1, started_at = $2, attempts = attempts + 1
			WHERE id = $3 AND state IN ($4, $1)`,
			string(StateRunning), formatTime(time.Now()), id, string(StateQueued))
		if err != nil {
			return translate(err)
		}
		r, err = scanRun(tx.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = $1`, id))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return emit(ctx, tx, EventRunStarted, r.Task, runEvent(r))
		}
		return nil
	})
	if err != nil {
		return Run{}, fmt.Errorf("starting run %s: %w", FormatRunID(id), err)
	}
	return r, nil
}

// SaveRun writes the run's mutable fields (state, times, outputs, error).
// It refuses to change a run that has already ended, returning
// ErrFinished, so a late writer cannot resurrect a canceled run.
func (s *Store) SaveRun(ctx context.Context, r Run) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return saveRun(ctx, tx, r) })
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func saveRun(ctx context.Context, db queryExecer, r Run) error {
	tags, _ := json.Marshal(r.Tags)
	bases, _ := json.Marshal(r.Bases)
	timings, _ := json.Marshal(r.Timings)
	platforms, _ := json.Marshal(r.Platforms)
	if r.Platforms == nil {
		platforms = []byte("[]")
	}
	res, err := db.ExecContext(ctx, `UPDATE runs SET state = $1, started_at = $2, finished_at = $3,
		commit_sha = $4, image = $5, digest = $6, tags = $7, bases = $8, step = $9, error = $10, timings = $11,
		platforms = $12
		WHERE id = $13 AND state NOT IN ('succeeded', 'failed', 'canceled', 'superseded', 'rejected', 'skipped')`,
		string(r.State), formatTime(r.StartedAt), formatTime(r.FinishedAt), r.Commit, r.Image, r.Digest,
		string(tags), string(bases), r.Step, r.Error, string(timings), string(platforms), r.ID)
	if err != nil {
		return fmt.Errorf("saving run %s: %w", FormatRunID(r.ID), translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("saving run %s: %w", FormatRunID(r.ID), ErrFinished)
	}
	if err := emitRunEnd(ctx, db, r); err != nil {
		return err
	}
	if r.State.Done() {
		d := map[string]any{"run": FormatRunID(r.ID), "state": r.State, "cause": r.Cause}
		if r.Digest != "" {
			d["image"], d["digest"], d["tags"], d["platforms"] = r.Image, r.Digest, r.Tags, r.Platforms
		}
		if len(r.Bases) > 0 {
			d["bases"] = r.Bases
		}
		if r.Commit != "" {
			d["commit"] = r.Commit
		}
		if r.Error != "" {
			d["step"], d["error"] = r.Step, r.Error
		}
		return appendAudit(ctx, db, AuditRecord{Actor: "system", Action: "run.finish", Subject: r.Task, Details: d})
	}
	return nil
}

// PreviousSucceeded returns the task's last succeeded run before the run
// before (by end time; the run itself excluded), or ErrNotFound.
func (t *Tx) PreviousSucceeded(task string, before int64) (Run, error) {
	r, err := scanRun(t.tx.QueryRowContext(t.ctx, `SELECT `+runColumns+` FROM runs
		WHERE task_name = $1 AND state = 'succeeded' AND id <> $2
		ORDER BY finished_at DESC, id DESC LIMIT 1`, task, before))
	if err != nil {
		return Run{}, fmt.Errorf("previous succeeded run of task %s: %w", task, err)
	}
	return r, nil
}

// ErrFinished is returned when writing to a run that has already ended.
var ErrFinished = errors.New("run already finished")

func scanRun(row scanner) (Run, error) {
	var (
		r                                     Run
		spec, state, cause, tags, bases, tims string
		created, started, finished, blocked   string
		platforms                             string
	)
	err := row.Scan(&r.ID, &r.Task, &spec, &state, &cause, &r.Attempts, &created, &started, &finished,
		&r.Commit, &r.Image, &r.Digest, &tags, &bases, &r.Step, &r.Error, &tims, &blocked, &platforms)
	if err != nil {
		return Run{}, translate(err)
	}
	r.State = State(state)
	r.CreatedAt, r.StartedAt, r.FinishedAt = parseTime(created), parseTime(started), parseTime(finished)
	for _, f := range []struct {
		what string
		src  string
		dst  any
	}{{"spec", spec, &r.Spec}, {"cause", cause, &r.Cause}, {"tags", tags, &r.Tags}, {"bases", bases, &r.Bases}, {"timings", tims, &r.Timings}, {"blocked_by", blocked, &r.BlockedBy}, {"platforms", platforms, &r.Platforms}} {
		if err := json.Unmarshal([]byte(f.src), f.dst); err != nil {
			return Run{}, fmt.Errorf("decoding stored run %s: %w", f.what, err)
		}
	}
	return r, nil
}

// LogChunk is one stored piece of a run's build log: an opaque JSON
// document (a BuildKit status update) numbered from 1.
type LogChunk struct {
	Seq  int64           `json:"seq"`
	Data json.RawMessage `json:"data"`
}

// AppendLogs stores chunks after the run's last one, in one transaction.
func (s *Store) AppendLogs(ctx context.Context, runID int64, chunks [][]byte) error {
	if len(chunks) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var last int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM run_logs WHERE run_id = $1`, runID).Scan(&last); err != nil {
			return err
		}
		for _, c := range chunks {
			last++
			if _, err := tx.ExecContext(ctx, `INSERT INTO run_logs (run_id, seq, data) VALUES ($1, $2, $3)`, runID, last, string(c)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("appending logs of run %s: %w", FormatRunID(runID), translate(err))
	}
	return nil
}

// Logs returns up to limit chunks of the run's log after seq.
func (s *Store) Logs(ctx context.Context, runID, after int64, limit int) ([]LogChunk, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT seq, data FROM run_logs WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, runID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("reading logs of run %s: %w", FormatRunID(runID), translate(err))
	}
	defer rows.Close()
	var out []LogChunk
	for rows.Next() {
		var c LogChunk
		var data string
		if err := rows.Scan(&c.Seq, &data); err != nil {
			return nil, fmt.Errorf("reading logs of run %s: %w", FormatRunID(runID), err)
		}
		c.Data = json.RawMessage(data)
		out = append(out, c)
	}
	return out, rows.Err()
}

// RequeueInterrupted puts every run left running by a process that died
// back in the queue, calling enqueue for each in the same transaction, and
// returns their IDs. Only for a single node (SQLite): with several nodes a
// running run may be alive elsewhere.
func (s *Store) RequeueInterrupted(ctx context.Context, enqueue Enqueuer) ([]int64, error) {
	var ids []int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM runs WHERE state IN ('running', 'testing') ORDER BY id`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE runs SET state = 'queued' WHERE id = $1`, id); err != nil {
				return err
			}
			if err := setJob(ctx, tx, id, enqueue); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("requeuing interrupted runs: %w", translate(err))
	}
	return ids, nil
}
