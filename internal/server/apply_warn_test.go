package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/runner"
	"github.com/refit-dev/refit/internal/server"
	"github.com/refit-dev/refit/internal/task"
)

// applyWithWarnings posts an apply and returns its status, result and
// the texts of its Warning headers.
func applyWithWarnings(t *testing.T, a *apiServer, set any) (int, api.ApplyResult, []string) {
	t.Helper()
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", a.url+"/api/v1/tasks:apply", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res api.ApplyResult
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Fatalf("apply answer %s: %v", raw, err)
		}
	}
	var texts []string
	for _, h := range resp.Header.Values("Warning") {
		text, ok := api.ParseWarningHeader(h)
		if !ok {
			t.Errorf("malformed Warning header %q", h)
		}
		texts = append(texts, text)
	}
	return resp.StatusCode, res, texts
}

// TestApplyWarnsOnMissingBases: `refit apply` warns, as a create does,
// of a base its registry does not have — once per distinct base, naming
// every task on it, the image and the registry — and applies the tasks
// all the same. An existing base gives no warning; a base built by an
// applied task is not looked up; an unchanged apply looks nothing up.
func TestApplyWarnsOnMissingBases(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	regh := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			mu.Lock()
			hits[r.URL.Path]++
			mu.Unlock()
		}
		regh.ServeHTTP(w, r)
	}))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	okRef, err := name.ParseReference(host + "/ok:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(okRef, img); err != nil {
		t.Fatal(err)
	}
	a := startAPIWith(t, func(c *server.Config, r *runner.Runner) { c.Bases = r })
	dir := source(t, map[string]string{
		"missing/Dockerfile": "FROM " + host + "/nope/missing:1\n",
		"ok/Dockerfile":      "FROM " + host + "/ok:1\n",
		"chain/Dockerfile":   "FROM " + registryAddr + "/fine\n",
	})
	set := map[string]any{"tasks": []any{
		spec("one", dir, map[string]any{"context": "missing"}),
		spec("two", dir, map[string]any{"context": "missing", "buildArgs": map[string]string{"X": "1"}}),
		spec("fine", dir, map[string]any{"context": "ok"}),
		spec("chained", dir, map[string]any{"context": "chain"}),
	}}
	mu.Lock()
	clear(hits)
	mu.Unlock()
	code, res, warnings := applyWithWarnings(t, a, set)
	want := []string{"tasks one, two: base image " + host + "/nope/missing:1 not found in registry " + host}
	if code != http.StatusOK || len(res.Tasks) != 4 || !slices.Equal(warnings, want) {
		t.Fatalf("apply = %d %+v, warnings %q; want 200, 4 tasks applied and warnings %q", code, res.Tasks, warnings, want)
	}
	for _, tk := range res.Tasks {
		if tk.Action != "created" {
			t.Errorf("task %s: %s, want created (a warning refuses nothing)", tk.Name, tk.Action)
		}
	}
	mu.Lock()
	missing := hits["/v2/nope/missing/manifests/1"]
	mu.Unlock()
	if missing == 0 || missing > 2 {
		t.Errorf("missing base looked up with %d manifest requests, want one lookup (1–2 requests) for its two tasks", missing)
	}

	mu.Lock()
	clear(hits)
	mu.Unlock()
	code, res, warnings = applyWithWarnings(t, a, set)
	mu.Lock()
	n := len(hits)
	mu.Unlock()
	if code != http.StatusOK || len(warnings) != 0 || n != 0 {
		t.Errorf("unchanged apply = %d, warnings %q, %d manifests looked up; want 200, none, none", code, warnings, n)
	}
}

// TestApplyBaseCheckHasABudget: a registry that never answers holds an
// apply up by the check's budget only; the tasks are applied and the
// warning says the bases were not checked.
func TestApplyBaseCheckHasABudget(t *testing.T) {
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(func() { reg.CloseClientConnections(); reg.Close() })
	host := strings.TrimPrefix(reg.URL, "http://")
	a := startAPIWith(t, func(c *server.Config, r *runner.Runner) { c.Bases = r })
	var files = map[string]string{}
	var tasks []any
	for _, n := range []string{"a", "b", "c"} {
		files[n+"/Dockerfile"] = "FROM " + host + "/slow/" + n + ":1\n"
	}
	dir := source(t, files)
	for _, n := range []string{"a", "b", "c"} {
		tasks = append(tasks, spec(n, dir, map[string]any{"context": n}))
	}
	start := time.Now()
	code, res, warnings := applyWithWarnings(t, a, map[string]any{"tasks": tasks})
	t.Logf("apply against a registry that does not answer took %s", time.Since(start).Round(time.Millisecond))
	want := []string{"3 of 3 bases not checked within 2s (the tasks are applied; their runs say what is missing)"}
	if code != http.StatusOK || len(res.Tasks) != 3 || !slices.Equal(warnings, want) {
		t.Errorf("apply = %d %+v, warnings %q; want 200, 3 tasks and %q", code, res.Tasks, warnings, want)
	}
}

// gitInspector is the real runner (its Revisions decide what is
// unchanged) whose inspection of a git source — a fetch from the remote
// — is counted and answered with a fixed base instead.
type gitInspector struct {
	*runner.Runner
	fetches atomic.Int64
}

func (g *gitInspector) Inspect(ctx context.Context, spec task.Spec) ([]dockerfile.Base, error) {
	if spec.Source.Git == "" {
		return g.Runner.Inspect(ctx, spec)
	}
	g.fetches.Add(1)
	return []dockerfile.Base{{Stage: "0", Role: dockerfile.RoleRuntime, Kind: dockerfile.KindFrom, Ref: "docker.io/library/debian:12"}}, nil
}

// TestApplyUnchangedGitBranchIsNotInspected: applying a git-branch task
// again, unchanged, does not fetch it (it did on every apply); changing
// its spec does.
func TestApplyUnchangedGitBranchIsNotInspected(t *testing.T) {
	insp := &gitInspector{}
	a := startAPIWith(t, func(c *server.Config, r *runner.Runner) {
		insp.Runner = r
		c.Inspector = insp
	})
	git := func(ref string) map[string]any {
		return map[string]any{"tasks": []any{map[string]any{"name": "app",
			"source": map[string]string{"git": "https://git.example.com/app.git", "ref": ref}}}}
	}
	for i, step := range []struct {
		ref, action string
		fetches     int64
	}{
		{"main", "created", 1},
		{"main", "unchanged", 1},
		{"main", "unchanged", 1},
		{"release", "updated", 2},
	} {
		code, res, _ := applyWithWarnings(t, a, git(step.ref))
		if code != http.StatusOK || len(res.Tasks) != 1 || res.Tasks[0].Action != step.action || insp.fetches.Load() != step.fetches {
			t.Errorf("apply %d (ref %s) = %d %+v after %d fetches; want %s after %d", i+1, step.ref, code, res.Tasks, insp.fetches.Load(), step.action, step.fetches)
		}
	}
}
