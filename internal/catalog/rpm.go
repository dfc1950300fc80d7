package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	rpmdb "github.com/anchore/go-rpmdb/pkg"
	_ "modernc.org/sqlite" // go-rpmdb opens rpmdb.sqlite as database/sql driver "sqlite"
)

// rpm databases are read with github.com/anchore/go-rpmdb (BerkeleyDB
// Packages, ndb Packages.db, rpmdb.sqlite), which takes a file path and
// reads in goroutines of its own. On a damaged or hostile database those
// goroutines can panic (an index read from the file is used unchecked:
// bdb's pageData[hashPageIndex]), loop for ever (a bdb overflow page of
// the wrong type is retried without moving on) or allocate what a length
// field says (ndb's BlobLen, up to 4 GiB) — and a panic in a goroutine
// cannot be recovered: it would end refit serve. So the database is
// parsed in a child process: refit runs its own executable again
// (rpmChildArg0, rpmChildEnv), which parses the one file, writes the
// packages as JSON and exits. A crash, a loop or a runaway allocation
// ends the child only: it is killed when the catalog's time budget ends,
// and its memory is capped (rpmChildMemory).
const (
	rpmChildArg0 = "refit-catalog-rpmdb"
	rpmChildEnv  = "REFIT_CATALOG_RPMDB"
	rpmChildMem  = "REFIT_CATALOG_RPMDB_MEMORY"
	rpmChildFile = "rpmdb" // the copy's name in its temporary directory
)

// rpmChildMemory caps the child's data segment: a database of size bytes
// is read whole at most a few times over, and the Go runtime and SQLite
// need some to start.
func rpmChildMemory(size int64) int64 { return 256<<20 + 4*size }

// init runs the child's side of reading an rpm database when this
// process was started for it (see rpmChildArg0), and exits. Any binary
// that links this package — refit, its tests — can so be the child; in
// every other process it does nothing.
func init() {
	if len(os.Args) == 2 && os.Args[0] == rpmChildArg0 && os.Getenv(rpmChildEnv) == "1" {
		os.Exit(rpmChild(os.Args[1], os.Stdout, os.Stderr))
	}
}

// rpmChild parses the rpm database at path and writes its packages to
// stdout as JSON; it returns the exit code.
func rpmChild(path string, stdout, stderr io.Writer) int {
	closeInherited()
	if n, err := strconv.ParseInt(os.Getenv(rpmChildMem), 10, 64); err == nil && n > 0 {
		limitMemory(n)
		debug.SetMemoryLimit(n / 2)
	}
	before := runtime.NumGoroutine()
	ps, err := listRPM(path)
	if err == nil {
		err = settle(before, 5*time.Second)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := json.NewEncoder(stdout).Encode(ps); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// settle waits until no more goroutines run than before did, for at most
// max. go-rpmdb's reader goroutine closes its channel in a deferred call,
// which runs when it panics too: the package list then ends early, as if
// complete, while the panic is still on its way to ending the process.
// A reader that ended normally is gone at once; one that panicked never
// returns, so waiting for it lets the panic end the child (exit 2)
// before a partial list is written as a success.
func settle(before int, max time.Duration) error {
	for deadline := time.Now().Add(max); runtime.NumGoroutine() > before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("go-rpmdb's reader did not finish within %s", max)
		}
	}
	return nil
}

// listRPM reads the rpm database at path with go-rpmdb. It runs in the
// child only (see rpmChildArg0): go-rpmdb may panic or leak goroutines
// on a damaged database. A panic in this goroutine (parsing a header) is
// an error; one in go-rpmdb's own goroutines ends the process.
func listRPM(path string) (_ []Package, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("go-rpmdb panicked: %v", r)
		}
	}()
	db, err := rpmdb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening: %w", err)
	}
	defer db.Close()
	list, err := db.ListPackages()
	if err != nil {
		return nil, fmt.Errorf("listing packages: %w", err)
	}
	out := make([]Package, 0, len(list))
	for _, p := range list {
		if p.Name == "" || p.Name == "gpg-pubkey" {
			continue // imported signing keys are entries, not packages
		}
		v := p.Version + "-" + p.Release
		if p.Epoch != nil {
			v = strconv.Itoa(*p.Epoch) + ":" + v
		}
		out = append(out, Package{Name: p.Name, Version: v, Arch: p.Arch, Type: "rpm", Source: sourceRPMName(p.SourceRpm)})
	}
	return out, nil
}

