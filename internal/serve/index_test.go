package serve_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/baseimage"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/runner"
	"github.com/refit-dev/refit/internal/serve"
)

// startRefitWith starts an in-process refit with cfg on loopback ports,
// in cfg.DataDir (default: a temporary directory).
func startRefitWith(t *testing.T, cfg serve.Config) *refit {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: needs buildkitd and runc (make deps)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.Listen, cfg.RegistryListen = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.DatabaseURL == "" && pgtest.Wanted() {
		cfg.DatabaseURL = pgtest.URL(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	cfg.Out = io.Discard
	s, err := serve.Start(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("starting refit: %v", err)
	}
	r := &refit{Server: s, stop: cancel}
	t.Cleanup(func() { r.shutdown(t) })
	tok, err := os.ReadFile(s.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	r.c = client.New(s.APIURL, strings.TrimSpace(string(tok)))
	return r
}

func allRuns(t *testing.T, c *client.Client) []api.Run {
	t.Helper()
	runs, err := c.ListRuns(context.Background(), api.RunFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(runs, func(i, j int) bool { return runNum(runs[i]) < runNum(runs[j]) })
	return runs
}

// settle waits until n runs exist and all have ended, and returns them.
func settle(t *testing.T, c *client.Client, n int) []api.Run {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		runs := allRuns(t, c)
		done := len(runs) >= n
		for _, r := range runs {
			done = done && r.State.Done()
		}
		if done {
			return runs
		}
		if time.Now().After(deadline) {
			var states []string
			for _, r := range runs {
				states = append(states, r.ID+" "+r.Task+" "+string(r.State))
			}
			t.Fatalf("waited for %d ended runs; have %v", n, states)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitChecked waits until the index has checked ref at digest.
func waitChecked(t *testing.T, c *client.Client, ref, digest string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		bases, err := c.Bases(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bases {
			if b.Ref == ref && b.Digest == digest {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("index never saw %s at %s: %+v", ref, digest, bases)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runNum is the number of a run: 7 for r-7.
func runNum(r api.Run) int64 {
	n, _ := api.ParseRunID(r.ID)
	return n
}

func lastOf(runs []api.Run, taskName string) api.Run {
	var r api.Run
	for _, x := range runs {
		if x.Task == taskName {
			r = x
		}
	}
	return r
}

func countOf(runs []api.Run, taskName string) int {
	n := 0
	for _, x := range runs {
		if x.Task == taskName {
			n++
		}
	}
	return n
}

// TestBaseUpdateRebuildsChain: debian → acme/base → acme/python → app as
// busybox → base → python → app. A patched busybox rebuilds the three
// tasks once each, top-down, each on its upstream's new digest; a burst
// of pushes builds once; an identical re-push builds nothing.
func TestBaseUpdateRebuildsChain(t *testing.T) {
	r := startRefitWith(t, serve.Config{Debounce: 2 * time.Second, PollInterval: time.Hour})
	ctx := context.Background()
	reg := r.RegistryAddr
	osRef := reg + "/os/busybox:1"
	pushBase(t, osRef, "")

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"base/Dockerfile":   "FROM " + osRef + "\nRUN echo acme > /etc/company\n",
		"python/Dockerfile": "FROM " + reg + "/acme/base:latest\nRUN echo python > /python\n",
		"app/Dockerfile":    "FROM " + reg + "/acme/python:latest AS build\nRUN echo built > /b\nFROM " + reg + "/acme/python:latest\nCOPY --from=build /b /app\n",
	})
	for _, spec := range []api.TaskSpec{
		{Name: "base", Source: api.TaskSource{Dir: dir}, Context: "base", Image: "acme/base"},
		{Name: "python", Source: api.TaskSource{Dir: dir}, Context: "python", Image: "acme/python"},
		{Name: "app", Source: api.TaskSource{Dir: dir}, Context: "app"},
	} {
		if _, err := r.c.CreateTask(ctx, spec); err != nil {
			t.Fatalf("creating %s: %v", spec.Name, err)
		}
	}
	// A cycle is refused, naming the tasks.
	writeFiles(t, dir, map[string]string{"loop/Dockerfile": "FROM " + reg + "/app:latest\n"})
	_, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "loop", Source: api.TaskSource{Dir: dir}, Context: "loop", Image: "os/busybox", Tags: []string{"1"}})
	if err == nil || !strings.Contains(err.Error(), "cycle") || !strings.Contains(err.Error(), "loop") || !strings.Contains(err.Error(), "base") {
		t.Errorf("creating a cycle: got %v, want an error naming the cycle's tasks", err)
	}

	// A manual run of the company base cascades down the chain once.
	if _, err := r.c.Run(ctx, "base"); err != nil {
		t.Fatal(err)
	}
	runs := settle(t, r.c, 3)
	for _, name := range []string{"base", "python", "app"} {
		if n := countOf(runs, name); n != 1 {
			t.Errorf("after the manual run: %d runs of %s, want 1", n, name)
		}
		if lr := lastOf(runs, name); lr.State != api.StateSucceeded {
			t.Fatalf("run of %s: %s %s", name, lr.State, lr.Error)
		}
	}
	if c := lastOf(runs, "app").Cause; c.Kind != "cascade" || api.FormatRunID(c.UpstreamRun) != lastOf(runs, "python").ID {
		t.Errorf("app's cause = %s, want cascade of python's run", c)
	}
	osRefName, _ := name.ParseReference(osRef)
	head, err := remote.Head(osRefName)
	if err != nil {
		t.Fatal(err)
	}
	osDigest := head.Digest.String()
	waitChecked(t, r.c, osRef, osDigest)

	// The vendor patches the OS base.
	_, patched := pushBase(t, osRef, "p1")
	runs = settle(t, r.c, 6)
	wave := runs[3:]
	if len(runs) != 6 {
		t.Fatalf("after one patch: %d runs, want 6 (3 + one per task)", len(runs))
	}
	byTask := map[string]api.Run{}
	for _, w := range wave {
		if _, dup := byTask[w.Task]; dup {
			t.Errorf("task %s built twice in one wave", w.Task)
		}
		byTask[w.Task] = w
		if w.State != api.StateSucceeded {
			t.Fatalf("wave run %s of %s: %s %s", w.ID, w.Task, w.State, w.Error)
		}
	}
	b, p, a := byTask["base"], byTask["python"], byTask["app"]
	if b.Cause.Kind != "base" || b.Cause.Base != osRef || b.Cause.OldDigest != osDigest || b.Cause.NewDigest != patched || b.Cause.Observation == 0 {
		t.Errorf("base's cause = %+v, want base %s %s → %s with its observation", b.Cause, osRef, osDigest, patched)
	}
	if p.Cause.Kind != "cascade" || api.FormatRunID(p.Cause.UpstreamRun) != b.ID || p.Cause.Upstream == nil || p.Cause.Upstream.NewDigest != patched {
		t.Errorf("python's cause = %+v, want cascade of %s carrying the base update", p.Cause, b.ID)
	}
	if a.Cause.Kind != "cascade" || api.FormatRunID(a.Cause.UpstreamRun) != p.ID {
		t.Errorf("app's cause = %+v, want cascade of %s", a.Cause, p.ID)
	}
	if !p.StartedAt.After(b.FinishedAt) || !a.StartedAt.After(p.FinishedAt) {
		t.Errorf("wave out of order: base %v–%v, python %v–%v, app %v", b.StartedAt, b.FinishedAt, p.StartedAt, p.FinishedAt, a.StartedAt)
	}
	// Each is built on its upstream's new digest.
	if got := usedDigest(b, osRef); got != patched {
		t.Errorf("base built on %s, want the patched %s", got, patched)
	}
	if got := usedDigest(p, reg+"/acme/base:latest"); got != b.Digest {
		t.Errorf("python built on acme/base %s, want base's new %s", got, b.Digest)
	}
	img, _ := builtImage(t, a.Image)
	man, _ := img.Manifest()
	if got := man.Annotations[runner.AnnotationBaseDigest]; got != p.Digest {
		t.Errorf("app's base annotation = %s, want python's new digest %s", got, p.Digest)
	}
	obs, err := r.c.BaseHistory(ctx, osRef)
	if err != nil || len(obs) < 2 || obs[0].Digest != patched && obs[0].TopDigest != patched {
		t.Errorf("history of %s = %+v (%v), want the patch first", osRef, obs, err)
	} else if obs[0].ID != b.Cause.Observation || obs[0].Source != "push" {
		t.Errorf("newest observation %+v: want ID %d from source push", obs[0], b.Cause.Observation)
	}

	// A burst: five pushes in quick succession build once per task, on the last.
	var last string
	for i := 0; i < 5; i++ {
		_, last = pushBase(t, osRef, "burst"+string(rune('a'+i)))
		time.Sleep(200 * time.Millisecond)
	}
	runs = settle(t, r.c, 9)
	if len(runs) != 9 {
		t.Fatalf("after a burst of 5 pushes: %d runs, want 9 (one more per task)", len(runs))
	}
	if got := usedDigest(lastOf(runs, "base"), osRef); got != last {
		t.Errorf("burst: base built on %s, want the last pushed %s", got, last)
	}

	// Re-pushing the identical image changes nothing.
	pushBase(t, osRef, "burst"+string(rune('a'+4)))
	time.Sleep(4 * time.Second)
	if n := len(allRuns(t, r.c)); n != 9 {
		t.Errorf("identical re-push: %d runs, want still 9", n)
	}
}

func usedDigest(r api.Run, ref string) string {
	for _, b := range r.Bases {
		if b.Ref == ref {
			return b.Digest
		}
	}
	return ""
}

// TestOnlyChangedPlatformTriggers: a multi-platform base where only the
// arm64 image changes does not rebuild an amd64-only task; an amd64 change does.
func TestOnlyChangedPlatformTriggers(t *testing.T) {
	r := startRefitWith(t, serve.Config{Debounce: -1, PollInterval: time.Hour})
	ctx := context.Background()
	ref := r.RegistryAddr + "/multi/busybox:1"
	pushIndex := func(amd, arm string) string {
		idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
		for _, p := range []struct{ arch, level string }{{"amd64", amd}, {"arm64", arm}} {
			img, err := baseimage.Busybox()
			if err != nil {
				t.Fatal(err)
			}
			if img, err = baseimage.Patch(img, p.level); err != nil {
				t.Fatal(err)
			}
			cf, _ := img.ConfigFile()
			cf = cf.DeepCopy()
			cf.Architecture = p.arch
			if img, err = mutate.ConfigFile(img, cf); err != nil {
				t.Fatal(err)
			}
			idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: p.arch}}})
		}
		n, _ := name.ParseReference(ref)
		if err := remote.WriteIndex(n, idx); err != nil {
			t.Fatal(err)
		}
		d, _ := idx.Digest()
		return d.String()
	}
	first := pushIndex("a1", "r1")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + ref + "\nRUN echo hi > /hi\n"})
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "amd", Source: api.TaskSource{Dir: dir}, Platforms: []string{"linux/amd64"}}); err != nil {
		t.Fatal(err)
	}
	waitChecked(t, r.c, ref, first)

	armOnly := pushIndex("a1", "r2")
	waitChecked(t, r.c, ref, armOnly)
	time.Sleep(500 * time.Millisecond)
	if runs := allRuns(t, r.c); len(runs) != 0 {
		t.Fatalf("an arm64-only change queued %d runs of an amd64-only task, want none", len(runs))
	}
	obs, _ := r.c.BaseHistory(ctx, ref)
	if len(obs) == 0 || obs[0].Platform != "linux/arm64" {
		t.Errorf("newest observation = %+v, want the linux/arm64 change", obs)
	}

	pushIndex("a2", "r2")
	runs := settle(t, r.c, 1)
	if len(runs) != 1 || runs[0].Cause.Platform != "linux/amd64" || runs[0].State != api.StateSucceeded {
		t.Fatalf("after an amd64 change: %+v, want one succeeded run caused by linux/amd64", runs)
	}
}
