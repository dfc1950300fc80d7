package bench

// Benchmarks of the base image index and the planner, against the issue's
// targets (reported, never asserted; see README.md):
//
//   - BenchmarkFanoutRiver: one base shared by N tasks → N runs planned and
//     enqueued with the real River insert into SQLite (N = 100, 1,000).
//   - BenchmarkRequestsPerUnchangedRef: registry requests per unchanged
//     reference per poll interval, with the real watcher and registry client
//     against a local registry.
//   - BenchmarkScale: 10,000 tasks over 2,000 references: RSS after
//     loading and after full poll cycles, and each cycle's wall time
//     against the bound the concurrency limits set.
//   - BenchmarkDetectionLatency: push to the embedded registry → run row
//     committed, median and p99 over 100 pushes, in-process refit.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	_ "modernc.org/sqlite" // the read-only connections below; the store registers it too

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/baseimage"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/index"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/serve"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// ---------------------------------------------------------------------------
// Shared helpers.

// stack is a real store and the real lifecycle (River on the same
// SQLite file, never started: jobs are inserted, not worked), wired as
// internal/serve wires them.
type stack struct {
	st     *store.Store
	runs   *lifecycle.Runs
	dbPath string
}

// noExecutor satisfies the lifecycle; no job is ever worked.
type noExecutor struct{}

func (noExecutor) Execute(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error) {
	return lifecycle.Outcome{}, errors.New("bench: no builds here")
}

func newStack(b *testing.B, registry string, debounce time.Duration) *stack {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	s := &stack{dbPath: filepath.Join(dir, "refit.db")}
	var err error
	if s.st, err = store.Open(ctx, store.Config{Path: s.dbPath}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.st.Close() })
	s.runs, err = lifecycle.New(ctx, lifecycle.Config{
		Store:    s.st,
		Executor: noExecutor{},
		Registry: registry,
		Debounce: debounce,
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// bases parses a Dockerfile the way the API does before storing a task.
func bases(b *testing.B, df string) []dockerfile.Base {
	b.Helper()
	res, err := dockerfile.Parse(strings.NewReader(df), dockerfile.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return res.Bases
}

func (s *stack) addTask(b *testing.B, taskName string, bs []dockerfile.Base) {
	b.Helper()
	spec := task.Spec{Name: taskName, Source: task.Source{Dir: "/src"}}.Defaults()
	if _, err := s.st.CreateTask(context.Background(), store.Task{Spec: spec, Bases: bs}); err != nil {
		b.Fatal(err)
	}
}

// timedObserver times the observer's commits (the lifecycle's write
// transaction, serialized on the store's one writer connection).
type timedObserver struct {
	next  index.Observer
	n     atomic.Int64
	total atomic.Int64 // ns
}

func (o *timedObserver) Observe(ctx context.Context, obs index.Observation) (int, error) {
	t0 := time.Now()
	n, err := o.next.Observe(ctx, obs)
	o.total.Add(int64(time.Since(t0)))
	o.n.Add(1)
	return n, err
}

// timedChecker counts and times checks and sums the requests they report.
type timedChecker struct {
	next     *regclient.Client
	n        atomic.Int64
	errs     atomic.Int64
	requests atomic.Int64
	total    atomic.Int64 // ns, including the wait for a per-registry slot
}

func (c *timedChecker) Check(ctx context.Context, ref string, known regclient.Result) (regclient.Result, error) {
	t0 := time.Now()
	res, err := c.next.Check(ctx, ref, known)
	c.total.Add(int64(time.Since(t0)))
	c.n.Add(1)
	c.requests.Add(int64(res.Requests))
	if err != nil {
		c.errs.Add(1)
	}
	return res, err
}

func (c *timedChecker) reset() {
	c.n.Store(0)
	c.errs.Store(0)
	c.requests.Store(0)
	c.total.Store(0)
}

// openRO opens the SQLite file read-only, beside the store's own pools.
func openRO(b *testing.B, path string) *sql.DB {
	b.Helper()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "query_only(1)")
	q.Set("mode", "ro")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { db.Close() })
	return db
}

func queryInt(b *testing.B, db *sql.DB, q string, args ...any) int {
	b.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		b.Fatalf("%s: %v", q, err)
	}
	return n
}

// sqlTime formats t as the store does, so stored times compare as text.
func sqlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }

// memStatus returns VmRSS and VmHWM (peak RSS) of this process in bytes,
// after a GC.
func memStatus(b *testing.B) (rss, hwm int64) {
	b.Helper()
	runtime.GC()
	body, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v) // "123456 kB"
		n, _ := strconv.ParseInt(f[0], 10, 64)
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func heapInuse() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// regCounter counts the requests a registry answers, by method and kind
// (ping, manifest, blob), manifest requests also per path, and the TCP
// connections opened to it.
type regCounter struct {
	next  http.Handler
	conns atomic.Int64

	mu      sync.Mutex
	kinds   map[string]int // "HEAD manifest", "GET ping", ...
	perPath map[string]int // "HEAD /v2/x/manifests/1"
}

