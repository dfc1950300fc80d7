package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/index"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/store"
)

// The last change of a reference whose index gained a platform is that
// platform, new: GET /bases/diff answers its diff with every package
// added, and the first sighting (the baseline) is still no change.
func TestBaseDiffOfNewPlatform(t *testing.T) {
	a := startContractAPI(t)
	ctx := context.Background()
	ref := a.images + "/debian:12"
	l, err := lifecycle.New(ctx, lifecycle.Config{Store: a.st, Executor: nopExecutor{}, Registry: registryAddr})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.st.TrackRefs(ctx, []string{ref}); err != nil {
		t.Fatal(err)
	}
	commit := func(top string, plats ...store.PlatformDigest) {
		t.Helper()
		if _, err := l.Commit(ctx, index.Observation{Ref: ref, Digest: top, Source: "poll", Platforms: plats}); err != nil {
			t.Fatal(err)
		}
	}
	commit("sha256:"+strings.Repeat("a", 64), store.PlatformDigest{Platform: "linux/amd64", Digest: a.oldImage})
	if e := call[api.Error](t, a, "GET", "/api/v1/bases/diff?ref="+ref, nil, http.StatusNotFound); !strings.Contains(e.Message, "has not changed") {
		t.Errorf("diff after the baseline only = %+v, want 404: not changed", e)
	}
	cur := call[api.ImageCatalog](t, a, "GET", "/api/v1/images/packages?image="+ref, nil, http.StatusOK)
	commit("sha256:"+strings.Repeat("b", 64), store.PlatformDigest{Platform: "linux/amd64", Digest: a.oldImage},
		store.PlatformDigest{Platform: "linux/arm64", Digest: cur.Digest})

	bd := call[api.BaseDiff](t, a, "GET", "/api/v1/bases/diff?ref="+ref, nil, http.StatusOK)
	d := bd.Diff
	if bd.Platform != "linux/arm64" || bd.OldDigest != "" || bd.NewDigest != cur.Digest || !d.NewPlatform || d.Old != "" ||
		len(d.Added) != 2 || len(d.Changed)+len(d.Removed) != 0 || d.OS == nil || d.OS.New.ID != "debian" {
		t.Errorf("base diff = %+v, want linux/arm64 new with its 2 packages added", bd)
	}
}
