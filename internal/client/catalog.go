package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/refit-dev/refit/internal/api"
)

// ImagePackages returns the OS release and packages of an image (by tag
// or digest) for platform ("" = the only one, or linux/amd64).
func (c *Client) ImagePackages(ctx context.Context, image, platform string) (api.ImageCatalog, error) {
	var out api.ImageCatalog
	q := url.Values{"image": {image}}
	if platform != "" {
		q.Set("platform", platform)
	}
	return out, c.do(ctx, http.MethodGet, "/api/v1/images/packages?"+q.Encode(), nil, &out)
}

// ImageDiff returns what changed from image old to image new.
func (c *Client) ImageDiff(ctx context.Context, old, new, platform string) (api.ImageDiff, error) {
	var out api.ImageDiff
	q := url.Values{"old": {old}, "new": {new}}
	if platform != "" {
		q.Set("platform", platform)
	}
	return out, c.do(ctx, http.MethodGet, "/api/v1/images/diff?"+q.Encode(), nil, &out)
}

// BaseDiff returns the diff of a base reference's update: from digest
// old to new, or with both "" its last change.
func (c *Client) BaseDiff(ctx context.Context, ref, old, new, platform string) (api.BaseDiff, error) {
	var out api.BaseDiff
	q := url.Values{"ref": {ref}}
	if old != "" || new != "" {
		q.Set("old", old)
		q.Set("new", new)
	}
	if platform != "" {
		q.Set("platform", platform)
	}
	return out, c.do(ctx, http.MethodGet, "/api/v1/bases/diff?"+q.Encode(), nil, &out)
}
