package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// PlatformDigest is one platform's manifest behind a reference.
type PlatformDigest struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
}

// BaseRef is one tracked base image reference and what it points to now.
type BaseRef struct {
	Ref         string           `json:"ref"`
	Digest      string           `json:"digest,omitempty"` // top-level (index or manifest)
	MediaType   string           `json:"mediaType,omitempty"`
	Platforms   []PlatformDigest `json:"platforms,omitempty"`
	AddedAt     time.Time        `json:"addedAt"`
	CheckedAt   time.Time        `json:"checkedAt,omitzero"`
	ChangedAt   time.Time        `json:"changedAt,omitzero"`
	NextCheckAt time.Time        `json:"nextCheckAt"`
	Failures    int              `json:"failures,omitempty"`
	LastError   string           `json:"lastError,omitempty"`
	ErrorSince  time.Time        `json:"errorSince,omitzero"`
	// HintSource is set when a push or webhook asked for a check now
	// ("push", "webhook"); the check's observation carries it.
	HintSource string `json:"-"`
}

// Observation is one entry of a reference's history: at SeenAt, Ref (for
// Platform) pointed to Digest, seen by Source (poll, webhook, push).
type Observation struct {
	ID        int64     `json:"id"`
	Ref       string    `json:"ref"`
	Platform  string    `json:"platform"`
	Digest    string    `json:"digest"`
	OldDigest string    `json:"oldDigest,omitempty"`
	TopDigest string    `json:"topDigest"`
	Source    string    `json:"source"`
	SeenAt    time.Time `json:"seenAt"`
}

