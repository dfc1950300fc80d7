// Package index owns what refit knows about base image references: which
// digest a tag points to now. (The watcher, observation history and
// registry webhooks build on it.) It does not build or plan.
package index

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Resolver turns a tag into the digest it points to now, with one HEAD
// request (GET when the registry sends no digest header). Credentials come
// from the Docker config and its credential helpers.
type Resolver struct {
	// Insecure lists registry hosts (host:port) reached over plain HTTP.
	// Loopback hosts are always allowed plain HTTP.
	Insecure []string
	// Timeout bounds one resolution. Zero means 30 s.
	Timeout time.Duration
	// Transport is the HTTP transport; nil means http.DefaultTransport.
	Transport http.RoundTripper
}

// Resolve returns the digest ref (a normalized reference, with tag and
// optionally digest) points to. A reference already pinned by digest is
// returned as is, without a request.
func (r *Resolver) Resolve(ctx context.Context, ref string) (string, error) {
	var opts []name.Option
	n, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	for _, h := range r.Insecure {
		if n.Context().RegistryStr() == h {
			opts = append(opts, name.Insecure)
		}
	}
	if len(opts) > 0 {
		if n, err = name.ParseReference(ref, opts...); err != nil {
			return "", fmt.Errorf("parsing image reference %q: %w", ref, err)
		}
	}
	if d, ok := n.(name.Digest); ok {
		return d.DigestStr(), nil
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if r.Transport != nil {
		ropts = append(ropts, remote.WithTransport(r.Transport))
	}
	desc, err := remote.Head(n, ropts...)
	if err != nil {
		// Some registries answer HEAD without a digest header; GET then.
		gd, gerr := remote.Get(n, ropts...)
		if gerr != nil {
			return "", fmt.Errorf("resolving %s: %w", ref, err)
		}
		return gd.Digest.String(), nil
	}
	return desc.Digest.String(), nil
}
