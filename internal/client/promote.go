package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/refit-dev/refit/internal/api"
)

// Approve approves a run awaiting approval, with an optional comment.
func (c *Client) Approve(ctx context.Context, id, comment string) (api.Run, error) {
	var r api.Run
	return r, c.do(ctx, http.MethodPost, "/api/v1/runs/"+url.PathEscape(id)+"/approve", api.DecisionRequest{Comment: comment}, &r)
}

// Reject rejects a run awaiting approval, with an optional comment.
func (c *Client) Reject(ctx context.Context, id, comment string) (api.Run, error) {
	var r api.Run
	return r, c.do(ctx, http.MethodPost, "/api/v1/runs/"+url.PathEscape(id)+"/reject", api.DecisionRequest{Comment: comment}, &r)
}

// Promote points the task's promote tags back at a digest it promoted
// before, and returns the tags moved once done.
func (c *Client) Promote(ctx context.Context, task, digest string) ([]api.Promotion, error) {
	var ps []api.Promotion
	return ps, c.do(ctx, http.MethodPost, "/api/v1/tasks/"+url.PathEscape(task)+"/promote", api.PromoteRequest{Digest: digest}, &ps)
}
