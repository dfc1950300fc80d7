// Package client is the Go client of refit's HTTP API, used by the CLI and
// by tests. It owns request encoding and error decoding, nothing more; the
// types it sends and returns are the wire contract of internal/api.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/refit-dev/refit/internal/api"
)

// Client talks to one refit server. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
	warn  func(text string)
}

// OnWarning sets fn to be called with the text of every Warning header
// in the server's answers (a task's base image not found, say; the
// request itself succeeded). Set it before the client is used.
func (c *Client) OnWarning(fn func(text string)) { c.warn = fn }

// New returns a client for the server at base ("http://127.0.0.1:7300")
// authenticating with token.
func New(base, token string) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{}}
}

// APIError is an error answer from the server.
type APIError struct {
	Status  int
	Message string
	// Errors lists every task an apply refused (see ApplyTasks).
	Errors []api.TaskError
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// UnreachableError says no refit answered at Server: nothing listens
// there (connection refused), the host is unknown, or the connection
// failed otherwise (Err).
type UnreachableError struct {
	Server string
	Err    error
}

func (e *UnreachableError) Error() string {
	if errors.Is(e.Err, syscall.ECONNREFUSED) {
		return fmt.Sprintf("refit is not running at %s (connection refused)", e.Server)
	}
	var dnsErr *net.DNSError
	if errors.As(e.Err, &dnsErr) {
		return fmt.Sprintf("cannot reach refit at %s: host %s not found", e.Server, dnsErr.Name)
	}
	return fmt.Sprintf("cannot reach refit at %s: %v", e.Server, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// IsNotFound reports whether err is a 404 from the server.
func IsNotFound(err error) bool { return IsStatus(err, http.StatusNotFound) }

// IsStatus reports whether err is the server's answer with HTTP status code.
func IsStatus(err error, code int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == code
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding answer to %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	contentType := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding request: %w", err)
		}
		rd, contentType = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return c.sendRequest(ctx, req)
}

// sendRequest sends req with the token and turns an error answer into
// an *APIError.
func (c *Client) sendRequest(ctx context.Context, req *http.Request) (*http.Response, error) {
	method, path := req.Method, req.URL.Path
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		}
		return nil, &UnreachableError{Server: c.base, Err: err}
	}
	if c.warn != nil {
		for _, v := range resp.Header.Values("Warning") {
			if text, ok := api.ParseWarningHeader(v); ok {
				c.warn(text)
			}
		}
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e api.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(b))
		}
		return nil, &APIError{Status: resp.StatusCode, Message: e.Message, Errors: e.Errors}
	}
	return resp, nil
}

// CreateTask creates a task; the server validates it and its Dockerfile.
func (c *Client) CreateTask(ctx context.Context, s api.TaskSpec) (api.Task, error) {
	var t api.Task
	return t, c.do(ctx, http.MethodPost, "/api/v1/tasks", s, &t)
}

// PutTask creates or updates a task by name (idempotent).
func (c *Client) PutTask(ctx context.Context, s api.TaskSpec) (api.PutResult, error) {
	var r api.PutResult
	return r, c.do(ctx, http.MethodPut, "/api/v1/tasks/"+url.PathEscape(s.Name), s, &r)
}

// ApplyTasks creates or updates every task in one transaction, or none:
// when the server refuses any, the error is an *APIError whose Errors
// name every refused task.
func (c *Client) ApplyTasks(ctx context.Context, specs []api.TaskSpec) ([]api.AppliedTask, error) {
	var out api.ApplyResult
	err := c.do(ctx, http.MethodPost, "/api/v1/tasks:apply", api.ApplyRequest{Tasks: specs}, &out)
	return out.Tasks, err
}

// GetTask returns a task.
func (c *Client) GetTask(ctx context.Context, name string) (api.Task, error) {
	var t api.Task
	return t, c.do(ctx, http.MethodGet, "/api/v1/tasks/"+url.PathEscape(name), nil, &t)
}

// ListTasks returns every task.
func (c *Client) ListTasks(ctx context.Context) ([]api.Task, error) {
	var ts []api.Task
	return ts, c.do(ctx, http.MethodGet, "/api/v1/tasks", nil, &ts)
}

// DeleteTask deletes a task.
func (c *Client) DeleteTask(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/tasks/"+url.PathEscape(name), nil, nil)
}

// Run queues a manual run of a task.
func (c *Client) Run(ctx context.Context, taskName string) (api.Run, error) {
	var r api.Run
	return r, c.do(ctx, http.MethodPost, "/api/v1/tasks/"+url.PathEscape(taskName)+"/runs", nil, &r)
}

