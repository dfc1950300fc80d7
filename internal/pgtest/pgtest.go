// Package pgtest runs a real PostgreSQL server for tests: one cluster per
// test binary, started on first use in a temporary directory on a
// loopback port (as the postgres user when run as root, as initdb
// requires), and a fresh database per test.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// EnvRequire, when set to 1, makes tests that can run on PostgreSQL use
// it (see Wanted); `make test` sets it for a second pass.
const EnvRequire = "REFIT_TEST_POSTGRES"

// Wanted reports whether tests should run against PostgreSQL.
func Wanted() bool { return os.Getenv(EnvRequire) == "1" }

var (
	once     sync.Once
	cluster  *server
	startErr error
	dbs      atomic.Int64
)

type server struct {
	dir  string
	port int
	cmd  *exec.Cmd
}

// URL returns the URL of a new, empty database for the test on the
// shared server, starting the server on first use. The database is
// dropped when the test ends. It fails the test when PostgreSQL cannot
// be started (install Debian's postgresql package: make deps does).
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() { cluster, startErr = start() })
	if startErr != nil {
		t.Fatalf("starting PostgreSQL: %v", startErr)
	}
	name := fmt.Sprintf("refit_test_%d_%d", os.Getpid(), dbs.Add(1))
	admin := cluster.url("postgres")
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE DATABASE ` + name); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer db.Close()
		db.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
	})
	return cluster.url(name)
}

func (s *server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// binDir finds PostgreSQL's server programs.
func binDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return "", fmt.Errorf("pg_ctl not found: install Debian's postgresql package (make deps does)")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// removeStale deletes the directories of earlier test binaries' clusters
// whose postgres is gone.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "refit-pgtest-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid"))
		if err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && syscall.Kill(pid, 0) == nil {
				continue // still running
			}
		}
		if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > time.Minute {
			os.RemoveAll(d)
		}
	}
}

func start() (*server, error) {
	removeStale()
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "refit-pgtest-")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &server{dir: dir, port: port}

	// initdb and postgres refuse to run as root.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	run := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(filepath.Join(bin, name), args...)
		c.Dir = dir
		if cred != nil {
			c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return c
	}
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	s.cmd = run("postgres", "-D", data, "-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+dir, "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200")
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// Die with the test binary, even when it is killed.
	attr := s.cmd.SysProcAttr
	if attr == nil {
		attr = &syscall.SysProcAttr{}
	}
	attr.Pdeathsig = syscall.SIGKILL
	s.cmd.SysProcAttr = attr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		db, err := sql.Open("pgx", s.url("postgres"))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = db.PingContext(ctx)
			cancel()
			db.Close()
		}
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			return nil, fmt.Errorf("postgres did not accept connections: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
