package store

import (
	"context"
	"database/sql"
)

// Statements every queued run or created task runs, prepared once on the
// writer connection when the store opens. SQLite otherwise parses each
// at every call: most of what a wave of 1,000 runs costs beyond River's
// own inserts.
const (
	insertRunSQL = `INSERT INTO runs (task_name, spec, state, cause, created_at, blocked_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`
	setJobSQL    = `UPDATE runs SET job_id = $1 WHERE id = $2`
	insertEvtSQL = `INSERT INTO events (id, type, subject, time, data) VALUES ($1, $2, $3, $4, $5)`
	auditHeadSQL = `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`
	auditAddSQL  = `INSERT INTO audit_log (seq, time, actor, action, subject, details, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	tagArgsSQL    = `SELECT arg, value FROM task_tag_args WHERE task_name = $1`
	insertTaskSQL = `INSERT INTO tasks (name, spec, bases, created_at, updated_at, spec_hash) VALUES ($1, $2, $3, $4, $5, $6)`
	trackRefSQL   = `INSERT INTO base_refs (ref, added_at, next_check_at) VALUES ($1, $2, $2)
			ON CONFLICT (ref) DO NOTHING`
)

var hotSQL = []string{insertRunSQL, setJobSQL, insertEvtSQL, auditHeadSQL, auditAddSQL, tagArgsSQL, insertTaskSQL, trackRefSQL}

// prepareHot prepares hotSQL on the writer. It runs before any
// transaction (the writer has one connection, which a transaction would
// hold). A statement that does not prepare (a table an older schema in
// tests lacks) is left out: it runs unprepared.
func (s *Store) prepareHot(ctx context.Context) {
	s.hot = map[string]*sql.Stmt{}
	for _, q := range hotSQL {
		if st, err := s.write.PrepareContext(ctx, q); err == nil {
			s.hot[q] = st
		}
	}
}

// closeHot closes what prepareHot prepared.
func (s *Store) closeHot() {
	for _, st := range s.hot {
		st.Close()
	}
}

// prepared returns query as a statement of db's transaction when db is a
// transaction opened by Store.tx and query is one prepareHot prepared,
// else nil (run it unprepared). database/sql reuses the statement
// prepared on the writer's connection, or prepares it again on a new one.
func prepared(ctx context.Context, db any, query string) *sql.Stmt {
	tx, ok := db.(*sql.Tx)
	if !ok {
		return nil // a taskTx prepares its own
	}
	c := record(tx)
	if c == nil || c.hot == nil {
		return nil
	}
	if st, ok := c.txStmts[query]; ok {
		return st
	}
	parent, ok := c.hot[query]
	if !ok {
		return nil
	}
	st := tx.StmtContext(ctx, parent)
	if c.txStmts == nil {
		c.txStmts = map[string]*sql.Stmt{}
	}
	c.txStmts[query] = st
	return st
}

// execPrepared is db.ExecContext, prepared when it can be.
func execPrepared(ctx context.Context, db execer, query string, args ...any) (sql.Result, error) {
	if st := prepared(ctx, db, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return db.ExecContext(ctx, query, args...)
}

// queryPrepared is db.QueryContext, prepared when it can be.
func queryPrepared(ctx context.Context, db querier, query string, args ...any) (*sql.Rows, error) {
	if st := prepared(ctx, db, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.QueryContext(ctx, query, args...)
}

// queryRowPrepared is db.QueryRowContext, prepared when it can be.
func queryRowPrepared(ctx context.Context, db queryExecer, query string, args ...any) *sql.Row {
	if st := prepared(ctx, db, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.QueryRowContext(ctx, query, args...)
}
