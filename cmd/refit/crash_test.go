package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/client"
)

// TestSIGKILLLosesNoRun kills the refit process (SIGKILL, no cleanup)
// while one run builds and another waits in the queue; after a restart on
// the same data directory both complete, the queued one exactly once.
func TestSIGKILLLosesNoRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs real builds")
	}
	bin := refitBinary(t)
	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)

	p := startProcess(t, bin, data, apiAddr, reg)
	ctx := context.Background()
	c := client.New("http://"+apiAddr, readToken(t, data))

	baseRef := reg + "/base/busybox:1"
	pushImage(t, baseRef, "")
	dir := t.TempDir()
	for n, df := range map[string]string{
		"slow":  "FROM " + baseRef + "\nRUN echo started && sleep 3\n",
		"quick": "FROM " + baseRef + "\nRUN echo quick > /q\n",
	} {
		os.MkdirAll(filepath.Join(dir, n), 0o755)
		os.WriteFile(filepath.Join(dir, n, "Dockerfile"), []byte(df), 0o644)
		if _, err := c.CreateTask(ctx, api.TaskSpec{Name: n, Source: api.TaskSource{Dir: dir}, Context: n}); err != nil {
			t.Fatal(err)
		}
	}
	slow, err := c.Run(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, slow.ID, api.StateRunning)
	quick, err := c.Run(ctx, "quick") // one worker: this one waits
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := c.GetRun(ctx, quick.ID); r.State != api.StateQueued {
		t.Fatalf("quick run is %s, want queued behind the slow one", r.State)
	}

	p.Process.Signal(syscall.SIGKILL)
	p.Wait()

	startProcess(t, bin, data, apiAddr, reg)
	for _, id := range []string{slow.ID, quick.ID} {
		r := waitFor(t, c, id, api.StateSucceeded)
		if r.Image == "" {
			t.Errorf("run %s succeeded without an image", id)
		}
	}
	q, _ := c.GetRun(ctx, quick.ID)
	if q.Attempts != 1 {
		t.Errorf("queued run was started %d times, want exactly once", q.Attempts)
	}
	s, _ := c.GetRun(ctx, slow.ID)
	if s.Attempts != 2 {
		t.Errorf("interrupted run has %d attempts, want 2 (interrupted, then resumed)", s.Attempts)
	}
	runs, err := c.ListRuns(ctx, api.RunFilter{})
	if err != nil || len(runs) != 2 {
		t.Errorf("runs after restart: %d (%v), want the same 2", len(runs), err)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func readToken(t *testing.T, data string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

var apiLine = regexp.MustCompile(`API\s+http://`)

// startProcess runs `refit serve` with one worker on the given data
// directory and ports (see startServe).
func startProcess(t *testing.T, bin, data, apiAddr, reg string) *exec.Cmd {
	t.Helper()
	return startServe(t, bin, "serve", "--data", data, "--listen", apiAddr, "--registry-listen", reg, "--workers", "1")
}

func waitFor(t *testing.T, c *client.Client, id string, want api.RunState) api.Run {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := c.GetRun(context.Background(), id)
		if err == nil {
			if r.State == want {
				return r
			}
			if r.State.Done() {
				t.Fatalf("run %s ended %s (%s), want %s", id, r.State, r.Error, want)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: still %s after 2 minutes, want %s (last error %v)", id, r.State, want, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
