package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/baseimage"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/pgtest"
)

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat (100 on every Linux this runs on).
const clockTicks = 100

// BenchmarkIdleCPU runs a real `refit serve` process (built from this
// module; managed buildkitd, SQLite, or PostgreSQL with
// REFIT_TEST_POSTGRES=1) and reports the CPU it uses while
// idle — no runs, no checks due — from /proc/<pid>/stat (utime+stime), in
// ms of CPU per second of wall time: with no subscriptions, then with 10.
// Then, with the server still otherwise idle, it reports how long a
// committed run waits to start (a manual run's createdAt → startedAt) and
// how long after its 1 s debounce a base update's run starts, and the
// pick-up again after the queue has been idle long enough to stop. See
// README.md.
func BenchmarkIdleCPU(b *testing.B) {
	if testing.Short() {
		b.Skip("starts refit serve with a managed buildkitd")
	}
	root, err := moduleRoot()
	if err != nil {
		b.Fatal(err)
	}
	window := 30 * time.Second
	if s := os.Getenv("REFIT_BENCH_IDLE_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("REFIT_BENCH_IDLE_SECONDS=%q: want a whole number of seconds ≥ 1", s)
		}
		window = time.Duration(n) * time.Second
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "refit")
	build := exec.Command("go", "build", "-o", bin, "./cmd/refit")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building refit: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	args := []string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0", "--debounce", "1s"}
	if p := filepath.Join(root, "bin", "buildkitd"); fileExists(p) {
		args = append(args, "--buildkitd", p)
	}
	if pgtest.Wanted() { // the same on PostgreSQL: its job listener idles too
		args = append(args, "--database", pgtest.URL(b))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	logFile, err := os.Create(filepath.Join(dir, "refit.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stderr = logFile
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cancel()
		cmd.Wait()
	}()
	apiURL, regAddr := "", ""
	sc := bufio.NewScanner(out)
	for sc.Scan() && (apiURL == "" || regAddr == "") {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "API" {
			apiURL = f[1]
		}
		if len(f) >= 2 && f[0] == "registry" {
			regAddr = f[1]
		}
	}
	if apiURL == "" || regAddr == "" {
		log, _ := os.ReadFile(logFile.Name())
		b.Fatalf("refit serve printed no API and registry address; its log:\n%s", log)
	}
	go func() { // drain the rest
		for sc.Scan() {
		}
	}()
	tok, err := os.ReadFile(filepath.Join(data, "admin-token"))
	if err != nil {
		b.Fatal(err)
	}
	c := client.New(apiURL, strings.TrimSpace(string(tok)))
	pid := cmd.Process.Pid

	time.Sleep(3 * time.Second) // start-up settles (River's maintenance starts within ~2 s)
	b.ResetTimer()
	idle, idleSched := cpuPerSecond(b, pid, window)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer receiver.Close()
	for i := range 10 {
		_, err := c.CreateSubscription(ctx, api.SubscriptionRequest{URL: fmt.Sprintf("%s/hook/%d", receiver.URL, i)})
		if err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	idleSubs, idleSubsSched := cpuPerSecond(b, pid, window)

	// A task on a base in the embedded registry.
	baseRef := regAddr + "/base/busybox:1"
	if _, _, err := baseimage.Push(baseRef, ""); err != nil {
		b.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "Dockerfile"), []byte("ARG BASE\nFROM ${BASE}\nCOPY f /f\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("idle\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	if _, err := c.CreateTask(ctx, api.TaskSpec{Name: "idle", Source: api.TaskSource{Dir: src},
		BuildArgs: map[string]string{"BASE": baseRef}}); err != nil {
		b.Fatal(err)
	}

	// Pick-up: manual runs, one at a time, each after a pause so the
	// queue is idle when it is committed.
	var pickup []time.Duration
	for range 7 {
		time.Sleep(500 * time.Millisecond)
		r, err := c.Run(ctx, "idle")
		if err != nil {
			b.Fatal(err)
		}
		r = waitRun(b, c, r.ID)
		pickup = append(pickup, r.StartedAt.Sub(r.CreatedAt))
	}

	// Debounce: a patched base pushed to the tag; the run it causes
	// should start 1 s after it was queued.
	var late []time.Duration
	for i := range 5 {
		time.Sleep(500 * time.Millisecond)
		before, err := c.ListRuns(ctx, api.RunFilter{Task: "idle", Limit: 1})
		if err != nil || len(before) == 0 {
			b.Fatalf("listing runs: %v", err)
		}
		if _, _, err := baseimage.Push(baseRef, fmt.Sprintf("p%d", i+1)); err != nil {
			b.Fatal(err)
		}
		r := waitNewRun(b, c, before[0].ID)
		if r.Cause.Kind != "base" {
			b.Fatalf("run %s after the base push has cause %q, want base", r.ID, r.Cause.Kind)
		}
		r = waitRun(b, c, r.ID)
		late = append(late, r.StartedAt.Sub(r.CreatedAt)-time.Second)
	}
	// Pick-up from an idle queue: River's client stops after 5 s with
	// nothing to do (lifecycle.Config.Idle), so each of these runs is
	// committed 6 s after the last ended, and the commit starts it.
	var cold []time.Duration
	for range 3 {
		time.Sleep(6 * time.Second)
		r, err := c.Run(ctx, "idle")
		if err != nil {
			b.Fatal(err)
		}
		r = waitRun(b, c, r.ID)
		cold = append(cold, r.StartedAt.Sub(r.CreatedAt))
	}
	b.StopTimer()

	fmt.Printf("idle CPU of refit serve over %v (no runs, no checks due):\n", window)
	fmt.Printf("  no subscriptions  %.2f ms/s  (scheduler run time: %.3f ms/s)\n", idle, idleSched)
	fmt.Printf("  10 subscriptions  %.2f ms/s  (scheduler run time: %.3f ms/s)\n", idleSubs, idleSubsSched)
	fmt.Printf("pick-up, commit → run started (createdAt → startedAt), %d manual runs: median %v, max %v\n",
		len(pickup), median(pickup), slices.Max(pickup))
	fmt.Printf("debounce 1s → run started, %d base updates: median %v after the debounce, max %v\n",
		len(late), median(late), slices.Max(late))
	fmt.Printf("pick-up after 6s idle (the queue stopped), %d manual runs: median %v, max %v\n",
		len(cold), median(cold), slices.Max(cold))
	b.ReportMetric(idle, "idle-ms-cpu/s")
	b.ReportMetric(idleSubs, "idle-10subs-ms-cpu/s")
	b.ReportMetric(idleSched, "idle-sched-ms-cpu/s")
	b.ReportMetric(idleSubsSched, "idle-10subs-sched-ms-cpu/s")
	b.ReportMetric(float64(median(pickup).Microseconds())/1000, "pickup-ms")
	b.ReportMetric(float64(median(late).Microseconds())/1000, "debounce-late-ms")
	b.ReportMetric(float64(median(cold).Microseconds())/1000, "pickup-idle-ms")
}

// cpuPerSecond returns the CPU time pid used over the next window, in ms
// per second: from utime+stime (clock ticks of 10 ms), and from the
// scheduler's run time of each of its threads (ns; a thread that exits
// within the window is not counted).
func cpuPerSecond(b *testing.B, pid int, window time.Duration) (ticks, sched float64) {
	b.Helper()
	t0, c0, n0 := time.Now(), cpuTicks(b, pid), runNanos(b, pid)
	time.Sleep(window)
	t1, c1, n1 := time.Now(), cpuTicks(b, pid), runNanos(b, pid)
	secs := t1.Sub(t0).Seconds()
	return float64(c1-c0) * 1000 / clockTicks / secs, float64(n1-n0) / 1e6 / secs
}

// runNanos returns the time pid's threads have run on a CPU, in ns, from
// /proc/<pid>/task/*/schedstat.
func runNanos(b *testing.B, pid int) int64 {
	b.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(stats) == 0 {
		b.Fatalf("listing the threads of %d: %v", pid, err)
	}
	var sum int64
	for _, p := range stats {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(raw))
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			b.Fatalf("reading %s: %q", p, raw)
		}
		sum += n
	}
	return sum
}

// cpuTicks returns utime+stime of pid, in clock ticks.
func cpuTicks(b *testing.B, pid int) int64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // after "pid (comm)": state is f[0]
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("reading /proc/%d/stat: %q", pid, s)
	}
	return utime + stime
}

// waitRun waits for the run to end and returns it; it must succeed.
func waitRun(b *testing.B, c *client.Client, id string) api.Run {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := c.GetRun(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		if r.FinishedAt.IsZero() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if r.State != "succeeded" {
			b.Fatalf("run %s ended %s (%s), want succeeded", id, r.State, r.Error)
		}
		return r
	}
}

// waitNewRun waits for a run newer than the one named and returns it.
func waitNewRun(b *testing.B, c *client.Client, after string) api.Run {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		rs, err := c.ListRuns(context.Background(), api.RunFilter{Task: "idle", Limit: 1})
		if err != nil {
			b.Fatal(err)
		}
		if len(rs) > 0 && rs[0].ID != after {
			return rs[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("no run after %s a minute after pushing a new base", after)
	return api.Run{}
}
