package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
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
		_, err := tx.ExecContext(ctx,
			`INSERT INTO tasks (name, spec, bases, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)`,
			t.Spec.Name, spec, bases, formatTime(now), formatTime(now))
		if err != nil {
			return translate(err)
		}
		if err := emit(ctx, tx, EventTaskChanged, t.Spec.Name, TaskChanged{Task: t.Spec.Name, Action: "created", Image: t.Spec.Image}); err != nil {
			return err
		}
		return trackBases(ctx, tx, t.Bases)
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
		r, err = putTask(ctx, tx, t)
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
		for _, t := range ts {
			r, err := putTask(ctx, tx, t)
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

// putTask is PutTask in the caller's transaction.
func putTask(ctx context.Context, tx *sql.Tx, t Task) (PutResult, error) {
	r, err := putTaskTx(ctx, tx, t)
	if err != nil {
		return PutResult{}, fmt.Errorf("storing task %s: %w", t.Spec.Name, err)
	}
	return r, nil
}

func putTaskTx(ctx context.Context, tx *sql.Tx, t Task) (PutResult, error) {
	old, err := scanTask(tx.QueryRowContext(ctx, `SELECT spec, bases, created_at, updated_at FROM tasks WHERE name = $1`, t.Spec.Name))
	switch {
	case err == ErrNotFound:
		now := time.Now().UTC()
		t.CreatedAt, t.UpdatedAt = now, now
		spec, bases, err := marshalTask(t)
		if err != nil {
			return PutResult{}, err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO tasks (name, spec, bases, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)`,
			t.Spec.Name, spec, bases, formatTime(now), formatTime(now))
		if err != nil {
			return PutResult{}, translate(err)
		}
		if err := emit(ctx, tx, EventTaskChanged, t.Spec.Name, TaskChanged{Task: t.Spec.Name, Action: "created", Image: t.Spec.Image}); err != nil {
			return PutResult{}, err
		}
		return PutResult{Task: t, Created: true, Changed: true}, trackBases(ctx, tx, t.Bases)
	case err != nil:
		return PutResult{}, err
	}
	if sameJSON(old.Spec, t.Spec) && reflect.DeepEqual(normBases(old.Bases), normBases(t.Bases)) {
		return PutResult{Task: old}, nil
	}
	t.CreatedAt, t.UpdatedAt = old.CreatedAt, time.Now().UTC()
	spec, bases, err := marshalTask(t)
	if err != nil {
		return PutResult{}, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE tasks SET spec = $1, bases = $2, updated_at = $3 WHERE name = $4`,
		spec, bases, formatTime(t.UpdatedAt), t.Spec.Name)
	if err != nil {
		return PutResult{}, translate(err)
	}
	if err := emit(ctx, tx, EventTaskChanged, t.Spec.Name, TaskChanged{Task: t.Spec.Name, Action: "updated", Image: t.Spec.Image}); err != nil {
		return PutResult{}, err
	}
	return PutResult{Task: t, Changed: true}, trackBases(ctx, tx, t.Bases)
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
// spec. A task deleted meanwhile is not an error.
func (s *Store) SetTaskBases(ctx context.Context, name string, bases []dockerfile.Base) error {
	b, err := json.Marshal(bases)
	if err != nil {
		return fmt.Errorf("encoding bases of task %s: %w", name, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE tasks SET bases = $1 WHERE name = $2`, string(b), name); err != nil {
			return translate(err)
		}
		return trackBases(ctx, tx, bases)
	})
	if err != nil {
		return fmt.Errorf("recording bases of task %s: %w", name, err)
	}
	return nil
}

// trackBases adds the bases' references to the index. References pinned
// by digest cannot move and are not tracked.
func trackBases(ctx context.Context, tx *sql.Tx, bases []dockerfile.Base) error {
	now := formatTime(time.Now())
	for _, b := range bases {
		if strings.Contains(b.Ref, "@") {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO base_refs (ref, added_at, next_check_at) VALUES ($1, $2, $2)
			ON CONFLICT (ref) DO NOTHING`, b.Ref, now); err != nil {
			return translate(err)
		}
	}
	return nil
}

// GetTask returns the named task or ErrNotFound.
func (s *Store) GetTask(ctx context.Context, name string) (Task, error) {
	t, err := scanTask(s.read.QueryRowContext(ctx, `SELECT spec, bases, created_at, updated_at FROM tasks WHERE name = $1`, name))
	if err != nil {
		return Task{}, fmt.Errorf("task %s: %w", name, err)
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

// DeleteTask removes the named task (its runs stay, for the record). It
// returns ErrNotFound when there is no such task.
func (s *Store) DeleteTask(ctx context.Context, name string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM tasks WHERE name = $1`, name)
		if err != nil {
			return translate(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return emit(ctx, tx, EventTaskChanged, name, TaskChanged{Task: name, Action: "deleted"})
	})
	if err != nil {
		return fmt.Errorf("deleting task %s: %w", name, err)
	}
	return nil
}

type scanner interface{ Scan(...any) error }

func scanTask(row scanner) (Task, error) {
	var spec, bases, created, updated string
	if err := row.Scan(&spec, &bases, &created, &updated); err != nil {
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
