package buildkitd

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	bkconfig "github.com/moby/buildkit/cmd/buildkitd/config"
)

const buildHint = "build it with `make deps` (or `go build -o bin/buildkitd github.com/moby/buildkit/cmd/buildkitd` in the repository root), or set $" + EnvBinary

// requireDaemon skips in -short mode and otherwise fails (never skips) when
// a real daemon cannot be started here.
func requireDaemon(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a real buildkitd; skipped in -short mode")
	}
	bin, err := findBinary("")
	if err != nil {
		t.Fatalf("buildkitd binary is required for this test: %v\n%s", err, buildHint)
	}
	if err := Preflight(Config{Root: t.TempDir(), Binary: bin}); err != nil {
		t.Fatalf("cannot run a real buildkitd here: %v", err)
	}
	return bin
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func listWorkers(t *testing.T, addr string) []*client.WorkerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, addr)
	if err != nil {
		t.Fatalf("client.New(%s): %v", addr, err)
	}
	defer c.Close()
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		t.Fatalf("ListWorkers(%s): %v", addr, err)
	}
	return ws
}

func requireNativeWorker(t *testing.T, ws []*client.WorkerInfo) {
	t.Helper()
	if len(ws) == 0 {
		t.Fatal("ListWorkers returned no workers")
	}
	for _, w := range ws {
		for _, p := range w.Platforms {
			if p.OS == "linux" && p.Architecture == runtime.GOARCH {
				return
			}
		}
	}
	t.Fatalf("no worker offers linux/%s: %+v", runtime.GOARCH, ws[0].Platforms)
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still exists", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRenderConfig(t *testing.T) {
	got, err := renderConfig([]string{"127.0.0.1:5000", "localhost:5001"})
	if err != nil {
		t.Fatal(err)
	}
	want := "[registry.\"127.0.0.1:5000\"]\n  http = true\n  insecure = true\n"
	if !strings.Contains(got, want) {
		t.Errorf("config lacks stanza\n%s\ngot:\n%s", want, got)
	}
	// buildkitd's own parser must read it the same way.
	cfg, err := bkconfig.Load(strings.NewReader(got))
	if err != nil {
		t.Fatalf("buildkitd cannot parse the generated config: %v\n%s", err, got)
	}
	for _, host := range []string{"127.0.0.1:5000", "localhost:5001"} {
		r, ok := cfg.Registries[host]
		if !ok || r.PlainHTTP == nil || !*r.PlainHTTP || r.Insecure == nil || !*r.Insecure {
			t.Errorf("registry %s: parsed as %+v, want http and insecure", host, r)
		}
	}

	empty, err := renderConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bkconfig.Load(strings.NewReader(empty)); err != nil {
		t.Errorf("empty config does not parse: %v", err)
	}
	if _, err := renderConfig([]string{`bad"host`}); err == nil {
		t.Error("renderConfig accepted a host with a quote")
	}
}

func TestPreflightBogusBinary(t *testing.T) {
	bogus := filepath.Join(t.TempDir(), "no-such-buildkitd")
	err := Preflight(Config{Root: t.TempDir(), Binary: bogus})
	if err == nil {
		t.Fatal("Preflight accepted a missing binary")
	}
	if !strings.Contains(err.Error(), bogus) || !strings.Contains(err.Error(), "make deps") {
		t.Errorf("error should name %s and how to build it: %v", bogus, err)
	}
	var pe *PreflightError
	if !errors.As(err, &pe) {
		t.Errorf("error is %T, want *PreflightError", err)
	}

	t.Setenv(EnvBinary, bogus)
	err = Preflight(Config{Root: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), bogus) || !strings.Contains(err.Error(), EnvBinary) {
		t.Errorf("error should name $%s=%s: %v", EnvBinary, bogus, err)
	}

	err = Preflight(Config{Binary: bogus})
	if err == nil || !strings.Contains(err.Error(), "Root") {
		t.Errorf("missing Root not reported: %v", err)
	}
}

func TestStartupFailureQuotesLog(t *testing.T) {
	requireDaemon(t)
	dir := t.TempDir()
	fake := filepath.Join(dir, "buildkitd")
	script := "#!/bin/sh\necho 'fake buildkitd: boom' >&2\nexit 3\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err := Start(ctx, Config{Binary: fake, Root: filepath.Join(dir, "root"), Logger: testLogger(t), StartTimeout: 5 * time.Second})
	if err == nil {
		t.Fatal("Start succeeded with a binary that exits")
	}
	msg := err.Error()
	for _, want := range []string{"starting buildkitd " + fake, "exit status 3", "fake buildkitd: boom"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "root", pidName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left behind after failed start: %v", err)
	}
}

