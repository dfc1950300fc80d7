package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/refit-dev/refit/internal/store"
)

func TestCatalogsAndDiffs(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	if _, err := s.Catalog(ctx, "sha256:a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Catalog of an unknown digest: %v, want ErrNotFound", err)
	}
	if err := s.PutCatalog(ctx, "sha256:a", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	// The first catalog of a digest stays: content never changes under it.
	if err := s.PutCatalog(ctx, "sha256:a", []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Catalog(ctx, "sha256:a"); err != nil || string(got) != `{"n":1}` {
		t.Errorf("Catalog = %s, %v; want the first", got, err)
	}
	if _, err := s.ImageDiff(ctx, "sha256:a", "sha256:b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ImageDiff unknown: %v, want ErrNotFound", err)
	}
	if err := s.PutImageDiff(ctx, "sha256:a", "sha256:b", []byte(`{"d":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutImageDiff(ctx, "sha256:a", "sha256:b", []byte(`{"d":2}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ImageDiff(ctx, "sha256:a", "sha256:b"); err != nil || string(got) != `{"d":1}` {
		t.Errorf("ImageDiff = %s, %v", got, err)
	}
	if _, err := s.ImageDiff(ctx, "sha256:b", "sha256:a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the reverse diff: %v, want ErrNotFound", err)
	}
}
