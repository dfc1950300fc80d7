package build_test

import (
	"context"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/baseimage"
	"github.com/refit-dev/refit/internal/build"
	"github.com/refit-dev/refit/internal/buildkitd"
	"github.com/refit-dev/refit/internal/registry"
)

// TestPinBeatsTag moves the base tag after its digest was recorded: the
// build must use the recorded digest, not what the tag says now.
func TestPinBeatsTag(t *testing.T) {
	if testing.Short() {
		t.Skip("needs buildkitd and runc (make deps)")
	}
	ctx := context.Background()
	reg, err := registry.New(ctx, registry.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	d, err := buildkitd.Start(ctx, buildkitd.Config{Root: t.TempDir(), InsecureRegistries: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop(ctx)

	baseRef := host + "/base:1"
	old := push(t, baseRef, "")
	oldDigest, _ := old.Digest()
	moved := push(t, baseRef, "moved") // the tag now points elsewhere

	dir, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	dockerfile := []byte("FROM " + baseRef + "\nRUN test ! -e /etc/patch-level\n")
	b := build.New(d.Address, nil)
	res, err := b.Build(ctx, build.Request{
		Context:    dir,
		Dockerfile: dockerfile,
		Pins:       map[string]string{baseRef: baseRef + "@" + oldDigest.String()},
		Names:      []string{host + "/app:pinned"},
		Insecure:   true,
		Provenance: true,
	}, nil)
	if err != nil {
		t.Fatalf("build pinned to the old base: %v", err)
	}
	ref, _ := name.ParseReference(host + "/app@" + res.Digest)
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	var img v1.Image
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.OS == "linux" {
			img, _ = idx.Image(m.Digest)
		}
	}
	if img == nil {
		t.Fatal("no linux image in the pushed index")
	}
	got, _ := img.Layers()
	want, _ := old.Layers()
	gd, _ := got[0].Digest()
	wd, _ := want[0].Digest()
	if gd != wd {
		t.Errorf("image's first layer is %s, want the pinned base's %s", gd, wd)
	}
	movedLayers, _ := moved.Layers()
	patch, _ := movedLayers[len(movedLayers)-1].Digest()
	for _, l := range got {
		if d, _ := l.Digest(); d == patch {
			t.Errorf("image contains the moved tag's patch layer %s: the pin was ignored", patch)
		}
	}

	// Without the pin the same Dockerfile sees the moved tag: the RUN fails.
	_, err = b.Build(ctx, build.Request{Context: dir, Dockerfile: dockerfile, Names: []string{host + "/app:unpinned"}, Insecure: true}, nil)
	if err == nil || !strings.Contains(err.Error(), "exit code: 1") {
		t.Errorf("unpinned build: got %v, want the RUN to fail on the moved base", err)
	}
}

func push(t *testing.T, ref, level string) v1.Image {
	t.Helper()
	img, _, err := baseimage.Push(ref, level)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
