package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/task"
)

// Task is a stored task: its spec (with defaults applied) and the base
// images last discovered in its Dockerfile.
type Task struct {
	Spec      task.Spec         `json:"spec"`
	Bases     []dockerfile.Base `json:"bases"`
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`
	// TagArgs are the build args triggers.baseTags set (SetTaskTagArg):
	// arg → the newest tag seen. Only GetTask reads them.
	TagArgs map[string]string `json:"tagArgs,omitempty"`
	// Hash is what an apply stored the task with (task.Spec.Hash of the
	// spec and of what its inspection read); "" = unknown. Only PutTask(s)
	// and TaskHashes read it.
	Hash string `json:"-"`
}

// Name returns the task's name.
func (t Task) Name() string { return t.Spec.Name }

// CreateTask stores a new task. It returns ErrExists when the name is taken.
func (s *Store) CreateTask(ctx context.Context, t Task) (Task, error) {
	now := time.Now().UTC()
	t.CreatedAt, t.UpdatedAt = now, now
	spec, bases, err := marshalTask(t)
	if err != nil {
		return Task{}, err
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		_, err := execPrepared(ctx, tx, insertTaskSQL,
			t.Spec.Name, spec, bases, formatTime(now), formatTime(now), t.Hash)
		if err != nil {
			return translate(err)
		}
		if err := emit(ctx, tx, EventTaskChanged, t.Spec.Name, TaskChanged{Task: t.Spec.Name, Action: "created", Image: t.Spec.Image}); err != nil {
			return err
		}
		if err := trackTaskTags(ctx, tx, t.Spec); err != nil {
			return err
		}
		if err := appendAudit(ctx, tx, auditTaskCreate(t.Spec)); err != nil {
			return err
		}
		return trackBases(ctx, tx, t.Bases, nil)
	})
	if err != nil {
		return Task{}, fmt.Errorf("creating task %s: %w", t.Spec.Name, err)
	}
	return t, nil
}

// PutTask creates the task or replaces its spec and bases. It reports
// whether the task was created and whether anything changed; an unchanged
// put writes nothing.
func (s *Store) PutTask(ctx context.Context, t Task) (stored Task, created, changed bool, err error) {
	var r PutResult
	err = s.tx(ctx, func(tx *sql.Tx) error {
		r, err = putTask(ctx, &taskTx{tx: tx}, t)
		return err
	})
	if err != nil {
		return Task{}, false, false, err
	}
	return r.Task, r.Created, r.Changed, nil
}

// PutResult says what putting one task did.
type PutResult struct {
	Task    Task
	Created bool // there was no task of its name
	Changed bool // created, or its spec or bases differ from the stored
}

// PutTasks puts every task (see PutTask) in one transaction: all are
// stored, with their task.changed events, or none is. Results are in the
// order of ts.
func (s *Store) PutTasks(ctx context.Context, ts []Task) ([]PutResult, error) {
	var out []PutResult
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out = make([]PutResult, 0, len(ts))
		db := &taskTx{tx: tx, prepared: map[string]*sql.Stmt{}, tracked: map[string]bool{}}
		for _, t := range ts {
			r, err := putTask(ctx, db, t)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// taskTx is a transaction that puts tasks. One that puts many prepares
// each statement once (SQLite would parse it at every call: a third of a
// 10,000-task apply) and adds each base reference to the index once.
type taskTx struct {
	tx       *sql.Tx
	prepared map[string]*sql.Stmt // nil: run statements unprepared
	tracked  map[string]bool      // nil: track every reference
}

func (t *taskTx) stmt(ctx context.Context, query string) *sql.Stmt {
	if t.prepared == nil {
		return nil
	}
	st, ok := t.prepared[query]
	if !ok {
		var err error
		if st, err = t.tx.PrepareContext(ctx, query); err != nil {
			return nil // run unprepared: the error comes from there
		}
		t.prepared[query] = st
	}
	return st
}

func (t *taskTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t *taskTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// putTask is PutTask in the caller's transaction.
func putTask(ctx context.Context, tx *taskTx, t Task) (PutResult, error) {
	r, err := putTaskTx(ctx, tx, t)
	if err != nil {
		return PutResult{}, fmt.Errorf("storing task %s: %w", t.Spec.Name, err)
	}
	return r, nil
}

func putTaskTx(ctx context.Context, tx *taskTx, t Task) (PutResult, error) {
	var oldHash string
	old, err := scanTask(tx.QueryRowContext(ctx, `SELECT spec, bases, created_at, updated_at, spec_hash FROM tasks WHERE name = $1`, t.Spec.Name), &oldHash)
	switch {
	case err == ErrNotFound:
		now := time.Now().UTC()
		t.CreatedAt, t.UpdatedAt = now, now
		spec, bases, err := marshalTask(t)
		if err != nil {
			return PutResult{}, err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO tasks (name, spec, bases, created_at, updated_at, spec_hash) VALUES ($1, $2, $3, $4, $5, $6)`,
			t.Spec.Name, spec, bases, formatTime(now), formatTime(now), t.Hash)
		if err != nil {
			return PutResult{}, translate(err)
		}
		if err := emit(ctx, tx, EventTaskChanged, t.Spec.Name, TaskChanged{Task: t.Spec.Name, Action: "created", Image: t.Spec.Image}); err != nil {
			return PutResult{}, err
		}
		if err := trackTaskTags(ctx, tx, t.Spec); err != nil {
			return PutResult{}, err
		}
		if err := appendAudit(ctx, tx, auditTaskCreate(t.Spec)); err != nil {
			return PutResult{}, err
		}
		return PutResult{Task: t, Created: true, Changed: true}, trackBases(ctx, tx, t.Bases, tx.tracked)
	case err != nil:
		return PutResult{}, err
	}
	if sameJSON(old.Spec, t.Spec) && reflect.DeepEqual(normBases(old.Bases), normBases(t.Bases)) {
		if oldHash != t.Hash {
			// Only what the next apply compares with: no event, and the
			// tasks version (spec, bases) stays.
			if _, err := tx.ExecContext(ctx, `UPDATE tasks SET spec_hash = $1 WHERE name = $2`, t.Hash, t.Spec.Name); err != nil {
				return PutResult{}, translate(err)
			}
		}
		old.Hash = t.Hash
		return PutResult{Task: old}, nil
	}
	t.CreatedAt, t.UpdatedAt = old.CreatedAt, time.Now().UTC()
	spec, bases, err := marshalTask(t)
	if err != nil {
		return PutResult{}, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE tasks SET spec = $1, bases = $2, updated_at = $3, spec_hash = $4 WHERE name = $5`,
		spec, bases, formatTime(t.UpdatedAt), t.Hash, t.Spec.Name)
	if err != nil {
		return PutResult{}, translate(err)
	}
	if err := emit(ctx, tx, EventTaskChanged, t.Spec.Name, TaskChanged{Task: t.Spec.Name, Action: "updated", Image: t.Spec.Image}); err != nil {
		return PutResult{}, err
	}
	if err := trackTaskTags(ctx, tx, t.Spec); err != nil {
		return PutResult{}, err
	}
	if err := appendAudit(ctx, tx, auditTaskUpdate(old, t)); err != nil {
		return PutResult{}, err
	}
	return PutResult{Task: t, Changed: true}, trackBases(ctx, tx, t.Bases, tx.tracked)
}

// sameJSON reports whether a and b encode alike: a spec read back from
// the database has nil where the caller's may have an empty map or slice.
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

func normBases(b []dockerfile.Base) []dockerfile.Base {
	if len(b) == 0 {
		return nil
	}
	return b
}

// SetTaskBases records the bases discovered at a run, without touching the
// spec. Bases other than the stored ones clear the task's hash, so the
// next apply inspects the task again rather than trusting a hash of what
// no longer gave these bases. A task deleted meanwhile is not an error.
func (s *Store) SetTaskBases(ctx context.Context, name string, bases []dockerfile.Base) error {
	if bases == nil {
		bases = []dockerfile.Base{} // as marshalTask stores none
	}
	b, err := json.Marshal(bases)
	if err != nil {
		return fmt.Errorf("encoding bases of task %s: %w", name, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE tasks SET spec_hash = CASE WHEN bases = $1 THEN spec_hash ELSE '' END, bases = $1 WHERE name = $2`, string(b), name); err != nil {
			return translate(err)
		}
		return trackBases(ctx, tx, bases, nil)
	})
	if err != nil {
		return fmt.Errorf("recording bases of task %s: %w", name, err)
	}
	return nil
}

