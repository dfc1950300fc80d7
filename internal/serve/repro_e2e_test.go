package serve_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/runner"
	"github.com/refit-dev/refit/internal/serve"
)

// TestUnchangedRebuildCascadesNothing: base → python, both from a dir
// source. A manual re-run of base with the same files and the same base
// digest pushes the same platform image digest (only the index differs,
// by its provenance), and neither the run's finish nor the index's
// sighting of the re-pushed tag rebuilds python. A changed file in base's
// context pushes a new image and does rebuild python.
func TestUnchangedRebuildCascadesNothing(t *testing.T) {
	r := startRefitWith(t, serve.Config{Debounce: 2 * time.Second, PollInterval: time.Hour})
	ctx := context.Background()
	reg := r.RegistryAddr
	osRef := reg + "/os/busybox:1"
	pushBase(t, osRef, "")
	baseRef := reg + "/acme/base:latest"

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"base/Dockerfile":    "FROM " + osRef + "\nCOPY company /etc/company\nRUN echo built > /built\n",
		"base/company":       "acme\n",
		"base/.dockerignore": "build.log\n",
		"python/Dockerfile":  "FROM " + baseRef + "\nRUN echo python > /python\n",
	})
	for _, spec := range []api.TaskSpec{
		{Name: "base", Source: api.TaskSource{Dir: dir}, Context: "base", Image: "acme/base"},
		{Name: "python", Source: api.TaskSource{Dir: dir}, Context: "python", Image: "acme/python"},
	} {
		if _, err := r.c.CreateTask(ctx, spec); err != nil {
			t.Fatalf("creating %s: %v", spec.Name, err)
		}
	}
	if _, err := r.c.Run(ctx, "base"); err != nil {
		t.Fatal(err)
	}
	runs := settle(t, r.c, 2)
	first := lastOf(runs, "base")
	for _, x := range runs {
		if x.State != api.StateSucceeded {
			t.Fatalf("run %s of %s: %s %s", x.ID, x.Task, x.State, x.Error)
		}
	}
	if len(first.Platforms) == 0 {
		t.Fatalf("run %s recorded no platform digests", first.ID)
	}
	waitChecked(t, r.c, baseRef, first.Digest)

	// A file the build does not see (ignored) changes nothing either.
	writeFiles(t, dir, map[string]string{"base/build.log": "noise\n"})
	if _, err := r.c.Run(ctx, "base"); err != nil {
		t.Fatal(err)
	}
	runs = settle(t, r.c, 3)
	again := runs[2]
	if again.Task != "base" || again.State != api.StateSucceeded {
		t.Fatalf("re-run: %s of %s %s %s", again.ID, again.Task, again.State, again.Error)
	}
	t.Logf("identical runs: %s index %s platforms %v; %s index %s platforms %v",
		first.ID, first.Digest, first.Platforms, again.ID, again.Digest, again.Platforms)
	if !slices.Equal(again.Platforms, first.Platforms) {
		t.Errorf("re-run with the same inputs pushed platforms %v, want %v (the first run's)", again.Platforms, first.Platforms)
	}
	// The index sees the tag move (a new provenance), compares the
	// platform digests, and starts no wave.
	waitChecked(t, r.c, baseRef, again.Digest)
	time.Sleep(4 * time.Second) // past the debounce
	if runs = allRuns(t, r.c); len(runs) != 3 {
		var got []string
		for _, x := range runs[3:] {
			got = append(got, x.ID+" "+x.Task+" "+x.Cause.Kind)
		}
		t.Fatalf("unchanged re-run rebuilt %v, want nothing", got)
	}
	img, _ := builtImage(t, again.Image)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cf.Config.Labels[runner.AnnotationCreated], cf.Created.UTC().Format(time.RFC3339); got != want {
		t.Errorf("created label = %q, want the image's created time %s (SOURCE_DATE_EPOCH)", got, want)
	}

	// A real change in the source cascades.
	writeFiles(t, dir, map[string]string{"base/company": "acme corp\n"})
	if _, err := r.c.Run(ctx, "base"); err != nil {
		t.Fatal(err)
	}
	runs = settle(t, r.c, 5)
	changed, py := runs[3], runs[4]
	if slices.Equal(changed.Platforms, first.Platforms) {
		t.Errorf("changed source pushed the same platforms %v", changed.Platforms)
	}
	// Whichever sees it first (the run's finish, or the index's sighting
	// of the pushed tag), python is rebuilt once, on the new image.
	if py.Task != "python" || py.State != api.StateSucceeded || usedDigest(py, baseRef) != changed.Digest {
		t.Errorf("after a source change: %s of %s (%s, built on %s), want python rebuilt on %s", py.ID, py.Task, py.State, usedDigest(py, baseRef), changed.Digest)
	}
	time.Sleep(3 * time.Second) // past the debounce: no second rebuild
	if n := len(allRuns(t, r.c)); n != 5 {
		t.Errorf("after a source change: %d runs, want 5 (python once)", n)
	}
}

