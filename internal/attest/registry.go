package attest

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/refit-dev/refit/internal/regclient"
)

// Annotations on the attestation artifact's manifest (and so on its
// entry in a referrers list).
const (
	AnnotationPredicateType = "dev.refit.predicate-type"
	AnnotationRun           = "dev.refit.run"
	annotationCreated       = "org.opencontainers.image.created"
)

// Limits on reading attestations back.
const (
	maxArtifactManifest = 64 << 10
	maxSubjectManifest  = 4 << 20
	// maxCandidates bounds the attestation artifacts read for one image.
	maxCandidates = 32
)

// Registry is what attaching and reading attestations needs of the
// registry client.
type Registry interface {
	PushReferrer(ctx context.Context, repo string, subject regclient.Descriptor, a regclient.Artifact) (regclient.Descriptor, string, error)
	Referrers(ctx context.Context, repo, subject string) ([]regclient.Descriptor, string, error)
	FetchManifest(ctx context.Context, repo, digest string, max int64) ([]byte, string, error)
	FetchBlob(ctx context.Context, repo, digest string, max int64) ([]byte, error)
}

var _ Registry = (*regclient.Client)(nil)

// Attached says where an attestation went.
type Attached struct {
	// Artifacts are the attestation artifacts' manifest digests, one per
	// subject (the image's index, then each platform manifest).
	Artifacts []string
	// Via is how the registry lists them (regclient.ViaAPI or ViaTag).
	Via string
}

// Attach signs the statement about the image p describes with key and
// pushes it (a DSSE envelope, artifactType EnvelopeMediaType) as a
// referrer of the image's digest and of each platform's manifest, so
// that any of those digests finds it. It moves no tag and never
// changes the image. Attaching again with a fuller predicate (a test
// result, approvals) adds a newer statement beside the older ones.
func Attach(ctx context.Context, reg Registry, key *Key, p Predicate) (Attached, error) {
	var at Attached
	if p.Image.Repository == "" || p.Image.Digest == "" {
		return at, errors.New("attesting: the run pushed no image")
	}
	st := NewStatement(p)
	payload, err := json.Marshal(st)
	if err != nil {
		return at, fmt.Errorf("attesting: %w", err)
	}
	art := regclient.Artifact{
		ArtifactType:  EnvelopeMediaType,
		Blob:          key.Sign(payload),
		BlobMediaType: EnvelopeMediaType,
		Annotations: map[string]string{
			AnnotationPredicateType: PredicateType,
			AnnotationRun:           p.Run.ID,
			annotationCreated:       p.AttestedAt.UTC().Format(time.RFC3339),
		},
	}
	repo := p.Image.Repository
	for _, sub := range st.Subject {
		digest := "sha256:" + sub.Digest["sha256"]
		m, mt, err := reg.FetchManifest(ctx, repo, digest, maxSubjectManifest)
		if err != nil {
			return at, fmt.Errorf("attesting %s@%s: %w", repo, digest, err)
		}
		if mt == "" {
			mt = sniffType(m)
		}
		d, via, err := reg.PushReferrer(ctx, repo, regclient.Descriptor{MediaType: mt, Digest: digest, Size: int64(len(m))}, art)
		if err != nil {
			return at, fmt.Errorf("attesting %s@%s: %w", repo, digest, err)
		}
		at.Artifacts, at.Via = append(at.Artifacts, d.Digest), via
	}
	return at, nil
}

// sniffType is a manifest's own mediaType field.
func sniffType(m []byte) string {
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	_ = json.Unmarshal(m, &probe)
	return cmp.Or(probe.MediaType, regclient.MediaTypeOCIManifest)
}

// Found is one attestation read back from a registry.
type Found struct {
	Statement Statement
	// Verified: a signature verifies with the public key given.
	Verified bool
	// Problem says why it is not verified ("no public key given",
	// "signature does not verify with key …").
	Problem string
	// KeyID is the keyid its signature names (not proof of anything
	// unless Verified).
	KeyID string
	// Artifact is the attestation artifact's manifest digest; Via how
	// the registry listed it.
	Artifact string
	Via      string
}

