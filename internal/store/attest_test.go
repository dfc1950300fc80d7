package store_test

import (
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/store"
)

// TestRunsByDigestAndObservation: the runs that pushed a digest are
// found by the image's digest and by a platform's, newest first; a
// digest nobody pushed, or not a digest at all, finds none; an
// observation is found by its id.
func TestRunsByDigestAndObservation(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	var ids []int64
	for _, index := range []string{d("1"), d("2")} {
		r := createRun(t, s, "app", nil)
		r.State, r.Digest, r.Image = store.StateSucceeded, index, "reg/app@"+index
		r.Platforms = []store.PlatformDigest{{Platform: "linux/amd64", Digest: d("a")}} // reproducible: the same both times
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	for _, tc := range []struct {
		digest string
		want   []int64
	}{
		{d("1"), []int64{ids[0]}},
		{d("2"), []int64{ids[1]}},
		{d("a"), []int64{ids[1], ids[0]}},
		{d("b"), nil},
		{"sha256:%", nil},
		{`"`, nil},
	} {
		runs, err := s.RunsByDigest(ctx, tc.digest, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, r := range runs {
			got = append(got, r.ID)
		}
		if diff := cmpDiff(tc.want, got); diff != "" {
			t.Errorf("RunsByDigest(%s) (-want +got):\n%s", tc.digest, diff)
		}
	}

	var oid int64
	err := s.InTx(ctx, func(tx *store.Tx) error {
		var err error
		oid, err = tx.AddObservation(store.Observation{Ref: "reg/os:1", Platform: "linux/amd64", Digest: d("c"), OldDigest: d("b"), TopDigest: d("c"), Source: "webhook"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.Observation(ctx, oid)
	if err != nil || o.Ref != "reg/os:1" || o.Digest != d("c") || o.Source != "webhook" || o.SeenAt.IsZero() {
		t.Errorf("Observation(%d) = %+v (%v)", oid, o, err)
	}
	if _, err := s.Observation(ctx, oid+100); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown observation: %v, want not found", err)
	}
}
