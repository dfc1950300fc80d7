package main

import (
	"context"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/githook"
)

// TestSIGKILLAfterGitHookAck: once refit has answered a git push with 202
// naming a run, the run is there after the process is killed (SIGKILL, no
// cleanup) right after and restarted; the same delivery sent again after
// the restart queues nothing more.
func TestSIGKILLAfterGitHookAck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)
	repo := t.TempDir()
	os.WriteFile(filepath.Join(repo, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-q", "-m", "first"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@x")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	out, _ := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	sha := strings.TrimSpace(string(out))

	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	// An hour's debounce keeps the run queued; no polling.
	args := []string{"serve", "--data", data, "--listen", apiAddr, "--registry-listen", reg, "--debounce", "1h",
		"--poll-interval", "1h", "--git-poll-interval=-1s"}
	p := startServe(t, bin, args...)
	ctx := context.Background()
	c := client.New("http://"+apiAddr, readToken(t, data))
	if _, err := c.CreateTask(ctx, api.TaskSpec{Name: "hooked", Source: api.TaskSource{Git: repo, Ref: "main"}}); err != nil {
		t.Fatal(err)
	}
	const secret = "git-hook-secret-0123456789"
	if _, err := c.PutGitSecret(ctx, repo, secret); err != nil {
		t.Fatal(err)
	}
	body := `{"repo":"` + repo + `","ref":"refs/heads/main","sha":"` + sha + `"}`
	post := func() (int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+apiAddr+"/hooks/git/generic", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Refit-Delivery", "crash-1")
		req.Header.Set("X-Refit-Signature-256", "sha256="+hex.EncodeToString(githook.Sign(secret, []byte(body))))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	status, answer := post()
	p.Process.Signal(syscall.SIGKILL)
	p.Wait()
	if status != http.StatusAccepted || !strings.Contains(answer, `"runs":["r-1"]`) {
		t.Fatalf("push answered %d %s, want 202 naming r-1", status, answer)
	}

	startServe(t, bin, args...)
	run, err := c.GetRun(ctx, "r-1")
	if err != nil {
		t.Fatalf("after SIGKILL and restart: %v", err)
	}
	if run.Cause.Kind != "commit" || run.Cause.SHA != sha || run.Task != "hooked" {
		t.Errorf("run after restart: %s of %s, cause %+v; want a commit run at %s", run.ID, run.Task, run.Cause, sha)
	}
	if status, answer := post(); status != http.StatusAccepted || !strings.Contains(answer, `"replay":true`) {
		t.Errorf("the same delivery after the restart: %d %s, want 202 replay", status, answer)
	}
	runs, err := c.ListRuns(ctx, api.RunFilter{Limit: 10})
	if err != nil || len(runs) != 1 {
		t.Errorf("runs after the replay: %d (%v), want 1", len(runs), err)
	}
}
