package regclient

import (
	"context"
	"strings"
	"testing"
)

// TestPutTag: a tag is moved to an earlier digest by a tag operation —
// the digest it reads back is the one asked for, no blob is uploaded,
// and doing it twice changes nothing.
func TestPutTag(t *testing.T) {
	cnt, host := serveRegistry(t, nil)
	repo := host + "/app"
	v1img, v2img := randomImage(t, "linux", "amd64"), randomImage(t, "linux", "amd64")
	push(t, repo+":build-1", v1img)
	push(t, repo+":stable", v2img)
	c := New(Config{Keychain: anonymous})
	ctx := context.Background()
	want := digestOf(t, v1img)

	old, err := c.TagDigest(ctx, repo, "stable")
	if err != nil || old != digestOf(t, v2img) {
		t.Fatalf("TagDigest(stable) = %q, %v; want %s", old, err, digestOf(t, v2img))
	}
	if d, err := c.TagDigest(ctx, repo, "missing"); err != nil || d != "" {
		t.Fatalf("TagDigest(missing) = %q, %v; want \"\", nil", d, err)
	}
	cnt.reset()
	for range 2 {
		if err := c.PutTag(ctx, repo, want, "stable"); err != nil {
			t.Fatal(err)
		}
	}
	for k := range cnt.snapshot() {
		if strings.HasPrefix(k, "POST ") || strings.HasPrefix(k, "PATCH ") || strings.Contains(k, "/blobs/") {
			t.Errorf("PutTag touched a blob: %s", k)
		}
	}
	if got, err := c.TagDigest(ctx, repo, "stable"); err != nil || got != want {
		t.Errorf("stable after PutTag = %q, %v; want %s", got, err, want)
	}
	if err := c.PutTag(ctx, repo, "sha256:"+strings.Repeat("0", 64), "stable"); err == nil {
		t.Error("PutTag of a digest the repository lacks succeeded")
	}
}
