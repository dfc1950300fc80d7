package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/refit-dev/refit/internal/audit"
	"github.com/refit-dev/refit/internal/identity"
	"github.com/refit-dev/refit/internal/redact"
)

// AuditRecord is what a change appends to the audit log.
type AuditRecord struct {
	// Actor is who did it; "" = the identity the context carries (the
	// API's caller), or "system" when it carries none.
	Actor string
	// Action names what was done: task.create, run.queue, token.revoke….
	Action string
	// Subject is what it was done to: a task name, a run ID, a user.
	Subject string
	// Details is encoded as a JSON object, then redacted (redact.JSON,
	// with every build argument's value masked), so no secret is ever
	// recorded.
	Details any
}

// auditLock serializes appends on PostgreSQL. It is the lock event
// inserts take (migration 0003) so that a transaction writing both
// events and entries, in either order, never waits on another holding
// one of two locks (a deadlock); such transactions are serialized
// together anyway.
const auditLock = 7306117

// queryExecer is a transaction, or a taskTx.
type queryExecer interface {
	execer
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// auditHead is the audit log's last entry as a transaction knows it.
type auditHead struct {
	seq  int64
	hash string
}

// appendAudit appends rec to the audit log in the caller's transaction:
// it commits, or not, with the change it records. Appends are
// serialized (SQLite's one writer; on PostgreSQL an advisory lock held
// to the end of the transaction), so each reads the true head, and a
// transaction reads it once: its later appends follow its own last one.
func appendAudit(ctx context.Context, db queryExecer, rec AuditRecord) error {
	c := record(db)
	if c != nil && c.skipAudit {
		return nil
	}
	raw, err := json.Marshal(rec.Details)
	if err != nil {
		return fmt.Errorf("encoding audit details of %s: %w", rec.Action, err)
	}
	if rec.Details == nil {
		raw = []byte("{}")
	}
	details, err := redact.JSON(raw, "buildArgs")
	if err != nil {
		return fmt.Errorf("redacting audit details of %s: %w", rec.Action, err)
	}
	if c != nil && c.pg && !c.auditLocked {
		if _, err := db.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLock); err != nil {
			return fmt.Errorf("locking the audit log: %w", translate(err))
		}
		c.auditLocked = true
	}
	e := audit.Entry{Time: time.Now().UTC(), Actor: rec.Actor, Action: rec.Action, Subject: rec.Subject, Details: details}
	if e.Actor == "" {
		e.Actor = identity.Actor(ctx)
	}
	if c != nil && c.auditHead != nil {
		e.Seq, e.PrevHash = c.auditHead.seq, c.auditHead.hash
	} else {
		err = queryRowPrepared(ctx, db, auditHeadSQL).Scan(&e.Seq, &e.PrevHash)
		if err != nil && err != sql.ErrNoRows {
			return fmt.Errorf("reading the audit log's head: %w", translate(err))
		}
	}
	e.Seq++
	e.Hash = audit.Hash(e)
	if _, err := execPrepared(ctx, db, auditAddSQL, e.Seq, formatTime(e.Time), e.Actor, e.Action, e.Subject, string(e.Details),
		e.PrevHash, e.Hash); err != nil {
		return fmt.Errorf("appending %s to the audit log: %w", rec.Action, translate(err))
	}
	if c != nil {
		c.auditHead = &auditHead{seq: e.Seq, hash: e.Hash}
	}
	return nil
}

// Audit appends rec to the audit log in the transaction, so the entry
// commits with the change it records, or neither does. Its actor, when
// rec.Actor is "", is the identity of the context InTx was given.
func (t *Tx) Audit(rec AuditRecord) error { return appendAudit(t.ctx, t.tx, rec) }

// AuditFilter selects audit entries for AuditEntries.
type AuditFilter struct {
	After   int64     // only entries with Seq > After
	Since   time.Time // only entries at or after; zero = any
	Subject string    // "" = any
	Actor   string    // "" = any
	Action  string    // "" = any
	Limit   int       // 0 = 100
}

const auditColumns = `seq, time, actor, action, subject, details, prev_hash, hash`

// AuditEntries returns audit entries in order of Seq.
func (s *Store) AuditEntries(ctx context.Context, f AuditFilter) ([]audit.Entry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	since := ""
	if !f.Since.IsZero() {
		since = formatTime(f.Since)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_log
		WHERE seq > $1 AND ($2 = '' OR time >= $2) AND ($3 = '' OR subject = $3) AND ($4 = '' OR actor = $4)
		AND ($5 = '' OR action = $5) ORDER BY seq LIMIT $6`, f.After, since, f.Subject, f.Actor, f.Action, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("listing audit entries: %w", translate(err))
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var e audit.Entry
		var t, details string
		if err := rows.Scan(&e.Seq, &t, &e.Actor, &e.Action, &e.Subject, &details, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("reading audit entry: %w", translate(err))
		}
		// A time that does not parse (an altered row) reads as zero and
		// so fails verification.
		e.Time, e.Details = parseTime(t), json.RawMessage(details)
		out = append(out, e)
	}
	return out, rows.Err()
}

// EachAuditEntry calls fn with every audit entry in order of Seq, read in
// pages, stopping at fn's first error.
func (s *Store) EachAuditEntry(ctx context.Context, fn func(audit.Entry) error) error {
	var after int64
	for {
		page, err := s.AuditEntries(ctx, AuditFilter{After: after, Limit: 1000})
		if err != nil {
			return err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
			after = e.Seq
		}
		if len(page) < 1000 {
			return nil
		}
	}
}

// lastEditorQuery finds the newest create or update of a task in the
// audit log.
const lastEditorQuery = `SELECT actor FROM audit_log WHERE subject = $1 AND action IN ('task.create', 'task.update')
	ORDER BY seq DESC LIMIT 1`

// TaskEditor returns who last created or changed the task's spec, from
// the audit log (for separation of duties: the task's last editor may
// not approve a run its change caused), or ErrNotFound when the log has
// no such entry.
func (s *Store) TaskEditor(ctx context.Context, task string) (string, error) {
	var actor string
	if err := s.read.QueryRowContext(ctx, lastEditorQuery, task).Scan(&actor); err != nil {
		return "", fmt.Errorf("last editor of task %s: %w", task, translate(err))
	}
	return actor, nil
}

// TaskEditor is Store.TaskEditor in the transaction.
func (t *Tx) TaskEditor(task string) (string, error) {
	var actor string
	if err := t.tx.QueryRowContext(t.ctx, lastEditorQuery, task).Scan(&actor); err != nil {
		return "", fmt.Errorf("last editor of task %s: %w", task, translate(err))
	}
	return actor, nil
}
