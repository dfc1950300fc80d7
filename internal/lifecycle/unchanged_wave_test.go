package lifecycle_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// TestUnchangedUpstreamReleasesItsWave: a base update plans a wave; the
// first task of it rebuilds to the very image it had. The runs of the
// wave queued only because of it (python, and app on python) are not
// built: they end canceled at step "upstream", saying the upstream
// pushed an unchanged image. A run with its own cause (tool, triggered
// by the base update itself) builds, and so does one that also waits for
// an upstream that pushed a new image (mix, on base and other).
func TestUnchangedUpstreamReleasesItsWave(t *testing.T) {
	f := startLife(t, -1)
	debian := "docker.io/library/debian:12"
	f.addTask(t, task.Spec{Name: "base", Image: "acme/base"}, "FROM debian:12\n")
	f.addTask(t, task.Spec{Name: "other", Image: "acme/other"}, "FROM debian:12\n")
	f.addTask(t, task.Spec{Name: "python", Image: "acme/python"}, "FROM "+reg+"/acme/base\n")
	f.addTask(t, task.Spec{Name: "app"}, "FROM "+reg+"/acme/python:latest\n")
	f.addTask(t, task.Spec{Name: "tool", Triggers: &task.Triggers{Base: true, BaseScope: "all"}},
		"FROM debian:12 AS b\nFROM "+reg+"/acme/base\n")
	f.addTask(t, task.Spec{Name: "mix", Triggers: &task.Triggers{Base: true, BaseScope: "all"}},
		"FROM "+reg+"/acme/base AS b\nFROM "+reg+"/acme/other\n")
	same := []store.PlatformDigest{{Platform: "linux/amd64", Digest: "sha256:a1"}}
	f.on("base", func(_ context.Context, r store.Run, _ lifecycle.Logs) (lifecycle.Outcome, error) {
		d := fmt.Sprintf("sha256:index%d", r.ID) // the index moves, the image does not
		return lifecycle.Outcome{Digest: d, Image: reg + "/acme/base@" + d, Platforms: same}, nil
	})
	f.on("other", func(_ context.Context, r store.Run, _ lifecycle.Logs) (lifecycle.Outcome, error) {
		d := fmt.Sprintf("sha256:%064d", r.ID)
		return lifecycle.Outcome{Digest: d, Image: reg + "/acme/other@" + d,
			Platforms: []store.PlatformDigest{{Platform: "linux/amd64", Digest: d}}}, nil
	})

	// A first wave builds everything once (no previous image to compare).
	f.observe(t, debian, "sha256:a", "linux/amd64", "sha256:a1")
	first := f.observe(t, debian, "sha256:b", "linux/amd64", "sha256:b1")
	if len(first.Runs) != 6 {
		t.Fatalf("first wave of %d runs, want 6", len(first.Runs))
	}
	for _, r := range first.Runs {
		if got := f.waitEnded(t, r.ID); got.State != store.StateSucceeded {
			t.Fatalf("first wave: %s run %s (%s), want succeeded", r.Task, got.State, got.Error)
		}
	}

	// The second: base pushes the image it had.
	before := len(f.exec.executed())
	second := f.observe(t, debian, "sha256:c", "linux/amd64", "sha256:c1")
	if len(second.Runs) != 6 {
		t.Fatalf("second wave of %d runs, want 6", len(second.Runs))
	}
	byTask := map[string]store.Run{}
	for _, r := range second.Runs {
		byTask[r.Task] = f.waitEnded(t, r.ID)
	}
	want := map[string]string{
		"python": fmt.Sprintf("not built: upstream run %s (task base) pushed an unchanged image", store.FormatRunID(byTask["base"].ID)),
		"app":    fmt.Sprintf("not built: upstream run %s (task python) was not needed either", store.FormatRunID(byTask["python"].ID)),
	}
	for name, r := range byTask {
		if w, skipped := want[name]; skipped {
			if r.State != store.StateCanceled || r.Step != "upstream" || r.Error != w {
				t.Errorf("%s run = %s step %q error %q; want canceled at upstream, %q", name, r.State, r.Step, r.Error, w)
			}
		} else if r.State != store.StateSucceeded {
			t.Errorf("%s run = %s (%s), want succeeded", name, r.State, r.Error)
		}
	}
	got := f.exec.executed()[before:]
	slices.Sort(got)
	if w := []string{"base", "mix", "other", "tool"}; !slices.Equal(got, w) {
		t.Errorf("second wave executed %v, want %v", got, w)
	}
	if c := byTask["mix"].Cause; c.Kind != "cascade" || c.UpstreamRun != byTask["other"].ID {
		t.Errorf("mix's cause = %+v, want a cascade of %s (the upstream that pushed a new image)", c, store.FormatRunID(byTask["other"].ID))
	}
}

// TestOwnPushSeenEarlyIsNoCauseOfItsOwn: the push of an upstream run,
// seen by the index before that run is recorded succeeded, does not
// turn its waiting cascade into a direct base update (it is the same
// change, and the cascade may still be dropped if that push changed
// nothing); an update of another base of the task does.
func TestOwnPushSeenEarlyIsNoCauseOfItsOwn(t *testing.T) {
	f := newFixture(t)
	debian, alpine, own := "docker.io/library/debian:12", "docker.io/library/alpine:3", reg+"/acme/base:latest"
	f.addTask(t, task.Spec{Name: "base", Image: "acme/base"}, "FROM debian:12\n")
	f.addTask(t, task.Spec{Name: "python", Triggers: &task.Triggers{Base: true, BaseScope: "all"}},
		"FROM alpine:3 AS tools\nFROM "+reg+"/acme/base\n")
	for _, ref := range []string{debian, alpine, own} {
		f.observe(t, ref, "sha256:0", "linux/amd64", "sha256:00")
	}
	wave := f.observe(t, debian, "sha256:1", "linux/amd64", "sha256:11")
	if len(wave.Runs) != 2 || wave.Runs[1].Task != "python" || wave.Runs[1].Cause.Kind != "cascade" {
		t.Fatalf("wave = %+v, want base then python (cascade)", wave.Runs)
	}
	f.observe(t, own, "sha256:1", "linux/amd64", "sha256:11")
	got, err := f.st.GetRun(t.Context(), wave.Runs[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cause.Kind != "cascade" || got.Cause.UpstreamRun != wave.Runs[0].ID {
		t.Errorf("python's cause after base's own push was seen = %+v, want still the cascade of %s", got.Cause, store.FormatRunID(wave.Runs[0].ID))
	}
	f.observe(t, alpine, "sha256:1", "linux/amd64", "sha256:11")
	if got, err = f.st.GetRun(t.Context(), wave.Runs[1].ID); err != nil {
		t.Fatal(err)
	}
	if got.Cause.Kind != "base" || got.Cause.Base != alpine {
		t.Errorf("python's cause after its own base moved = %+v, want the base update of %s", got.Cause, alpine)
	}
}