func (c *regCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := "other"
	switch {
	case r.URL.Path == "/v2/" || r.URL.Path == "/v2":
		kind = "ping"
	case strings.Contains(r.URL.Path, "/manifests/"):
		kind = "manifest"
	case strings.Contains(r.URL.Path, "/blobs/"):
		kind = "blob"
	}
	c.mu.Lock()
	c.kinds[r.Method+" "+kind]++
	if kind == "manifest" {
		c.perPath[r.Method+" "+r.URL.Path]++
	}
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

func (c *regCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kinds, c.perPath = map[string]int{}, map[string]int{}
	c.conns.Store(0)
}

func (c *regCounter) snapshot() (kinds, perPath map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kinds, perPath = map[string]int{}, map[string]int{}
	for k, v := range c.kinds {
		kinds[k] = v
	}
	for k, v := range c.perPath {
		perPath[k] = v
	}
	return kinds, perPath
}

// startRegistry serves go-containerregistry's in-memory registry on
// loopback behind a counter and returns it with its host:port.
func startRegistry(b *testing.B) (*regCounter, string) {
	b.Helper()
	cnt := &regCounter{next: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}
	cnt.reset()
	srv := httptest.NewUnstartedServer(cnt)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			cnt.conns.Add(1)
		}
	}
	srv.Start()
	b.Cleanup(srv.Close)
	return cnt, strings.TrimPrefix(srv.URL, "http://")
}

// pushTags writes img to the first reference and tags it as all others
// (the in-memory registry keeps blobs across repositories). It returns
// the image's digest.
func pushTags(b *testing.B, img v1.Image, refs []string) string {
	b.Helper()
	for i, r := range refs {
		n, err := name.ParseReference(r)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			err = remote.Write(n, img)
		} else {
			err = remote.Tag(n.(name.Tag), img)
		}
		if err != nil {
			b.Fatalf("pushing %s: %v", r, err)
		}
	}
	d, err := img.Digest()
	if err != nil {
		b.Fatal(err)
	}
	return d.String()
}

// anonymous resolves every registry to anonymous access, so the
// benchmarks do not depend on the host's Docker config.
var anonymous = authn.NewMultiKeychain()

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	// Nearest rank.
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func envInt(b *testing.B, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", key, v)
	}
	return n
}

// waitUntil polls cond every step until it holds or timeout passes.
func waitUntil(b *testing.B, what string, timeout, step time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(step)
	}
}

// ---------------------------------------------------------------------------
// 1. Fan-out with the real queue.

