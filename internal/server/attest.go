package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/attest"
	"github.com/refit-dev/refit/internal/store"
)

// imageStore is what explaining an image reads of refit's runs.
type imageStore interface {
	attest.RunDB
	RunsByDigest(ctx context.Context, digest string, limit int) ([]store.Run, error)
}

var _ imageStore = (*store.Store)(nil)

// explainImage answers GET /api/v1/images/explain?ref=REPO@DIGEST from
// the run that pushed DIGEST (as the image's digest or a platform's),
// the newest when several did.
func (s *Server) explainImage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ref := r.URL.Query().Get("ref")
	_, digest, err := attest.SplitRef(ref)
	if err != nil {
		return &httpError{http.StatusBadRequest, "ref: " + err.Error()}
	}
	var runs []store.Run
	if s.cfg.Images != nil {
		if runs, err = s.cfg.Images.RunsByDigest(ctx, digest, 20); err != nil {
			return err
		}
	}
	if len(runs) == 0 {
		return &httpError{http.StatusNotFound, fmt.Sprintf("no run of this refit pushed %s (refit explain IMAGE@DIGEST then reads the image's attestation from its registry)", digest)}
	}
	serverID := ""
	if s.cfg.Signer != nil {
		serverID = s.cfg.Signer.ID
	}
	p, err := attest.FromRun(ctx, s.cfg.Images, runs[0], serverID)
	if err != nil {
		return err
	}
	e := attest.Explanation(ref, "database", p)
	e.Verification = "told by refit's database"
	if s.cfg.Tags != nil {
		e.TagsNow = attest.TagsNow(ctx, s.cfg.Tags, p.Image)
	}
	for _, o := range runs[1:] {
		e.OtherRuns = append(e.OtherRuns, store.FormatRunID(o.ID))
	}
	return writeJSON(w, http.StatusOK, e)
}

// signingKey answers GET /api/v1/signing-key.
func (s *Server) signingKey(w http.ResponseWriter, _ *http.Request) error {
	if s.cfg.Signer == nil {
		return &httpError{http.StatusNotFound, "this refit signs no attestations"}
	}
	return writeJSON(w, http.StatusOK, api.SigningKey{KeyID: s.cfg.Signer.ID, Algorithm: "ed25519", PublicKey: string(s.cfg.Signer.PublicPEM())})
}