// Lookup reads the attestations of repo@digest from the registry (its
// referrers API, or the tag schema fallback), verifying each DSSE
// signature with pub when given (nil: none verified). It returns the
// statements that are about digest, verified ones first, newest first.
// Artifacts that are not refit attestations are skipped; ones that
// claim to be but do not parse, or whose statement is about another
// image, are reported in the error when nothing else was found.
// Every read is size-limited and checked against its digest.
func Lookup(ctx context.Context, reg Registry, repo, digest string, pub ed25519.PublicKey) ([]Found, error) {
	list, via, err := reg.Referrers(ctx, repo, digest)
	if err != nil {
		return nil, fmt.Errorf("listing attestations of %s@%s: %w", repo, digest, err)
	}
	var found []Found
	var problems []error
	n := 0
	for _, d := range list {
		if d.ArtifactType != EnvelopeMediaType && d.Annotations[AnnotationPredicateType] != PredicateType {
			continue
		}
		if n++; n > maxCandidates {
			break
		}
		f, err := readAttestation(ctx, reg, repo, digest, d.Digest, pub)
		if err != nil {
			problems = append(problems, fmt.Errorf("attestation %s: %w", d.Digest, err))
			continue
		}
		f.Via = via
		found = append(found, f)
	}
	if len(found) == 0 && len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	slices.SortStableFunc(found, func(a, b Found) int {
		if a.Verified != b.Verified {
			if a.Verified {
				return -1
			}
			return 1
		}
		return b.Statement.Predicate.AttestedAt.Compare(a.Statement.Predicate.AttestedAt)
	})
	return found, nil
}

// readAttestation reads one attestation artifact of subject.
func readAttestation(ctx context.Context, reg Registry, repo, subject, artifact string, pub ed25519.PublicKey) (Found, error) {
	f := Found{Artifact: artifact}
	m, _, err := reg.FetchManifest(ctx, repo, artifact, maxArtifactManifest)
	if err != nil {
		return f, err
	}
	layer, err := ParseArtifactManifest(m, subject)
	if err != nil {
		return f, err
	}
	b, err := reg.FetchBlob(ctx, repo, layer, MaxEnvelope)
	if err != nil {
		return f, err
	}
	env, payload, err := ParseEnvelope(b)
	if err != nil {
		return f, err
	}
	if f.Statement, err = ParseStatement(payload); err != nil {
		return f, err
	}
	if !f.Statement.Covers(subject) {
		return f, fmt.Errorf("its statement is about other images, not %s", subject)
	}
	if len(env.Signatures) > 0 {
		f.KeyID = env.Signatures[0].KeyID
	}
	switch {
	case pub == nil:
		f.Problem = "no public key to verify it with (--public-key FILE)"
	case Verify(env, payload, pub):
		f.Verified, f.KeyID = true, KeyID(pub)
	default:
		f.Problem = "its signature does not verify with key " + KeyID(pub)
	}
	return f, nil
}

// ParseArtifactManifest checks that m (untrusted, at most 64 KiB) is an
// OCI manifest of a refit attestation referring to subject, and returns
// the digest of its DSSE envelope layer.
func ParseArtifactManifest(m []byte, subject string) (string, error) {
	if len(m) > maxArtifactManifest {
		return "", fmt.Errorf("artifact manifest of %d bytes is over the %d-byte limit", len(m), maxArtifactManifest)
	}
	var man struct {
		SchemaVersion int                    `json:"schemaVersion"`
		Layers        []regclient.Descriptor `json:"layers"`
		Subject       *regclient.Descriptor  `json:"subject"`
	}
	if err := json.Unmarshal(m, &man); err != nil {
		return "", fmt.Errorf("decoding artifact manifest: %w", err)
	}
	if man.SchemaVersion != 2 {
		return "", fmt.Errorf("artifact manifest has schemaVersion %d, want 2", man.SchemaVersion)
	}
	if man.Subject == nil || man.Subject.Digest != subject {
		return "", fmt.Errorf("artifact manifest does not refer to %s", subject)
	}
	for _, l := range man.Layers {
		if l.MediaType == EnvelopeMediaType && l.Size >= 0 && l.Size <= MaxEnvelope {
			return l.Digest, nil
		}
	}
	return "", fmt.Errorf("artifact manifest has no DSSE envelope layer of at most %d bytes", MaxEnvelope)
}
