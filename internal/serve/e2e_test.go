package serve_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/baseimage"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/runner"
	"github.com/refit-dev/refit/internal/serve"
	"github.com/refit-dev/refit/internal/store"
)

// refit is one in-process refit server with embedded defaults.
type refit struct {
	*serve.Server
	c    *client.Client
	stop context.CancelFunc
}

func startRefit(t *testing.T, data string) *refit {
	t.Helper()
	return startRefitWith(t, serve.Config{DataDir: data})
}

func (r *refit) shutdown(t *testing.T) {
	r.stop()
	if err := r.Wait(); err != nil {
		t.Errorf("shutting down refit: %v", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// pushBase pushes a busybox base (patched when level != "") and returns
// the image and its digest.
func pushBase(t *testing.T, ref, level string) (v1.Image, string) {
	t.Helper()
	img, d, err := baseimage.Push(ref, level)
	if err != nil {
		t.Fatal(err)
	}
	return img, d
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// appDockerfile is multi-stage, with RUN and COPY, on a base given as a
// build argument.
const appDockerfile = `ARG BASE
FROM ${BASE} AS build
COPY app.txt /src/app.txt
RUN mkdir /out && cp /src/app.txt /out/app && echo compiled >> /out/app

FROM $BASE
COPY --from=build /out/app /app
RUN cat /app
`

// waitRun follows the run's log to its end and returns the run.
func waitRun(t *testing.T, c *client.Client, rid string) api.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.Logs(ctx, rid, true, func(api.LogChunk) error { return nil }); err != nil {
		t.Fatalf("following run %s: %v", rid, err)
	}
	r, err := c.GetRun(ctx, rid)
	if err != nil {
		t.Fatal(err)
	}
	if !r.State.Done() {
		t.Fatalf("run %s: log ended but state is %s", rid, r.State)
	}
	return r
}

// builtImage fetches the pushed index, checks it holds an attestation
// manifest, and returns the linux image and the index's annotations.
func builtImage(t *testing.T, ref string) (v1.Image, *v1.IndexManifest) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("reading index %s: %v", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var img v1.Image
	var attest bool
	for _, m := range im.Manifests {
		if m.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			attest = true
			a, err := idx.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			man, err := a.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if len(man.Layers) == 0 || !strings.Contains(man.Layers[0].Annotations["in-toto.io/predicate-type"], "slsa.dev/provenance") {
				t.Errorf("attestation manifest has no SLSA provenance layer: %+v", man.Layers)
			}
			continue
		}
		if m.Platform != nil && m.Platform.OS == "linux" {
			if img, err = idx.Image(m.Digest); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !attest {
		t.Errorf("index %s has no provenance attestation manifest", ref)
	}
	if img == nil {
		t.Fatalf("index %s has no linux image", ref)
	}
	return img, im
}

func layerDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.String())
	}
	return out
}

// checkBuiltOn asserts the run's image sits on the base and says so.
func checkBuiltOn(t *testing.T, run api.Run, base v1.Image, baseRef, baseDigest string) {
	t.Helper()
	img, idx := builtImage(t, run.Image)
	got, want := layerDigests(t, img), layerDigests(t, base)
	if len(got) <= len(want) {
		t.Fatalf("image has %d layers, base %d: want the base's plus the build's", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("layer %d: got %s, want base layer %s", i, got[i], want[i])
		}
	}
	man, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for what, ann := range map[string]map[string]string{"manifest": man.Annotations, "index": idx.Annotations} {
		if ann[runner.AnnotationBaseDigest] != baseDigest {
			t.Errorf("%s annotation %s = %q, want %q", what, runner.AnnotationBaseDigest, ann[runner.AnnotationBaseDigest], baseDigest)
		}
		if ann[runner.AnnotationBaseName] != baseRef {
			t.Errorf("%s annotation %s = %q, want %q", what, runner.AnnotationBaseName, ann[runner.AnnotationBaseName], baseRef)
		}
		if _, err := time.Parse(time.RFC3339, ann[runner.AnnotationCreated]); err != nil {
			t.Errorf("%s annotation %s = %q: %v", what, runner.AnnotationCreated, ann[runner.AnnotationCreated], err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.Labels[runner.AnnotationBaseDigest] != baseDigest {
		t.Errorf("label %s = %q, want %q", runner.AnnotationBaseDigest, cf.Config.Labels[runner.AnnotationBaseDigest], baseDigest)
	}
	var runtimeBases int
	for _, b := range run.Bases {
		if b.Digest != baseDigest {
			t.Errorf("run recorded base %s@%s, want digest %s", b.Ref, b.Digest, baseDigest)
		}
		if b.Role == "runtime" {
			runtimeBases++
		}
	}
	if runtimeBases != 1 {
		t.Errorf("run recorded %d runtime bases, want 1: %+v", runtimeBases, run.Bases)
	}
}

func TestBuildLocalDirectory(t *testing.T) {
	r := startRefit(t, t.TempDir())
	ctx := context.Background()
	baseRef := r.RegistryAddr + "/base/busybox:1"
	base, baseDigest := pushBase(t, baseRef, "")

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": appDockerfile, "app.txt": "hello\n"})
	tk, err := r.c.CreateTask(ctx, api.TaskSpec{
		Name:      "app",
		Source:    api.TaskSource{Dir: dir},
		BuildArgs: map[string]string{"BASE": baseRef},
		Tags:      []string{"latest", "{{.Run.ID}}"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rt := tk.Bases; len(rt) != 2 || rt[1].Ref != baseRef || rt[1].Role != "runtime" {
		t.Errorf("task bases = %+v, want %s as the runtime base", rt, baseRef)
	}

	queued, err := r.c.Run(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	run := waitRun(t, r.c, queued.ID)
	if run.State != api.StateSucceeded {
		t.Fatalf("run %s: state %s, error %s: %s", run.ID, run.State, run.Step, run.Error)
	}
	if run.Cause.Kind != "manual" || run.Cause.User != "admin" {
		t.Errorf("cause = %+v, want manual by admin", run.Cause)
	}
	if want := r.RegistryAddr + "/app@" + run.Digest; run.Image != want {
		t.Errorf("image = %q, want %q", run.Image, want)
	}
	checkBuiltOn(t, run, base, baseRef, baseDigest)

	// Every tag points at the pushed digest.
	for _, tag := range []string{"latest", run.ID} {
		ref, _ := name.ParseReference(r.RegistryAddr + "/app:" + tag)
		d, err := remote.Head(ref)
		if err != nil {
			t.Fatalf("tag %s: %v", tag, err)
		}
		if d.Digest.String() != run.Digest {
			t.Errorf("tag %s → %s, want %s", tag, d.Digest, run.Digest)
		}
	}

	// The log has BuildKit's steps, including the RUN's output.
	var sawRun bool
	err = r.c.Logs(ctx, run.ID, false, func(c api.LogChunk) error {
		if strings.Contains(string(c.Data), "RUN cat /app") {
			sawRun = true
		}
		return nil
	})
	if err != nil || !sawRun {
		t.Errorf("log of the run lacks the RUN step (err %v)", err)
	}
}

// TestBuildGitRepository builds from a git repository served over HTTP
// on loopback and records the exact commit.
func TestBuildGitRepository(t *testing.T) {
	r := startRefit(t, t.TempDir())
	ctx := context.Background()
	baseRef := r.RegistryAddr + "/base/busybox:1"
	base, baseDigest := pushBase(t, baseRef, "")

	repo := t.TempDir()
	writeFiles(t, repo, map[string]string{
		"svc/Dockerfile": "FROM " + baseRef + " AS build\nRUN echo built > /b\nFROM " + baseRef + "\nCOPY --from=build /b /b\nCOPY app.txt /\n",
		"svc/app.txt":    "v1\n",
	})
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "first")
	sha := strings.TrimSpace(git(t, repo, "rev-parse", "HEAD"))
	url := serveGit(t, filepath.Dir(repo)) + "/" + filepath.Base(repo)

	if _, err := r.c.CreateTask(ctx, api.TaskSpec{
		Name: "svc", Source: api.TaskSource{Git: url, Ref: "main"}, Context: "svc",
		Tags: []string{"{{.Commit.Short}}"},
	}); err != nil {
		t.Fatal(err)
	}
	queued, err := r.c.Run(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	run := waitRun(t, r.c, queued.ID)
	if run.State != api.StateSucceeded {
		t.Fatalf("run: state %s, error %s: %s", run.State, run.Step, run.Error)
	}
	if run.Commit != sha {
		t.Errorf("run commit = %s, want %s", run.Commit, sha)
	}
	if len(run.Tags) != 1 || run.Tags[0] != sha[:7] {
		t.Errorf("tags = %v, want [%s]", run.Tags, sha[:7])
	}
	checkBuiltOn(t, run, base, baseRef, baseDigest)
	_, idx := builtImage(t, run.Image)
	if got := idx.Annotations[runner.AnnotationRevision]; got != sha {
		t.Errorf("revision annotation = %q, want %s", got, sha)
	}
	if got := idx.Annotations[runner.AnnotationSource]; got != url {
		t.Errorf("source annotation = %q, want %s", got, url)
	}
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// serveGit serves the repositories under root over smart HTTP on loopback.
func serveGit(t *testing.T, root string) string {
	t.Helper()
	h := &cgi.Handler{
		Path: "/usr/lib/git-core/git-http-backend",
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

func TestFailingStepFailsRun(t *testing.T) {
	r := startRefit(t, t.TempDir())
	ctx := context.Background()
	baseRef := r.RegistryAddr + "/base/busybox:1"
	pushBase(t, baseRef, "")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + baseRef + "\nRUN echo about to fail && exit 3\n"})
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "broken", Source: api.TaskSource{Dir: dir}}); err != nil {
		t.Fatal(err)
	}
	q, err := r.c.Run(ctx, "broken")
	if err != nil {
		t.Fatal(err)
	}
	run := waitRun(t, r.c, q.ID)
	if run.State != api.StateFailed || run.Step != "build" {
		t.Fatalf("run: state %s step %q, want failed at build", run.State, run.Step)
	}
	if !strings.Contains(run.Error, "exit 3") || !strings.Contains(run.Error, "exit code: 3") {
		t.Errorf("run error %q does not name the failing command and its exit code", run.Error)
	}
	if run.Image != "" || run.Digest != "" {
		t.Errorf("failed run recorded an image: %s", run.Image)
	}
}

func TestTaskValidation(t *testing.T) {
	r := startRefit(t, t.TempDir())
	ctx := context.Background()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile":     "FROM busybox\nRUN true\n",
		"bad/Dockerfile": "FROM busybox\nNOTANINSTRUCTION foo\n",
	})
	cases := []struct {
		name string
		spec api.TaskSpec
		want string
	}{
		{"bad name", api.TaskSpec{Name: "Bad Name", Source: api.TaskSource{Dir: dir}}, "name"},
		{"no source", api.TaskSpec{Name: "x"}, "source"},
		{"bad image", api.TaskSpec{Name: "x", Source: api.TaskSource{Dir: dir}, Image: "app/UPPER"}, "image"},
		{"missing Dockerfile", api.TaskSpec{Name: "x", Source: api.TaskSource{Dir: dir}, Dockerfile: "nope/Dockerfile"}, `"nope/Dockerfile" not found`},
		{"syntax error", api.TaskSpec{Name: "x", Source: api.TaskSource{Dir: dir}, Context: "bad"}, "line 2"},
		{"bad tag", api.TaskSpec{Name: "x", Source: api.TaskSource{Dir: dir}, Tags: []string{"has space"}}, "tags[0]"},
		{"bad platform", api.TaskSpec{Name: "x", Source: api.TaskSource{Dir: dir}, Platforms: []string{"amd64"}}, "platforms"},
	}
	for _, tc := range cases {
		_, err := r.c.CreateTask(ctx, tc.spec)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, tc.want) {
			t.Errorf("%s: got %v, want 400 naming %q", tc.name, err, tc.want)
		}
	}
	// Unknown fields are rejected by name.
	req, _ := http.NewRequest("POST", r.APIURL+"/api/v1/tasks", strings.NewReader(`{"name":"x","source":{"dir":"/"},"colour":"red"}`))
	tok, _ := os.ReadFile(r.TokenFile)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "colour") {
		t.Errorf("unknown field: got %d %s, want 400 naming colour", resp.StatusCode, body)
	}
	// Without a token, the API refuses; health does not need one.
	resp, err = http.Get(r.APIURL + "/api/v1/tasks")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: got %d, want 401", resp.StatusCode)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(r.APIURL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: got %d, want 200", p, resp.StatusCode)
		}
	}
	// Nothing invalid was stored.
	ts, err := r.c.ListTasks(ctx)
	if err != nil || len(ts) != 0 {
		t.Errorf("tasks after invalid creates: %v %v, want none", ts, err)
	}
}

