// Package hook owns registry webhook intake: it authenticates push
// notifications sent by container registries, bounds their size, and parses
// the four supported notification formats (CNCF distribution, Harbor, Docker
// Hub and Azure Container Registry via Event Grid) into [Push] values that it
// hands to a callback.
//
// It does not decide what to rebuild, resolve digests, or store anything:
// the [Config.Accept] callback does.
package hook

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"
)

// Format names a supported notification format. It is also the last path
// element of the webhook URL, e.g. /hooks/registry/harbor.
type Format string

// The supported formats.
const (
	// FormatDistribution is the CNCF distribution (registry:2/3) notification
	// envelope {"events":[...]}.
	FormatDistribution Format = "distribution"
	// FormatHarbor is Harbor's webhook payload, in its "Default" shape or its
	// CloudEvents shape.
	FormatHarbor Format = "harbor"
	// FormatDockerHub is Docker Hub's repository webhook payload.
	FormatDockerHub Format = "dockerhub"
	// FormatACR is Azure Container Registry delivered by Azure Event Grid, in
	// the Event Grid schema or the CloudEvents 1.0 schema.
	FormatACR Format = "acr"
)

// Push is one image push a registry reported.
type Push struct {
	// Source is the format the push came from: "distribution", "harbor",
	// "dockerhub" or "acr".
	Source string
	// EventID identifies the push for idempotency. It is the notification's
	// own id where the format carries one (suffixed "#<n>" when one
	// notification id covers several pushes); otherwise it is a stable hash
	// of (source, repository, tag, digest, payload timestamp). The same
	// payload always yields the same EventIDs.
	EventID string
	// Registry is host[:port] as the payload names it, "" if it does not
	// (Docker Hub pushes report "docker.io").
	Registry string
	// Repository is the repository path, e.g. "library/debian", "acme/base".
	// It is never empty.
	Repository string
	// Tag is "" when the image was pushed by digest only.
	Tag string
	// Digest is "sha256:..."; "" when the format carries none (Docker Hub),
	// in which case the caller resolves the tag itself.
	Digest string
	// MediaType is the manifest media type, when the payload gives it.
	MediaType string
	// Time is when the push happened, in UTC, when the payload gives it.
	Time time.Time
}

// Ref returns "registry/repository:tag", or "registry/repository@digest" when
// there is no tag. The "registry/" part is left out when Registry is "".
func (p Push) Ref() string {
	ref := p.Repository
	if p.Registry != "" {
		ref = p.Registry + "/" + ref
	}
	switch {
	case p.Tag != "":
		return ref + ":" + p.Tag
	case p.Digest != "":
		return ref + "@" + p.Digest
	}
	return ref
}

// hookError is a constant-able error type, so sentinel errors need no
// package-level variables.
type hookError string

func (e hookError) Error() string { return string(e) }

const (
	// ErrUnknownFormat is returned (wrapped) by parse for a format other
	// than the four supported ones.
	ErrUnknownFormat hookError = "unknown webhook format"
	// ErrUnsupportedMediaType is returned (wrapped) by parse when the
	// content type cannot carry the given format. The handler answers 415.
	ErrUnsupportedMediaType hookError = "unsupported content type"
)

// syntheticID derives a deterministic event id for formats whose payloads
// carry none. Fields are length-prefixed so that no two distinct tuples
// share an encoding.
func syntheticID(source, repository, tag, digest string, t time.Time) string {
	h := sha256.New()
	var n [8]byte
	ts := ""
	if !t.IsZero() {
		ts = strconv.FormatInt(t.UnixNano(), 10)
	}
	for _, s := range []string{source, repository, tag, digest, ts} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	return source + ":" + hex.EncodeToString(h.Sum(nil))
}
