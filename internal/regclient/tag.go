package regclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TagDigest returns the digest repo:tag points to now, or "" when the
// tag does not exist (the registry answers 404). Errors are *Error.
func (c *Client) TagDigest(ctx context.Context, repo, tag string) (string, error) {
	d, err := c.Resolve(ctx, repo+":"+tag)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return "", nil
	}
	return d, err
}

// PutTag points repo:tag at the manifest repo@digest — a registry tag
// operation, never a rebuild: it GETs the manifest by digest (verified
// against it) and PUTs the same bytes, with the same media type, by tag.
// No blob moves, and writing it again is harmless (idempotent). It runs
// within the registry's PerRegistry limit and Timeout, on the registry's
// session for the read and with push credentials from the keychain for
// the write. Errors are *Error.
func (c *Client) PutTag(ctx context.Context, repo, digest, tag string) error {
	ref := repo + "@" + digest
	r, err := c.parse(ref)
	if err != nil {
		return &Error{Ref: ref, Err: err}
	}
	dr, ok := r.(name.Digest)
	if !ok {
		return &Error{Ref: ref, Err: fmt.Errorf("%q is not a digest", digest)}
	}
	tr := dr.Context().Tag(tag)
	_, err = c.session(ctx, ref, r, func(ctx context.Context, p *remote.Puller, st *callState) error {
		desc, err := remote.Get(dr, remote.Reuse(p), remote.WithContext(ctx))
		if err != nil {
			return fmt.Errorf("reading the manifest to tag: %w", err)
		}
		err = remote.Put(tr, desc, remote.WithContext(ctx),
			remote.WithAuthFromKeychain(c.keychain),
			remote.WithTransport(c.pings.wrap(&recorder{next: c.transport})),
			remote.WithUserAgent(userAgent),
			remote.WithRetryBackoff(remote.Backoff{Duration: time.Second, Factor: 1, Steps: 1}),
			remote.WithRetryPredicate(func(error) bool { return false }),
			remote.WithRetryStatusCodes())
		if err != nil {
			return fmt.Errorf("writing tag %s: %w", tag, err)
		}
		return nil
	})
	return err
}