// BenchmarkFanoutRiver times one lifecycle Commit of a changed digest of a
// base shared by N tasks (N = 100 and 1,000): the observation, N run rows
// and N River jobs inserted in the same SQLite transaction, committed.
// Each size is measured REFIT_BENCH_FANOUT_REPS times (default 3), each in
// a fresh store; the median is reported.
func BenchmarkFanoutRiver(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark against a real store and queue")
	}
	reps := envInt(b, "REFIT_BENCH_FANOUT_REPS", 3)
	const ref = "docker.io/library/debian:12"
	bs := bases(b, "FROM debian:12\n")
	type result struct {
		waves, graph, order []time.Duration
		setup               time.Duration
	}
	res := map[int]*result{}
	var w strings.Builder
	for _, n := range []int{100, 1000} {
		r := &result{}
		res[n] = r
		for rep := range reps {
			t0 := time.Now()
			s := newStack(b, "127.0.0.1:5000", 0) // the default debounce: jobs are scheduled 30 s ahead
			for k := range n {
				s.addTask(b, fmt.Sprintf("t%04d", k), bs)
			}
			ctx := context.Background()
			base := index.Observation{Ref: ref, Digest: "sha256:0", Source: "poll",
				Platforms: []store.PlatformDigest{{Platform: "linux/amd64", Digest: "sha256:00"}}}
			if out, err := s.runs.Commit(ctx, base); err != nil || len(out.Runs) != 0 {
				b.Fatalf("baseline: %d runs, %v", len(out.Runs), err)
			}
			r.setup += time.Since(t0)
			change := index.Observation{Ref: ref, Digest: "sha256:1", Source: "poll",
				Platforms: []store.PlatformDigest{{Platform: "linux/amd64", Digest: "sha256:11"}}}
			start := time.Now()
			out, err := s.runs.Commit(ctx, change)
			wave := time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			db := openRO(b, s.dbPath)
			runs := queryInt(b, db, `SELECT COUNT(*) FROM runs`)
			withJob := queryInt(b, db, `SELECT COUNT(*) FROM runs WHERE job_id IS NOT NULL AND job_id <> 0`)
			jobs := queryInt(b, db, `SELECT COUNT(*) FROM river_job`)
			scheduled := queryInt(b, db, `SELECT COUNT(*) FROM river_job WHERE state = 'scheduled'`)
			if len(out.Runs) != n || runs != n || withJob != n || jobs != n {
				b.Fatalf("N=%d: planned %d runs, %d run rows (%d with a job), %d river_job rows; want %d of each",
					n, len(out.Runs), runs, withJob, jobs, n)
			}
			// The planner's in-memory part, alone: the graph of the N
			// tasks and the wave's order.
			tasks, err := s.st.ListTasks(ctx)
			if err != nil {
				b.Fatal(err)
			}
			var direct []plan.Trigger
			for _, t := range tasks {
				direct = append(direct, plan.Trigger{Task: t.Spec.Name})
			}
			g0 := time.Now()
			g := plan.NewGraph(tasks, "127.0.0.1:5000")
			graph := time.Since(g0)
			g0 = time.Now()
			if order, _ := g.Wave(direct); len(order) != n {
				b.Fatalf("wave of %d tasks orders %d", n, len(order))
			}
			r.graph = append(r.graph, graph)
			r.order = append(r.order, time.Since(g0))
			r.waves = append(r.waves, wave)
			fmt.Fprintf(&w, "N=%-5d rep %d: wave %8s, %d runs, %d river_job rows (%d scheduled)\n",
				n, rep+1, ms(wave), runs, jobs, scheduled)
		}
	}
	m100, m1000 := median(res[100].waves), median(res[1000].waves)
	ratio := float64(m1000) / float64(m100)
	fmt.Fprintf(&w, "median wave: N=100 %s, N=1000 %s; ratio 1000/100 = %.2f (linear = 10)\n", ms(m100), ms(m1000), ratio)
	fmt.Fprintf(&w, "per run at N=1000: %.2f ms (wave)\n", float64(m1000)/1e6/1000)
	for _, n := range []int{100, 1000} {
		fmt.Fprintf(&w, "planner in memory at N=%d (median): NewGraph %s, Graph.Wave %s\n", n,
			median(res[n].graph).Round(10*time.Microsecond), median(res[n].order).Round(10*time.Microsecond))
	}
	fmt.Fprintf(&w, "setup (tasks created + baseline): N=100 %s, N=1000 %s for %d reps\n", ms(res[100].setup), ms(res[1000].setup), reps)
	fmt.Fprintf(&w, "(target: 1,000 runs planned and enqueued < 1 s; reported, not enforced)\n")
	logReport(b, w.String())
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(m100)/1e6, "ms/wave-100")
	b.ReportMetric(float64(m1000)/1e6, "ms/wave-1000")
	b.ReportMetric(ratio, "ratio-1000/100")
}

// ---------------------------------------------------------------------------
// 2. Requests per unchanged reference per interval.

