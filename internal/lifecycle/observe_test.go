package lifecycle_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/index"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

const reg = "127.0.0.1:5000"

// fixture is a real store (SQLite, or PostgreSQL with
// REFIT_TEST_POSTGRES=1) with the lifecycle's real River queue, never
// started: jobs are inserted, not worked.
type fixture struct {
	st *store.Store
	l  *lifecycle.Runs
}

// openStore opens a store in a temporary directory (SQLite), or in a
// fresh PostgreSQL database with REFIT_TEST_POSTGRES=1.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	cfg := store.Config{Path: filepath.Join(t.TempDir(), "refit.db")}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(t)}
	}
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st := openStore(t)
	f := &fixture{st: st}
	var err error
	f.l, err = lifecycle.New(context.Background(), lifecycle.Config{Store: st, Executor: noExecutor{}, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// jobs returns the run IDs of the jobs in the queue, in insertion order.
func (f *fixture) jobs(t testing.TB) []int64 {
	t.Helper()
	ids, err := lifecycle.JobRunIDs(context.Background(), f.l)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// jobOf returns the job that owns a run.
func (f *fixture) jobOf(t testing.TB, runID int64) int64 {
	t.Helper()
	var id int64
	if err := f.st.DB().QueryRow(`SELECT job_id FROM runs WHERE id = $1`, runID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// addTask stores a task whose Dockerfile is df.
func (f *fixture) addTask(t testing.TB, spec task.Spec, df string) {
	t.Helper()
	res, err := dockerfile.Parse(strings.NewReader(df), dockerfile.Options{BuildArgs: spec.BuildArgs})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Source.Dir == "" {
		spec.Source.Dir = "/src"
	}
	if _, err := f.st.CreateTask(context.Background(), store.Task{Spec: spec.Defaults(), Bases: res.Bases}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) observe(t testing.TB, ref, top string, plats ...string) lifecycle.Result {
	t.Helper()
	o := index.Observation{Ref: ref, Digest: top, Source: "poll"}
	for i := 0; i+1 < len(plats); i += 2 {
		o.Platforms = append(o.Platforms, store.PlatformDigest{Platform: plats[i], Digest: plats[i+1]})
	}
	res, err := f.l.Commit(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (f *fixture) runs(t testing.TB) []store.Run {
	t.Helper()
	rs, err := f.st.ListRuns(context.Background(), store.RunFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(rs)
	return rs
}

func TestWaveOrderAndBlocking(t *testing.T) {
	f := newFixture(t)
	debian := "docker.io/library/debian:12"
	f.addTask(t, task.Spec{Name: "base", Image: "acme/base"}, "FROM debian:12\n")
	f.addTask(t, task.Spec{Name: "python", Image: "acme/python"}, "FROM "+reg+"/acme/base\n")
	f.addTask(t, task.Spec{Name: "app"}, "FROM "+reg+"/acme/python:latest\n")
	f.addTask(t, task.Spec{Name: "tool"}, "FROM debian:12 AS b\nFROM "+reg+"/acme/base:latest\n") // diamond: debian (build) and base (runtime)
	f.addTask(t, task.Spec{Name: "other"}, "FROM alpine\n")

	if res := f.observe(t, debian, "sha256:a", "linux/amd64", "sha256:a1"); len(res.Runs) != 0 || len(res.Changed) != 0 {
		t.Fatalf("first check is a baseline: got %d runs, %d changes", len(res.Runs), len(res.Changed))
	}
	res := f.observe(t, debian, "sha256:b", "linux/amd64", "sha256:b1")
	var order []string
	for _, r := range res.Runs {
		order = append(order, r.Task)
	}
	if want := []string{"base", "python", "tool", "app"}; !slices.Equal(order, want) {
		t.Fatalf("wave order = %v, want %v", order, want)
	}
	runs := f.runs(t)
	byTask := map[string]store.Run{}
	for _, r := range runs {
		byTask[r.Task] = r
	}
	if c := byTask["base"].Cause; c.Kind != "base" || c.OldDigest != "sha256:a1" || c.NewDigest != "sha256:b1" || c.Platform != "linux/amd64" {
		t.Errorf("base cause = %+v", c)
	}
	if b := byTask["python"].BlockedBy; !slices.Equal(b, []int64{byTask["base"].ID}) {
		t.Errorf("python blocked by %v, want base's run", b)
	}
	if b := byTask["app"].BlockedBy; !slices.Equal(b, []int64{byTask["python"].ID}) {
		t.Errorf("app blocked by %v, want python's run", b)
	}
	if _, ok := byTask["other"]; ok {
		t.Error("a task on an unrelated base was planned")
	}
	if jobs := f.jobs(t); !slices.Equal(jobs, []int64{byTask["base"].ID}) {
		t.Errorf("enqueued %v, want only base's run (the rest wait)", jobs)
	}

	// Base succeeds: python and tool are released, app still waits.
	b := byTask["base"]
	b.State, b.Digest = store.StateSucceeded, "sha256:base2"
	if err := lifecycle.Finish(context.Background(), f.l, b); err != nil {
		t.Fatal(err)
	}
	if want, jobs := []int64{b.ID, byTask["python"].ID, byTask["tool"].ID}, f.jobs(t); !slices.Equal(jobs, want) {
		t.Errorf("after base succeeded, enqueued %v, want %v", jobs, want)
	}
	// Python fails: app is canceled and says why.
	p := byTask["python"]
	p.State = store.StateFailed
	if err := lifecycle.Finish(context.Background(), f.l, p); err != nil {
		t.Fatal(err)
	}
	app, _ := f.st.GetRun(context.Background(), byTask["app"].ID)
	if app.State != store.StateCanceled || !strings.Contains(app.Error, store.FormatRunID(p.ID)) {
		t.Errorf("app after python failed: %s %q, want canceled naming %s", app.State, app.Error, store.FormatRunID(p.ID))
	}
}

func TestCoalescingAndIdempotency(t *testing.T) {
	f := newFixture(t)
	ref := "docker.io/library/debian:12"
	f.addTask(t, task.Spec{Name: "a"}, "FROM debian:12\n")
	f.observe(t, ref, "sha256:0", "linux/amd64", "sha256:00")
	for i := 1; i <= 5; i++ { // a flapping tag
		f.observe(t, ref, fmt.Sprintf("sha256:%d", i), "linux/amd64", fmt.Sprintf("sha256:%d%d", i, i))
	}
	runs := f.runs(t)
	if len(runs) != 1 {
		t.Fatalf("5 updates while queued: %d runs, want 1", len(runs))
	}
	if c := runs[0].Cause; c.OldDigest != "sha256:00" || c.NewDigest != "sha256:55" {
		t.Errorf("coalesced cause %s → %s, want sha256:00 → sha256:55", c.OldDigest, c.NewDigest)
	}
	// Same digest again: nothing.
	if res := f.observe(t, ref, "sha256:5", "linux/amd64", "sha256:55"); len(res.Changed) != 0 || len(res.Runs) != 0 {
		t.Errorf("identical digest: %d changes, %d runs", len(res.Changed), len(res.Runs))
	}
	// Back to an older digest is a change (once the queued run started).
	r := runs[0]
	if _, err := f.st.StartRun(context.Background(), r.ID, f.jobOf(t, r.ID)); err != nil {
		t.Fatal(err)
	}
	if res := f.observe(t, ref, "sha256:1", "linux/amd64", "sha256:11"); len(res.Runs) != 1 || res.Coalesced != 0 {
		t.Errorf("tag moved back while a run builds: %d runs (%d coalesced), want a new one", len(res.Runs), res.Coalesced)
	}
	// An untracked reference is ignored.
	if res := f.observe(t, "docker.io/library/alpine:3", "sha256:x", "", "sha256:x"); !res.Untracked {
		t.Errorf("untracked ref: %+v", res)
	}
}

func TestScopeAndPlatforms(t *testing.T) {
	f := newFixture(t)
	golang, debian := "docker.io/library/golang:1.23", "docker.io/library/debian:12"
	df := "FROM golang:1.23 AS build\nFROM debian:12\nCOPY --from=build /x /x\n"
	f.addTask(t, task.Spec{Name: "runtime-only"}, df)
	f.addTask(t, task.Spec{Name: "all", Triggers: &task.Triggers{Base: true, BaseScope: "all"}}, df)
	f.addTask(t, task.Spec{Name: "off", Triggers: &task.Triggers{Base: false}}, df)
	f.addTask(t, task.Spec{Name: "arm", Platforms: []string{"linux/arm64"}}, df)
	for _, ref := range []string{golang, debian} {
		f.observe(t, ref, "sha256:0", "linux/amd64", "sha256:a0", "linux/arm64", "sha256:r0")
	}
	names := func(res lifecycle.Result) []string {
		var n []string
		for _, r := range res.Runs {
			n = append(n, r.Task)
		}
		slices.Sort(n)
		return n
	}
	if got := names(f.observe(t, golang, "sha256:1", "linux/amd64", "sha256:a1", "linux/arm64", "sha256:r0")); !slices.Equal(got, []string{"all"}) {
		t.Errorf("build-stage base changed: runs %v, want only the scope=all task", got)
	}
	if got := names(f.observe(t, debian, "sha256:1", "linux/amd64", "sha256:a0", "linux/arm64", "sha256:r1")); !slices.Equal(got, []string{"arm"}) {
		t.Errorf("arm64-only change of the runtime base: runs %v, want only the arm64 task", got)
	}
	if got := names(f.observe(t, debian, "sha256:2", "linux/amd64", "sha256:a2", "linux/arm64", "sha256:r1")); !slices.Equal(got, []string{"all", "runtime-only"}) {
		t.Errorf("amd64 change of the runtime base: runs %v, want all and runtime-only", got)
	}
}

// BenchmarkFanout plans and enqueues the wave of one base shared by N
// tasks, for N = 100 and 1,000, and reports each and their ratio.
func BenchmarkFanout(b *testing.B) {
	per := map[int]time.Duration{}
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				f := newFixture(b)
				for k := 0; k < n; k++ {
					f.addTask(b, task.Spec{Name: fmt.Sprintf("t%04d", k)}, "FROM debian:12\nRUN true\n")
				}
				f.observe(b, "docker.io/library/debian:12", "sha256:0", "linux/amd64", "sha256:00")
				b.StartTimer()
				start := time.Now()
				res := f.observe(b, "docker.io/library/debian:12", "sha256:1", "linux/amd64", "sha256:11")
				per[n] = time.Since(start)
				if jobs := f.jobs(b); len(res.Runs) != n || len(jobs) != n {
					b.Fatalf("planned %d runs, enqueued %d, want %d", len(res.Runs), len(jobs), n)
				}
			}
			b.ReportMetric(float64(per[n].Milliseconds()), "ms/wave")
		})
	}
	if per[100] > 0 {
		b.Logf("fan-out: 100 tasks %v, 1000 tasks %v, ratio %.1f", per[100], per[1000], float64(per[1000])/float64(per[100]))
	}
}

// TestMoveBeforeFirstCheck: a run resolved the base before the index's
// first check; a move after that run is a change, not a baseline.
func TestMoveBeforeFirstCheck(t *testing.T) {
	f := newFixture(t)
	ref := "docker.io/library/debian:12"
	f.addTask(t, task.Spec{Name: "a"}, "FROM debian:12\n")
	if err := f.st.SeedBaseRef(context.Background(), ref, "sha256:built"); err != nil {
		t.Fatal(err)
	}
	res := f.observe(t, ref, "sha256:moved", "linux/amd64", "sha256:m1")
	if len(res.Runs) != 1 {
		t.Fatalf("move after a run resolved the base: %d runs, want 1", len(res.Runs))
	}
	if c := res.Runs[0].Cause; c.OldDigest != "sha256:built" || c.NewDigest != "sha256:m1" {
		t.Errorf("cause %s → %s, want sha256:built → sha256:m1", c.OldDigest, c.NewDigest)
	}
	// Seeding never overwrites what a check saw.
	if err := f.st.SeedBaseRef(context.Background(), ref, "sha256:other"); err != nil {
		t.Fatal(err)
	}
	if b, _ := f.st.GetBaseRef(context.Background(), ref); b.Digest != "sha256:moved" {
		t.Errorf("after a second seed the index says %s, want sha256:moved", b.Digest)
	}
}

// TestGraphFollowsTaskChanges: the planner's cached task graph is rebuilt
// when tasks are created, changed or deleted — a change after each sees
// the tasks as they are now.
func TestGraphFollowsTaskChanges(t *testing.T) {
	f := newFixture(t)
	ref := "docker.io/library/debian:12"
	f.addTask(t, task.Spec{Name: "a"}, "FROM debian:12\n")
	f.observe(t, ref, "sha256:0", "linux/amd64", "sha256:00")
	tasksOf := func(res lifecycle.Result) []string {
		var out []string
		for _, r := range res.Runs {
			out = append(out, r.Task)
		}
		slices.Sort(out)
		return out
	}
	ctx := context.Background()
	release := func() { // end the waiting runs so the next change makes new ones
		t.Helper()
		for _, r := range f.runs(t) {
			if r.State == store.StateQueued {
				if _, err := f.st.DB().Exec(`UPDATE runs SET state = 'succeeded' WHERE id = $1`, r.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	if got := tasksOf(f.observe(t, ref, "sha256:1", "linux/amd64", "sha256:11")); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("first change ran %v, want [a]", got)
	}
	release()
	f.addTask(t, task.Spec{Name: "b"}, "FROM debian:12\n")
	if got := tasksOf(f.observe(t, ref, "sha256:2", "linux/amd64", "sha256:22")); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("after creating b: %v, want [a b]", got)
	}
	release()
	res, err := dockerfile.Parse(strings.NewReader("FROM alpine:3\n"), dockerfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.SetTaskBases(ctx, "b", res.Bases); err != nil { // b now builds on alpine
		t.Fatal(err)
	}
	if got := tasksOf(f.observe(t, ref, "sha256:3", "linux/amd64", "sha256:33")); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after b moved to alpine: %v, want [a]", got)
	}
	release()
	if err := f.st.DeleteTask(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := tasksOf(f.observe(t, ref, "sha256:4", "linux/amd64", "sha256:44")); len(got) != 0 {
		t.Fatalf("after deleting a: %v, want none", got)
	}
}

// BenchmarkObserveAtScale: a change of one of 2,000 references with
// 10,000 tasks, planned with the task graph built (cold: the task set
// just changed) and cached (warm).
func BenchmarkObserveAtScale(b *testing.B) {
	f := newFixture(b)
	const tasks, refs = 10000, 2000
	for k := range tasks {
		f.addTask(b, task.Spec{Name: fmt.Sprintf("t%05d", k)}, fmt.Sprintf("FROM registry.example/base%04d:1\nRUN true\n", k%refs))
	}
	ref := func(i int) string { return fmt.Sprintf("registry.example/base%04d:1", i) }
	for i := range refs {
		f.observe(b, ref(i), "sha256:0", "linux/amd64", "sha256:00")
	}
	var cold, warm []time.Duration
	b.ResetTimer()
	for i := range b.N {
		// A task changed: the next change rebuilds the graph.
		if _, err := f.st.DB().Exec(`UPDATE tasks SET bases = bases || ' ' WHERE name = 't00000'`); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if res := f.observe(b, ref(2*i%refs), fmt.Sprintf("sha256:c%d", i), "linux/amd64", fmt.Sprintf("sha256:c%d", i)); len(res.Runs) != tasks/refs {
			b.Fatalf("cold: %d runs, want %d", len(res.Runs), tasks/refs)
		}
		cold = append(cold, time.Since(start))
		start = time.Now()
		if res := f.observe(b, ref((2*i+1)%refs), fmt.Sprintf("sha256:w%d", i), "linux/amd64", fmt.Sprintf("sha256:w%d", i)); len(res.Runs) != tasks/refs {
			b.Fatalf("warm: %d runs, want %d", len(res.Runs), tasks/refs)
		}
		warm = append(warm, time.Since(start))
	}
	slices.Sort(cold)
	slices.Sort(warm)
	c, w := cold[len(cold)/2], warm[len(warm)/2]
	b.ReportMetric(float64(c.Microseconds())/1000, "ms-cold")
	b.ReportMetric(float64(w.Microseconds())/1000, "ms-warm")
	b.Logf("%d tasks, %d references: one change planned in %v with the graph rebuilt, %v with it cached (ratio %.1f)",
		tasks, refs, c, w, float64(c)/float64(w))
}

// TestBaseUpdatedBeforeItsRuns: a consumer reading the outbox in order
// sees each base.updated before the run.queued events of the runs it
// caused (matched by the run's cause.observation), cascades included.
func TestBaseUpdatedBeforeItsRuns(t *testing.T) {
	f := newFixture(t)
	debian := "docker.io/library/debian:12"
	f.addTask(t, task.Spec{Name: "base", Image: "acme/base"}, "FROM debian:12\n")
	f.addTask(t, task.Spec{Name: "app"}, "FROM "+reg+"/acme/base:latest\n")
	f.addTask(t, task.Spec{Name: "tool"}, "FROM debian:12\n")
	f.observe(t, debian, "sha256:a", "linux/amd64", "sha256:a1")
	res := f.observe(t, debian, "sha256:b", "linux/amd64", "sha256:b1")
	if len(res.Runs) != 3 || len(res.Changed) != 1 {
		t.Fatalf("update queued %d runs with %d changes, want 3 runs, 1 change", len(res.Runs), len(res.Changed))
	}
	evs, err := f.st.ListEvents(context.Background(), store.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	updatedAt := map[int64]int64{} // observation → seq of its base.updated
	queued := 0
	for _, e := range evs {
		switch e.Type {
		case store.EventBaseUpdated:
			var d lifecycle.BaseUpdated
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			updatedAt[d.ID] = e.Seq
			if want := []string{"base", "tool", "app"}; !slices.Equal(d.Tasks, want) {
				t.Errorf("base.updated names tasks %v, want %v", d.Tasks, want)
			}
		case store.EventRunQueued:
			queued++
			var d store.RunEvent
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			obs := d.Cause.Observation
			if d.Cause.Upstream != nil {
				obs = d.Cause.Upstream.Observation
			}
			if _, ok := updatedAt[obs]; !ok || obs == 0 {
				t.Errorf("run.queued of %s (%s, seq %d) comes before the base.updated of observation %d that caused it",
					d.ID, d.Task, e.Seq, obs)
			}
		}
	}
	if queued != 3 || len(updatedAt) != 1 {
		t.Errorf("outbox holds %d run.queued and %d base.updated, want 3 and 1", queued, len(updatedAt))
	}
}

// TestRunsQueuedMetric: refit_runs_queued_total counts every committed
// run by cause kind — manual, a base update's wave, a cascade — and
// none of a transaction that rolled back.
func TestRunsQueuedMetric(t *testing.T) {
	f := newFixture(t)
	metrics := prometheus.NewRegistry()
	f.st.OnRunQueued(lifecycle.NewMetrics(metrics).RunQueued)
	ctx := context.Background()
	debian := "docker.io/library/debian:12"
	f.addTask(t, task.Spec{Name: "base", Image: "acme/base"}, "FROM debian:12\n")
	f.addTask(t, task.Spec{Name: "app"}, "FROM "+reg+"/acme/base:latest\n")
	f.addTask(t, task.Spec{Name: "tool"}, "FROM debian:12\n")

	tk, err := f.st.GetTask(ctx, "base")
	if err != nil {
		t.Fatal(err)
	}
	manual, err := f.l.Queue(ctx, "base", store.Cause{Kind: "manual", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	f.observe(t, debian, "sha256:a", "linux/amd64", "sha256:a1")
	f.observe(t, debian, "sha256:b", "linux/amd64", "sha256:b1")

	// A run created in a transaction that rolls back is not counted.
	boom := errors.New("boom")
	err = f.st.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.CreateRun(store.Run{Task: "tool", Spec: tk.Spec, Cause: store.Cause{Kind: "manual", User: "bob"}}, nil); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("rolled-back transaction: %v", err)
	}

	// The manual run of base succeeds: app, built on it, cascades.
	manual.State, manual.Digest = store.StateSucceeded, "sha256:base2"
	if err := lifecycle.Finish(ctx, f.l, manual); err != nil {
		t.Fatal(err)
	}

	want := map[string]int{}
	for _, r := range f.runs(t) {
		want[r.Cause.Kind]++
	}
	out, err := testutil.GatherAndCount(metrics, "refit_runs_queued_total")
	if err != nil || out != len(want) {
		t.Fatalf("refit_runs_queued_total has %d series (%v), want %d (%v)", out, err, len(want), want)
	}
	for _, kind := range []string{"manual", "base", "cascade"} {
		if want[kind] == 0 {
			t.Errorf("the test queued no %s run (runs by kind: %v)", kind, want)
		}
	}
	mfs, err := metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" {
					got[l.GetValue()] = int(m.GetCounter().GetValue())
				}
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("refit_runs_queued_total by kind (-stored runs +counted):\n%s", diff)
	}
}

// noExecutor stands in for the runner where no job is worked.
type noExecutor struct{}

func (noExecutor) Execute(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error) {
	return lifecycle.Outcome{}, errors.New("no executions here")
}

// TestWaveJobsOwnTheirRuns: a wave's jobs, inserted together, each own
// the run their arguments name — the one run whose job_id is theirs —
// for every run that waits for nothing; a run waiting for an upstream
// run has none yet. Each is debounced and may be attempted 5 times, as
// a job inserted alone was.
func TestWaveJobsOwnTheirRuns(t *testing.T) {
	f := newFixture(t)
	debian := "docker.io/library/debian:12"
	for i := range 40 {
		f.addTask(t, task.Spec{Name: fmt.Sprintf("t%02d", i), Image: fmt.Sprintf("acme/t%02d", i)}, "FROM debian:12\n")
	}
	for i := range 10 {
		f.addTask(t, task.Spec{Name: fmt.Sprintf("u%02d", i)}, fmt.Sprintf("FROM %s/acme/t%02d\n", reg, i))
	}
	f.observe(t, debian, "sha256:a", "linux/amd64", "sha256:a1")
	before := time.Now()
	res := f.observe(t, debian, "sha256:b", "linux/amd64", "sha256:b1")
	if len(res.Runs) != 50 {
		t.Fatalf("wave of %d runs, want 50", len(res.Runs))
	}
	jobs, err := lifecycle.JobsByID(context.Background(), f.l)
	if err != nil {
		t.Fatal(err)
	}
	owned := 0
	for _, r := range res.Runs {
		job := f.jobOf(t, r.ID)
		if len(r.BlockedBy) > 0 {
			if job != 0 {
				t.Errorf("run %s of %s waits for %v but has job %d", store.FormatRunID(r.ID), r.Task, r.BlockedBy, job)
			}
			continue
		}
		j, ok := jobs[job]
		switch {
		case !ok:
			t.Errorf("run %s of %s: job %d is not in the queue", store.FormatRunID(r.ID), r.Task, job)
		case j.RunID != r.ID:
			t.Errorf("run %s of %s: its job %d names run %s", store.FormatRunID(r.ID), r.Task, job, store.FormatRunID(j.RunID))
		case j.ScheduledAt.Before(before.Add(29*time.Second)) || j.MaxAttempts != 5:
			t.Errorf("run %s's job: scheduled %s (%s after the commit began), %d attempts; want 30 s debounce, 5 attempts",
				store.FormatRunID(r.ID), j.ScheduledAt, j.ScheduledAt.Sub(before), j.MaxAttempts)
		default:
			owned++
		}
	}
	if owned != 40 || len(jobs) != 40 {
		t.Errorf("%d runs own a job, %d jobs queued; want 40 of each", owned, len(jobs))
	}
}
