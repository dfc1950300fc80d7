// Package store owns refit's persistent state: tasks, runs, run logs and API
// tokens, and the schema migrations that hold them. It is the only package
// that writes SQL. The embedded dialect is SQLite (WAL, one writer
// connection shared with the job queue, a separate pool for reads);
// PostgreSQL (Config.URL) runs the same SQL — $N placeholders, portable
// types — with its own migrations, the same one-writer-connection model,
// and events numbered in commit order (see its migration 0003).
//
// Driver errors are translated at this boundary: callers see ErrNotFound
// and ErrExists, never sql.ErrNoRows.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/refit-dev/refit/internal/redact"
)

// ErrNotFound is returned when the named task, run or token does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when creating something whose name is taken.
var ErrExists = errors.New("already exists")

//go:embed migrations
var migrations embed.FS

// Store is the database. It is safe for concurrent use.
type Store struct {
	write *sql.DB // one connection: SQLite has one writer; shared with River
	read  *sql.DB // readers, for API queries
	pg    bool    // PostgreSQL rather than SQLite
	url   string  // PostgreSQL: Config.URL, for ListenJobs
	name  string  // PostgreSQL: the URL redacted, for errors

	noAudit bool // Config.DisableAuditForBenchmark

	hot map[string]*sql.Stmt // hotSQL prepared on write (prepareHot); read-only after Open

	onCommit atomic.Pointer[func(Commit)]
	onQueued atomic.Pointer[func(Run)]

	vulnLive sync.Map // vulnerability database generations this Store is importing (int64 → bool)
}

// Commit is what a committed write transaction changed, for the event
// dispatcher to decide whether it has anything to do.
type Commit struct {
	// Events are the events the transaction wrote, in order: their Type,
	// Subject and Data, what subscriptions match on (no Seq, ID or Time).
	Events []Event
	// Deliveries is true when the transaction changed subscriptions or
	// made deliveries due (created or deleted a subscription,
	// redelivered).
	Deliveries bool
	// RefsDue is true when the transaction made base references due
	// sooner than the index watcher may expect: it tracked new ones (a
	// task's new base) or hinted some.
	RefsDue bool

	// jobs is true when the transaction inserted queue jobs: on
	// PostgreSQL it notifies JobsChannel before committing (notify.go).
	jobs bool

	// For appendAudit: the transaction's dialect and whether the audit
	// trail is off (Config.DisableAuditForBenchmark).
	pg, skipAudit bool
	// auditHead is the audit log's head once the transaction has read
	// or appended it (appends are serialized for the whole transaction,
	// so it stays the head until the commit); auditLocked says the
	// PostgreSQL advisory lock is held.
	auditHead    *auditHead
	auditLocked  bool
	hot, txStmts map[string]*sql.Stmt // the store's prepared statements; this transaction's (prepared)
}

// commits holds the Commit being recorded for each open write
// transaction (keyed by its *sql.Tx), filled in by emit and
// markDeliveries.
var commits sync.Map

// record returns the Commit being recorded for db, or nil when db is no
// transaction opened by Store.tx.
func record(db any) *Commit {
	if t, ok := db.(*taskTx); ok { // a put of tasks: its events count too
		db = t.tx
	}
	if c, ok := commits.Load(db); ok {
		return c.(*Commit)
	}
	return nil
}

// markDeliveries notes that tx changed subscriptions or deliveries.
func markDeliveries(tx *sql.Tx) {
	if c := record(tx); c != nil {
		c.Deliveries = true
	}
}

// markRefsDue notes that db (a transaction opened by Store.tx) made
// base references due.
func markRefsDue(db any) {
	if c := record(db); c != nil {
		c.RefsDue = true
	}
}

// OnCommit sets a function called after every committed write
// transaction with what it changed (the event dispatcher is woken this
// way); it must not block. nil removes it.
func (s *Store) OnCommit(fn func(Commit)) {
	if fn == nil {
		s.onCommit.Store(nil)
		return
	}
	s.onCommit.Store(&fn)
}

// Config configures Open.
type Config struct {
	// Path is the SQLite database file. Its directory must exist.
	Path string
	// URL, instead of Path, is a PostgreSQL database:
	// postgres://user:password@host:5432/refit?sslmode=... (the database
	// must exist; refit creates its tables).
	URL string
	// ReadConns bounds the read pool. Default 4.
	ReadConns int

	// DisableAuditForBenchmark writes no audit entries: only for
	// measuring what the audit trail costs (bench/). refit serve never
	// sets it. Default false: every change is audited.
	DisableAuditForBenchmark bool

	// migrateUpTo, in this package's tests, stops migrating after this
	// version (0 = apply all), to test upgrades.
	migrateUpTo int
}

// Open opens (creating if needed) the database and applies pending
// migrations.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.ReadConns <= 0 {
		cfg.ReadConns = 4
	}
	switch {
	case cfg.Path != "" && cfg.URL != "":
		return nil, errors.New("opening store: give a SQLite path or a PostgreSQL URL, not both")
	case cfg.URL != "":
		return openPostgres(ctx, cfg)
	case cfg.Path == "":
		return nil, errors.New("opening store: no database path")
	}
	abs, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", cfg.Path, err)
	}
	dsn := func(extra ...string) string {
		q := url.Values{}
		for _, p := range append([]string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(1)"}, extra...) {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		return "file:" + abs + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn())
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", abs, err)
	}
	r, err := sql.Open("sqlite", dsn("query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening store %s for reading: %w", abs, err)
	}
	return finishOpen(ctx, &Store{write: w, read: r, noAudit: cfg.DisableAuditForBenchmark}, cfg, abs)
}

