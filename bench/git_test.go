package bench

// Benchmarks of git triggers (reported, never asserted; see README.md):
//
//   - BenchmarkGitWebhookLatency: a signed GitHub push to a real refit's
//     /hooks/git/github → the run committed (the 202 carries its id),
//     median and p99, each push a new run of its own task.
//   - BenchmarkGitPollRequests: N repositories served by git http-backend
//     on loopback, polled by the real poller with a real store: requests
//     per repository per interval (the goal is exactly 1 listing), and
//     the CPU the listings cost (client and server side).

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/githook"
	"github.com/refit-dev/refit/internal/gitpoll"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/serve"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// gitServer serves the repositories under root with git http-backend and
// counts the requests per repository (its first path element).
type gitServer struct {
	*httptest.Server
	count map[string]*atomic.Int64
}

func newGitServer(b *testing.B, root string, repos []string) *gitServer {
	b.Helper()
	h := &cgi.Handler{Path: "/usr/lib/git-core/git-http-backend",
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	g := &gitServer{count: map[string]*atomic.Int64{}}
	for _, r := range repos {
		g.count[r] = new(atomic.Int64)
	}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if c := g.count[repo]; c != nil && strings.HasSuffix(r.URL.Path, "/info/refs") {
			c.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	b.Cleanup(g.Close)
	return g
}

func gitB(b *testing.B, dir string, args ...string) string {
	b.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=B", "GIT_AUTHOR_EMAIL=b@x", "GIT_COMMITTER_NAME=B",
		"GIT_COMMITTER_EMAIL=b@x", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// makeRepos creates n one-commit repositories r0…r(n-1) under root and
// returns their names and head commits.
func makeRepos(b *testing.B, root string, n int, dockerfile string) ([]string, []string) {
	b.Helper()
	var names, shas []string
	for i := range n {
		name := fmt.Sprintf("r%d", i)
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
			b.Fatal(err)
		}
		gitB(b, dir, "init", "-q", "-b", "main")
		gitB(b, dir, "add", ".")
		gitB(b, dir, "commit", "-q", "-m", "first")
		names = append(names, name)
		shas = append(shas, gitB(b, dir, "rev-parse", "HEAD"))
	}
	return names, shas
}

func rusage() time.Duration {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + kids.Utime.Nano() + kids.Stime.Nano())
}

// noPusher counts pushes; the repositories do not move, so none is due.
type noPusher struct{ n atomic.Int64 }

func (p *noPusher) Push(context.Context, plan.Push, string, bool) (lifecycle.CommitResult, error) {
	p.n.Add(1)
	return lifecycle.CommitResult{}, nil
}

// BenchmarkGitPollRequests polls REFIT_BENCH_GIT_REPOS (default 1,000)
// unchanged repositories for three intervals after the first sight, with
// the real poller, the git CLI and the store, and prints the listings per
// repository per interval (min and max over the repositories; the goal is
// exactly 1) and the CPU per 1,000 checks.
func BenchmarkGitPollRequests(b *testing.B) {
	if testing.Short() {
		b.Skip("runs thousands of git processes")
	}
	n := envInt(b, "REFIT_BENCH_GIT_REPOS", 1000)
	const intervals = 3
	ctx := context.Background()
	root := b.TempDir()
	names, _ := makeRepos(b, root, n, "FROM scratch\n")
	srv := newGitServer(b, root, names)
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(b.TempDir(), "refit.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	repos := map[string]plan.RepoInfo{}
	for _, name := range names {
		u := srv.URL + "/" + name
		repos[task.RepoKey(u)] = plan.RepoInfo{URL: u}
	}
	pusher := &noPusher{}
	p, err := gitpoll.New(gitpoll.Config{
		Repos:       func(context.Context) (map[string]plan.RepoInfo, error) { return repos, nil },
		Store:       st,
		Pusher:      pusher,
		Concurrency: 8,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		b.Fatal(err)
	}
	p.Poll(ctx) // first sight: heads recorded
	for _, c := range srv.count {
		c.Store(0)
	}
	b.ResetTimer()
	cpu0, wall0 := rusage(), time.Now()
	for range intervals {
		p.Poll(ctx) // one interval's work, back to back
	}
	cpu, wall := rusage()-cpu0, time.Since(wall0)
	b.StopTimer()
	var per []int64
	for _, c := range srv.count {
		per = append(per, c.Load())
	}
	lo, hi := slices.Min(per), slices.Max(per)
	fmt.Printf("git polling, %d unchanged repositories, %d intervals: listings per repository per interval min %.2f max %.2f (goal 1); pushes %d\n",
		n, intervals, float64(lo)/intervals, float64(hi)/intervals, pusher.n.Load())
	fmt.Printf("CPU per 1,000 checks (git ls-remote and git http-backend, both sides): %v; wall per interval %v\n",
		(cpu / time.Duration(n*intervals) * 1000).Round(time.Millisecond), (wall / intervals).Round(time.Millisecond))
	b.ReportMetric(float64(hi)/intervals, "max-listings/repo/interval")
}

// BenchmarkGitWebhookLatency posts REFIT_BENCH_GIT_PUSHES (default 100)
// signed GitHub pushes, each for its own repository and task, to an
// in-process refit, and prints the latency from the request to the 202
// that names the committed run: median and p99.
func BenchmarkGitWebhookLatency(b *testing.B) {
	if testing.Short() {
		b.Skip("starts refit")
	}
	n := envInt(b, "REFIT_BENCH_GIT_PUSHES", 100)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := serve.Start(ctx, serve.Config{
		DataDir: b.TempDir(), Listen: "127.0.0.1:0", RegistryListen: "127.0.0.1:0",
		// No builds: the runs wait out the debounce.
		BuildKit: "unix://" + filepath.Join(b.TempDir(), "none.sock"), Debounce: time.Hour,
		PollInterval: time.Hour, GitPollInterval: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Out: io.Discard,
	})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); srv.Wait() })
	tok, err := os.ReadFile(srv.TokenFile)
	if err != nil {
		b.Fatal(err)
	}
	c := client.New(srv.APIURL, strings.TrimSpace(string(tok)))
	root := b.TempDir()
	names, shas := makeRepos(b, root, n, "FROM scratch\n")
	gs := newGitServer(b, root, names)
	const secret = "bench-webhook-secret-0123456789"
	for _, name := range names {
		u := gs.URL + "/" + name
		if _, err := c.CreateTask(ctx, api.TaskSpec{Name: name, Source: api.TaskSource{Git: u, Ref: "main"}}); err != nil {
			b.Fatal(err)
		}
		if _, err := c.PutGitSecret(ctx, u, secret); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	b.ResetTimer()
	for i, name := range names {
		body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": shas[i],
			"repository":  map[string]any{"clone_url": gs.URL + "/" + name, "default_branch": "main"},
			"head_commit": map[string]any{"id": shas[i], "message": "m", "author": map[string]any{"name": "B", "email": "b@x"}}})
		req, _ := http.NewRequest(http.MethodPost, srv.APIURL+"/hooks/git/github", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d", i))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(githook.Sign(secret, body)))
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var v githook.Verdict
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		lat = append(lat, time.Since(start))
		if resp.StatusCode != http.StatusAccepted || len(v.Runs) != 1 {
			b.Fatalf("push %d: %d %+v, want 202 with one run", i, resp.StatusCode, v)
		}
	}
	b.StopTimer()
	fmt.Printf("git webhook → run committed, %d pushes (each a new run): median %v, p99 %v, max %v\n",
		n, median(lat).Round(time.Microsecond), percentile(lat, 0.99).Round(time.Microsecond), slices.Max(lat).Round(time.Microsecond))
	b.ReportMetric(float64(median(lat).Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}