// GetRun returns a run by ID ("r-7" or 7).
func (c *Client) GetRun(ctx context.Context, id string) (api.Run, error) {
	var r api.Run
	return r, c.do(ctx, http.MethodGet, "/api/v1/runs/"+url.PathEscape(id), nil, &r)
}

// ListRuns returns runs, newest first.
func (c *Client) ListRuns(ctx context.Context, f api.RunFilter) ([]api.Run, error) {
	q := url.Values{}
	if f.Task != "" {
		q.Set("task", f.Task)
	}
	if f.State != "" {
		q.Set("state", string(f.State))
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	var rs []api.Run
	return rs, c.do(ctx, http.MethodGet, "/api/v1/runs?"+q.Encode(), nil, &rs)
}

// Logs streams a run's log chunks to fn, in order. With follow it returns
// when the run has ended and its whole log was read.
func (c *Client) Logs(ctx context.Context, id string, follow bool, fn func(api.LogChunk) error) error {
	path := "/api/v1/runs/" + url.PathEscape(id) + "/logs"
	if follow {
		path += "?follow=1"
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ch api.LogChunk
		if err := json.Unmarshal(sc.Bytes(), &ch); err != nil {
			return fmt.Errorf("decoding log of run %s: %w", id, err)
		}
		if err := fn(ch); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading log of run %s: %w", id, err)
	}
	return nil
}

// WhoAmI returns the name of the token in use.
func (c *Client) WhoAmI(ctx context.Context) (string, error) {
	var v api.WhoAmI
	return v.User, c.do(ctx, http.MethodGet, "/api/v1/whoami", nil, &v)
}

// Bases returns every tracked base reference and the tasks that use it.
func (c *Client) Bases(ctx context.Context) ([]api.BaseInfo, error) {
	var out []api.BaseInfo
	return out, c.do(ctx, http.MethodGet, "/api/v1/bases", nil, &out)
}

// BaseHistory returns the observations of a reference, newest first.
func (c *Client) BaseHistory(ctx context.Context, ref string) ([]api.Observation, error) {
	var obs []api.Observation
	return obs, c.do(ctx, http.MethodGet, "/api/v1/bases/history?ref="+url.QueryEscape(ref), nil, &obs)
}

// Graph returns the dependency graph of tasks and base references.
func (c *Client) Graph(ctx context.Context) (api.Graph, error) {
	var g api.Graph
	return g, c.do(ctx, http.MethodGet, "/api/v1/graph", nil, &g)
}

// Explain returns how the index and planner see a task.
func (c *Client) Explain(ctx context.Context, taskName string) (api.Explanation, error) {
	var e api.Explanation
	return e, c.do(ctx, http.MethodGet, "/api/v1/tasks/"+url.PathEscape(taskName)+"/explain", nil, &e)
}

// Triggers returns what starts runs of a task, a section per kind.
func (c *Client) Triggers(ctx context.Context, taskName string) (api.TaskTriggers, error) {
	var tr api.TaskTriggers
	return tr, c.do(ctx, http.MethodGet, "/api/v1/tasks/"+url.PathEscape(taskName)+"/triggers", nil, &tr)
}

// ExplainImage returns why the image ref (repository@sha256:…) exists,
// from the run that pushed it; a 404 (IsNotFound) when no run of this
// server did.
func (c *Client) ExplainImage(ctx context.Context, ref string) (api.ImageExplanation, error) {
	var e api.ImageExplanation
	return e, c.do(ctx, http.MethodGet, "/api/v1/images/explain?ref="+url.QueryEscape(ref), nil, &e)
}

// SigningKey returns the public key the server signs attestations with.
func (c *Client) SigningKey(ctx context.Context) (api.SigningKey, error) {
	var k api.SigningKey
	return k, c.do(ctx, http.MethodGet, "/api/v1/signing-key", nil, &k)
}

// CreateSubscription subscribes a URL to events.
func (c *Client) CreateSubscription(ctx context.Context, req api.SubscriptionRequest) (api.Subscription, error) {
	var sub api.Subscription
	return sub, c.do(ctx, http.MethodPost, "/api/v1/subscriptions", req, &sub)
}

// ListSubscriptions lists subscriptions.
func (c *Client) ListSubscriptions(ctx context.Context) ([]api.Subscription, error) {
	var subs []api.Subscription
	return subs, c.do(ctx, http.MethodGet, "/api/v1/subscriptions", nil, &subs)
}

// DeleteSubscription removes a subscription.
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/subscriptions/"+url.PathEscape(id), nil, nil)
}

