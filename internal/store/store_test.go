package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// Stored runs and tasks come back with empty rather than nil slices and
// maps; that difference does not matter.
func cmpDiff(want, got any) string { return cmp.Diff(want, got, cmpopts.EquateEmpty()) }

func cmpEqual(a, b any) bool { return cmp.Equal(a, b, cmpopts.EquateEmpty()) }

// open opens a store on a fresh SQLite file in a temporary directory, or
// on a fresh PostgreSQL database when the tests run on PostgreSQL
// (pgtest.Wanted); the second result reopens it with openAt.
func open(t *testing.T) (*store.Store, string) {
	t.Helper()
	where := newLocation(t)
	return openAt(t, where), where
}

// newLocation is a new, empty database: a SQLite path or a PostgreSQL URL.
func newLocation(t *testing.T) string {
	t.Helper()
	if pgtest.Wanted() {
		return pgtest.URL(t)
	}
	return filepath.Join(t.TempDir(), "refit.db")
}

func openAt(t *testing.T, path string) *store.Store {
	t.Helper()
	cfg := store.Config{Path: path}
	if strings.HasPrefix(path, "postgres://") {
		cfg = store.Config{URL: path}
	}
	s, err := store.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func spec(name string) task.Spec {
	return task.Spec{Name: name, Source: task.Source{Git: "https://example.com/" + name + ".git"}}.Defaults()
}

// jobs is a stand-in job queue: a table written in the run's transaction.
type jobs struct {
	mu    sync.Mutex
	calls []int64 // run IDs enqueue was called with
}

func newJobs(t *testing.T, s *store.Store) *jobs {
	t.Helper()
	ddl := `CREATE TABLE IF NOT EXISTS test_jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL)`
	if s.Postgres() {
		ddl = `CREATE TABLE IF NOT EXISTS test_jobs (id BIGSERIAL PRIMARY KEY, run_id BIGINT NOT NULL)`
	}
	if _, err := s.DB().ExecContext(t.Context(), ddl); err != nil {
		t.Fatalf("creating test_jobs: %v", err)
	}
	return &jobs{}
}

func (j *jobs) enqueue(ctx context.Context, tx *sql.Tx, runID int64) (int64, error) {
	j.mu.Lock()
	j.calls = append(j.calls, runID)
	j.mu.Unlock()
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO test_jobs (run_id) VALUES ($1) RETURNING id`, runID).Scan(&id)
	return id, err
}

// jobOf returns the newest job queued for the run, or 0.
func jobOf(t *testing.T, s *store.Store, runID int64) int64 {
	t.Helper()
	var id sql.NullInt64
	if err := s.DB().QueryRowContext(t.Context(), `SELECT MAX(id) FROM test_jobs WHERE run_id = $1`, runID).Scan(&id); err != nil {
		t.Fatalf("reading job of run %d: %v", runID, err)
	}
	return id.Int64
}

func count(t *testing.T, s *store.Store, table string) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
		t.Fatalf("counting %s: %v", table, err)
	}
	return n
}

func createRun(t *testing.T, s *store.Store, taskName string, enqueue store.Enqueuer) store.Run {
	t.Helper()
	r, err := s.CreateRun(t.Context(), store.Run{Task: taskName, Spec: spec(taskName), Cause: store.Cause{Kind: "manual", User: "alice"}}, enqueue)
	if err != nil {
		t.Fatalf("CreateRun(%s): %v", taskName, err)
	}
	return r
}

func TestOpenRequiresPath(t *testing.T) {
	if s, err := store.Open(t.Context(), store.Config{}); err == nil {
		s.Close()
		t.Fatal("Open with no path succeeded, want an error")
	}
}

func TestOpenTwiceKeepsDataAndMigrations(t *testing.T) {
	ctx := t.Context()
	path := newLocation(t)
	s := openAt(t, path)
	var versions int
	if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM refit_migrations`).Scan(&versions); err != nil {
		t.Fatalf("counting migrations: %v", err)
	}
	if versions == 0 {
		t.Fatal("no migration recorded after Open")
	}
	if _, err := s.CreateTask(ctx, store.Task{Spec: spec("api")}); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	r := createRun(t, s, "api", nil)
	secret, err := s.NewToken(ctx, "ci")
	if err != nil {
		t.Fatalf("NewToken: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for i := range 2 {
		s := openAt(t, path)
		if got := count(t, s, "refit_migrations"); got != versions {
			t.Errorf("reopen %d: %d migrations recorded, want %d", i+1, got, versions)
		}
		if got, err := s.GetTask(ctx, "api"); err != nil || got.Name() != "api" {
			t.Errorf("reopen %d: GetTask(api) = %q, %v; want api, nil", i+1, got.Name(), err)
		}
		if got, err := s.GetRun(ctx, r.ID); err != nil || got.Task != "api" {
			t.Errorf("reopen %d: GetRun(%d) = %+v, %v; want the api run", i+1, r.ID, got, err)
		}
		if got, err := s.TokenName(ctx, secret); err != nil || got != "ci" {
			t.Errorf("reopen %d: TokenName = %q, %v; want ci", i+1, got, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestCreateTask(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	bases := []dockerfile.Base{{Stage: "0", Role: dockerfile.RoleRuntime, Kind: dockerfile.KindFrom, Ref: "docker.io/library/debian:latest", Name: "debian", Line: 1}}
	created, err := s.CreateTask(ctx, store.Task{Spec: spec("api"), Bases: bases})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	if created.CreatedAt.IsZero() || !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Errorf("CreateTask times: created %v, updated %v; want equal and set", created.CreatedAt, created.UpdatedAt)
	}
	got, err := s.GetTask(ctx, "api")
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	if diff := cmpDiff(created, got); diff != "" {
		t.Errorf("GetTask after CreateTask mismatch (-want +got):\n%s", diff)
	}

	_, err = s.CreateTask(ctx, store.Task{Spec: spec("api")})
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("second CreateTask(api) error = %v, want ErrExists", err)
	}
	// The driver's words (SQLite's "UNIQUE constraint failed: tasks.name
	// (1555)", PostgreSQL's "duplicate key value …") stay inside the store.
	if err != nil && err.Error() != "creating task api: already exists" {
		t.Errorf("second CreateTask(api) error = %q, want %q", err, "creating task api: already exists")
	}
	if got2, _ := s.GetTask(ctx, "api"); !cmpEqual(got2, got) {
		t.Errorf("failed CreateTask changed the task: %s", cmpDiff(got, got2))
	}
}

func TestTaskNotFound(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	if _, err := s.GetTask(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetTask(nope) error = %v, want ErrNotFound", err)
	}
	if err := s.DeleteTask(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteTask(nope) error = %v, want ErrNotFound", err)
	}
	if _, err := s.CreateTask(ctx, store.Task{Spec: spec("api")}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTask(ctx, "api"); err != nil {
		t.Errorf("DeleteTask(api) = %v, want nil", err)
	}
	if _, err := s.GetTask(ctx, "api"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetTask after delete error = %v, want ErrNotFound", err)
	}
	if err := s.DeleteTask(ctx, "api"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteTask(api) error = %v, want ErrNotFound", err)
	}
}

func TestPutTask(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	sp := spec("api")

	first, created, changed, err := s.PutTask(ctx, store.Task{Spec: sp})
	if err != nil || !created || !changed {
		t.Fatalf("first PutTask = created %v, changed %v, %v; want true, true, nil", created, changed, err)
	}
	time.Sleep(2 * time.Millisecond) // so a rewrite would show in UpdatedAt

	same, created, changed, err := s.PutTask(ctx, store.Task{Spec: sp})
	if err != nil || created || changed {
		t.Fatalf("same PutTask = created %v, changed %v, %v; want false, false, nil", created, changed, err)
	}
	if !same.UpdatedAt.Equal(first.UpdatedAt) || !same.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("same PutTask times = %v/%v, want unchanged %v/%v", same.CreatedAt, same.UpdatedAt, first.CreatedAt, first.UpdatedAt)
	}
	if got, _ := s.GetTask(ctx, "api"); !got.UpdatedAt.Equal(first.UpdatedAt) {
		t.Errorf("stored UpdatedAt after unchanged put = %v, want %v", got.UpdatedAt, first.UpdatedAt)
	}
	if diff := cmpDiff(sp, same.Spec); diff != "" {
		t.Errorf("unchanged PutTask spec mismatch (-want +got):\n%s", diff)
	}

	sp2 := sp
	sp2.Tags = []string{"latest", "{{.Run.ID}}"}
	upd, created, changed, err := s.PutTask(ctx, store.Task{Spec: sp2})
	if err != nil || created || !changed {
		t.Fatalf("changed PutTask = created %v, changed %v, %v; want false, true, nil", created, changed, err)
	}
	if !upd.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("changed PutTask CreatedAt = %v, want kept %v", upd.CreatedAt, first.CreatedAt)
	}
	if !upd.UpdatedAt.After(first.UpdatedAt) {
		t.Errorf("changed PutTask UpdatedAt = %v, want after %v", upd.UpdatedAt, first.UpdatedAt)
	}
	got, err := s.GetTask(ctx, "api")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmpDiff(upd, got); diff != "" {
		t.Errorf("GetTask after changed PutTask mismatch (-want +got):\n%s", diff)
	}

	// Bases count as a change too; nil and empty bases do not differ.
	bases := []dockerfile.Base{{Stage: "0", Role: dockerfile.RoleRuntime, Kind: dockerfile.KindFrom, Ref: "docker.io/library/alpine:3", Name: "alpine:3", Line: 1}}
	if _, _, changed, err := s.PutTask(ctx, store.Task{Spec: sp2, Bases: bases}); err != nil || !changed {
		t.Errorf("PutTask with new bases changed = %v, %v; want true", changed, err)
	}
	if _, _, changed, err := s.PutTask(ctx, store.Task{Spec: sp2, Bases: bases}); err != nil || changed {
		t.Errorf("PutTask with same bases changed = %v, %v; want false", changed, err)
	}
	if _, _, changed, err := s.PutTask(ctx, store.Task{Spec: sp2, Bases: []dockerfile.Base{}}); err != nil || !changed {
		t.Errorf("PutTask clearing bases changed = %v, %v; want true", changed, err)
	}
	if _, _, changed, err := s.PutTask(ctx, store.Task{Spec: sp2}); err != nil || changed {
		t.Errorf("PutTask with nil after empty bases changed = %v, %v; want false", changed, err)
	}
}

// An empty (non-nil) map or list in a spec is stored as absent; putting the
// same spec again must not count as a change.
func TestPutTaskEmptyCollectionsUnchanged(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	sp := spec("api")
	sp.BuildArgs = map[string]string{}
	if _, _, _, err := s.PutTask(ctx, store.Task{Spec: sp}); err != nil {
		t.Fatal(err)
	}
	_, created, changed, err := s.PutTask(ctx, store.Task{Spec: sp})
	if err != nil || created || changed {
		t.Errorf("PutTask of the same spec with empty buildArgs = created %v, changed %v, %v; want false, false, nil", created, changed, err)
	}
}

func TestListTasksSorted(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	if got, err := s.ListTasks(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListTasks on empty store = %v, %v; want none", got, err)
	}
	for _, n := range []string{"web", "api", "worker", "db", "api-2"} {
		if _, err := s.CreateTask(ctx, store.Task{Spec: spec(n)}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range list {
		got = append(got, tk.Name())
	}
	want := []string{"api", "api-2", "db", "web", "worker"}
	if diff := cmpDiff(want, got); diff != "" {
		t.Errorf("ListTasks names mismatch (-want +got):\n%s", diff)
	}
}

func TestSetTaskBases(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	created, err := s.CreateTask(ctx, store.Task{Spec: spec("api")})
	if err != nil {
		t.Fatal(err)
	}
	bases := []dockerfile.Base{
		{Stage: "build", Role: dockerfile.RoleBuild, Kind: dockerfile.KindFrom, Ref: "docker.io/library/golang:1.26", Name: "golang:1.26", Line: 1},
		{Stage: "1", Role: dockerfile.RoleRuntime, Kind: dockerfile.KindFrom, Ref: "docker.io/library/alpine:3", Name: "alpine:3", Platform: "linux/amd64", Line: 5},
	}
	if err := s.SetTaskBases(ctx, "api", bases); err != nil {
		t.Fatalf("SetTaskBases: %v", err)
	}
	got, err := s.GetTask(ctx, "api")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmpDiff(bases, got.Bases); diff != "" {
		t.Errorf("bases after SetTaskBases mismatch (-want +got):\n%s", diff)
	}
	if diff := cmpDiff(created.Spec, got.Spec); diff != "" {
		t.Errorf("SetTaskBases changed the spec (-want +got):\n%s", diff)
	}
	if !got.UpdatedAt.Equal(created.UpdatedAt) {
		t.Errorf("SetTaskBases changed UpdatedAt to %v, want %v", got.UpdatedAt, created.UpdatedAt)
	}
	if err := s.SetTaskBases(ctx, "gone", bases); err != nil {
		t.Errorf("SetTaskBases of a missing task = %v, want nil", err)
	}
	if _, err := s.GetTask(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetTaskBases created task gone: GetTask error = %v, want ErrNotFound", err)
	}
}

func TestCreateRunCommitsWithJob(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	j := newJobs(t, s)
	in := store.Run{
		Task:      "api",
		Spec:      spec("api"),
		State:     store.StateFailed, // ignored: new runs are queued
		Cause:     store.Cause{Kind: "commit", Repo: "https://example.com/api.git", Ref: "refs/heads/main", SHA: "0123456789abcdef"},
		BlockedBy: nil,
	}
	r, err := s.CreateRun(ctx, in, j.enqueue)
	if err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	if r.ID <= 0 || r.State != store.StateQueued || r.CreatedAt.IsZero() {
		t.Errorf("CreateRun = id %d, state %s, created %v; want id > 0, queued, set", r.ID, r.State, r.CreatedAt)
	}
	if diff := cmpDiff([]int64{r.ID}, j.calls); diff != "" {
		t.Errorf("enqueue calls mismatch (-want +got):\n%s", diff)
	}
	job := jobOf(t, s, r.ID)
	if job == 0 {
		t.Fatal("no job row committed with the run")
	}
	got, err := s.GetRun(ctx, r.ID)
	if err != nil {
		t.Fatalf("GetRun: %v", err)
	}
	if diff := cmpDiff(r, got); diff != "" {
		t.Errorf("GetRun after CreateRun mismatch (-want +got):\n%s", diff)
	}
	// The job ID the enqueuer returned owns the run.
	if _, err := s.StartRun(ctx, r.ID, job); err != nil {
		t.Errorf("StartRun with the enqueued job %d: %v", job, err)
	}
}

func TestCreateRunEnqueueErrorLeavesNothing(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	j := newJobs(t, s)
	boom := errors.New("queue is full")
	var seen int64
	_, err := s.CreateRun(ctx, store.Run{Task: "api", Spec: spec("api"), Cause: store.Cause{Kind: "manual"}},
		func(ctx context.Context, tx *sql.Tx, runID int64) (int64, error) {
			seen = runID
			if _, err := j.enqueue(ctx, tx, runID); err != nil { // a job row, rolled back too
				return 0, err
			}
			return 0, boom
		})
	if !errors.Is(err, boom) {
		t.Fatalf("CreateRun error = %v, want %v", err, boom)
	}
	runs, err := s.ListRuns(ctx, store.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 0 {
		t.Errorf("ListRuns after failed enqueue = %d runs, want none: %+v", len(runs), runs)
	}
	if _, err := s.GetRun(ctx, seen); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRun(%d) after failed enqueue error = %v, want ErrNotFound", seen, err)
	}
	if n := count(t, s, "test_jobs"); n != 0 {
		t.Errorf("%d job rows after failed enqueue, want 0", n)
	}
	// The store is still usable.
	createRun(t, s, "api", j.enqueue)
}

func TestCreateRunNilEnqueuer(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	r := createRun(t, s, "api", nil)
	// With no job, only job 0 owns it.
	if _, err := s.StartRun(ctx, r.ID, 1); !errors.Is(err, store.ErrStaleJob) {
		t.Errorf("StartRun(job 1) of an unenqueued run error = %v, want ErrStaleJob", err)
	}
}

func TestStartRun(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	j := newJobs(t, s)
	r := createRun(t, s, "api", j.enqueue)
	job := jobOf(t, s, r.ID)

	if _, err := s.StartRun(ctx, r.ID, job+100); !errors.Is(err, store.ErrStaleJob) {
		t.Errorf("StartRun with the wrong job error = %v, want ErrStaleJob", err)
	}
	if got, _ := s.GetRun(ctx, r.ID); got.State != store.StateQueued || got.Attempts != 0 {
		t.Errorf("after stale StartRun: state %s, attempts %d; want queued, 0", got.State, got.Attempts)
	}

	started, err := s.StartRun(ctx, r.ID, job)
	if err != nil {
		t.Fatalf("StartRun: %v", err)
	}
	if started.State != store.StateRunning || started.Attempts != 1 || started.StartedAt.IsZero() {
		t.Errorf("StartRun = state %s, attempts %d, started %v; want running, 1, set", started.State, started.Attempts, started.StartedAt)
	}
	if got, _ := s.GetRun(ctx, r.ID); !cmpEqual(got, started) {
		t.Errorf("GetRun after StartRun mismatch (-want +got):\n%s", cmpDiff(started, got))
	}

	// A redelivered job restarts an interrupted running run: another attempt.
	again, err := s.StartRun(ctx, r.ID, job)
	if err != nil || again.Attempts != 2 || again.State != store.StateRunning {
		t.Errorf("second StartRun = state %s, attempts %d, %v; want running, 2, nil", again.State, again.Attempts, err)
	}

	// Once ended, StartRun returns it unchanged.
	done := again
	done.State = store.StateSucceeded
	done.FinishedAt = time.Now().UTC()
	done.Digest = "sha256:" + strings.Repeat("a", 64)
	if err := s.SaveRun(ctx, done); err != nil {
		t.Fatalf("SaveRun: %v", err)
	}
	before, _ := s.GetRun(ctx, r.ID)
	after, err := s.StartRun(ctx, r.ID, job)
	if err != nil {
		t.Fatalf("StartRun of an ended run: %v", err)
	}
	if diff := cmpDiff(before, after); diff != "" {
		t.Errorf("StartRun changed an ended run (-want +got):\n%s", diff)
	}
	if after.State != store.StateSucceeded || after.Attempts != 2 {
		t.Errorf("ended run after StartRun = %s, %d attempts; want succeeded, 2", after.State, after.Attempts)
	}

	if _, err := s.StartRun(ctx, 9999, job); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("StartRun of a missing run error = %v, want ErrNotFound", err)
	}
}

func TestSaveRun(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	r := createRun(t, s, "api", nil)
	r, err := s.StartRun(ctx, r.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.State = store.StateTesting
	r.Commit = "0123456789abcdef"
	r.Tags = []string{"latest", "r-1"}
	r.Bases = []store.UsedBase{{Ref: "docker.io/library/alpine:3", Name: "alpine:3", Stage: "0", Role: "runtime", Digest: "sha256:" + strings.Repeat("b", 64)}}
	r.Timings = map[string]string{"build": "3s"}
	if err := s.SaveRun(ctx, r); err != nil {
		t.Fatalf("SaveRun: %v", err)
	}
	got, err := s.GetRun(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmpDiff(r, got); diff != "" {
		t.Errorf("GetRun after SaveRun mismatch (-want +got):\n%s", diff)
	}

	r.State = store.StateFailed
	r.Step = "push"
	r.Error = "denied"
	r.FinishedAt = time.Now().UTC()
	if err := s.SaveRun(ctx, r); err != nil {
		t.Fatalf("SaveRun (fail): %v", err)
	}
	ended, _ := s.GetRun(ctx, r.ID)

	for _, st := range []store.State{store.StateRunning, store.StateSucceeded, store.StateCanceled} {
		late := ended
		late.State = st
		late.Error = "late write"
		late.Image = "x@sha256:" + strings.Repeat("c", 64)
		if err := s.SaveRun(ctx, late); !errors.Is(err, store.ErrFinished) {
			t.Errorf("SaveRun(%s) of an ended run error = %v, want ErrFinished", st, err)
		}
	}
	if got, _ := s.GetRun(ctx, r.ID); !cmpEqual(got, ended) {
		t.Errorf("SaveRun of an ended run changed it (-want +got):\n%s", cmpDiff(ended, got))
	}
}

func TestStateDone(t *testing.T) {
	for st, want := range map[store.State]bool{
		store.StateQueued: false, store.StateRunning: false, store.StateTesting: false,
		store.StateSucceeded: true, store.StateFailed: true, store.StateCanceled: true, store.StateSuperseded: true,
	} {
		if got := st.Done(); got != want {
			t.Errorf("%s.Done() = %v, want %v", st, got, want)
		}
	}
}

func TestListRuns(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	var ids []int64
	for _, n := range []string{"api", "web", "api", "web", "api"} {
		ids = append(ids, createRun(t, s, n, nil).ID)
	}
	// Start ids[2] (api) and ids[3] (web).
	for _, id := range ids[2:4] {
		if _, err := s.StartRun(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	runIDs := func(f store.RunFilter) []int64 {
		t.Helper()
		runs, err := s.ListRuns(ctx, f)
		if err != nil {
			t.Fatalf("ListRuns(%+v): %v", f, err)
		}
		var out []int64
		for _, r := range runs {
			out = append(out, r.ID)
		}
		return out
	}
	tests := []struct {
		f    store.RunFilter
		want []int64
	}{
		{store.RunFilter{}, []int64{ids[4], ids[3], ids[2], ids[1], ids[0]}},
		{store.RunFilter{Task: "api"}, []int64{ids[4], ids[2], ids[0]}},
		{store.RunFilter{Task: "web"}, []int64{ids[3], ids[1]}},
		{store.RunFilter{State: store.StateRunning}, []int64{ids[3], ids[2]}},
		{store.RunFilter{State: store.StateQueued}, []int64{ids[4], ids[1], ids[0]}},
		{store.RunFilter{Task: "api", State: store.StateRunning}, []int64{ids[2]}},
		{store.RunFilter{Task: "api", State: store.StateFailed}, nil},
		{store.RunFilter{Task: "nope"}, nil},
		{store.RunFilter{Limit: 2}, []int64{ids[4], ids[3]}},
		{store.RunFilter{Task: "api", Limit: 1}, []int64{ids[4]}},
		{store.RunFilter{Limit: -1}, []int64{ids[4], ids[3], ids[2], ids[1], ids[0]}},
	}
	for _, tt := range tests {
		if diff := cmpDiff(tt.want, runIDs(tt.f)); diff != "" {
			t.Errorf("ListRuns(%+v) IDs mismatch (-want +got):\n%s", tt.f, diff)
		}
	}
}

func TestListRunsDefaultLimit(t *testing.T) {
	s, _ := open(t)
	for range 55 {
		createRun(t, s, "api", nil)
	}
	runs, err := s.ListRuns(t.Context(), store.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 50 {
		t.Errorf("ListRuns with no limit = %d runs, want 50", len(runs))
	}
}

func TestRequeueInterrupted(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	j := newJobs(t, s)
	queued := createRun(t, s, "a", j.enqueue)
	running := createRun(t, s, "b", j.enqueue)
	testing_ := createRun(t, s, "c", j.enqueue)
	done := createRun(t, s, "d", j.enqueue)
	for _, r := range []store.Run{running, testing_, done} {
		if _, err := s.StartRun(ctx, r.ID, jobOf(t, s, r.ID)); err != nil {
			t.Fatal(err)
		}
	}
	tr, _ := s.GetRun(ctx, testing_.ID)
	tr.State = store.StateTesting
	if err := s.SaveRun(ctx, tr); err != nil {
		t.Fatal(err)
	}
	dr, _ := s.GetRun(ctx, done.ID)
	dr.State, dr.FinishedAt = store.StateSucceeded, time.Now().UTC()
	if err := s.SaveRun(ctx, dr); err != nil {
		t.Fatal(err)
	}
	oldJobs := map[int64]int64{}
	before := map[int64]store.Run{}
	for _, r := range []store.Run{queued, running, testing_, done} {
		oldJobs[r.ID] = jobOf(t, s, r.ID)
		before[r.ID], _ = s.GetRun(ctx, r.ID)
	}
	j.calls = nil

	ids, err := s.RequeueInterrupted(ctx, j.enqueue)
	if err != nil {
		t.Fatalf("RequeueInterrupted: %v", err)
	}
	want := []int64{running.ID, testing_.ID}
	if diff := cmpDiff(want, ids); diff != "" {
		t.Errorf("RequeueInterrupted IDs mismatch (-want +got):\n%s", diff)
	}
	if diff := cmpDiff(want, j.calls); diff != "" {
		t.Errorf("enqueue calls mismatch (-want +got):\n%s", diff)
	}
	for _, id := range want {
		got, _ := s.GetRun(ctx, id)
		if got.State != store.StateQueued {
			t.Errorf("requeued run %d state = %s, want queued", id, got.State)
		}
		newJob := jobOf(t, s, id)
		if newJob == oldJobs[id] {
			t.Errorf("requeued run %d kept job %d, want a new one", id, newJob)
		}
		if _, err := s.StartRun(ctx, id, oldJobs[id]); !errors.Is(err, store.ErrStaleJob) {
			t.Errorf("StartRun(run %d, old job) error = %v, want ErrStaleJob", id, err)
		}
		r, err := s.StartRun(ctx, id, newJob)
		if err != nil || r.State != store.StateRunning || r.Attempts != 2 {
			t.Errorf("StartRun(run %d, new job) = %s, %d attempts, %v; want running, 2", id, r.State, r.Attempts, err)
		}
	}
	for _, id := range []int64{queued.ID, done.ID} {
		got, _ := s.GetRun(ctx, id)
		if diff := cmpDiff(before[id], got); diff != "" {
			t.Errorf("RequeueInterrupted touched run %d (-want +got):\n%s", id, diff)
		}
		if jobOf(t, s, id) != oldJobs[id] {
			t.Errorf("RequeueInterrupted gave run %d a new job", id)
		}
	}

	// Nothing left running → nothing to do (the two restarted above are
	// running again, so put them to an end first).
	for _, id := range want {
		r, _ := s.GetRun(ctx, id)
		r.State = store.StateCanceled
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	j.calls = nil
	if ids, err := s.RequeueInterrupted(ctx, j.enqueue); err != nil || len(ids) != 0 || len(j.calls) != 0 {
		t.Errorf("RequeueInterrupted with nothing running = %v, %d calls, %v; want none", ids, len(j.calls), err)
	}
}

func TestRequeueInterruptedEnqueueErrorRollsBack(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	j := newJobs(t, s)
	var runs []store.Run
	for range 2 {
		r := createRun(t, s, "api", j.enqueue)
		r, err := s.StartRun(ctx, r.ID, jobOf(t, s, r.ID))
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	n := 0
	_, err := s.RequeueInterrupted(ctx, func(ctx context.Context, tx *sql.Tx, runID int64) (int64, error) {
		if n++; n == 2 {
			return 0, errors.New("boom")
		}
		return j.enqueue(ctx, tx, runID)
	})
	if err == nil {
		t.Fatal("RequeueInterrupted with a failing enqueuer succeeded")
	}
	for _, r := range runs {
		got, _ := s.GetRun(ctx, r.ID)
		if diff := cmpDiff(r, got); diff != "" {
			t.Errorf("failed RequeueInterrupted changed run %d (-want +got):\n%s", r.ID, diff)
		}
	}
}

func TestLogs(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	r1 := createRun(t, s, "api", nil)
	r2 := createRun(t, s, "api", nil)
	chunk := func(i int) []byte { return []byte(fmt.Sprintf(`{"n":%d}`, i)) }

	if err := s.AppendLogs(ctx, r1.ID, nil); err != nil {
		t.Fatalf("AppendLogs(nil): %v", err)
	}
	n := 0
	for _, size := range []int{3, 1, 4} {
		var batch [][]byte
		for range size {
			n++
			batch = append(batch, chunk(n))
		}
		if err := s.AppendLogs(ctx, r1.ID, batch); err != nil {
			t.Fatalf("AppendLogs: %v", err)
		}
		if err := s.AppendLogs(ctx, r2.ID, [][]byte{[]byte(`{"other":true}`)}); err != nil {
			t.Fatalf("AppendLogs(r2): %v", err)
		}
	}
	var want []store.LogChunk
	for i := 1; i <= n; i++ {
		want = append(want, store.LogChunk{Seq: int64(i), Data: json.RawMessage(chunk(i))})
	}

	all, err := s.Logs(ctx, r1.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmpDiff(want, all); diff != "" {
		t.Errorf("Logs(after 0) mismatch (-want +got):\n%s", diff)
	}

	// Page through three at a time.
	var paged []store.LogChunk
	var after int64
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("paging does not end")
		}
		page, err := s.Logs(ctx, r1.ID, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Errorf("Logs(limit 3) = %d chunks", len(page))
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Seq
	}
	if diff := cmpDiff(want, paged); diff != "" {
		t.Errorf("paged Logs mismatch (-want +got):\n%s", diff)
	}

	if got, err := s.Logs(ctx, r1.ID, 5, 2); err != nil || !cmpEqual(got, want[5:7]) {
		t.Errorf("Logs(after 5, limit 2) = %v, %v; want %v", got, err, want[5:7])
	}
	if got, err := s.Logs(ctx, r1.ID, int64(n), 10); err != nil || len(got) != 0 {
		t.Errorf("Logs(after last) = %v, %v; want none", got, err)
	}
	if got, err := s.Logs(ctx, r2.ID, 0, 10); err != nil || len(got) != 3 || got[2].Seq != 3 {
		t.Errorf("Logs(r2) = %v, %v; want seq 1..3", got, err)
	}
	if got, err := s.Logs(ctx, 9999, 0, 10); err != nil || len(got) != 0 {
		t.Errorf("Logs of a missing run = %v, %v; want none, nil", got, err)
	}
}

func TestTokens(t *testing.T) {
	ctx := t.Context()
	s, path := open(t)
	if n, err := s.CountTokens(ctx); err != nil || n != 0 {
		t.Errorf("CountTokens on empty store = %d, %v; want 0", n, err)
	}
	secret, err := s.NewToken(ctx, "ci")
	if err != nil {
		t.Fatalf("NewToken: %v", err)
	}
	if !strings.HasPrefix(secret, store.TokenPrefix) || secret == store.TokenPrefix {
		t.Errorf("NewToken = %q, want a %q secret", secret, store.TokenPrefix)
	}
	other, err := s.NewToken(ctx, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if other == secret {
		t.Error("two tokens have the same secret")
	}
	for sec, want := range map[string]string{secret: "ci", other: "laptop"} {
		if got, err := s.TokenName(ctx, sec); err != nil || got != want {
			t.Errorf("TokenName(%q) = %q, %v; want %q", sec, got, err, want)
		}
	}
	for _, bad := range []string{"", store.TokenPrefix, secret + "x", secret[:len(secret)-1], strings.ToUpper(secret), hash(secret)} {
		if got, err := s.TokenName(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TokenName(%q) = %q, %v; want ErrNotFound", bad, got, err)
		}
	}
	if n, err := s.CountTokens(ctx); err != nil || n != 2 {
		t.Errorf("CountTokens = %d, %v; want 2", n, err)
	}

	// Only hashes are stored.
	rows, err := s.DB().QueryContext(ctx, `SELECT hash, name FROM tokens ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var got [][2]string
	for rows.Next() {
		var h, n string
		if err := rows.Scan(&h, &n); err != nil {
			t.Fatal(err)
		}
		got = append(got, [2]string{h, n})
	}
	rows.Close()
	want := [][2]string{{hash(secret), "ci"}, {hash(other), "laptop"}}
	if diff := cmpDiff(want, got); diff != "" {
		t.Errorf("tokens table mismatch (-want +got):\n%s", diff)
	}

	// Nor does the secret appear anywhere on disk (database, WAL, shm),
	// before or after a close checkpoints the WAL. (PostgreSQL's files are
	// its server's: the table check above covers it.)
	if s.Postgres() {
		return
	}
	checkDisk := func(when string) {
		t.Helper()
		files, _ := filepath.Glob(path + "*")
		var found bool
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, sec := range []string{secret, other, strings.TrimPrefix(secret, store.TokenPrefix)} {
				if bytes.Contains(b, []byte(sec)) {
					t.Errorf("%s: secret %q found in %s", when, sec, f)
				}
			}
			found = found || bytes.Contains(b, []byte(hash(secret)))
		}
		if !found {
			t.Errorf("%s: hash of the secret not found in %v (is the check reading the right files?)", when, files)
		}
	}
	checkDisk("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkDisk("closed")
}

func hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func TestConcurrentRuns(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	j := newJobs(t, s)
	seed := createRun(t, s, "seed", j.enqueue)

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	ids := make(chan int64, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			r, err := s.CreateRun(ctx, store.Run{Task: fmt.Sprintf("t%d", i), Spec: spec("api"), Cause: store.Cause{Kind: "manual"}}, j.enqueue)
			if err != nil {
				errs <- fmt.Errorf("CreateRun %d: %w", i, err)
				return
			}
			ids <- r.ID
			if err := s.AppendLogs(ctx, r.ID, [][]byte{[]byte(`{}`), []byte(`{}`)}); err != nil {
				errs <- fmt.Errorf("AppendLogs %d: %w", i, err)
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			for range 5 {
				if _, err := s.GetRun(ctx, seed.ID); err != nil {
					errs <- fmt.Errorf("GetRun: %w", err)
					return
				}
				if _, err := s.ListRuns(ctx, store.RunFilter{}); err != nil {
					errs <- fmt.Errorf("ListRuns: %w", err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		t.Error(err)
	}
	seen := map[int64]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("run ID %d given twice", id)
		}
		seen[id] = true
		if jobOf(t, s, id) == 0 {
			t.Errorf("run %d has no job", id)
		}
	}
	if len(seen) != n {
		t.Errorf("%d runs created, want %d", len(seen), n)
	}
	runs, err := s.ListRuns(ctx, store.RunFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != n+1 {
		t.Errorf("ListRuns = %d runs, want %d", len(runs), n+1)
	}
}

// TestTxRunRows: the row operations the lifecycle composes into its
// finish transaction — the runs waiting for a run, saving one that ended
// (once), and giving a released run its job — all in one transaction.
func TestTxRunRows(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t)
	j := newJobs(t, s)
	up := createRun(t, s, "up", j.enqueue)
	var waiting, other store.Run
	err := s.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if waiting, err = tx.CreateRun(store.Run{Task: "down", Spec: spec("down"), Cause: store.Cause{Kind: "manual"}, BlockedBy: []int64{up.ID}}, j.enqueue); err != nil {
			return err
		}
		other, err = tx.CreateRun(store.Run{Task: "other", Spec: spec("other"), Cause: store.Cause{Kind: "manual"}, BlockedBy: []int64{up.ID + 100}}, j.enqueue)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if jobOf(t, s, waiting.ID) != 0 || jobOf(t, s, other.ID) != 0 {
		t.Fatal("a blocked run got a job when it was created")
	}
	err = s.InTx(ctx, func(tx *store.Tx) error {
		got, err := tx.WaitingFor(up.ID)
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].ID != waiting.ID {
			t.Errorf("WaitingFor(%d) = %v, want only run %d", up.ID, got, waiting.ID)
		}
		ended := up
		ended.State, ended.FinishedAt = store.StateSucceeded, time.Now().UTC()
		if err := tx.SaveRun(ended); err != nil {
			return err
		}
		if err := tx.SaveRun(ended); !errors.Is(err, store.ErrFinished) {
			t.Errorf("saving an ended run again: %v, want ErrFinished", err)
		}
		return tx.Enqueue(waiting.ID, j.enqueue)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetRun(ctx, up.ID); got.State != store.StateSucceeded {
		t.Errorf("run after SaveRun in a transaction: %s, want succeeded", got.State)
	}
	job := jobOf(t, s, waiting.ID)
	if job == 0 {
		t.Fatal("Enqueue gave the released run no job")
	}
	if _, err := s.StartRun(ctx, waiting.ID, job); err != nil {
		t.Errorf("StartRun with the job Enqueue recorded: %v", err)
	}
}