// BenchmarkRequestsPerUnchangedRef runs the real watcher (real registry
// client, store and planner) over N references (REFIT_BENCH_REFS, default
// 50) in a local registry that never changes, with a 1 s interval, and counts the
// registry's manifest HEAD and GET requests over REFIT_BENCH_INTERVALS
// intervals (default 6) after every reference's first check.
//
// The watcher's Tick (how often it looks for due references; 1 s in
// `refit serve`) is set to 50 ms here: with a 1 s interval a 1 s tick
// would round every check up to the next tick and so measure the tick,
// not the interval. With the default 5 min interval the tick's rounding
// is < 0.4 %.
func BenchmarkRequestsPerUnchangedRef(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark with a real watcher and a local registry")
	}
	n := envInt(b, "REFIT_BENCH_REFS", 50)
	intervals := envInt(b, "REFIT_BENCH_INTERVALS", 6)
	const interval = time.Second
	cnt, host := startRegistry(b)
	var refs []string
	for i := range n {
		refs = append(refs, fmt.Sprintf("%s/req/r%03d:1", host, i))
	}
	img, err := baseimage.Busybox()
	if err != nil {
		b.Fatal(err)
	}
	digest := pushTags(b, img, refs)

	s := newStack(b, host, 0)
	for i, r := range refs {
		s.addTask(b, fmt.Sprintf("t%03d", i), bases(b, "FROM "+r+"\n"))
	}
	ck := &timedChecker{next: regclient.New(regclient.Config{Keychain: anonymous, Insecure: []string{host}})}
	w, err := index.NewWatcher(index.WatcherConfig{
		Store:    s.st,
		Checker:  ck,
		Observer: s.runs,
		Interval: interval,
		Tick:     50 * time.Millisecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	db := openRO(b, s.dbPath)
	waitUntil(b, "every reference's first check", time.Minute, 20*time.Millisecond, func() bool {
		return queryInt(b, db, `SELECT COUNT(*) FROM base_refs WHERE digest = $1`, digest) == n
	})
	// Let the first checks' follow-ups (set half an interval or more
	// ahead) start from a clean window.
	time.Sleep(interval / 4)
	cnt.reset()
	ck.reset()
	t0 := time.Now()
	b.ResetTimer()
	time.Sleep(time.Duration(intervals) * interval)
	b.StopTimer()
	elapsed := time.Since(t0)
	kinds, perPath := cnt.snapshot()
	checks, reqs, errs := ck.n.Load(), ck.requests.Load(), ck.errs.Load()
	conns := cnt.conns.Load()

	cancel()
	<-done
	if got := queryInt(b, db, `SELECT COUNT(*) FROM runs`); got != 0 {
		b.Errorf("%d runs planned for unchanged references", got)
	}
	if got := queryInt(b, db, `SELECT COUNT(*) FROM observations`); got != n {
		b.Errorf("%d observations, want %d (the baselines only)", got, n)
	}
	var headPerRef []int
	for _, r := range refs {
		ref, _ := name.ParseReference(r)
		headPerRef = append(headPerRef, perPath["HEAD /v2/"+ref.Context().RepositoryStr()+"/manifests/1"])
	}
	slices.Sort(headPerRef)
	ivs := elapsed.Seconds() / interval.Seconds()
	heads, gets := kinds["HEAD manifest"], kinds["GET manifest"]
	total := 0
	for _, v := range kinds {
		total += v
	}
	var out strings.Builder
	fmt.Fprintf(&out, "%d unchanged references, interval %s, window %s (%.2f intervals), tick 50ms\n", n, interval, ms(elapsed), ivs)
	fmt.Fprintf(&out, "registry saw: %v; %d new TCP connections\n", kinds, conns)
	fmt.Fprintf(&out, "manifest HEADs per ref per interval: %.3f (target 1); per ref over the window min %d / median %d / max %d\n",
		float64(heads)/float64(n)/ivs, headPerRef[0], headPerRef[len(headPerRef)/2], headPerRef[len(headPerRef)-1])
	fmt.Fprintf(&out, "manifest GETs: %d (target 0); all requests per ref per interval %.3f\n", gets, float64(total)/float64(n)/ivs)
	fmt.Fprintf(&out, "checks %d (%.3f per ref per interval), %d failed; requests per check: registry %.3f, client's own count %.3f\n",
		checks, float64(checks)/float64(n)/ivs, errs, float64(total)/float64(max(checks, 1)), float64(reqs)/float64(max(checks, 1)))
	fmt.Fprintf(&out, "new TCP connections per check: %.3f\n", float64(conns)/float64(max(checks, 1)))
	logReport(b, out.String())
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(heads)/float64(n)/ivs, "HEAD/ref/interval")
	b.ReportMetric(float64(gets)/float64(n)/ivs, "GET/ref/interval")
	b.ReportMetric(float64(total)/float64(max(checks, 1)), "req/check")
	b.ReportMetric(float64(conns)/float64(max(checks, 1)), "conns/check")
}

// ---------------------------------------------------------------------------
// 3. Scale.

