package regclient

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Image calls fn with the image ref (a normalized reference by tag or
// digest) holds for platform ("linux/amd64"; empty = the only one, or
// linux/amd64 in an index), on the registry's session and within a slot
// of its ImagesPerRegistry limit — not PerRegistry's, so that checks
// never wait behind a layer stream — the whole call bounded by timeout
// (0 = the Client's Timeout): reading layers takes longer than a check.
// fn should make one request at a time (open one layer after another),
// which keeps the registry's load within the two limits. The image
// fetches lazily: its manifest and config when asked, each layer's blob
// only when fn opens it. A 401/403 drops the session and a Retry-After
// holds the registry, as for Check. Errors are *Error.
func (c *Client) Image(ctx context.Context, ref, platform string, timeout time.Duration, fn func(ctx context.Context, img v1.Image) error) error {
	r, err := c.parse(ref)
	if err != nil {
		return &Error{Ref: ref, Err: err}
	}
	if timeout <= 0 {
		timeout = c.timeout
	}
	_, err = c.sessionWithin(ctx, timeout, true, ref, r, func(ctx context.Context, p *remote.Puller, st *callState) error {
		opts := []remote.Option{remote.Reuse(p), remote.WithContext(ctx)}
		d, err := remote.Get(r, opts...)
		if err != nil {
			return err
		}
		var img v1.Image
		if d.MediaType.IsIndex() {
			want := v1.Platform{OS: "linux", Architecture: "amd64"}
			if platform != "" {
				pl, err := v1.ParsePlatform(platform)
				if err != nil {
					return fmt.Errorf("parsing platform %q: %w", platform, err)
				}
				want = *pl
			}
			idx, err := d.ImageIndex()
			if err != nil {
				return err
			}
			im, err := idx.IndexManifest()
			if err != nil {
				return err
			}
			found := false
			for _, m := range im.Manifests {
				if m.Platform != nil && m.Platform.Satisfies(want) && m.MediaType.IsImage() {
					if img, err = idx.Image(m.Digest); err != nil {
						return err
					}
					found = true
					break
				}
			}
			if !found {
				return fmt.Errorf("%s has no image for platform %s", ref, want.String())
			}
		} else if img, err = d.Image(); err != nil {
			return err
		}
		return fn(ctx, img)
	})
	return err
}