// ListEvents lists events, oldest first.
func (c *Client) ListEvents(ctx context.Context, f api.EventFilter) ([]api.Event, error) {
	q := url.Values{}
	q.Set("after", fmt.Sprint(f.After))
	if f.Type != "" {
		q.Set("type", f.Type)
	}
	if f.Subject != "" {
		q.Set("subject", f.Subject)
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	var evs []api.Event
	return evs, c.do(ctx, http.MethodGet, "/api/v1/events?"+q.Encode(), nil, &evs)
}

// ListDeliveries lists deliveries (filters may be "").
func (c *Client) ListDeliveries(ctx context.Context, subscription, state string) ([]api.Delivery, error) {
	q := url.Values{}
	if subscription != "" {
		q.Set("subscription", subscription)
	}
	if state != "" {
		q.Set("state", state)
	}
	var ds []api.Delivery
	return ds, c.do(ctx, http.MethodGet, "/api/v1/deliveries?"+q.Encode(), nil, &ds)
}

// Redeliver asks for deliveries to be sent again and returns how many.
func (c *Client) Redeliver(ctx context.Context, req api.RedeliverRequest) (int, error) {
	var v api.RedeliverResult
	return v.Redelivered, c.do(ctx, http.MethodPost, "/api/v1/events/redeliver", req, &v)
}

// DiscardDead deletes dead-lettered deliveries (of one subscription or
// event when given) and returns how many.
func (c *Client) DiscardDead(ctx context.Context, subscription, eventID string) (int, error) {
	q := url.Values{"state": {"dead"}}
	if subscription != "" {
		q.Set("subscription", subscription)
	}
	if eventID != "" {
		q.Set("event", eventID)
	}
	var v api.DiscardResult
	return v.Discarded, c.do(ctx, http.MethodDelete, "/api/v1/deliveries?"+q.Encode(), nil, &v)
}

// Stream follows the Server-Sent Events stream after seq, calling fn with
// each event's id (its seq), type and data, until ctx ends or fn errs.
func (c *Client) Stream(ctx context.Context, after int64, fn func(id, typ string, data []byte) error) error {
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/events/stream?after="+fmt.Sprint(after), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var id, typ string
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil {
				if err := fn(id, typ, data); err != nil {
					return err
				}
			}
			id, typ, data = "", "", nil
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(line[3:])
		case strings.HasPrefix(line, "event:"):
			typ = strings.TrimSpace(line[6:])
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[5:], " ")...)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// ListRegistryCredentials lists the registry logins refit stores (without
// passwords).
func (c *Client) ListRegistryCredentials(ctx context.Context) ([]api.RegistryCredential, error) {
	var out []api.RegistryCredential
	err := c.do(ctx, http.MethodGet, "/api/v1/registries", nil, &out)
	return out, err
}

// PutRegistryCredential stores a login for a registry host.
func (c *Client) PutRegistryCredential(ctx context.Context, host, username, password string) (api.RegistryCredential, error) {
	var out api.RegistryCredential
	err := c.do(ctx, http.MethodPut, "/api/v1/registries/"+url.PathEscape(host),
		api.CredentialRequest{Username: username, Password: password}, &out)
	return out, err
}

// DeleteRegistryCredential removes the login stored for a registry host.
func (c *Client) DeleteRegistryCredential(ctx context.Context, host string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/registries/"+url.PathEscape(host), nil, nil)
}

// Apply creates or updates tasks and watches together (POST
// /api/v1/tasks:apply).
func (c *Client) Apply(ctx context.Context, req api.ApplyRequest) (api.ApplyResult, error) {
	var out api.ApplyResult
	err := c.do(ctx, http.MethodPost, "/api/v1/tasks:apply", req, &out)
	return out, err
}

// ListWatches returns the references watched without building.
func (c *Client) ListWatches(ctx context.Context) ([]api.Watch, error) {
	var out []api.Watch
	err := c.do(ctx, http.MethodGet, "/api/v1/watches", nil, &out)
	return out, err
}

// AddWatch watches a reference without building (or updates its range).
func (c *Client) AddWatch(ctx context.Context, req api.WatchRequest) (api.WatchResult, error) {
	var out api.WatchResult
	err := c.do(ctx, http.MethodPost, "/api/v1/watches", req, &out)
	return out, err
}

// RemoveWatch stops watching ref.
func (c *Client) RemoveWatch(ctx context.Context, ref string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/watches?ref="+url.QueryEscape(ref), nil, nil)
}