// sourceRPMName returns the name of the source package from an rpm
// header's SOURCERPM, "openssl-3.0.7-27.el9.src.rpm" → "openssl": the
// file name less its ".src.rpm" (or ".nosrc.rpm") and its version and
// release, the last two "-" fields. It returns "" for anything else.
func sourceRPMName(s string) string {
	base, ok := strings.CutSuffix(s, ".src.rpm")
	if !ok {
		if base, ok = strings.CutSuffix(s, ".nosrc.rpm"); !ok {
			return ""
		}
	}
	for range 2 {
		i := strings.LastIndexByte(base, '-')
		if i <= 0 {
			return ""
		}
		base = base[:i]
	}
	return base
}

// capWriter keeps the first max bytes written to it and fails past them.
type capWriter struct {
	buf bytes.Buffer
	max int
}

func (w *capWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		w.buf.Write(p[:w.max-w.buf.Len()])
		return 0, errOutputLimit
	}
	return w.buf.Write(p)
}

var errOutputLimit = errors.New("output over its limit")

// rpmDB is an rpm database copied out of a layer into a temporary
// directory of its own, which Close removes.
type rpmDB struct {
	at  string // where the image has it, e.g. "var/lib/rpm/rpmdb.sqlite"
	dir string
}

// spoolRPM copies the rpm database at (a path in the image) from r into a
// new temporary directory (under os.TempDir), at most lim.File bytes: a
// larger one is a *LimitError naming at. The copy's name is refit's
// (rpmChildFile), never the image's, and nothing else is written. It
// first removes the copies a killed refit left behind (see removeStale).
func spoolRPM(at string, r io.Reader, lim Limits) (*rpmDB, error) {
	removeStale(max(time.Hour, 2*lim.Time))
	dir, err := os.MkdirTemp("", rpmTempPrefix)
	if err != nil {
		return nil, fmt.Errorf("copying %s: %w", at, err)
	}
	db := &rpmDB{at: at, dir: dir}
	f, err := os.OpenFile(dir+"/"+rpmChildFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("copying %s: %w", at, err)
	}
	n, err := io.Copy(f, io.LimitReader(r, lim.File+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("copying %s: %w", at, err)
	}
	if n > lim.File {
		db.Close()
		return nil, &LimitError{What: "file", Limit: fmt.Sprintf("%d bytes", lim.File), Where: at}
	}
	return db, nil
}

// rpmTempPrefix names the temporary directories of rpm database copies.
const rpmTempPrefix = "refit-rpmdb-"

// removeStale removes the copies of rpm databases in os.TempDir older
// than age: a refit killed while reading one (SIGKILL, a crash) leaves
// its copy, and no read lasts longer than the catalog's time budget.
// Other refit processes sharing the directory keep their fresh copies.
func removeStale(age time.Duration) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), rpmTempPrefix+"*"))
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && time.Since(fi.ModTime()) > age {
			os.RemoveAll(d)
		}
	}
}

// Close removes the copy.
func (db *rpmDB) Close() error { return os.RemoveAll(db.dir) }

// packages parses the copy in a child process (see rpmChildArg0), which
// ctx's end kills. A crash or a failure of the child is an error naming
// the database and what the child said.
func (db *rpmDB) packages(ctx context.Context, lim Limits) ([]Package, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("reading rpm database %s: finding refit's executable to parse it: %w", db.at, err)
	}
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		exe = "/proc/self/exe" // the running binary even if it was replaced on disk
	}
	cmd := exec.CommandContext(ctx, exe, rpmChildFile)
	cmd.Args[0] = rpmChildArg0
	cmd.Dir = db.dir
	cmd.SysProcAttr = childAttr()
	cmd.Env = []string{rpmChildEnv + "=1", rpmChildMem + "=" + strconv.FormatInt(rpmChildMemory(lim.File), 10)}
	stdout := &capWriter{max: int(min(lim.File, 1<<30))}
	stderr := &capWriter{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, timeErr(lim, db.at, ctx.Err())
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("reading rpm database %s: %w", db.at, ctx.Err())
	}
	if errors.Is(err, errOutputLimit) {
		return nil, &LimitError{What: "file", Limit: fmt.Sprintf("%d bytes", stdout.max), Where: db.at + " (its package list)"}
	}
	if err != nil {
		return nil, fmt.Errorf("reading rpm database %s: %s (%w); the database is damaged or not one go-rpmdb reads", db.at, childSaid(stderr.buf.String()), err)
	}
	var ps []Package
	if err := json.Unmarshal(stdout.buf.Bytes(), &ps); err != nil {
		return nil, fmt.Errorf("reading rpm database %s: decoding its packages: %w", db.at, err)
	}
	return ps, nil
}

// childSaid is the first line of what the child wrote to stderr (a
// panic's message, or its error), at most 300 bytes.
func childSaid(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		return "the parser ended without a word"
	}
	return s
}
