package lifecycle_test

import (
	"testing"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/task"
)

// TestCascadeLabelFollowsCoalescedUpstream: a base moves twice while its
// wave waits (3c56 → 1423, then → f5a5); the upstream run absorbs the
// second move, and its dependent's trigger must show the upstream run's
// actual change (3c56 → f5a5), not the first one it was queued for.
func TestCascadeLabelFollowsCoalescedUpstream(t *testing.T) {
	f := newFixture(t)
	ref := reg + "/base/busybox:1"
	f.addTask(t, task.Spec{Name: "hello", Image: "hello"}, "FROM "+ref+"\n")
	f.addTask(t, task.Spec{Name: "app"}, "FROM "+reg+"/hello\n")

	f.observe(t, ref, "sha256:3c56", "linux/amd64", "sha256:3c56")
	f.observe(t, ref, "sha256:1423", "linux/amd64", "sha256:1423")
	f.observe(t, ref, "sha256:f5a5", "linux/amd64", "sha256:f5a5")

	runs := f.runs(t)
	if len(runs) != 2 {
		t.Fatalf("got %d runs, want 2 (hello and its cascade, coalesced)", len(runs))
	}
	up, down := runs[0], runs[1]
	if up.Cause.NewDigest != "sha256:f5a5" {
		t.Fatalf("upstream run's cause = %+v, want the newest digest f5a5", up.Cause)
	}
	if down.Cause.Upstream == nil || down.Cause.UpstreamRun != up.ID {
		t.Fatalf("dependent's cause = %+v, want a cascade of run %d", down.Cause, up.ID)
	}
	if got, want := down.Cause.Upstream.NewDigest, up.Cause.NewDigest; got != want {
		t.Errorf("dependent's trigger shows the upstream change → %s, want %s (the upstream run's own)", got, want)
	}
	label := api.Cause{Kind: "cascade", UpstreamRun: down.Cause.UpstreamRun, Upstream: &api.Cause{
		Kind: down.Cause.Upstream.Kind, Base: down.Cause.Upstream.Base,
		OldDigest: down.Cause.Upstream.OldDigest, NewDigest: down.Cause.Upstream.NewDigest,
	}}.String()
	want := "cascade of " + api.FormatRunID(up.ID) + " ← base: " + ref + " sha256:3c56 → sha256:f5a5"
	if label != want {
		t.Errorf("label = %q, want %q", label, want)
	}
}
