package serve_test

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/refit-dev/refit/internal/serve"
)

// busyboxFor is the test busybox image at patch level, labelled for arch.
func busyboxFor(t *testing.T, arch, level string) v1.Image {
	t.Helper()
	img, err := baseimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	if img, err = baseimage.Patch(img, level); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

func imageDigest(t *testing.T, d interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// pushPlatformIndex pushes to ref an index of linux/amd64 (at patch level
// amd) and linux/arm64 (at arm) and returns the index's digest and the
// two manifests' digests.
func pushPlatformIndex(t *testing.T, ref, amd, arm string) (idx, a, r string) {
	t.Helper()
	ii := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	ai, ri := busyboxFor(t, "amd64", amd), busyboxFor(t, "arm64", arm)
	ii = mutate.AppendManifests(ii,
		mutate.IndexAddendum{Add: ai, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: ri, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	n, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(n, ii); err != nil {
		t.Fatal(err)
	}
	return imageDigest(t, ii), imageDigest(t, ai), imageDigest(t, ri)
}

// pushSingle pushes a single linux/amd64 manifest at patch level to ref
// and returns its digest.
func pushSingle(t *testing.T, ref, level string) string {
	t.Helper()
	img := busyboxFor(t, "amd64", level)
	n, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(n, img); err != nil {
		t.Fatal(err)
	}
	return imageDigest(t, img)
}

// waitPlatforms waits until the index shows ref at top with exactly the
// platform digests want ("os/arch" → digest), as `refit bases` would.
func waitPlatforms(t *testing.T, c *client.Client, ref, top string, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last api.BaseInfo
	for time.Now().Before(deadline) {
		bases, err := c.Bases(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bases {
			if b.Ref != ref {
				continue
			}
			last = b
			got := map[string]string{}
			for _, p := range b.Platforms {
				got[p.Platform] = p.Digest
			}
			if b.Digest == top && fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("refit bases never showed %s at %s with platforms %v; last %+v", ref, top, want, last)
}

// baseUpdate is the data of a base.updated event, as a consumer reads it.
type baseUpdate struct {
	Platform  string   `json:"platform"`
	OldDigest string   `json:"oldDigest"`
	Digest    string   `json:"digest"`
	Change    string   `json:"change"`
	Tasks     []string `json:"tasks"`
}

// updatesAfter returns the base.updated events of ref after seq.
func updatesAfter(t *testing.T, c *client.Client, ref string, seq int64) ([]baseUpdate, int64) {
	t.Helper()
	evs, err := c.ListEvents(context.Background(), api.EventFilter{After: seq, Subject: ref, Type: "dev.refit.base.updated", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []baseUpdate
	for _, e := range evs {
		var u baseUpdate
		if err := json.Unmarshal(e.Data, &u); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
		seq = max(seq, e.Seq)
	}
	return out, seq
}

// TestIndexPlatformsEndToEnd is issue 15 with real BuildKit and a
// registry of its own: a task on a multi-platform base, run at once (run
// first) or after the index's first check (poll first). `refit bases`
// shows both platforms; an arm64-only change rebuilds nothing of the
// amd64 task and its event says linux/arm64 R0 → R1; an amd64 change
// rebuilds the task once with A0 → A1.
func TestIndexPlatformsEndToEnd(t *testing.T) {
	for _, order := range []string{"run first", "poll first"} {
		t.Run(order, func(t *testing.T) {
			reg := newTestRegistry(t, nil)
			r := startRefitWith(t, serve.Config{Debounce: -1, PollInterval: 2 * time.Second})
			ctx := context.Background()
			ref := reg.host + "/lib/multi:1"
			i0, a0, r0 := pushPlatformIndex(t, ref, "a0", "r0")
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + ref + "\nRUN echo hi > /hi\n"})
			if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "a", Source: api.TaskSource{Dir: dir}, Platforms: []string{"linux/amd64"}}); err != nil {
				t.Fatal(err)
			}
			if order == "poll first" {
				waitPlatforms(t, r.c, ref, i0, map[string]string{"linux/amd64": a0, "linux/arm64": r0})
			}
			run, err := r.c.Run(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			if got := waitRun(t, r.c, run.ID); got.State != api.StateSucceeded {
				t.Fatalf("first run %s: %s", run.ID, got.State)
			}
			waitPlatforms(t, r.c, ref, i0, map[string]string{"linux/amd64": a0, "linux/arm64": r0})
			_, seq := updatesAfter(t, r.c, ref, 0)

			i1, _, r1 := pushPlatformIndex(t, ref, "a0", "r1")
			waitPlatforms(t, r.c, ref, i1, map[string]string{"linux/amd64": a0, "linux/arm64": r1})
			time.Sleep(time.Second)
			if runs := allRuns(t, r.c); len(runs) != 1 {
				t.Fatalf("after an arm64-only change %d runs, want only the first: %+v", len(runs), runs)
			}
			ups, seq := updatesAfter(t, r.c, ref, seq)
			if len(ups) != 1 || ups[0].Platform != "linux/arm64" || ups[0].OldDigest != r0 || ups[0].Digest != r1 || ups[0].Change != "changed" {
				t.Errorf("base.updated after the arm64 change = %+v, want one: linux/arm64 %s → %s", ups, r0, r1)
			}

			_, a1, _ := pushPlatformIndex(t, ref, "a1", "r1")
			runs := settle(t, r.c, 2)
			if len(runs) != 2 {
				t.Fatalf("after an amd64 change %d runs, want 2", len(runs))
			}
			c := runs[1].Cause
			if runs[1].State != api.StateSucceeded || c.Platform != "linux/amd64" || c.OldDigest != a0 || c.NewDigest != a1 {
				t.Errorf("run after the amd64 change: %s, cause %s %s → %s; want succeeded, linux/amd64 %s → %s",
					runs[1].State, c.Platform, c.OldDigest, c.NewDigest, a0, a1)
			}
			if ups, _ := updatesAfter(t, r.c, ref, seq); len(ups) != 1 || ups[0].OldDigest != a0 || ups[0].Digest != a1 {
				t.Errorf("base.updated after the amd64 change = %+v, want one: linux/amd64 %s → %s", ups, a0, a1)
			}
			time.Sleep(2 * time.Second) // a poll later: still one rebuild
			if runs := allRuns(t, r.c); len(runs) != 2 {
				t.Errorf("%d runs a poll after the amd64 change, want 2", len(runs))
			}
		})
	}
}

// TestSingleManifestBecomesIndexEndToEnd: a base that is a single amd64
// manifest, seen first by a run, becomes an index (amd64 moved, arm64
// added) and then a single manifest again: the amd64 task is rebuilt once
// each time, against the amd64 manifest it had.
func TestSingleManifestBecomesIndexEndToEnd(t *testing.T) {
	reg := newTestRegistry(t, nil)
	r := startRefitWith(t, serve.Config{Debounce: -1, PollInterval: 2 * time.Second})
	ctx := context.Background()
	ref := reg.host + "/lib/flip:1"
	m0 := pushSingle(t, ref, "m0")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + ref + "\nRUN echo hi > /hi\n"})
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "a", Source: api.TaskSource{Dir: dir}, Platforms: []string{"linux/amd64"}}); err != nil {
		t.Fatal(err)
	}
	run, err := r.c.Run(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitRun(t, r.c, run.ID); got.State != api.StateSucceeded {
		t.Fatalf("first run %s: %s", run.ID, got.State)
	}
	waitPlatforms(t, r.c, ref, m0, map[string]string{"linux/amd64": m0})

	i0, a0, r0 := pushPlatformIndex(t, ref, "a0", "r0")
	waitPlatforms(t, r.c, ref, i0, map[string]string{"linux/amd64": a0, "linux/arm64": r0})
	runs := settle(t, r.c, 2)
	if c := runs[len(runs)-1].Cause; len(runs) != 2 || c.Platform != "linux/amd64" || c.OldDigest != m0 || c.NewDigest != a0 {
		t.Fatalf("single → index: %d runs, last cause %s %s → %s; want 2, linux/amd64 %s → %s", len(runs), c.Platform, c.OldDigest, c.NewDigest, m0, a0)
	}

	m1 := pushSingle(t, ref, "m1")
	waitPlatforms(t, r.c, ref, m1, map[string]string{"linux/amd64": m1})
	runs = settle(t, r.c, 3)
	if c := runs[len(runs)-1].Cause; len(runs) != 3 || c.Platform != "linux/amd64" || c.OldDigest != a0 || c.NewDigest != m1 {
		t.Fatalf("index → single: %d runs, last cause %s %s → %s; want 3, linux/amd64 %s → %s", len(runs), c.Platform, c.OldDigest, c.NewDigest, a0, m1)
	}
	if last := runs[len(runs)-1]; last.State != api.StateSucceeded {
		t.Errorf("run after index → single: %s", last.State)
	}
}
