package lifecycle_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// lockedBuffer is a log sink safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// twoProcesses is two refit processes on one PostgreSQL database, both
// polling the queue only hourly: A commits runs but does not work them
// (its queue is not started), B works them (its log is kept).
type twoProcesses struct {
	a, b  *life
	db    string    // the database's name
	admin *sql.Conn // the test's own connection, to database postgres
	blog  *lockedBuffer
}

// newTwoProcesses opens both processes on a database whose URL carries a
// password (ignored by the test server's trust authentication) that must
// show nowhere.
func newTwoProcesses(t *testing.T) *twoProcesses {
	t.Helper()
	if !pgtest.Wanted() {
		t.Skip("PostgreSQL only (REFIT_TEST_POSTGRES=1): on SQLite one process owns the queue")
	}
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("postgres", "s3cret-pw")
	open := func(logger *slog.Logger) *life {
		st, err := store.Open(context.Background(), store.Config{URL: u.String()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		e := &fakeExecutor{byTask: map[string]func(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error){}}
		l, err := lifecycle.New(t.Context(), lifecycle.Config{Store: st, Executor: e, Registry: reg, Debounce: -1,
			Idle: time.Hour, Poll: time.Hour, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Stop(context.Background()) })
		return &life{fixture: fixture{st: st, l: l}, exec: e}
	}
	p := &twoProcesses{blog: &lockedBuffer{}, db: strings.TrimPrefix(u.Path, "/")}
	p.a = open(nil)
	p.a.addTask(t, task.Spec{Name: "app"}, "FROM debian:12\n")
	p.b = open(slog.New(slog.NewTextHandler(p.blog, nil)))
	start(t, p.b)

	u.Path = "/postgres"
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p.admin, err = db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.admin.Close() })
	return p
}

// waitState waits for the run to reach state.
func (f *fixture) waitState(t *testing.T, id int64, state store.State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := f.st.GetRun(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s, want %s", store.FormatRunID(id), r.State, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// listeners returns the backends listening for job notifications on the
// test's database: those whose last statement was the LISTEN.
func (p *twoProcesses) listeners(t *testing.T) []int {
	t.Helper()
	rows, err := p.admin.QueryContext(context.Background(), `SELECT pid FROM pg_stat_activity
		WHERE datname = $1 AND query = 'LISTEN "`+store.JobsChannel+`"' ORDER BY pid`, p.db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var pids []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return pids
}

// waitListeners waits until B listens on a connection not in old, and
// returns the listening backends.
func (p *twoProcesses) waitListeners(t *testing.T, old []int) []int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var fresh []int
		for _, pid := range p.listeners(t) {
			if !slices.Contains(old, pid) {
				fresh = append(fresh, pid)
			}
		}
		if len(fresh) == 1 {
			return fresh
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections listen for job notifications, want 1 (B's)", len(fresh))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// workedByB asserts that a run A commits is worked by B, whose poll is
// an hour long.
func (p *twoProcesses) workedByB(t *testing.T, why string) {
	t.Helper()
	before := len(p.b.exec.executed())
	run, err := p.a.l.Queue(t.Context(), "app", store.Cause{Kind: "manual", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	got := p.b.waitEndedWithin(t, run.ID, 10*time.Second, why)
	if got.State != store.StateSucceeded {
		t.Fatalf("run %s, want succeeded (error %q)", got.State, got.Error)
	}
	if ran := p.b.exec.executed(); len(ran) != before+1 {
		t.Fatalf("B executed %v, want one more run", ran)
	}
	t.Logf("run committed by A started at B %v after its commit", got.StartedAt.Sub(got.CreatedAt).Round(time.Millisecond))
}

// TestOtherProcessWakesQueue: on PostgreSQL a run committed by a process
// that does not work it (here its queue is not started; in production,
// its workers are busy) is worked at once by another process whose
// queue is stopped, with its poll an hour long: the commit's
// notification wakes it. Then, B's queue running (it stops only after an
// hour idle), a second run reaches it the same way; and Stop closes the
// listening connection.
func TestOtherProcessWakesQueue(t *testing.T) {
	p := newTwoProcesses(t)
	p.waitListeners(t, nil)
	if lifecycle.QueueRunning(p.b.l) {
		t.Fatal("B's queue runs with no job it could work")
	}
	p.workedByB(t, "B's stopped queue was not woken by A's commit")
	p.workedByB(t, "B's running queue was not woken by A's commit")

	// Stop ends the listener and closes its connection.
	if err := p.b.l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(p.listeners(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("B still listens for job notifications after Stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestListenerReconnects: when B's listening connection is killed and
// the database refuses connections for a while, B logs the outage once
// (its credentials redacted), listens again once it can, and runs A
// commits afterwards still wake it, stopped and running.
func TestListenerReconnects(t *testing.T) {
	p := newTwoProcesses(t)
	old := p.waitListeners(t, nil)
	ctx := context.Background()
	if _, err := p.admin.ExecContext(ctx, `ALTER DATABASE `+p.db+` ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	for _, pid := range old {
		if _, err := p.admin.ExecContext(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.blog.String(), "not listening") {
		if time.Now().After(deadline) {
			t.Fatalf("B logged no outage after its listening connection was killed; log:\n%s", p.blog)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // several failed attempts to listen again
	if _, err := p.admin.ExecContext(ctx, `ALTER DATABASE `+p.db+` ALLOW_CONNECTIONS true`); err != nil {
		t.Fatal(err)
	}
	p.waitListeners(t, old)
	p.workedByB(t, "B did not listen again after its connection was killed")
	p.workedByB(t, "B did not listen again after its connection was killed")

	log := p.blog.String()
	t.Logf("B's log:\n%s", log)
	if n := strings.Count(log, "not listening"); n != 1 {
		t.Errorf("B logged the outage %d times, want once", n)
	}
	if n := strings.Count(log, "listening for other processes' jobs again"); n != 1 {
		t.Errorf("B logged listening again %d times, want once", n)
	}
	if strings.Contains(log, "s3cret-pw") {
		t.Error("B's log shows the database password")
	}
}