// TestGitRebuildIsReproducible: two runs of the same commit push the
// same platform image digest, stamped with the commit's time.
func TestGitRebuildIsReproducible(t *testing.T) {
	r := startRefit(t, t.TempDir())
	ctx := context.Background()
	baseRef := r.RegistryAddr + "/base/busybox:1"
	pushBase(t, baseRef, "")
	repo := t.TempDir()
	writeFiles(t, repo, map[string]string{
		"Dockerfile": "FROM " + baseRef + "\nCOPY app.txt /\nRUN echo built > /b\n",
		"app.txt":    "v1\n",
	})
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "first")
	when := strings.TrimSpace(git(t, repo, "log", "-1", "--format=%cI"))
	url := serveGit(t, filepath.Dir(repo)) + "/" + filepath.Base(repo)
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "svc", Source: api.TaskSource{Git: url, Ref: "main"}}); err != nil {
		t.Fatal(err)
	}
	var done []api.Run
	for range 2 {
		q, err := r.c.Run(ctx, "svc")
		if err != nil {
			t.Fatal(err)
		}
		run := waitRun(t, r.c, q.ID)
		if run.State != api.StateSucceeded {
			t.Fatalf("run %s: %s %s", run.ID, run.State, run.Error)
		}
		done = append(done, run)
	}
	t.Logf("same commit: %s index %s platforms %v; %s index %s platforms %v",
		done[0].ID, done[0].Digest, done[0].Platforms, done[1].ID, done[1].Digest, done[1].Platforms)
	if len(done[0].Platforms) == 0 || !slices.Equal(done[0].Platforms, done[1].Platforms) {
		t.Errorf("same commit pushed platforms %v then %v, want the same", done[0].Platforms, done[1].Platforms)
	}
	at, err := time.Parse(time.RFC3339, when)
	if err != nil {
		t.Fatal(err)
	}
	_, idx := builtImage(t, done[1].Image)
	if got, want := idx.Annotations[runner.AnnotationCreated], at.UTC().Format(time.RFC3339); got != want {
		t.Errorf("created annotation = %q, want the commit time %s", got, want)
	}
}

// TestWaveSkipsWhenUpstreamImageUnchanged: the OS base moves, and base
// (which uses it only in a build stage) rebuilds to the very image it
// had. app, planned in the same wave behind base, is not built: it ends
// canceled at step upstream, saying base pushed an unchanged image.
func TestWaveSkipsWhenUpstreamImageUnchanged(t *testing.T) {
	r := startRefitWith(t, serve.Config{Debounce: time.Second, PollInterval: time.Hour})
	ctx := context.Background()
	reg := r.RegistryAddr
	osRef := reg + "/os/busybox:1"
	pushBase(t, osRef, "")
	baseRef := reg + "/acme/base:latest"

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"base/Dockerfile": "FROM " + osRef + " AS build\nRUN echo acme > /company\nFROM scratch\nCOPY --from=build /company /company\n",
		"app/Dockerfile":  "FROM " + baseRef + "\nCOPY f /f\n",
		"app/f":           "app\n",
	})
	all := &api.Triggers{Commit: api.CommitTrigger{Enabled: true}, Base: true, Manual: true, BaseScope: "all"}
	for _, spec := range []api.TaskSpec{
		{Name: "base", Source: api.TaskSource{Dir: dir}, Context: "base", Image: "acme/base", Triggers: all},
		{Name: "app", Source: api.TaskSource{Dir: dir}, Context: "app"},
	} {
		if _, err := r.c.CreateTask(ctx, spec); err != nil {
			t.Fatalf("creating %s: %v", spec.Name, err)
		}
	}
	if _, err := r.c.Run(ctx, "base"); err != nil {
		t.Fatal(err)
	}
	runs := settle(t, r.c, 2)
	for _, x := range runs {
		if x.State != api.StateSucceeded {
			t.Fatalf("run %s of %s: %s %s", x.ID, x.Task, x.State, x.Error)
		}
	}
	first := lastOf(runs, "base")
	waitChecked(t, r.c, baseRef, first.Digest)
	osName, _ := name.ParseReference(osRef)
	head, err := remote.Head(osName)
	if err != nil {
		t.Fatal(err)
	}
	waitChecked(t, r.c, osRef, head.Digest.String())

	pushBase(t, osRef, "p1")
	runs = settle(t, r.c, 4)
	if len(runs) != 4 {
		t.Fatalf("after the OS base moved: %d runs, want 4 (base and app once more)", len(runs))
	}
	b, a := lastOf(runs, "base"), lastOf(runs, "app")
	t.Logf("base %s platforms %v; before %s platforms %v", b.ID, b.Platforms, first.ID, first.Platforms)
	if b.State != api.StateSucceeded || b.Cause.Kind != "base" || !slices.Equal(b.Platforms, first.Platforms) {
		t.Fatalf("base's rebuild = %s (%s) cause %s platforms %v; want succeeded on the OS update with platforms %v",
			b.State, b.Error, b.Cause, b.Platforms, first.Platforms)
	}
	want := "not built: upstream run " + b.ID + " (task base) pushed an unchanged image"
	if a.State != api.StateCanceled || a.Step != "upstream" || a.Error != want {
		t.Errorf("app's run in the wave = %s step %q error %q; want canceled at upstream, %q", a.State, a.Step, a.Error, want)
	}
}