// BenchmarkScale loads REFIT_BENCH_SCALE_TASKS tasks (default 10,000) over
// REFIT_BENCH_SCALE_REFS references (default 2,000, each its own
// repository in a local registry) into one store, then runs the real
// watcher configured as `refit serve` configures it (Concurrency 8, Tick
// 1 s, registry client PerRegistry 4) for one full poll cycle of first
// checks and then one cycle of unchanged references with a 10 ms tick, to separate
// the watcher's dispatch from the checks and commits themselves
// (REFIT_BENCH_SCALE_SERVED=1 adds that cycle with the served 1 s tick). It reports
// RSS (VmRSS after runtime.GC, and the peak VmHWM) at each stage and each
// cycle's wall time against refs × (time of one check) / concurrency.
func BenchmarkScale(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark with 10,000 tasks")
	}
	nTasks := envInt(b, "REFIT_BENCH_SCALE_TASKS", 10000)
	nRefs := envInt(b, "REFIT_BENCH_SCALE_REFS", 2000)
	const (
		concurrency = 8 // index.WatcherConfig default, as serve leaves it
		perRegistry = 4 // regclient.Config default
		tick        = time.Second
	)
	ctx := context.Background()
	var out strings.Builder
	logf := func(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }
	rss0, _ := memStatus(b)
	logf("RSS at start: %s (heap in use %s)", mib(rss0), mib(heapInuse()))

	// Registry with one tag per reference.
	cnt, host := startRegistry(b)
	refs := make([]string, nRefs)
	for i := range refs {
		refs[i] = fmt.Sprintf("%s/scale/r%05d:1", host, i)
	}
	img, err := baseimage.Busybox()
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	digest := pushTags(b, img, refs)
	logf("registry: %d tags pushed in %s", nRefs, ms(time.Since(t0)))

	// Tasks: parse one Dockerfile per reference, store nTasks tasks round-robin.
	s := newStack(b, host, 0)
	t0 = time.Now()
	parsed := make([][]dockerfile.Base, nRefs)
	for i, r := range refs {
		parsed[i] = bases(b, "FROM "+r+"\nRUN true\n")
	}
	parse := time.Since(t0)
	t0 = time.Now()
	for i := range nTasks {
		s.addTask(b, fmt.Sprintf("t%05d", i), parsed[i%nRefs])
	}
	create := time.Since(t0)
	logf("tasks: %d Dockerfiles parsed in %s (%.0f µs each); %d tasks created in %s (%.2f ms each, one store transaction each)",
		nRefs, ms(parse), float64(parse.Microseconds())/float64(nRefs), nTasks, ms(create), float64(create)/1e6/float64(nTasks))
	t0 = time.Now()
	all, err := s.st.ListTasks(ctx)
	if err != nil || len(all) != nTasks {
		b.Fatalf("listing tasks: %d, %v", len(all), err)
	}
	logf("ListTasks (what the watcher's sync and every planned change read): %s for %d tasks", ms(time.Since(t0)), len(all))
	all = nil
	db := openRO(b, s.dbPath)
	if got := queryInt(b, db, `SELECT COUNT(*) FROM base_refs`); got != nRefs {
		b.Fatalf("%d tracked references, want %d", got, nRefs)
	}
	rssLoaded, hwmLoaded := memStatus(b)
	logf("RSS after loading: %s (peak %s, heap in use %s)", mib(rssLoaded), mib(hwmLoaded), mib(heapInuse()))

	// The time one check takes, alone: a separate registry client (own sessions)
	// checking a sample of references one after the other, first (new
	// session per repository, full description) and then unchanged.
	sample := refs[:min(50, nRefs)]
	solo := regclient.New(regclient.Config{Keychain: anonymous, Insecure: []string{host}})
	known := map[string]regclient.Result{}
	t0 = time.Now()
	for _, r := range sample {
		res, err := solo.Check(ctx, r, regclient.Result{})
		if err != nil {
			b.Fatal(err)
		}
		known[r] = res
	}
	oneFirst := time.Since(t0) / time.Duration(len(sample))
	t0 = time.Now()
	for _, r := range sample {
		if _, err := solo.Check(ctx, r, known[r]); err != nil {
			b.Fatal(err)
		}
	}
	oneUnchanged := time.Since(t0) / time.Duration(len(sample))
	logf("one check alone (mean of %d, sequential): first %s, unchanged %s", len(sample), oneFirst, oneUnchanged)

	// The watcher, as serve wires it.
	ck := &timedChecker{next: regclient.New(regclient.Config{Keychain: anonymous, Insecure: []string{host}})}
	obs := &timedObserver{next: s.runs}
	startWatcher := func(tick time.Duration) (*index.Watcher, func()) {
		w, err := index.NewWatcher(index.WatcherConfig{
			Store: s.st, Checker: ck, Observer: obs, Tick: tick, // Interval: serve's 5 min default
		})
		if err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); w.Run(wctx) }()
		return w, func() { cancel(); <-done }
	}
	type cycle struct {
		label      string
		wall       time.Duration
		one        time.Duration // one check alone, for the bound
		tick       time.Duration
		checks     int64
		meanCheck  time.Duration // in the watcher, slot wait included
		meanCommit time.Duration
		kinds      map[string]int
		conns      int64
		errs       int
	}
	var cycles []cycle
	// runCycle waits until every reference was checked at or after since.
	runCycle := func(label string, tick, one time.Duration, since time.Time, kick func()) {
		cnt.reset()
		ck.reset()
		obs.n.Store(0)
		obs.total.Store(0)
		t0 := time.Now()
		kick()
		waitUntil(b, label, 10*time.Minute, 25*time.Millisecond, func() bool {
			return queryInt(b, db, `SELECT COUNT(*) FROM base_refs WHERE checked_at >= $1`, sqlTime(since)) == nRefs
		})
		c := cycle{label: label, wall: time.Since(t0), one: one, tick: tick, checks: ck.n.Load(), conns: cnt.conns.Load(),
			errs: queryInt(b, db, `SELECT COUNT(*) FROM base_refs WHERE failures > 0`)}
		c.kinds, _ = cnt.snapshot()
		if c.checks > 0 {
			c.meanCheck = time.Duration(ck.total.Load() / c.checks)
		}
		if n := obs.n.Load(); n > 0 {
			c.meanCommit = time.Duration(obs.total.Load() / n)
		}
		cycles = append(cycles, c)
	}

	// Cycle 1: every reference's first check (they are due since creation).
	var stop func()
	runCycle("cycle 1: first checks, tick 1s (as served)", tick, oneFirst, time.Now().Add(-time.Hour), func() {
		_, stop = startWatcher(tick)
	})
	if got := queryInt(b, db, `SELECT COUNT(*) FROM base_refs WHERE digest = $1`, digest); got != nRefs {
		b.Errorf("after the first cycle %d of %d references have the digest", got, nRefs)
	}
	stop()
	rss1, hwm1 := memStatus(b)
	logf("RSS after cycle 1: %s (peak %s, heap in use %s)", mib(rss1), mib(hwm1), mib(heapInuse()))

	// The time one commit of an unchanged check takes, alone (the
	// planner's transaction: read the reference, save the check): every
	// commit goes through the store's one writer connection, so a cycle
	// cannot be shorter than refs × this.
	t0 = time.Now()
	for _, r := range sample {
		o := index.Observation{Ref: r, Digest: known[r].Digest, MediaType: known[r].MediaType, Source: "poll", Next: time.Now().Add(5 * time.Minute)}
		for _, p := range known[r].Platforms {
			o.Platforms = append(o.Platforms, store.PlatformDigest{Platform: p.Platform, Digest: p.Digest})
		}
		if _, err := s.runs.Observe(ctx, o); err != nil {
			b.Fatal(err)
		}
	}
	oneCommit := time.Since(t0) / time.Duration(len(sample))
	logf("one unchanged check's commit alone (mean of %d, sequential): %s", len(sample), oneCommit)

	hintAll := func(w func()) func() {
		return func() {
			if n, _, err := s.st.HintRefs(ctx, slices.Clone(refs), "", ""); err != nil || n != nRefs {
				b.Fatalf("hinting %d references: %d tracked, %v", nRefs, n, err)
			}
			w()
		}
	}
	// Cycle 2: all unchanged, all made due at once (as a hint does), with
	// a 10 ms tick: the watcher's dispatch no longer waits for ticks, only
	// for the concurrency limits, the checks and the commits.
	const fastTick = 10 * time.Millisecond
	w2, stop2 := startWatcher(fastTick)
	runCycle("cycle 2: unchanged, tick 10ms (diagnostic)", fastTick, oneUnchanged, time.Now(), hintAll(w2.Wake))
	stop2()
	rss2, hwm2 := memStatus(b)
	logf("RSS after cycle 2: %s (peak %s, heap in use %s)", mib(rss2), mib(hwm2), mib(heapInuse()))

	// Cycle 3 (REFIT_BENCH_SCALE_SERVED=1; another minute at 2,000 refs):
	// the same with the served 1 s tick.
	if os.Getenv("REFIT_BENCH_SCALE_SERVED") != "" {
		w3, stop3 := startWatcher(tick)
		runCycle("cycle 3: unchanged, tick 1s (as served)", tick, oneUnchanged, time.Now(), hintAll(w3.Wake))
		stop3()
	}

	// One change of one reference in the loaded store (the planner reads
	// every task to build its graph: cold), then one of another reference
	// (the graph is cached: warm).
	nDeps := nTasks / nRefs
	if nTasks%nRefs > 0 {
		nDeps++
	}
	t0 = time.Now()
	res, err := s.runs.Commit(ctx, index.Observation{Ref: refs[0], Digest: "sha256:changed", Source: "poll",
		Platforms: []store.PlatformDigest{{Platform: task.HostPlatform(), Digest: "sha256:changed"}}})
	change := time.Since(t0)
	if err != nil || len(res.Runs) != nDeps {
		b.Errorf("a change of %s: %d runs (%v), want %d", refs[0], len(res.Runs), err, nDeps)
	}
	warmDeps := nTasks / nRefs // tasks are spread round-robin
	if nTasks%nRefs > 1 {
		warmDeps++
	}
	t0 = time.Now()
	res2, err := s.runs.Commit(ctx, index.Observation{Ref: refs[1], Digest: "sha256:changed2", Source: "poll",
		Platforms: []store.PlatformDigest{{Platform: task.HostPlatform(), Digest: "sha256:changed2"}}})
	warm := time.Since(t0)
	if err != nil || len(res2.Runs) != warmDeps {
		b.Errorf("a change of %s: %d runs (%v), want %d", refs[1], len(res2.Runs), err, warmDeps)
	}
	rss3, hwm3 := memStatus(b)

	eff := min(concurrency, perRegistry)
	for _, c := range cycles {
		bound := time.Duration(int64(c.one) * int64(nRefs) / int64(eff))
		tickCap := time.Duration(int64(c.tick) * int64((nRefs+4*concurrency-1)/(4*concurrency)))
		reqs := 0
		for _, v := range c.kinds {
			reqs += v
		}
		logf("%s: %s for %d refs (%.0f checks/s), %d checks, %d failed refs", c.label, ms(c.wall), nRefs,
			float64(nRefs)/c.wall.Seconds(), c.checks, c.errs)
		logf("    bound refs × one check / min(Concurrency %d, PerRegistry %d) = %d × %s / %d = %s → wall/bound %.2f",
			concurrency, perRegistry, nRefs, c.one, eff, ms(bound), float64(c.wall)/float64(bound))
		logf("    writer bound refs × one unchanged commit = %s → wall/writer bound %.2f",
			ms(oneCommit*time.Duration(nRefs)), float64(c.wall)/float64(oneCommit*time.Duration(nRefs)))
		logf("    dispatch cap ceil(refs / (4 × Concurrency)) × tick = %s → wall/cap %.2f", ms(tickCap), float64(c.wall)/float64(tickCap))
		logf("    in the watcher: mean check %s (slot wait included), mean commit %s (Σ commits %s, serialized on the writer)",
			c.meanCheck, c.meanCommit, ms(c.meanCommit*time.Duration(c.checks)))
		logf("    registry: %d requests (%.2f per ref) %v, %d new TCP connections", reqs, float64(reqs)/float64(nRefs), c.kinds, c.conns)
	}
	logf("one changed reference in the loaded store: Observe %s (%d runs, all %d tasks read and decoded into the graph); another: %s (%d runs, graph cached) → cold/warm %.0f",
		ms(change), len(res.Runs), nTasks, ms(warm), len(res2.Runs), float64(change)/float64(warm))
	logf("RSS after the change: %s (peak %s)", mib(rss3), mib(hwm3))
	logf("(target: RSS ≤ 256 MiB with 10,000 tasks / 2,000 refs; reported, not enforced)")
	logReport(b, out.String())
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(rssLoaded)/(1<<20), "MiB-rss-loaded")
	b.ReportMetric(float64(max(rss1, rss2))/(1<<20), "MiB-rss-cycle")
	b.ReportMetric(float64(max(hwm1, hwm2, hwm3))/(1<<20), "MiB-peak")
	for i, c := range cycles {
		b.ReportMetric(c.wall.Seconds(), fmt.Sprintf("s-cycle%d", i+1))
	}
	b.ReportMetric(create.Seconds(), "s-create-tasks")
}