// trackBases adds the bases' references to the index. References pinned
// by digest cannot move and are not tracked. done, when not nil, holds
// the references this transaction added already, and gets these.
func trackBases(ctx context.Context, tx execer, bases []dockerfile.Base, done map[string]bool) error {
	now := formatTime(time.Now())
	for _, b := range bases {
		if strings.Contains(b.Ref, "@") || done[b.Ref] {
			continue
		}
		if done != nil {
			done[b.Ref] = true
		}
		if err := trackRef(ctx, tx, b.Ref, now); err != nil {
			return err
		}
	}
	return nil
}

// trackRef adds ref to the base index, due for a first check at now,
// unless it is there; a new one marks the transaction as making
// references due, so that the index watcher is woken at commit.
func trackRef(ctx context.Context, db execer, ref, now string) error {
	res, err := execPrepared(ctx, db, trackRefSQL, ref, now)
	if err != nil {
		return translate(err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		markRefsDue(db)
	}
	return nil
}

// GetTask returns the named task or ErrNotFound.
func (s *Store) GetTask(ctx context.Context, name string) (Task, error) {
	t, err := scanTask(s.read.QueryRowContext(ctx, `SELECT spec, bases, created_at, updated_at FROM tasks WHERE name = $1`, name))
	if err != nil {
		return Task{}, fmt.Errorf("task %s: %w", name, err)
	}
	if t.TagArgs, err = taskTagArgs(ctx, s.read, name); err != nil {
		return Task{}, err
	}
	return t, nil
}

// ListTasks returns every task, by name.
func (s *Store) ListTasks(ctx context.Context) ([]Task, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT spec, bases, created_at, updated_at FROM tasks ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", translate(err))
	}
	defer rows.Close()
	var out []Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, fmt.Errorf("listing tasks: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// TaskHashes returns the hash of every task by name (see Task.Hash), read
// without decoding a spec: what an apply compares its tasks with.
func (s *Store) TaskHashes(ctx context.Context) (map[string]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT name, spec_hash FROM tasks`)
	if err != nil {
		return nil, fmt.Errorf("reading task hashes: %w", translate(err))
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, hash string
		if err := rows.Scan(&name, &hash); err != nil {
			return nil, fmt.Errorf("reading task hashes: %w", translate(err))
		}
		out[name] = hash
	}
	return out, rows.Err()
}

// DeleteTask removes the named task (its runs stay, for the record). It
// returns ErrNotFound when there is no such task.
func (s *Store) DeleteTask(ctx context.Context, name string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		old, err := scanTask(tx.QueryRowContext(ctx, `SELECT spec, bases, created_at, updated_at FROM tasks WHERE name = $1`, name))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tasks WHERE name = $1`, name); err != nil {
			return translate(err)
		}
		if err := emit(ctx, tx, EventTaskChanged, name, TaskChanged{Task: name, Action: "deleted"}); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM task_tag_args WHERE task_name = $1`, name); err != nil {
			return translate(err)
		}
		return appendAudit(ctx, tx, AuditRecord{Action: "task.delete", Subject: name, Details: map[string]any{"old": old.Spec}})
	})
	if err != nil {
		return fmt.Errorf("deleting task %s: %w", name, err)
	}
	return nil
}

type scanner interface{ Scan(...any) error }

// scanTask scans a row of spec, bases, created_at and updated_at, then
// extra columns into extra.
func scanTask(row scanner, extra ...any) (Task, error) {
	var spec, bases, created, updated string
	if err := row.Scan(append([]any{&spec, &bases, &created, &updated}, extra...)...); err != nil {
		return Task{}, translate(err)
	}
	var t Task
	if err := json.Unmarshal([]byte(spec), &t.Spec); err != nil {
		return Task{}, fmt.Errorf("decoding stored spec: %w", err)
	}
	if err := json.Unmarshal([]byte(bases), &t.Bases); err != nil {
		return Task{}, fmt.Errorf("decoding stored bases: %w", err)
	}
	t.CreatedAt, t.UpdatedAt = parseTime(created), parseTime(updated)
	return t, nil
}

func marshalTask(t Task) (spec, bases string, err error) {
	sb, err := json.Marshal(t.Spec)
	if err != nil {
		return "", "", fmt.Errorf("encoding task %s: %w", t.Spec.Name, err)
	}
	if t.Bases == nil {
		t.Bases = []dockerfile.Base{}
	}
	bb, err := json.Marshal(t.Bases)
	if err != nil {
		return "", "", fmt.Errorf("encoding bases of task %s: %w", t.Spec.Name, err)
	}
	return string(sb), string(bb), nil
}

// auditTaskCreate is the audit record of a created task: its spec
// (redacted by appendAudit).
func auditTaskCreate(spec task.Spec) AuditRecord {
	return AuditRecord{Action: "task.create", Subject: spec.Name, Details: map[string]any{"new": spec}}
}

// auditTaskUpdate is the audit record of a changed task: the old and new
// spec (redacted by appendAudit), the spec fields that changed, the
// build arguments whose values changed (by name: their values are never
// recorded), and whether the bases changed.
func auditTaskUpdate(old, t Task) AuditRecord {
	var a, b map[string]json.RawMessage
	ja, _ := json.Marshal(old.Spec)
	jb, _ := json.Marshal(t.Spec)
	json.Unmarshal(ja, &a)
	json.Unmarshal(jb, &b)
	changed := []string{}
	for k := range a {
		if _, ok := b[k]; !ok {
			changed = append(changed, k)
		}
	}
	for k, v := range b {
		if !bytes.Equal(a[k], v) {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	args := []string{}
	for k, v := range t.Spec.BuildArgs {
		if ov, ok := old.Spec.BuildArgs[k]; !ok || ov != v {
			args = append(args, k)
		}
	}
	for k := range old.Spec.BuildArgs {
		if _, ok := t.Spec.BuildArgs[k]; !ok {
			args = append(args, k)
		}
	}
	slices.Sort(args)
	d := map[string]any{"old": old.Spec, "new": t.Spec, "changed": changed}
	if len(args) > 0 {
		d["changedBuildArgs"] = args
	}
	if !reflect.DeepEqual(normBases(old.Bases), normBases(t.Bases)) {
		d["basesChanged"] = true
	}
	return AuditRecord{Action: "task.update", Subject: t.Spec.Name, Details: d}
}
