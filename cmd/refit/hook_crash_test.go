package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/baseimage"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/pgtest"
)

// TestSIGKILLAfterWebhookAck: once refit has answered a registry's
// notification with 202, the base update it announced is not lost even if
// the process is killed (SIGKILL, no cleanup) right after: on restart the
// run it causes is built, exactly once.
func TestSIGKILLAfterWebhookAck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs real builds")
	}
	bin := refitBinary(t)
	// A registry refit gets no push events from: only the webhook (or a
	// poll, an hour away) tells it about a push.
	second := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(second.Close)
	host := strings.TrimPrefix(second.URL, "http://")

	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	const secret = "hook-secret-0123456789"
	args := []string{"serve", "--data", data, "--listen", apiAddr, "--registry-listen", reg, "--workers", "1",
		"--hook-secret", "distribution=" + secret, "--poll-interval", "1h",
		// "--debounce 0" means the 30 s default; negative is none.
		"--debounce=-1s", "--insecure-registry", host}
	p := startServe(t, bin, args...)
	ctx := context.Background()
	c := client.New("http://"+apiAddr, readToken(t, data))

	baseRef := host + "/base/busybox:1"
	first := pushImage(t, baseRef, "")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+baseRef+"\nRUN echo hooked > /hooked\n"), 0o644)
	if _, err := c.CreateTask(ctx, api.TaskSpec{Name: "hooked", Source: api.TaskSource{Dir: dir}}); err != nil {
		t.Fatal(err)
	}
	waitIndexed(t, c, baseRef, first)

	patched := pushImage(t, baseRef, "p1")
	body := `{"events":[{"id":"crash-` + fmt.Sprint(time.Now().UnixNano()) + `","timestamp":"` + time.Now().UTC().Format(time.RFC3339Nano) + `",
"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + patched + `",
"repository":"base/busybox","tag":"1","url":"http://` + host + `/v2/base/busybox/manifests/` + patched + `"},
"request":{"host":"` + host + `","method":"PUT"}}]}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+apiAddr+"/hooks/registry/distribution", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v2+json")
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	p.Process.Signal(syscall.SIGKILL)
	p.Wait()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook answered %d, want 202", resp.StatusCode)
	}

	startServe(t, bin, args...)
	var runs []api.Run
	deadline := time.Now().Add(3 * time.Minute)
	for {
		runs, err = c.ListRuns(ctx, api.RunFilter{})
		if err == nil && len(runs) > 0 && runs[0].State.Done() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ended run 3 minutes after the restart: %+v (%v)", runs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Give a duplicate every chance to show up.
	time.Sleep(3 * time.Second)
	if runs, err = c.ListRuns(ctx, api.RunFilter{}); err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Fatalf("%d runs after the restart, want exactly 1: %+v", len(runs), runs)
	}
	r := runs[0]
	if r.State != api.StateSucceeded {
		t.Errorf("run %s: %s at %s: %s", r.ID, r.State, r.Step, r.Error)
	}
	if cs := r.Cause; cs.Kind != "base" || cs.Source != "webhook" || cs.Base != baseRef || cs.OldDigest != first || cs.NewDigest != patched {
		t.Errorf("cause = %+v, want base %s %s → %s seen by webhook", cs, baseRef, first, patched)
	}
	if len(r.Bases) != 1 || r.Bases[0].Digest != patched {
		t.Errorf("run built on %+v, want %s@%s", r.Bases, baseRef, patched)
	}
}

// pushImage pushes a busybox base (patched when level != "") to ref and
// returns its digest.
func pushImage(t *testing.T, ref, level string) string {
	t.Helper()
	_, d, err := baseimage.Push(ref, level)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitIndexed waits until refit's index has seen ref at digest.
func waitIndexed(t *testing.T, c *client.Client, ref, digest string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		bases, err := c.Bases(context.Background())
		for _, b := range bases {
			if b.Ref == ref && b.Digest == digest {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("index never saw %s at %s: %+v (%v)", ref, digest, bases, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// databases maps a test's data directory to its PostgreSQL database.
var databases sync.Map

// startServe runs the refit binary with args (starting with "serve") and
// waits for its banner; the process is stopped at the end of the test and
// its log shown if the test failed. When tests run on PostgreSQL
// (pgtest.Wanted), each data directory gets its own database, the same
// one across restarts.
func startServe(t *testing.T, bin string, args ...string) *exec.Cmd {
	t.Helper()
	if pgtest.Wanted() {
		if i := slices.Index(args, "--data"); i >= 0 && i+1 < len(args) {
			u, ok := databases.Load(args[i+1])
			if !ok {
				u, _ = databases.LoadOrStore(args[i+1], pgtest.URL(t))
			}
			args = append(slices.Clone(args), "--database", u.(string))
		}
	}
	cmd := exec.Command(bin, args...)
	logPath := filepath.Join(t.TempDir(), "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("log of refit %s:\n%s", strings.Join(args, " "), b)
		}
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if apiLine.MatchString(sc.Text()) {
				ready <- nil
				break
			}
		}
		for sc.Scan() {
		}
		ready <- fmt.Errorf("refit serve exited before printing its banner")
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("refit serve did not start within a minute")
	}
	return cmd
}