// ---------------------------------------------------------------------------
// 4. Detection latency.

// BenchmarkDetectionLatency pushes REFIT_BENCH_PUSHES (default 100)
// patched bases to the embedded registry of an in-process refit (Debounce
// -1, PollInterval 1 h: detection comes from the push only) whose one task
// builds FROM that base, and measures, per push, from remote.Write
// returning (the manifest PUT answered) to the run's row being committed
// (polled read-only from the SQLite file every 1 ms). It waits for each
// run to end before the next push, so the queue is idle at each push.
func BenchmarkDetectionLatency(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark: needs buildkitd and runc (make deps)")
	}
	pushes := envInt(b, "REFIT_BENCH_PUSHES", 100)
	root, err := moduleRoot()
	if err != nil {
		b.Fatal(err)
	}
	var binary string
	if p := filepath.Join(root, "bin", "buildkitd"); fileExists(p) {
		binary = p
	}
	ctx, cancel := context.WithCancel(context.Background())
	data := b.TempDir()
	srv, err := serve.Start(ctx, serve.Config{
		DataDir:        data,
		Listen:         "127.0.0.1:0",
		RegistryListen: "127.0.0.1:0",
		BuildKitBinary: binary,
		Debounce:       -1,
		PollInterval:   time.Hour,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Out:            io.Discard,
	})
	if err != nil {
		cancel()
		b.Fatalf("starting refit: %v", err)
	}
	b.Cleanup(func() {
		cancel()
		if err := srv.Wait(); err != nil {
			b.Errorf("stopping refit: %v", err)
		}
	})
	tok, err := os.ReadFile(srv.TokenFile)
	if err != nil {
		b.Fatal(err)
	}
	c := client.New(srv.APIURL, strings.TrimSpace(string(tok)))
	db := openRO(b, filepath.Join(data, "refit.db"))

	baseRef := srv.RegistryAddr + "/lat/busybox:1"
	ref, err := name.ParseReference(baseRef)
	if err != nil {
		b.Fatal(err)
	}
	busybox, err := baseimage.Busybox()
	if err != nil {
		b.Fatal(err)
	}
	// Time the manifest PUT too: remote.Write's last request.
	var putStart atomic.Int64
	tr := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			putStart.Store(time.Now().UnixNano())
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	push := func(img v1.Image) (string, time.Time, error) {
		if err := remote.Write(ref, img, remote.WithTransport(tr)); err != nil {
			return "", time.Time{}, err
		}
		end := time.Now()
		d, err := img.Digest()
		return d.String(), end, err
	}
	first, _, err := push(busybox)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+baseRef+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	if _, err := c.CreateTask(ctx, api.TaskSpec{Name: "lat", Source: api.TaskSource{Dir: dir}}); err != nil {
		b.Fatalf("creating task: %v", err)
	}
	waitUntil(b, "the baseline check of "+baseRef, time.Minute, 20*time.Millisecond, func() bool {
		return queryInt(b, db, `SELECT COUNT(*) FROM base_refs WHERE ref = $1 AND digest = $2`, baseRef, first) == 1
	})
	idle := func() bool {
		return queryInt(b, db, `SELECT COUNT(*) FROM runs WHERE state IN ('queued', 'running')`) == 0
	}
	waitUntil(b, "no run in progress", 5*time.Minute, 20*time.Millisecond, idle)
	last := queryInt(b, db, `SELECT COALESCE(MAX(id), 0) FROM runs`)

	var fromWrite, fromPut, created, putDur []time.Duration
	failed := 0
	b.ResetTimer()
	for i := range pushes {
		img, err := baseimage.Patch(busybox, fmt.Sprintf("lat-%d-%d", i, time.Now().UnixNano()))
		if err != nil {
			b.Fatal(err)
		}
		pushed, t0, err := push(img)
		if err != nil {
			b.Fatalf("push %d: %v", i+1, err)
		}
		ps := time.Unix(0, putStart.Load())
		var id int
		var createdAt, causeJSON string
		deadline := t0.Add(time.Minute)
		for {
			err := db.QueryRow(`SELECT id, created_at, cause FROM runs WHERE id > $1 ORDER BY id LIMIT 1`, last).Scan(&id, &createdAt, &causeJSON)
			if err == nil {
				break
			}
			if !errors.Is(err, sql.ErrNoRows) {
				b.Fatal(err)
			}
			if time.Now().After(deadline) {
				b.Fatalf("push %d (%s): no run within a minute", i+1, pushed)
			}
			time.Sleep(time.Millisecond)
		}
		seen := time.Now()
		fromWrite = append(fromWrite, seen.Sub(t0))
		fromPut = append(fromPut, seen.Sub(ps))
		putDur = append(putDur, t0.Sub(ps))
		if ct, err := time.Parse("2006-01-02T15:04:05.000000000Z", createdAt); err == nil {
			created = append(created, ct.Sub(t0))
		}
		var cause store.Cause
		if err := json.Unmarshal([]byte(causeJSON), &cause); err != nil {
			b.Fatal(err)
		}
		if cause.Kind != "base" || cause.Source != "push" || cause.NewDigest != pushed {
			b.Errorf("push %d: run r-%d cause %+v, want base update to %s from a push", i+1, id, cause, pushed)
		}
		last = id
		waitUntil(b, fmt.Sprintf("run r-%d to end", id), 5*time.Minute, 10*time.Millisecond, idle)
		if queryInt(b, db, `SELECT COUNT(*) FROM runs WHERE id = $1 AND state = 'succeeded'`, id) == 0 {
			failed++
		}
	}
	b.StopTimer()
	// Diagnostic: the same pushes to a tag no task uses (the registry's
	// push hook still runs, but no check or run follows).
	var untracked []time.Duration
	otherRef, err := name.ParseReference(srv.RegistryAddr + "/lat/untracked:1")
	if err != nil {
		b.Fatal(err)
	}
	for i := range 20 {
		img, err := baseimage.Patch(busybox, fmt.Sprintf("other-%d-%d", i, time.Now().UnixNano()))
		if err != nil {
			b.Fatal(err)
		}
		if err := remote.Write(otherRef, img, remote.WithTransport(tr)); err != nil {
			b.Fatal(err)
		}
		untracked = append(untracked, time.Since(time.Unix(0, putStart.Load())))
		time.Sleep(50 * time.Millisecond)
	}
	var out strings.Builder
	row := func(label string, ds []time.Duration) {
		fmt.Fprintf(&out, "%-46s median %7s  p99 %7s  min %7s  max %7s  (n=%d)\n", label,
			ms2(percentile(ds, 0.5)), ms2(percentile(ds, 0.99)), ms2(slices.Min(ds)), ms2(slices.Max(ds)), len(ds))
	}
	fmt.Fprintf(&out, "%d pushes of a patched base to the embedded registry, Debounce -1, task FROM the base\n", pushes)
	row("remote.Write returned → run row seen (poll 1ms)", fromWrite)
	row("remote.Write returned → run created_at", created)
	row("manifest PUT sent → run row seen", fromPut)
	row("manifest PUT sent → remote.Write returned", putDur)
	row("untracked tag: manifest PUT sent → returned", untracked)
	fmt.Fprintf(&out, "builds: %d of %d runs did not succeed (not part of the figure)\n", failed, pushes)
	fmt.Fprintf(&out, "(detection latency is reported, not enforced)\n")
	logReport(b, out.String())
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(percentile(fromWrite, 0.5))/1e6, "ms-median")
	b.ReportMetric(float64(percentile(fromWrite, 0.99))/1e6, "ms-p99")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// logReport logs text and prints it to stderr too: the testing package
// keeps only the first lines of a benchmark's log.
func logReport(b *testing.B, text string) {
	b.Log("\n" + text)
	fmt.Fprintf(os.Stderr, "=== %s\n%s", b.Name(), text)
}

func ms2(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/1e6) }