// TestBuildkitdKilledMidBuild: the run fails (it is not left running) and
// the next run succeeds on the restarted daemon.
func TestBuildkitdKilledMidBuild(t *testing.T) {
	r := startRefit(t, t.TempDir())
	ctx := context.Background()
	baseRef := r.RegistryAddr + "/base/busybox:1"
	pushBase(t, baseRef, "")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"slow/Dockerfile": "FROM " + baseRef + "\nRUN echo sleeping && sleep 60\n",
		"fast/Dockerfile": "FROM " + baseRef + "\nRUN echo quick\n",
	})
	for _, n := range []string{"slow", "fast"} {
		if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: n, Source: api.TaskSource{Dir: dir}, Context: n}); err != nil {
			t.Fatal(err)
		}
	}
	q, err := r.c.Run(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the sleep is running inside BuildKit.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var sleeping bool
		r.c.Logs(ctx, q.ID, false, func(c api.LogChunk) error {
			sleeping = sleeping || strings.Contains(string(c.Data), "c2xlZXBpbmcK") // "sleeping\n", base64 in the log JSON
			return nil
		})
		if sleeping {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow build never started its RUN step")
		}
		time.Sleep(100 * time.Millisecond)
	}
	pid := r.Daemon.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	run := waitRun(t, r.c, q.ID)
	if run.State != api.StateFailed || run.Step != "build" {
		t.Fatalf("run after buildkitd was killed: state %s step %q (%s), want failed at build", run.State, run.Step, run.Error)
	}
	q2, err := r.c.Run(ctx, "fast")
	if err != nil {
		t.Fatal(err)
	}
	if run := waitRun(t, r.c, q2.ID); run.State != api.StateSucceeded {
		t.Fatalf("run after restart: %s %s", run.State, run.Error)
	}
	if r.Daemon.PID() == pid {
		t.Errorf("buildkitd pid unchanged (%d): it was not restarted", pid)
	}
}

