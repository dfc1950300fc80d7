package plan_test

import (
	"slices"
	"testing"

	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
)

// TestCoalesceKeepsADirectCause: a waiting cascade that a base update
// then triggers directly keeps that cause, so an upstream that pushes
// nothing new cannot drop it.
func TestCoalesceKeepsADirectCause(t *testing.T) {
	waiting := store.Run{ID: 7, Cause: store.Cause{Kind: "cascade", UpstreamRun: 3}, BlockedBy: []int64{3}}
	direct := store.Cause{Kind: "base", Base: "docker.io/library/debian:12", NewDigest: "sha256:b"}
	got := plan.Coalesce(waiting, direct, true, nil)
	if got.Cause.Kind != "base" || got.Cause.Base != direct.Base || !slices.Equal(got.BlockedBy, []int64{3}) {
		t.Errorf("coalesced = %+v, want the base cause, still blocked by 3", got)
	}
}
