package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ScheduleState is one schedule of a task (triggers.schedule) as the
// scheduler keeps it: when it is next due, and the last tick that made a
// run.
type ScheduleState struct {
	Task string
	Name string
	// Spec is the schedule as configured (the scheduler's encoding of
	// cron, zone and catch-up): when it changes, the schedule restarts
	// from the next tick to come.
	Spec    string
	NextDue time.Time
	LastDue time.Time // zero: no run yet
	LastRun int64     // 0: no run yet
}

// ScheduledTasks returns the tasks that have a schedule
// (triggers.schedule), by name — and possibly a few others, which the
// caller's decoding tells apart. It selects them in SQL on the stored
// spec's text, so the scheduler's sync after a large apply decodes the
// tasks with schedules, not every task.
func (s *Store) ScheduledTasks(ctx context.Context) ([]Task, error) {
	// A stored spec is encoding/json's: a task with schedules has the
	// key "schedule": exactly so (the field is omitted when empty).
	rows, err := s.read.QueryContext(ctx, `SELECT spec, bases, created_at, updated_at FROM tasks WHERE spec LIKE '%"schedule":%' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing scheduled tasks: %w", translate(err))
	}
	defer rows.Close()
	var out []Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, fmt.Errorf("listing scheduled tasks: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Schedules returns every task's schedules, soonest due first.
func (s *Store) Schedules(ctx context.Context) ([]ScheduleState, error) {
	return s.querySchedules(ctx, `SELECT task_name, name, spec, next_due, last_due, last_run FROM schedules ORDER BY next_due, task_name, name`)
}

// TaskSchedules returns the schedules of one task, by name.
func (s *Store) TaskSchedules(ctx context.Context, task string) ([]ScheduleState, error) {
	return s.querySchedules(ctx, `SELECT task_name, name, spec, next_due, last_due, last_run FROM schedules WHERE task_name = $1 ORDER BY name`, task)
}

func (s *Store) querySchedules(ctx context.Context, q string, args ...any) ([]ScheduleState, error) {
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading schedules: %w", translate(err))
	}
	defer rows.Close()
	var out []ScheduleState
	for rows.Next() {
		var st ScheduleState
		var next, last string
		if err := rows.Scan(&st.Task, &st.Name, &st.Spec, &next, &last, &st.LastRun); err != nil {
			return nil, fmt.Errorf("reading schedules: %w", translate(err))
		}
		st.NextDue, st.LastDue = parseTime(next), parseTime(last)
		out = append(out, st)
	}
	return out, rows.Err()
}

// SyncSchedules makes the stored schedules those of want: a schedule not
// stored yet is added, one whose Spec differs is replaced (due at its
// NextDue, last run kept), one absent from want is removed; a schedule
// stored with the same Spec keeps its due time, so every process may
// sync with the same tasks and nothing moves. It reports whether
// anything changed.
func (s *Store) SyncSchedules(ctx context.Context, want []ScheduleState) (bool, error) {
	changed := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		changed = false
		type key struct{ task, name string }
		have := map[key]string{}
		rows, err := tx.QueryContext(ctx, `SELECT task_name, name, spec FROM schedules`)
		if err != nil {
			return translate(err)
		}
		for rows.Next() {
			var k key
			var spec string
			if err := rows.Scan(&k.task, &k.name, &spec); err != nil {
				rows.Close()
				return translate(err)
			}
			have[k] = spec
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return translate(err)
		}
		for _, w := range want {
			k := key{w.Task, w.Name}
			spec, ok := have[k]
			delete(have, k)
			if ok && spec == w.Spec {
				continue
			}
			changed = true
			// A concurrent sync of the same tasks by another process
			// writes the same spec: the WHERE keeps its due time.
			if _, err := tx.ExecContext(ctx, `INSERT INTO schedules (task_name, name, spec, next_due) VALUES ($1, $2, $3, $4)
				ON CONFLICT (task_name, name) DO UPDATE SET spec = excluded.spec, next_due = excluded.next_due
				WHERE schedules.spec <> excluded.spec`, w.Task, w.Name, w.Spec, formatTime(w.NextDue)); err != nil {
				return translate(err)
			}
		}
		for k := range have {
			changed = true
			if _, err := tx.ExecContext(ctx, `DELETE FROM schedules WHERE task_name = $1 AND name = $2`, k.task, k.name); err != nil {
				return translate(err)
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("syncing schedules: %w", err)
	}
	return changed, nil
}

// AdvanceSchedule claims the tick due of a task's schedule by moving its
// next due time to next, if the schedule is still due at due. It reports
// false, having changed nothing, when it is not (another process claimed
// the tick, or the schedule changed or went): of all the transactions
// that try one tick, exactly one gets true.
func (t *Tx) AdvanceSchedule(task, name string, due, next time.Time) (bool, error) {
	res, err := t.tx.ExecContext(t.ctx, `UPDATE schedules SET next_due = $1 WHERE task_name = $2 AND name = $3 AND next_due = $4`,
		formatTime(next), task, name, formatTime(due))
	if err != nil {
		return false, fmt.Errorf("advancing schedule %s of task %s: %w", name, task, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("advancing schedule %s of task %s: %w", name, task, err)
	}
	return n == 1, nil
}

// SetScheduleRun records run as the run of a task's schedule's tick due.
func (t *Tx) SetScheduleRun(task, name string, due time.Time, run int64) error {
	if _, err := t.tx.ExecContext(t.ctx, `UPDATE schedules SET last_due = $1, last_run = $2 WHERE task_name = $3 AND name = $4`,
		formatTime(due), run, task, name); err != nil {
		return fmt.Errorf("recording the run of schedule %s of task %s: %w", name, task, translate(err))
	}
	return nil
}
