package serve_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/buildkitd"
	"github.com/refit-dev/refit/internal/serve"
)

// TestStartWithoutBuildKit: refit serve pointed at a BuildKit that does
// not answer starts; /readyz says builds are unavailable, naming the
// address; the API, watching and events work; a run waits, and builds
// once a buildkitd answers at that address.
func TestStartWithoutBuildKit(t *testing.T) {
	root, err := os.MkdirTemp("", "rfbk") // short: the socket path must fit sun_path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	addr := "unix://" + filepath.Join(root, "buildkitd.sock")
	r := startRefitWith(t, serve.Config{BuildKit: addr})
	ctx := context.Background()

	readyz := func() (int, string) {
		t.Helper()
		resp, err := http.Get(r.APIURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "builds unavailable") || !strings.Contains(body, addr) {
		t.Errorf("/readyz without buildkit = %d %q, want 503 saying builds are unavailable at %s", code, body, addr)
	}

	// The API, the index and events work.
	base := r.RegistryAddr + "/base/busybox:1"
	pushBase(t, base, "")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY f /f\n", "f": "no buildkit yet\n"})
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "later", Source: api.TaskSource{Dir: dir},
		BuildArgs: map[string]string{"BASE": base}}); err != nil {
		t.Fatalf("creating a task without buildkit: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		bases, err := r.c.Bases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(bases) == 1 && bases[0].Ref == base && bases[0].Digest != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bases without buildkit = %+v, want %s checked", bases, base)
		}
		time.Sleep(50 * time.Millisecond)
	}
	evs, err := r.c.ListEvents(ctx, api.EventFilter{Type: "task.changed"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("task.changed events = %v, %v; want one", evs, err)
	}

	run, err := r.c.Run(ctx, "later")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if got, err := r.c.GetRun(ctx, run.ID); err != nil || got.State.Done() {
		t.Fatalf("run without buildkit after 2s: %+v, %v; want it waiting", got, err)
	}

	d, err := buildkitd.Start(ctx, buildkitd.Config{Root: root, InsecureRegistries: []string{r.RegistryAddr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	if d.Address() != addr {
		t.Fatalf("buildkitd listens at %s, want %s", d.Address(), addr)
	}
	if got := waitRun(t, r.c, run.ID); got.State != api.StateSucceeded {
		t.Fatalf("run once buildkit answered: %s (%s), want succeeded", got.State, got.Error)
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Errorf("/readyz with buildkit = %d %q, want 200", code, body)
	}
}

// TestStartWithFailingManagedBuildKit: the managed buildkitd (no
// --buildkit) is a binary that exits at once. refit still starts;
// /readyz says builds are unavailable and why; the API, watching and
// events work; a run waits (queued, not failed); once the binary is
// fixed the supervisor's next attempt starts it and the run builds.
func TestStartWithFailingManagedBuildKit(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs buildkitd and runc (make deps)")
	}
	real, err := exec.LookPath(os.Getenv(buildkitd.EnvBinary))
	if err != nil || os.Getenv(buildkitd.EnvBinary) == "" {
		t.Skipf("needs $%s (the real buildkitd to switch to): %v", buildkitd.EnvBinary, err)
	}
	binDir := t.TempDir()
	bin := filepath.Join(binDir, "buildkitd")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'broken buildkitd: refusing to start' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := startRefitWith(t, serve.Config{BuildKitBinary: bin})
	t.Logf("refit started in %s with a buildkitd that exits at once", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()

	readyz := func() (int, string) {
		t.Helper()
		resp, err := http.Get(r.APIURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "builds unavailable") ||
		!strings.Contains(body, "exited during start-up") || !strings.Contains(body, "refusing to start") {
		t.Errorf("/readyz with a failing buildkitd = %d %q, want 503 saying builds are unavailable and why", code, body)
	}

	base := r.RegistryAddr + "/base/busybox:1"
	pushBase(t, base, "")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY f /f\n", "f": "buildkitd broken at first\n"})
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "later", Source: api.TaskSource{Dir: dir},
		BuildArgs: map[string]string{"BASE": base}}); err != nil {
		t.Fatalf("creating a task without buildkit: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		bases, err := r.c.Bases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(bases) == 1 && bases[0].Ref == base && bases[0].Digest != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bases without buildkit = %+v, want %s checked", bases, base)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if evs, err := r.c.ListEvents(ctx, api.EventFilter{Type: "task.changed"}); err != nil || len(evs) != 1 {
		t.Fatalf("task.changed events = %v, %v; want one", evs, err)
	}
	run, err := r.c.Run(ctx, "later")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if got, err := r.c.GetRun(ctx, run.ID); err != nil || got.State.Done() {
		t.Fatalf("run with a failing buildkitd after 2s: %+v, %v; want it waiting", got, err)
	}

	// Fix the binary; the supervisor's next attempt (backoff ≤ 30 s)
	// starts it.
	link := filepath.Join(binDir, "fixed")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link, bin); err != nil {
		t.Fatal(err)
	}
	if got := waitRun(t, r.c, run.ID); got.State != api.StateSucceeded {
		t.Fatalf("run once buildkitd started: %s (%s), want succeeded", got.State, got.Error)
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Errorf("/readyz with buildkit = %d %q, want 200", code, body)
	}
}