// openPostgres opens a PostgreSQL database: one writer connection (as
// with SQLite, the job queue shares it and writes are serialized) and a
// read pool.
func openPostgres(ctx context.Context, cfg Config) (*Store, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return nil, fmt.Errorf("opening store: database URL %s: want postgres://user@host:port/database", redact.URL(cfg.URL))
	}
	name := redact.URL(cfg.URL)
	w, err := sql.Open("pgx", cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", name, err)
	}
	r, err := sql.Open("pgx", cfg.URL)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening store %s for reading: %w", name, err)
	}
	return finishOpen(ctx, &Store{write: w, read: r, pg: true, url: cfg.URL, name: name, noAudit: cfg.DisableAuditForBenchmark}, cfg, name)
}

// finishOpen sizes the pools, checks the writer answers and migrates.
func finishOpen(ctx context.Context, s *Store, cfg Config, name string) (*Store, error) {
	if cfg.migrateUpTo > 0 && cfg.migrateUpTo < 12 {
		s.noAudit = true // an older schema, in tests: no audit_log table yet
	}
	s.write.SetMaxOpenConns(1)
	s.write.SetConnMaxIdleTime(0)
	s.read.SetMaxOpenConns(cfg.ReadConns)
	if err := s.write.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("opening store %s: %w", name, err)
	}
	if err := s.migrate(ctx, cfg.migrateUpTo); err != nil {
		s.Close()
		return nil, err
	}
	s.prepareHot(ctx)
	return s, nil
}

// Postgres reports whether the store is on PostgreSQL (else SQLite).
func (s *Store) Postgres() bool { return s.pg }

// DB returns the single writer connection pool, for the job queue's driver,
// which must share it (SQLite allows one writer).
func (s *Store) DB() *sql.DB { return s.write }

// Close closes both pools.
func (s *Store) Close() error {
	s.closeHot()
	return errors.Join(s.read.Close(), s.write.Close())
}

// migrate applies the pending migrations, up to version upTo when it is
// not 0.
func (s *Store) migrate(ctx context.Context, upTo int) error {
	if _, err := s.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS refit_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("creating migrations table: %w", err)
	}
	dialect := "sqlite"
	if s.pg {
		dialect = "postgres"
	}
	files, err := fs.Glob(migrations, "migrations/"+dialect+"/*.up.sql")
	if err != nil {
		return fmt.Errorf("listing migrations: %w", err)
	}
	sort.Strings(files)
	for _, f := range files {
		base := filepath.Base(f)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a number: %w", base, err)
		}
		if upTo > 0 && v > upTo {
			break
		}
		body, err := migrations.ReadFile(f)
		if err != nil {
			return fmt.Errorf("reading migration %s: %w", base, err)
		}
		// Check and apply in one transaction: two processes opening a new
		// database at once apply each migration once.
		err = s.tx(ctx, func(tx *sql.Tx) error {
			if s.pg { // SQLite's immediate transactions already exclude each other
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7306118)`); err != nil {
					return err
				}
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM refit_migrations WHERE version = $1`, v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO refit_migrations (version, applied_at) VALUES ($1, $2)`, v, formatTime(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("applying migration %s: %w", base, err)
		}
	}
	return nil
}

// tx runs fn in a write transaction, committing when it returns nil,
// then calls the OnCommit hook with what it changed.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	c := Commit{pg: s.pg, skipAudit: s.noAudit, hot: s.hot}
	err := s.quietTx(ctx, func(tx *sql.Tx) error {
		commits.Store(tx, &c)
		defer commits.Delete(tx)
		if err := fn(tx); err != nil {
			return err
		}
		return notifyJobs(ctx, tx, &c)
	})
	if err != nil {
		return err
	}
	if h := s.onCommit.Load(); h != nil {
		(*h)(c)
	}
	return nil
}

// quietTx is tx without the OnCommit hook, for the dispatcher's own
// bookkeeping, which must not wake the dispatcher again.
func (s *Store) quietTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

const timeFormat = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// translate maps driver errors to the package's sentinels. A unique
// violation reads as ErrExists alone: the driver's text (SQLite's
// "UNIQUE constraint failed: tasks.name (1555)", PostgreSQL's
// "duplicate key value violates unique constraint …") is not for users;
// it stays reachable with errors.As for debugging.
func translate(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		return &sentinelError{ErrExists, err}
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &sentinelError{ErrExists, err}
		}
	}
	return err
}

// sentinelError reads as its sentinel and keeps the driver error it
// stands for in the chain.
type sentinelError struct {
	sentinel error
	driver   error
}

func (e *sentinelError) Error() string        { return e.sentinel.Error() }
func (e *sentinelError) Is(target error) bool { return target == e.sentinel }
func (e *sentinelError) Unwrap() error        { return e.driver }