// TrackRefs adds references to the index (existing ones are left alone);
// new ones are due for a first check at once.
func (s *Store) TrackRefs(ctx context.Context, refs []string) error {
	if len(refs) == 0 {
		return nil
	}
	now := formatTime(time.Now())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, r := range refs {
			if err := trackRef(ctx, tx, r, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tracking base references: %w", translate(err))
	}
	return nil
}

// RetireRefs removes references no longer in keep from the index (their
// observation history stays) and returns how many went.
func (s *Store) RetireRefs(ctx context.Context, keep map[string]bool) (int, error) {
	refs, err := s.ListBaseRefs(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range refs {
		if keep[r.Ref] {
			continue
		}
		if _, err := s.write.ExecContext(ctx, `DELETE FROM base_refs WHERE ref = $1`, r.Ref); err != nil {
			return n, fmt.Errorf("retiring base reference %s: %w", r.Ref, translate(err))
		}
		n++
	}
	return n, nil
}

const baseRefColumns = `ref, digest, media_type, platforms, added_at, checked_at, changed_at, next_check_at, failures, last_error, error_since, hint_source`

func scanBaseRef(row scanner) (BaseRef, error) {
	var b BaseRef
	var plats, added, checked, changed, next, since string
	if err := row.Scan(&b.Ref, &b.Digest, &b.MediaType, &plats, &added, &checked, &changed, &next, &b.Failures, &b.LastError, &since, &b.HintSource); err != nil {
		return BaseRef{}, translate(err)
	}
	if err := json.Unmarshal([]byte(plats), &b.Platforms); err != nil {
		return BaseRef{}, fmt.Errorf("decoding platforms of %s: %w", b.Ref, err)
	}
	b.AddedAt, b.CheckedAt, b.ChangedAt = parseTime(added), parseTime(checked), parseTime(changed)
	b.NextCheckAt, b.ErrorSince = parseTime(next), parseTime(since)
	return b, nil
}

// ListBaseRefs returns every tracked reference, by name.
func (s *Store) ListBaseRefs(ctx context.Context) ([]BaseRef, error) {
	return s.queryBaseRefs(ctx, `SELECT `+baseRefColumns+` FROM base_refs ORDER BY ref`)
}

// DueRefs returns up to limit references whose next check is due at now,
// most overdue first.
func (s *Store) DueRefs(ctx context.Context, now time.Time, limit int) ([]BaseRef, error) {
	return s.queryBaseRefs(ctx, `SELECT `+baseRefColumns+` FROM base_refs WHERE next_check_at <= $1 ORDER BY next_check_at LIMIT $2`,
		formatTime(now), limit)
}

// NextDue returns when the watcher's next piece of work is due — the
// next check of a tracked reference or the next tag listing of a
// followed repository (it may be in the past) — or the zero time when
// there is none.
func (s *Store) NextDue(ctx context.Context) (time.Time, error) {
	var next sql.NullString
	if err := s.read.QueryRowContext(ctx, `SELECT MIN(due) FROM (
		SELECT MIN(next_check_at) AS due FROM base_refs
		UNION ALL SELECT MIN(next_list_at) AS due FROM tag_repos) AS d`).Scan(&next); err != nil {
		return time.Time{}, fmt.Errorf("finding the next due base reference: %w", translate(err))
	}
	return parseTime(next.String), nil
}

func (s *Store) queryBaseRefs(ctx context.Context, q string, args ...any) ([]BaseRef, error) {
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing base references: %w", translate(err))
	}
	defer rows.Close()
	var out []BaseRef
	for rows.Next() {
		b, err := scanBaseRef(rows)
		if err != nil {
			return nil, fmt.Errorf("listing base references: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// GetBaseRef returns one tracked reference or ErrNotFound.
func (s *Store) GetBaseRef(ctx context.Context, ref string) (BaseRef, error) {
	b, err := scanBaseRef(s.read.QueryRowContext(ctx, `SELECT `+baseRefColumns+` FROM base_refs WHERE ref = $1`, ref))
	if err != nil {
		return BaseRef{}, fmt.Errorf("base reference %s: %w", ref, err)
	}
	return b, nil
}

// HintRefs asks for an immediate check of the tracked references among
// refs, noting source ("push", "webhook"), and an immediate listing of
// the followed tag repositories among theirs, and reports how many of
// both there are. With an eventID it first takes the event, in the same
// transaction: a replayed event hints nothing and returns fresh=false.
func (s *Store) HintRefs(ctx context.Context, refs []string, source, eventID string) (tracked int, fresh bool, err error) {
	fresh = true
	err = s.InTx(ctx, func(tx *Tx) error {
		if eventID != "" {
			var err error
			if fresh, err = tx.TakeEvent(eventID); err != nil || !fresh {
				return err
			}
		}
		now := formatTime(time.Now())
		for _, r := range refs {
			res, err := tx.tx.ExecContext(ctx, `UPDATE base_refs SET next_check_at = $1, hint_source = $2 WHERE ref = $3`, now, source, r)
			if err != nil {
				return translate(err)
			}
			n, _ := res.RowsAffected()
			tracked += int(n)
			// A push to a repository whose tags are followed may be a
			// new version: list it now too.
			res, err = tx.tx.ExecContext(ctx, `UPDATE tag_repos SET next_list_at = $1 WHERE repository = $2 AND next_list_at > $1`, now, repositoryOf(r))
			if err != nil {
				return translate(err)
			}
			n, _ = res.RowsAffected()
			tracked += int(n)
		}
		if tracked > 0 {
			markRefsDue(tx.tx)
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("noting %s of %v: %w", source, refs, err)
	}
	return tracked, fresh, nil
}

// SeedBaseRef records digest as what a tracked reference points to when
// the index has not checked it yet (see SeedBase), its platforms unknown.
func (s *Store) SeedBaseRef(ctx context.Context, ref, digest string) error {
	return s.SeedBase(ctx, BaseRef{Ref: ref, Digest: digest})
}

// SeedBase records b (digest, media type, platforms) as what a tracked
// reference points to when the index has not checked it yet: a run that
// resolved it is the first sighting, so a move before the first check
// still counts as a change, each platform against its own manifest. The
// sighting goes into the reference's history with source "run", one
// entry per platform (one with platform "" when none are known).
func (s *Store) SeedBase(ctx context.Context, b BaseRef) error {
	plats, err := json.Marshal(b.Platforms)
	if err != nil {
		return err
	}
	err = s.InTx(ctx, func(tx *Tx) error {
		res, err := tx.tx.ExecContext(ctx, `UPDATE base_refs SET digest = $1, media_type = $2, platforms = $3 WHERE ref = $4 AND digest = ''`,
			b.Digest, b.MediaType, string(plats), b.Ref)
		if err != nil {
			return translate(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		if len(b.Platforms) == 0 {
			_, err = tx.AddObservation(Observation{Ref: b.Ref, Digest: b.Digest, TopDigest: b.Digest, Source: "run"})
			return err
		}
		for _, pd := range b.Platforms {
			if _, err := tx.AddObservation(Observation{Ref: b.Ref, Platform: pd.Platform, Digest: pd.Digest, TopDigest: b.Digest, Source: "run"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seeding base reference %s: %w", b.Ref, err)
	}
	return nil
}

// RecordCheckError notes a failed check of ref and when to try again.
func (s *Store) RecordCheckError(ctx context.Context, ref, msg string, next time.Time) error {
	now := formatTime(time.Now())
	_, err := s.write.ExecContext(ctx, `UPDATE base_refs SET checked_at = $1, failures = failures + 1, last_error = $2,
		error_since = CASE WHEN error_since = '' THEN $1 ELSE error_since END, next_check_at = $3 WHERE ref = $4`,
		now, msg, formatTime(next), ref)
	if err != nil {
		return fmt.Errorf("recording check error of %s: %w", ref, translate(err))
	}
	return nil
}

// Observations returns the history of ref, newest first.
func (s *Store) Observations(ctx context.Context, ref string, limit int) ([]Observation, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.read.QueryContext(ctx, `SELECT id, ref, platform, digest, old_digest, top_digest, source, seen_at
		FROM observations WHERE ref = $1 ORDER BY id DESC LIMIT $2`, ref, limit)
	if err != nil {
		return nil, fmt.Errorf("reading history of %s: %w", ref, translate(err))
	}
	defer rows.Close()
	var out []Observation
	for rows.Next() {
		var o Observation
		var seen string
		if err := rows.Scan(&o.ID, &o.Ref, &o.Platform, &o.Digest, &o.OldDigest, &o.TopDigest, &o.Source, &seen); err != nil {
			return nil, fmt.Errorf("reading history of %s: %w", ref, err)
		}
		o.SeenAt = parseTime(seen)
		out = append(out, o)
	}
	return out, rows.Err()
}

// Tx is a write transaction for work that must commit as one: an
// observation, the runs it causes and their jobs.
type Tx struct {
	ctx     context.Context
	tx      *sql.Tx
	created []Run // runs CreateRun stored, for OnRunQueued after commit
}

// InTx runs fn in one write transaction, committing when it returns nil.
func (s *Store) InTx(ctx context.Context, fn func(*Tx) error) error {
	t := &Tx{ctx: ctx}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		t.tx, t.created = tx, nil
		return fn(t)
	})
	if err != nil {
		return err
	}
	s.committed(t)
	return nil
}

// OnRunQueued sets a function called once for every run created, after
// the transaction that created it commits (never for one rolled back):
// the runs-queued metric counts this way, whoever queued the run. It
// must not block. nil removes it.
func (s *Store) OnRunQueued(fn func(Run)) {
	if fn == nil {
		s.onQueued.Store(nil)
		return
	}
	s.onQueued.Store(&fn)
}

// committed reports the runs a committed transaction created.
func (s *Store) committed(t *Tx) {
	if h := s.onQueued.Load(); h != nil {
		for _, r := range t.created {
			(*h)(r)
		}
	}
}

// TakeEvent records a webhook event ID and reports whether it is new; a
// replayed event returns false.
func (t *Tx) TakeEvent(id string) (bool, error) {
	res, err := t.tx.ExecContext(t.ctx, `INSERT INTO hook_events (event_id, received_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING`,
		id, formatTime(time.Now()))
	if err != nil {
		return false, fmt.Errorf("recording event %s: %w", id, translate(err))
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// BaseRef returns a tracked reference, or ErrNotFound.
func (t *Tx) BaseRef(ref string) (BaseRef, error) {
	b, err := scanBaseRef(t.tx.QueryRowContext(t.ctx, `SELECT `+baseRefColumns+` FROM base_refs WHERE ref = $1`, ref))
	if err != nil {
		return BaseRef{}, fmt.Errorf("base reference %s: %w", ref, err)
	}
	return b, nil
}

// SaveCheck records a successful check: what ref points to now, whether
// it changed, and when to check next. It clears the error state.
func (t *Tx) SaveCheck(b BaseRef, changed bool, next time.Time) error {
	now := time.Now()
	plats, err := json.Marshal(b.Platforms)
	if err != nil {
		return err
	}
	changedAt := ""
	if changed {
		changedAt = formatTime(now)
	}
	_, err = t.tx.ExecContext(t.ctx, `UPDATE base_refs SET digest = $1, media_type = $2, platforms = $3, checked_at = $4,
		changed_at = CASE WHEN $5 = '' THEN changed_at ELSE $5 END, next_check_at = $6, failures = 0, last_error = '', error_since = '',
		hint_source = ''
		WHERE ref = $7`, b.Digest, b.MediaType, string(plats), formatTime(now), changedAt, formatTime(next), b.Ref)
	if err != nil {
		return fmt.Errorf("saving check of %s: %w", b.Ref, translate(err))
	}
	return nil
}

// AddObservation appends to a reference's history and returns the entry's ID.
func (t *Tx) AddObservation(o Observation) (int64, error) {
	if o.SeenAt.IsZero() {
		o.SeenAt = time.Now()
	}
	var id int64
	err := t.tx.QueryRowContext(t.ctx, `INSERT INTO observations (ref, platform, digest, old_digest, top_digest, source, seen_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		o.Ref, o.Platform, o.Digest, o.OldDigest, o.TopDigest, o.Source, formatTime(o.SeenAt)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("recording observation of %s: %w", o.Ref, translate(err))
	}
	return id, nil
}

// TasksVersion returns a number that changes whenever a task is created,
// deleted, or its spec or bases change: what was derived from Tasks at one
// version holds while the version is the same.
func (t *Tx) TasksVersion() (int64, error) {
	var v int64
	if err := t.tx.QueryRowContext(t.ctx, `SELECT version FROM tasks_version WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading the tasks version: %w", translate(err))
	}
	return v, nil
}

// Tasks returns every task.
func (t *Tx) Tasks() ([]Task, error) {
	rows, err := t.tx.QueryContext(t.ctx, `SELECT spec, bases, created_at, updated_at FROM tasks ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", translate(err))
	}
	defer rows.Close()
	var out []Task
	for rows.Next() {
		tk, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, tk)
	}
	return out, rows.Err()
}

// PendingRuns returns, per task name, its runs that are queued and not
// yet started (the ones a new trigger coalesces into).
func (t *Tx) PendingRuns() (map[string][]Run, error) {
	rows, err := t.tx.QueryContext(t.ctx, `SELECT `+runColumns+` FROM runs WHERE state = 'queued' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing pending runs: %w", translate(err))
	}
	defer rows.Close()
	out := map[string][]Run{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out[r.Task] = append(out[r.Task], r)
	}
	return out, rows.Err()
}

// CreateRun stores a queued run. A run with BlockedBy waits for those runs
// and gets its job when they succeed (Tx.Enqueue); otherwise enqueue is
// called now, in this transaction. The run's spec is r.Spec with the
// build arguments baseTags set for the task (SetTaskTagArg) applied: what
// the run builds with is what it records.
func (t *Tx) CreateRun(r Run, enqueue Enqueuer) (Run, error) {
	args, err := taskTagArgs(t.ctx, t.tx, r.Task)
	if err != nil {
		return Run{}, err
	}
	r.Spec = r.Spec.TagArgs(args)
	r.State = StateQueued
	r.CreatedAt = time.Now().UTC()
	spec, err := json.Marshal(r.Spec)
	if err != nil {
		return Run{}, fmt.Errorf("encoding run spec: %w", err)
	}
	cause, err := json.Marshal(r.Cause)
	if err != nil {
		return Run{}, fmt.Errorf("encoding run cause: %w", err)
	}
	blocked, _ := json.Marshal(nonNil(r.BlockedBy))
	err = queryRowPrepared(t.ctx, t.tx, insertRunSQL,
		r.Task, string(spec), string(r.State), string(cause), formatTime(r.CreatedAt), string(blocked)).Scan(&r.ID)
	if err != nil {
		return Run{}, fmt.Errorf("creating run of task %s: %w", r.Task, translate(err))
	}
	if len(r.BlockedBy) == 0 && enqueue != nil {
		if err := setJob(t.ctx, t.tx, r.ID, enqueue); err != nil {
			return Run{}, fmt.Errorf("creating run of task %s: %w", r.Task, err)
		}
	}
	if err := emit(t.ctx, t.tx, EventRunQueued, r.Task, runEvent(r)); err != nil {
		return Run{}, err
	}
	rec := AuditRecord{Action: "run.queue", Subject: r.Task, Details: map[string]any{"run": FormatRunID(r.ID), "cause": r.Cause}}
	if r.Cause.Kind == "manual" && r.Cause.User != "" {
		rec.Actor = r.Cause.User
	}
	if err := appendAudit(t.ctx, t.tx, rec); err != nil {
		return Run{}, err
	}
	t.created = append(t.created, r)
	return r, nil
}

// UpdatePending rewrites a queued run's cause and blockers (coalescing a
// newer trigger into it).
func (t *Tx) UpdatePending(r Run) error {
	cause, err := json.Marshal(r.Cause)
	if err != nil {
		return err
	}
	blocked, _ := json.Marshal(nonNil(r.BlockedBy))
	_, err = t.tx.ExecContext(t.ctx, `UPDATE runs SET cause = $1, blocked_by = $2 WHERE id = $3 AND state = 'queued'`,
		string(cause), string(blocked), r.ID)
	if err != nil {
		return fmt.Errorf("updating queued run %s: %w", FormatRunID(r.ID), translate(err))
	}
	return nil
}

func nonNil(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}

// SaveRun writes the run's mutable fields (state, times, outputs, error)
// in the transaction, and its end event when it ended. It refuses to
// change a run that has already ended, returning ErrFinished.
func (t *Tx) SaveRun(r Run) error { return saveRun(t.ctx, t.tx, r) }

// Enqueue calls enqueue for a queued run in the transaction and records
// the job it returns as the one that may start the run.
func (t *Tx) Enqueue(runID int64, enqueue Enqueuer) error { return setJob(t.ctx, t.tx, runID, enqueue) }

// EnqueueMany is Enqueue for many queued runs in one call of enqueue (one
// statement for a wave's jobs instead of one per run), recording each
// run's job as the one that may start it. A run enqueue returns no job
// for is an error: the transaction is to roll back.
func (t *Tx) EnqueueMany(runIDs []int64, enqueue ManyEnqueuer) error {
	if len(runIDs) == 0 {
		return nil
	}
	jobs, err := enqueue(t.ctx, t.tx, runIDs)
	if err != nil {
		return fmt.Errorf("enqueuing %d runs: %w", len(runIDs), err)
	}
	markJobs(t.tx)
	for _, id := range runIDs {
		job, ok := jobs[id]
		if !ok {
			return fmt.Errorf("enqueuing run %s: no job returned for it", FormatRunID(id))
		}
		if _, err := execPrepared(t.ctx, t.tx, setJobSQL, job, id); err != nil {
			return fmt.Errorf("enqueuing run %s: %w", FormatRunID(id), translate(err))
		}
	}
	return nil
}

// WaitingFor returns the queued runs whose BlockedBy names the run.
func (t *Tx) WaitingFor(runID int64) ([]Run, error) {
	rows, err := t.tx.QueryContext(t.ctx, `SELECT `+runColumns+` FROM runs WHERE state = 'queued' AND blocked_by <> '[]' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing runs waiting for %s: %w", FormatRunID(runID), translate(err))
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		if slices.Contains(r.BlockedBy, runID) {
			out = append(out, r)
		}
	}
	return out, rows.Err()
}

// PushedBySucceededRun reports whether a succeeded run pushed digest:
// refit's own push, whose dependents its wave already handles.
func (t *Tx) PushedBySucceededRun(digest string) (bool, error) {
	var n int
	err := t.tx.QueryRowContext(t.ctx, `SELECT COUNT(*) FROM runs WHERE digest = $1 AND state IN ('succeeded', 'promoting')`, digest).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("looking up runs that pushed %s: %w", digest, translate(err))
	}
	return n > 0, nil
}