// CreateToken creates a token for user with roles; the answer holds its
// secret, this once.
func (c *Client) CreateToken(ctx context.Context, user string, roles []string) (api.NewToken, error) {
	var t api.NewToken
	return t, c.do(ctx, http.MethodPost, "/api/v1/tokens", api.TokenRequest{User: user, Roles: roles}, &t)
}

// ListTokens lists every token, revoked ones too (never secrets).
func (c *Client) ListTokens(ctx context.Context) ([]api.Token, error) {
	var ts []api.Token
	return ts, c.do(ctx, http.MethodGet, "/api/v1/tokens", nil, &ts)
}

// RevokeTokens revokes the token with ID idOrUser, or every active token
// of that user, and returns the tokens revoked.
func (c *Client) RevokeTokens(ctx context.Context, idOrUser string) ([]api.Token, error) {
	var r api.RevokeResult
	return r.Revoked, c.do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(idOrUser), nil, &r)
}

// AuditFilter selects audit entries for ListAudit.
type AuditFilter struct {
	After                  int64
	Since                  string // RFC 3339 or a duration ago
	Subject, Actor, Action string
	Limit                  int
}

// ListAudit returns audit entries, oldest first.
func (c *Client) ListAudit(ctx context.Context, f AuditFilter) ([]api.AuditEntry, error) {
	q := url.Values{}
	if f.After > 0 {
		q.Set("after", strconv.FormatInt(f.After, 10))
	}
	for k, v := range map[string]string{"since": f.Since, "subject": f.Subject, "actor": f.Actor, "action": f.Action} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var es []api.AuditEntry
	return es, c.do(ctx, http.MethodGet, "/api/v1/audit?"+q.Encode(), nil, &es)
}

// VerifyAudit has the server recompute the audit log's chain.
func (c *Client) VerifyAudit(ctx context.Context) (api.AuditVerification, error) {
	var v api.AuditVerification
	return v, c.do(ctx, http.MethodGet, "/api/v1/audit:verify", nil, &v)
}

// ExportAudit streams the audit export (JSON Lines, the last one the
// signed checkpoint) to w, as the server sends it.
func (c *Client) ExportAudit(ctx context.Context, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/audit:export", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("reading the audit export: %w", err)
	}
	return nil
}

// Identity returns who the token in use authenticates, with its roles.
func (c *Client) Identity(ctx context.Context) (api.WhoAmI, error) {
	var v api.WhoAmI
	return v, c.do(ctx, http.MethodGet, "/api/v1/whoami", nil, &v)
}

// VulnDBStatus says what the offline vulnerability database holds.
func (c *Client) VulnDBStatus(ctx context.Context) (api.VulnDBStatus, error) {
	var v api.VulnDBStatus
	return v, c.do(ctx, http.MethodGet, "/api/v1/vulndb", nil, &v)
}

// ImportVulnDB streams an OSV export (a zip of size bytes) to the server,
// which replaces its vulnerability database with it, all or nothing.
func (c *Client) ImportVulnDB(ctx context.Context, zip io.Reader, size int64) (api.VulnDBStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/v1/vulndb", zip)
	if err != nil {
		return api.VulnDBStatus{}, fmt.Errorf("POST /api/v1/vulndb: %w", err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/zip")
	resp, err := c.sendRequest(ctx, req)
	if err != nil {
		return api.VulnDBStatus{}, err
	}
	defer resp.Body.Close()
	var v api.VulnDBStatus
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return api.VulnDBStatus{}, fmt.Errorf("decoding answer to POST /api/v1/vulndb: %w", err)
	}
	return v, nil
}

// ListGitSecrets lists the repositories with a git webhook secret
// (without the secrets).
func (c *Client) ListGitSecrets(ctx context.Context) ([]api.GitSecret, error) {
	var out []api.GitSecret
	err := c.do(ctx, http.MethodGet, "/api/v1/git/secrets", nil, &out)
	return out, err
}

// PutGitSecret sets the webhook secret of a git repository.
func (c *Client) PutGitSecret(ctx context.Context, repo, secret string) (api.GitSecret, error) {
	var out api.GitSecret
	err := c.do(ctx, http.MethodPut, "/api/v1/git/secrets", api.GitSecretRequest{Repo: repo, Secret: secret}, &out)
	return out, err
}

// DeleteGitSecret removes the webhook secret of a git repository.
func (c *Client) DeleteGitSecret(ctx context.Context, repo string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/git/secrets?repo="+url.QueryEscape(repo), nil, nil)
}