func TestDaemonLifecycle(t *testing.T) {
	bin := requireDaemon(t)
	root := t.TempDir()
	before := runtime.NumGoroutine()

	cfg := Config{
		Binary:             bin,
		Root:               root,
		InsecureRegistries: []string{"127.0.0.1:5000"},
		Logger:             testLogger(t),
		StartTimeout:       30 * time.Second,
	}
	t0 := time.Now()
	d, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("start-up took %s", time.Since(t0))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = d.Stop(context.Background())
		}
	})

	sock := filepath.Join(root, socketName)
	if got, want := d.Address(), "unix://"+sock; got != want {
		t.Errorf("Address() = %s, want %s", got, want)
	}
	requireNativeWorker(t, listWorkers(t, d.Address()))

	conf, err := os.ReadFile(filepath.Join(root, configName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "[registry.\"127.0.0.1:5000\"]\n  http = true\n  insecure = true\n") {
		t.Errorf("config file lacks insecure registry stanza:\n%s", conf)
	}
	if logData, err := os.ReadFile(filepath.Join(root, logName)); err != nil || !strings.Contains(string(logData), "running server on") {
		t.Errorf("daemon log not written to Root/%s (err %v)", logName, err)
	}

	// Crash: kill -9 and expect a restart.
	pid1 := d.PID()
	if pid1 == 0 {
		t.Fatal("PID() = 0 for a running daemon")
	}
	if err := syscall.Kill(pid1, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid1, err)
	}
	t1 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout)
	defer cancel()
	if err := d.Ready(ctx); err != nil {
		t.Fatalf("Ready after kill -9: %v", err)
	}
	t.Logf("restart after kill -9 took %s (includes %s backoff)", time.Since(t1), defaultRestartBackoff)
	pid2 := d.PID()
	if pid2 == 0 || pid2 == pid1 {
		t.Fatalf("PID after restart = %d, was %d", pid2, pid1)
	}
	if syscall.Kill(pid1, 0) == nil {
		t.Errorf("killed process %d still exists", pid1)
	}
	requireNativeWorker(t, listWorkers(t, d.Address()))

	// Stop.
	t2 := time.Now()
	if err := d.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	t.Logf("stop took %s", time.Since(t2))
	if err := syscall.Kill(pid2, 0); err == nil {
		t.Errorf("process %d still exists after Stop", pid2)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket %s still there after Stop: %v", sock, err)
	}
	if _, err := os.Stat(filepath.Join(root, pidName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file still there after Stop: %v", err)
	}
	if d.PID() != 0 {
		t.Errorf("PID() = %d after Stop", d.PID())
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := d.Ready(context.Background()); err == nil {
		t.Error("Ready succeeded on a stopped daemon")
	}

	// Goroutines: grpc client internals wind down asynchronously.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before Start, %d after Stop\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestContextCancelStops(t *testing.T) {
	bin := requireDaemon(t)
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := Start(ctx, Config{Binary: bin, Root: root, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := d.PID()
	cancel()
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = d.Stop(context.Background())
		t.Fatal("daemon still supervised 20s after ctx cancel")
	}
	waitGone(t, pid)
	if _, err := os.Stat(filepath.Join(root, socketName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after cancel: %v", err)
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Errorf("Stop after cancel: %v", err)
	}
}

func TestLongRootUsesShortSocket(t *testing.T) {
	bin := requireDaemon(t)
	root := filepath.Join(t.TempDir(), strings.Repeat("r", 60), strings.Repeat("s", 60))
	d, err := Start(context.Background(), Config{Binary: bin, Root: root, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer d.Stop(context.Background())
	sock := strings.TrimPrefix(d.Address(), "unix://")
	if strings.HasPrefix(sock, root) || len(sock) > maxSocketPath {
		t.Fatalf("socket %s should be in a short temporary directory", sock)
	}
	requireNativeWorker(t, listWorkers(t, d.Address()))
	if err := d.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(sock)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary socket directory %s not removed: %v", filepath.Dir(sock), err)
	}
}

func TestStaleDaemonIsKilled(t *testing.T) {
	bin := requireDaemon(t)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, configName), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Simulate a crashed refit: a daemon on our root, our pid file, and no
	// supervisor.
	stale := exec.Command(bin, "--root", root, "--addr", "unix://"+filepath.Join(root, socketName),
		"--oci-worker=true", "--containerd-worker=false", "--config", filepath.Join(root, configName))
	stale.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := stale.Start(); err != nil {
		t.Fatal(err)
	}
	staleDone := make(chan error, 1)
	go func() { staleDone <- stale.Wait() }()
	t.Cleanup(func() {
		_ = stale.Process.Kill()
		<-staleDone
	})
	// Let it take the root lock, as a crashed refit's daemon would have.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(root, socketName)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stale daemon did not create its socket")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// An unrelated live process in the pid file must not be killed.
	if isOurBuildkitd(os.Getpid(), root) {
		t.Fatal("the test binary was taken for a buildkitd")
	}
	if err := os.WriteFile(filepath.Join(root, pidName), []byte(strconv.Itoa(stale.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	d, err := Start(context.Background(), Config{Binary: bin, Root: root, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start over a stale daemon: %v", err)
	}
	defer d.Stop(context.Background())
	select {
	case <-staleDone:
		staleDone <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("stale daemon still running after Start")
	}
	if d.PID() == stale.Process.Pid {
		t.Fatal("Start adopted the stale process")
	}
	requireNativeWorker(t, listWorkers(t, d.Address()))
}

func TestStopWhileDown(t *testing.T) {
	bin := requireDaemon(t)
	root := t.TempDir()
	d, err := Start(context.Background(), Config{Binary: bin, Root: root, Logger: testLogger(t), RestartBackoff: time.Minute})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := d.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.PID() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("PID() still non-zero after kill -9")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The supervisor now sits in a one-minute backoff; Stop must not wait it out.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Stop(ctx); err != nil {
		t.Fatalf("Stop during restart backoff: %v", err)
	}
	if d.PID() != 0 {
		t.Errorf("PID() = %d after Stop", d.PID())
	}
	if _, err := os.Stat(filepath.Join(root, socketName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale socket left after Stop: %v", err)
	}
}
