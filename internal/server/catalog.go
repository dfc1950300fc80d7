package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/catalog"
	"github.com/refit-dev/refit/internal/store"
)

// catalogs catalogs and diffs images; *catalog.Service is one.
type catalogs interface {
	Catalog(ctx context.Context, ref, platform string) (catalog.Catalog, error)
	Diff(ctx context.Context, oldRef, newRef, platform string) (catalog.Diff, error)
}

var _ catalogs = (*catalog.Service)(nil)

func (s *Server) imagePackages(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	ref, err := imageParam(q.Get("image"), "image")
	if err != nil {
		return err
	}
	c, err := s.cfg.Catalogs.Catalog(r.Context(), ref, q.Get("platform"))
	if err != nil {
		return catalogError(err)
	}
	var out api.ImageCatalog
	if err := wire(c, &out); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) imageDiff(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	old, err := imageParam(q.Get("old"), "old")
	if err != nil {
		return err
	}
	cur, err := imageParam(q.Get("new"), "new")
	if err != nil {
		return err
	}
	d, err := s.cfg.Catalogs.Diff(r.Context(), old, cur, q.Get("platform"))
	if err != nil {
		return catalogError(err)
	}
	var out api.ImageDiff
	if err := wire(d, &out); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// baseDiff answers the diff of a base update: the one between the
// digests asked, or by default the reference's last change.
func (s *Server) baseDiff(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("ref") == "" {
		return &httpError{http.StatusBadRequest, "ref is required: /api/v1/bases/diff?ref=docker.io/library/debian:12"}
	}
	ref, err := normalizeRef(q.Get("ref"))
	if err != nil {
		return &httpError{http.StatusBadRequest, err.Error()}
	}
	out := api.BaseDiff{Ref: ref, Platform: q.Get("platform"), OldDigest: q.Get("old"), NewDigest: q.Get("new")}
	switch {
	case out.OldDigest != "" && out.NewDigest != "":
	case out.OldDigest != "" || out.NewDigest != "":
		return &httpError{http.StatusBadRequest, "give both old and new digests, or neither for the last change"}
	default:
		obs, err := s.cfg.Index.Observations(r.Context(), ref, 1000)
		if err != nil {
			return err
		}
		// The first sighting (the baseline: the oldest observations, all
		// without an old digest and seen at once) is no change; a
		// platform added later, also without an old digest, is one.
		var baseline time.Time
		if n := len(obs); n > 0 && obs[n-1].OldDigest == "" {
			baseline = obs[n-1].SeenAt
		}
		for _, o := range obs { // newest first
			if (o.OldDigest != "" || !o.SeenAt.Equal(baseline)) && (out.Platform == "" || o.Platform == out.Platform) {
				out.Platform, out.OldDigest, out.NewDigest, out.SeenAt = o.Platform, o.OldDigest, o.Digest, o.SeenAt
				break
			}
		}
		if out.NewDigest == "" {
			if _, err := s.cfg.Index.GetBaseRef(r.Context(), ref); err != nil {
				return err
			}
			return &httpError{http.StatusNotFound, fmt.Sprintf("%s has not changed since refit started watching it (refit bases history %s)", ref, ref)}
		}
	}
	oldRef := "" // a platform new to the reference
	if out.OldDigest != "" {
		if oldRef, err = catalog.DigestRef(ref, out.OldDigest); err != nil {
			return &httpError{http.StatusBadRequest, err.Error()}
		}
	}
	newRef, err := catalog.DigestRef(ref, out.NewDigest)
	if err != nil {
		return &httpError{http.StatusBadRequest, err.Error()}
	}
	d, err := s.cfg.Catalogs.Diff(r.Context(), oldRef, newRef, out.Platform)
	if err != nil {
		return catalogError(err)
	}
	if err := wire(d, &out.Diff); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// imageParam normalizes an image reference given as query parameter
// name.
func imageParam(v, name string) (string, error) {
	if v == "" {
		return "", &httpError{http.StatusBadRequest, name + " is required: an image by tag or digest, e.g. docker.io/library/debian:12"}
	}
	ref, err := normalizeRef(v)
	if err != nil {
		return "", &httpError{http.StatusBadRequest, fmt.Sprintf("%s: %v", name, err)}
	}
	return ref, nil
}

// catalogError answers a failed catalog: over a limit is 422 (the
// image is too big for the configured limits), any other 502 (the
// registry did not give the image).
func catalogError(err error) error {
	var le *catalog.LimitError
	if errors.As(err, &le) {
		return &httpError{http.StatusUnprocessableEntity, err.Error()}
	}
	if errors.Is(err, store.ErrNotFound) {
		return err
	}
	return &httpError{http.StatusBadGateway, err.Error()}
}

// wire copies a catalog value into its wire type, which has the same
// JSON fields (TestWireMirrorsRows holds them together).
func wire(from, to any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return fmt.Errorf("encoding %T: %w", from, err)
	}
	if err := json.Unmarshal(b, to); err != nil {
		return fmt.Errorf("decoding %T: %w", to, err)
	}
	return nil
}