// TestShutdownCancelsRunningBuild: SIGINT-style shutdown marks a running
// run canceled, and nothing is left half-written.
func TestShutdownCancelsRunningBuild(t *testing.T) {
	data := t.TempDir()
	dbCfg := store.Config{Path: filepath.Join(data, "refit.db")}
	if pgtest.Wanted() {
		dbCfg = store.Config{URL: pgtest.URL(t)}
	}
	r := startRefitWith(t, serve.Config{DataDir: data, DatabaseURL: dbCfg.URL})
	ctx := context.Background()
	baseRef := r.RegistryAddr + "/base/busybox:1"
	pushBase(t, baseRef, "")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + baseRef + "\nRUN sleep 60\n"})
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "slow", Source: api.TaskSource{Dir: dir}}); err != nil {
		t.Fatal(err)
	}
	q, err := r.c.Run(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, r.c, q.ID, api.StateRunning)
	r.shutdown(t)

	st, err := store.Open(ctx, dbCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id, err := api.ParseRunID(q.ID)
	if err != nil {
		t.Fatal(err)
	}
	run, err := st.GetRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != store.StateCanceled || run.FinishedAt.IsZero() {
		t.Errorf("run after shutdown: state %s finished %v, want canceled", run.State, run.FinishedAt)
	}
}

func waitState(t *testing.T, c *client.Client, id string, want api.RunState) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := c.GetRun(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == want {
			return
		}
		if r.State.Done() || time.Now().After(deadline) {
			t.Fatalf("run %s is %s, waited for %s", id, r.State, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
