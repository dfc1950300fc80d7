package attest

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/refit-dev/refit/internal/api"
)

// SplitRef splits "repository@sha256:<hex>" (a tag before the digest is
// allowed and dropped) into repository and digest; anything else is an
// error naming what is expected.
func SplitRef(ref string) (repo, digest string, err error) {
	repo, digest, ok := strings.Cut(ref, "@")
	if !ok || !strings.HasPrefix(digest, "sha256:") || !validHex(strings.TrimPrefix(digest, "sha256:")) {
		return "", "", fmt.Errorf("image %.200q: want REPOSITORY@sha256:<64 hex digits>", ref)
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i] // a tag
	}
	if repo == "" {
		return "", "", fmt.Errorf("image %.200q names no repository", ref)
	}
	return repo, digest, nil
}

// Explanation is the API's answer for image, told by p from (database
// or attestation).
func Explanation(image, from string, p Predicate) api.ImageExplanation {
	e := api.ImageExplanation{Image: image, From: from}
	// The API mirrors the predicate field for field (a test holds them
	// to that), so JSON carries one into the other.
	b, _ := json.Marshal(p)
	_ = json.Unmarshal(b, &e.Attestation)
	return e
}

// tagsTimeout bounds TagsNow.
const tagsTimeout = 10 * time.Second

// Resolver resolves a tag to the digest it points to now.
type Resolver interface {
	Resolve(ctx context.Context, ref string) (string, error)
}

// TagsNow asks the registry what each of img's tags points to now, and
// whether that is img, within 10 s in all.
func TagsNow(ctx context.Context, r Resolver, img Image) []api.TagNow {
	// An unreachable registry costs the story its tags, not a long wait.
	ctx, cancel := context.WithTimeout(ctx, tagsTimeout)
	defer cancel()
	var out []api.TagNow
	for _, t := range img.Tags {
		tn := api.TagNow{Tag: t}
		d, err := r.Resolve(ctx, img.Repository+":"+t)
		if err != nil {
			tn.Error = err.Error()
		} else {
			tn.Digest, tn.Here = d, d == img.Digest
		}
		out = append(out, tn)
	}
	return out
}

// Reader is what FromRegistry needs of a registry client: attestations
// and tags.
type Reader interface {
	Registry
	Resolver
}

// ErrNoAttestation is returned by FromRegistry when the image has no
// refit attestation.
var ErrNoAttestation = errors.New("no refit attestation")

// FromRegistry tells why the image ref (repository@sha256:…) exists from
// its attestation in its registry, verified with pub when given: the
// newest verified statement (else the newest). Which of the image's
// tags point at it now is asked of the same repository. An image
// without a refit attestation is ErrNoAttestation (wrapped, naming it).
func FromRegistry(ctx context.Context, reg Reader, ref string, pub ed25519.PublicKey) (api.ImageExplanation, error) {
	repo, digest, err := SplitRef(ref)
	if err != nil {
		return api.ImageExplanation{}, err
	}
	found, err := Lookup(ctx, reg, repo, digest, pub)
	if err != nil {
		return api.ImageExplanation{}, err
	}
	if len(found) == 0 {
		return api.ImageExplanation{}, fmt.Errorf("%s: %w", ref, ErrNoAttestation)
	}
	f := found[0]
	p := f.Statement.Predicate
	e := Explanation(ref, "attestation", p)
	e.Verified, e.Via, e.Artifact = f.Verified, f.Via, f.Artifact
	if f.Verified {
		e.Verification = "signature verified with key " + f.KeyID
	} else {
		e.Verification = "UNVERIFIED: " + f.Problem
	}
	img := p.Image
	img.Repository = repo // the copy asked about, wherever it is
	e.TagsNow = TagsNow(ctx, reg, img)
	for _, o := range found[1:] {
		if o.Statement.Predicate.Run.ID != p.Run.ID && !slices.Contains(e.OtherRuns, o.Statement.Predicate.Run.ID) {
			e.OtherRuns = append(e.OtherRuns, o.Statement.Predicate.Run.ID)
		}
	}
	return e, nil
}
