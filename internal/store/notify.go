package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// JobsChannel is the PostgreSQL notification channel of the job queue.
// A transaction that inserts queue jobs (Tx.Enqueue, Tx.EnqueueMany,
// Tx.InsertJob, CreateRun, RequeueInterrupted) notifies it once,
// with an empty payload; PostgreSQL delivers the notification when the
// transaction commits, and never when it rolls back. Every refit process
// on the database listens (ListenJobs), so a job one process commits
// wakes the queue of the others at once instead of at their next poll.
// The name is fixed: refit installations sharing one database (in
// different schemas) wake each other's queues needlessly, which costs
// each a look at its queue.
const JobsChannel = "refit_jobs"

// markJobs notes that tx (a transaction opened by Store.tx) inserted
// queue jobs: on PostgreSQL it notifies JobsChannel before it commits.
func markJobs(tx *sql.Tx) {
	if c := record(tx); c != nil {
		c.jobs = true
	}
}

// notifyJobs notifies JobsChannel in tx when it inserted jobs, on
// PostgreSQL, once per transaction (PostgreSQL would fold identical
// notifications anyway; this saves the statements).
func notifyJobs(ctx context.Context, tx *sql.Tx, c *Commit) error {
	if !c.pg || !c.jobs {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, '')`, JobsChannel); err != nil {
		return fmt.Errorf("notifying other processes of new jobs: %w", translate(err))
	}
	return nil
}

// ErrNoListen is returned by ListenJobs on SQLite: its database belongs
// to one process, which wakes its own queue.
var ErrNoListen = errors.New("job notifications need PostgreSQL")

// JobsListener is a PostgreSQL connection of its own that listens on
// JobsChannel. It is not safe for concurrent use: one goroutine waits on
// it and closes it.
type JobsListener struct {
	conn *pgx.Conn
	name string // the database, redacted
}

// ListenJobs opens a connection to the store's PostgreSQL database,
// outside its pools, and listens on JobsChannel. It returns ErrNoListen on
// SQLite. The error of a failed connection names the database with its
// credentials redacted (redact.URL; pgx's own errors name the user and
// database, never the password).
func (s *Store) ListenJobs(ctx context.Context) (*JobsListener, error) {
	if !s.pg {
		return nil, ErrNoListen
	}
	cfg, err := pgx.ParseConfig(s.url)
	if err != nil {
		return nil, fmt.Errorf("listening for jobs on %s: %w", s.name, err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("listening for jobs on %s: %w", s.name, err)
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{JobsChannel}.Sanitize()); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("listening for jobs on %s: %w", s.name, err)
	}
	return &JobsListener{conn: conn, name: s.name}, nil
}

// Wait blocks until a notification on JobsChannel arrives (nil), ctx
// ends (ctx's error) or the connection fails (an error: the listener is
// then of no more use; close it and listen again). While it waits it
// costs nothing: the goroutine is blocked in a read.
func (l *JobsListener) Wait(ctx context.Context) error {
	if _, err := l.conn.WaitForNotification(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("waiting for job notifications on %s: %w", l.name, err)
	}
	return nil
}

// Close closes the listener's connection.
func (l *JobsListener) Close(ctx context.Context) error { return l.conn.Close(ctx) }
