package lifecycle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/refit-dev/refit/internal/index"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

const (
	ociIndex    = "application/vnd.oci.image.index.v1+json"
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
)

// commitSeen commits a check that saw top (of media type mt) with plats
// (platform, digest pairs).
func (f *fixture) commitSeen(t *testing.T, ref, top, mt string, plats ...string) lifecycle.Result {
	t.Helper()
	o := index.Observation{Ref: ref, Digest: top, MediaType: mt, Source: "poll"}
	for i := 0; i+1 < len(plats); i += 2 {
		o.Platforms = append(o.Platforms, store.PlatformDigest{Platform: plats[i], Digest: plats[i+1]})
	}
	res, err := f.l.Commit(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// changes lists a result's changed platforms as "platform old → new".
func changes(res lifecycle.Result) []string {
	var out []string
	for _, o := range res.Changed {
		out = append(out, fmt.Sprintf("%s %s → %s", o.Platform, o.OldDigest, o.Digest))
	}
	return out
}

// lastUpdates returns the data of the newest n base.updated events.
func (f *fixture) lastUpdates(t *testing.T, n int) []lifecycle.BaseUpdated {
	t.Helper()
	evs, err := f.st.ListEvents(context.Background(), store.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []lifecycle.BaseUpdated
	for _, e := range evs {
		if e.Type != store.EventBaseUpdated {
			continue
		}
		var d lifecycle.BaseUpdated
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	if len(out) < n {
		t.Fatalf("%d base.updated events, want at least %d", len(out), n)
	}
	return out[len(out)-n:]
}

// TestIndexSeenFirstByARun is issue 15: a run seeds an index; an
// arm64-only move rebuilds no amd64 task and says linux/arm64 R0 → R1;
// an amd64 move rebuilds the task once with A0 → A1 — whether the run's
// seed carried the platforms or only the index digest (then the next
// check, same digest, fills them in).
func TestIndexSeenFirstByARun(t *testing.T) {
	for _, seedPlatforms := range []bool{true, false} {
		t.Run(fmt.Sprintf("seed with platforms %v", seedPlatforms), func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			ref := "docker.io/lib/multi:1"
			f.addTask(t, task.Spec{Name: "a", Platforms: []string{"linux/amd64"}}, "FROM lib/multi:1\n")
			seed := store.BaseRef{Ref: ref, Digest: "sha256:I0"}
			if seedPlatforms {
				seed.MediaType = ociIndex
				seed.Platforms = []store.PlatformDigest{{Platform: "linux/amd64", Digest: "sha256:A0"}, {Platform: "linux/arm64", Digest: "sha256:R0"}}
			}
			if err := f.st.SeedBase(ctx, seed); err != nil {
				t.Fatal(err)
			}
			// The first check sees the same index: a baseline.
			if res := f.commitSeen(t, ref, "sha256:I0", ociIndex, "linux/amd64", "sha256:A0", "linux/arm64", "sha256:R0"); len(res.Changed) != 0 || len(res.Runs) != 0 {
				t.Fatalf("first check of the seeded index: changes %v, %d runs; want none", changes(res), len(res.Runs))
			}
			if b, _ := f.st.GetBaseRef(ctx, ref); len(b.Platforms) != 2 {
				t.Fatalf("after the first check the index knows platforms %v, want 2", b.Platforms)
			}

			res := f.commitSeen(t, ref, "sha256:I1", ociIndex, "linux/amd64", "sha256:A0", "linux/arm64", "sha256:R1")
			if got := changes(res); len(got) != 1 || got[0] != "linux/arm64 sha256:R0 → sha256:R1" {
				t.Errorf("arm64-only move: changes %v, want [linux/arm64 sha256:R0 → sha256:R1]", got)
			}
			if len(res.Runs) != 0 {
				t.Errorf("arm64-only move queued %d runs of the amd64 task, want 0", len(res.Runs))
			}
			if u := f.lastUpdates(t, 1)[0]; u.Platform != "linux/arm64" || u.OldDigest != "sha256:R0" || u.Digest != "sha256:R1" || u.Change != "changed" {
				t.Errorf("base.updated = %+v, want linux/arm64 sha256:R0 → sha256:R1, changed", u)
			}

			res = f.commitSeen(t, ref, "sha256:I2", ociIndex, "linux/amd64", "sha256:A1", "linux/arm64", "sha256:R1")
			if len(res.Runs) != 1 {
				t.Fatalf("amd64 move queued %d runs, want 1", len(res.Runs))
			}
			if c := res.Runs[0].Cause; c.Platform != "linux/amd64" || c.OldDigest != "sha256:A0" || c.NewDigest != "sha256:A1" {
				t.Errorf("cause %s %s → %s, want linux/amd64 sha256:A0 → sha256:A1", c.Platform, c.OldDigest, c.NewDigest)
			}
		})
	}
}

// TestSeededIndexMovesBeforeFirstCheck: a run seeded the index with its
// platforms and it moves before the index's first check: the move is
// judged per platform (arm64 only: nothing rebuilt).
func TestSeededIndexMovesBeforeFirstCheck(t *testing.T) {
	f := newFixture(t)
	ref := "docker.io/lib/multi:1"
	f.addTask(t, task.Spec{Name: "a", Platforms: []string{"linux/amd64"}}, "FROM lib/multi:1\n")
	if err := f.st.SeedBase(context.Background(), store.BaseRef{Ref: ref, Digest: "sha256:I0", MediaType: ociIndex,
		Platforms: []store.PlatformDigest{{Platform: "linux/amd64", Digest: "sha256:A0"}, {Platform: "linux/arm64", Digest: "sha256:R0"}}}); err != nil {
		t.Fatal(err)
	}
	res := f.commitSeen(t, ref, "sha256:I1", ociIndex, "linux/amd64", "sha256:A0", "linux/arm64", "sha256:R1")
	if got := changes(res); len(got) != 1 || got[0] != "linux/arm64 sha256:R0 → sha256:R1" || len(res.Runs) != 0 {
		t.Errorf("move before the first check: changes %v, %d runs; want [linux/arm64 sha256:R0 → sha256:R1], 0 runs", got, len(res.Runs))
	}
}

// TestPlatformAdded: a platform an index did not have is "added" (no old
// digest) and rebuilds no task that does not build it.
func TestPlatformAdded(t *testing.T) {
	f := newFixture(t)
	ref := "docker.io/lib/multi:1"
	f.addTask(t, task.Spec{Name: "a", Platforms: []string{"linux/amd64"}}, "FROM lib/multi:1\n")
	f.addTask(t, task.Spec{Name: "r", Platforms: []string{"linux/arm64"}}, "FROM lib/multi:1\n")
	f.commitSeen(t, ref, "sha256:I0", ociIndex, "linux/amd64", "sha256:A0")
	res := f.commitSeen(t, ref, "sha256:I1", ociIndex, "linux/amd64", "sha256:A0", "linux/arm64", "sha256:R0")
	if got := changes(res); len(got) != 1 || got[0] != "linux/arm64  → sha256:R0" {
		t.Errorf("added platform: changes %v, want [linux/arm64  → sha256:R0]", got)
	}
	if len(res.Runs) != 1 || res.Runs[0].Task != "r" {
		t.Errorf("added arm64 queued %d runs (%+v), want one of r, none of a", len(res.Runs), res.Runs)
	}
	if u := f.lastUpdates(t, 1)[0]; u.Change != "added" || u.OldDigest != "" {
		t.Errorf("base.updated = %+v, want an added platform without old digest", u)
	}
}

// TestSingleManifestBecomesIndex: a base that is a single amd64 manifest
// becomes an index (amd64 moved, arm64 added) and then a single manifest
// again: the amd64 task is rebuilt once each time, against the amd64
// manifest it had.
func TestSingleManifestBecomesIndex(t *testing.T) {
	f := newFixture(t)
	ref := "docker.io/lib/multi:1"
	f.addTask(t, task.Spec{Name: "a", Platforms: []string{"linux/amd64"}}, "FROM lib/multi:1\n")
	f.commitSeen(t, ref, "sha256:M0", ociManifest, "linux/amd64", "sha256:M0")

	res := f.commitSeen(t, ref, "sha256:I0", ociIndex, "linux/amd64", "sha256:A0", "linux/arm64", "sha256:R0")
	if got := changes(res); len(got) != 2 || got[0] != "linux/amd64 sha256:M0 → sha256:A0" || got[1] != "linux/arm64  → sha256:R0" {
		t.Errorf("single → index: changes %v, want [linux/amd64 sha256:M0 → sha256:A0, linux/arm64  → sha256:R0]", got)
	}
	if len(res.Runs) != 1 || res.Runs[0].Cause.OldDigest != "sha256:M0" || res.Runs[0].Cause.NewDigest != "sha256:A0" {
		t.Errorf("single → index: runs %+v, want one, sha256:M0 → sha256:A0", res.Runs)
	}
	if _, err := f.st.DB().Exec(`UPDATE runs SET state = 'succeeded'`); err != nil {
		t.Fatal(err)
	}

	res = f.commitSeen(t, ref, "sha256:M1", ociManifest, "linux/amd64", "sha256:M1")
	if got := changes(res); len(got) != 1 || got[0] != "linux/amd64 sha256:A0 → sha256:M1" {
		t.Errorf("index → single: changes %v, want [linux/amd64 sha256:A0 → sha256:M1]", got)
	}
	if len(res.Runs) != 1 || res.Runs[0].Cause.OldDigest != "sha256:A0" || res.Runs[0].Cause.NewDigest != "sha256:M1" {
		t.Errorf("index → single: runs %+v, want one, sha256:A0 → sha256:M1", res.Runs)
	}
}
