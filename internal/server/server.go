// Package server owns refit's HTTP API (/api/v1), its authentication
// (bearer tokens), health and readiness probes and the metrics endpoint.
// It translates HTTP to calls on the store, the run queue and the
// runner's source inspection, and maps store rows and plan results to the
// wire types of internal/api (wire.go). It holds no build logic, and no
// wire type of its own: the contract is internal/api.
package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/attest"
	"github.com/refit-dev/refit/internal/audit"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/identity"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// apiStore is what the API reads and writes directly.
type apiStore interface {
	CreateTask(ctx context.Context, t store.Task) (store.Task, error)
	PutTask(ctx context.Context, t store.Task) (store.Task, bool, bool, error)
	PutTasks(ctx context.Context, ts []store.Task) ([]store.PutResult, error)
	TaskHashes(ctx context.Context) (map[string]string, error)
	GetTask(ctx context.Context, name string) (store.Task, error)
	ListTasks(ctx context.Context) ([]store.Task, error)
	DeleteTask(ctx context.Context, name string) error
	TaskTagArgs(ctx context.Context, taskName string) (map[string]string, error)
	ListTagRepos(ctx context.Context) ([]store.TagRepo, error)
	watchStore
	GetRun(ctx context.Context, id int64) (store.Run, error)
	ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error)
	Logs(ctx context.Context, runID, after int64, limit int) ([]store.LogChunk, error)
	TaskSchedules(ctx context.Context, task string) ([]store.ScheduleState, error)
	GitHeads(ctx context.Context, key string) (map[string]string, error)
	GitDeliveries(ctx context.Context, key string) ([]store.GitDelivery, error)
	// Tokens and the audit log (tokens.go, audit.go).
	LookupToken(ctx context.Context, secret string) (store.Token, error)
	CreateToken(ctx context.Context, user string, roles []string) (store.Token, string, error)
	ListTokens(ctx context.Context) ([]store.Token, error)
	RevokeTokens(ctx context.Context, idOrUser string) ([]store.Token, error)
	AuditEntries(ctx context.Context, f store.AuditFilter) ([]audit.Entry, error)
	EachAuditEntry(ctx context.Context, fn func(audit.Entry) error) error
}

// runQueuer queues manual runs and says when a run ends (the owner of a
// run's life).
type runQueuer interface {
	Queue(ctx context.Context, taskName string, cause store.Cause) (store.Run, error)
	// Ended wakes a log follower early when a run ends; release when done.
	Ended(runID int64) (ended <-chan struct{}, release func())
}

// inspector reads a task's source for its Dockerfile's bases (the
// runner); its errors are the client's (400) unless the request ended.
type inspector interface {
	Inspect(ctx context.Context, spec task.Spec) ([]dockerfile.Base, error)
}

// baseChecker looks up a task's bases as a run would (the runner) and
// says, as warnings, which cannot be resolved now.
type baseChecker interface {
	CheckBases(ctx context.Context, bases []dockerfile.Base) []string
}

// Config configures the API server.
type Config struct {
	Store     apiStore   // required
	Runs      runQueuer  // required to queue runs and follow logs
	Inspector inspector  // required to create and apply tasks
	Index     indexStore // required: the base image index
	// Bases warns, in Warning headers of the answer to a create, put or
	// apply, of bases that cannot be resolved (the task is stored all the
	// same); nil = no check.
	Bases baseChecker
	// Registry is the embedded registry's host:port (to match task
	// outputs to other tasks' bases).
	Registry string
	// Hooks serves /hooks/registry/ (registry webhooks, authenticated by
	// their own secrets); nil = not served.
	Hooks http.Handler
	// CheckTasks, when set, vets tasks about to be stored together (each
	// new, or replacing the stored task of its name) against the others:
	// the planner rejects dependency cycles with a *plan.CycleError.
	CheckTasks func(ctx context.Context, ts []store.Task) error
	// Events serves the outbox, subscriptions and deliveries (required).
	Events eventStore
	// Stream serves GET /api/v1/events/stream (Server-Sent Events); nil =
	// not served.
	Stream http.Handler
	// ValidateTarget vets a subscription URL (scheme, host allow-list);
	// nil = any absolute http(s) URL.
	ValidateTarget func(url string) error
	// Credentials stores registry logins for /api/v1/registries; nil =
	// not served.
	Credentials registryCredentials
	// VulnDB serves /api/v1/vulndb (the offline vulnerability database);
	// nil = not served.
	VulnDB vulnDB
	// VulnDBMaxBytes bounds an uploaded OSV export. Default
	// DefaultVulnDBMaxBytes (1 GiB).
	VulnDBMaxBytes int64
	// TempDir holds uploads while they are imported. "" = os.TempDir().
	// When set it is this server's own: New removes uploads a server
	// that died mid-import left there.
	TempDir string
	// GitSecrets stores git webhook secrets for /api/v1/git/secrets; nil
	// = not served.
	GitSecrets gitSecrets
	// GitHooks serves /hooks/git/ (git push webhooks, authenticated by
	// each repository's secret); nil = not served.
	GitHooks http.Handler
	// Ready reports whether refit can build now (for /readyz); nil = always.
	Ready func(ctx context.Context) error
	// Logger gets one line per request error. nil = discard.
	Logger *slog.Logger
	// LogPoll is how often a followed log is polled for new lines. Default
	// 200 ms.
	LogPoll time.Duration
	// Metrics is the registry /metrics serves; the server adds its own
	// collectors. nil = a new one.
	Metrics *prometheus.Registry
	// Images finds the runs that pushed an image, for GET
	// /api/v1/images/explain; nil = every image is unknown (404).
	Images imageStore
	// Signer is the key attestations are signed with: its ID is the
	// server id in stories, and GET /api/v1/signing-key serves its
	// public half; nil = that route answers 404.
	Signer *attest.Key
	// Tags resolves an image's tags (which point at it now?); nil =
	// not asked.
	Tags attest.Resolver
	// AuditKey signs the checkpoint that closes an audit export
	// (the server's one signing key, as for attestations). nil = exports are
	// refused (501).
	AuditKey ed25519.PrivateKey
	// Promotions approves, rejects and rolls back (the lifecycle's Runs);
	// nil = those routes answer 501.
	Promotions promoter
	// Catalogs serves image packages and diffs (/api/v1/images/…,
	// /api/v1/bases/diff); nil = not served.
	Catalogs catalogs
}

// Server is the HTTP API. It is an http.Handler.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	metrics *prometheus.Registry
	// patterns are the API's registered patterns, for the tests that
	// hold them to api.Routes.
	patterns []string
}

// New returns the API handler.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ValidateTarget == nil {
		cfg.ValidateTarget = func(u string) error {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				return fmt.Errorf("%q is not an http(s) URL", u)
			}
			return nil
		}
	}
	if cfg.LogPoll <= 0 {
		cfg.LogPoll = 200 * time.Millisecond
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.VulnDBMaxBytes <= 0 {
		cfg.VulnDBMaxBytes = DefaultVulnDBMaxBytes
	}
	if cfg.TempDir != "" {
		removeStaleUploads(cfg.TempDir, cfg.Logger)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), metrics: cfg.Metrics}
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}))

	handle := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		s.patterns = append(s.patterns, pattern)
		s.mux.Handle(pattern, s.auth(pattern, h))
	}
	// The description of the API is public: it holds no data.
	openapi, err := api.OpenAPI()
	if err != nil {
		panic(err) // the api types cannot be described: a programming error its tests catch
	}
	s.patterns = append(s.patterns, "GET /api/v1/openapi.json")
	s.mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openapi)
	})
	// The signing key's public half is public too: it verifies
	// attestations offline.
	s.patterns = append(s.patterns, "GET /api/v1/signing-key")
	s.mux.HandleFunc("GET /api/v1/signing-key", func(w http.ResponseWriter, r *http.Request) {
		if err := s.signingKey(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
	handle("GET /api/v1/tasks", s.listTasks)
	handle("POST /api/v1/tasks", s.createTask)
	handle("POST /api/v1/tasks:apply", s.applyTasks)
	handle("GET /api/v1/tasks/{name}", s.getTask)
	handle("PUT /api/v1/tasks/{name}", s.putTask)
	handle("DELETE /api/v1/tasks/{name}", s.deleteTask)
	handle("POST /api/v1/tasks/{name}/runs", s.queueRun)
	handle("GET /api/v1/runs", s.listRuns)
	handle("GET /api/v1/runs/{id}", s.getRun)
	handle("GET /api/v1/runs/{id}/logs", s.runLogs)
	if cfg.Promotions == nil {
		cfg.Promotions = noPromotions{}
		s.cfg.Promotions = cfg.Promotions
	}
	handle("POST /api/v1/runs/{id}/approve", s.approveRun)
	handle("POST /api/v1/runs/{id}/reject", s.rejectRun)
	handle("POST /api/v1/tasks/{name}/promote", s.promoteTask)
	handle("GET /api/v1/bases", s.listBases)
	handle("GET /api/v1/bases/history", s.baseHistory)
	handle("GET /api/v1/graph", s.graph)
	if cfg.Catalogs != nil {
		handle("GET /api/v1/bases/diff", s.baseDiff)
		handle("GET /api/v1/images/packages", s.imagePackages)
		handle("GET /api/v1/images/diff", s.imageDiff)
	}
	handle("GET /api/v1/tasks/{name}/explain", s.explain)
	handle("GET /api/v1/tasks/{name}/triggers", s.triggers)
	handle("GET /api/v1/images/explain", s.explainImage)
	if cfg.Hooks != nil {
		s.mux.Handle("/hooks/registry/", cfg.Hooks)
	}
	if cfg.GitHooks != nil {
		s.mux.Handle("/hooks/git/", cfg.GitHooks)
	}
	handle("GET /api/v1/subscriptions", s.listSubscriptions)
	handle("POST /api/v1/subscriptions", s.createSubscription)
	handle("DELETE /api/v1/subscriptions/{id}", s.deleteSubscription)
	handle("GET /api/v1/events", s.listEvents)
	handle("POST /api/v1/events/redeliver", s.redeliver)
	handle("GET /api/v1/deliveries", s.listDeliveries)
	handle("DELETE /api/v1/deliveries", s.discardDead)
	if cfg.Stream != nil {
		s.patterns = append(s.patterns, "GET /api/v1/events/stream")
		s.mux.Handle("GET /api/v1/events/stream", s.auth("GET /api/v1/events/stream", func(w http.ResponseWriter, r *http.Request) error {
			// after=-1 means "from now on".
			if r.URL.Query().Get("after") == "-1" && r.Header.Get("Last-Event-ID") == "" {
				last, err := cfg.Events.LastEventSeq(r.Context())
				if err != nil {
					return err
				}
				q := r.URL.Query()
				q.Set("after", strconv.FormatInt(last, 10))
				r.URL.RawQuery = q.Encode()
			}
			cfg.Stream.ServeHTTP(w, r)
			return nil
		}))
	}
	if cfg.GitSecrets != nil {
		handle("GET /api/v1/git/secrets", s.listGitSecrets)
		handle("PUT /api/v1/git/secrets", s.putGitSecret)
		handle("DELETE /api/v1/git/secrets", s.deleteGitSecret)
	}
	if cfg.Credentials != nil {
		handle("GET /api/v1/registries", s.listCredentials)
		handle("PUT /api/v1/registries/{host}", s.putCredential)
		handle("DELETE /api/v1/registries/{host}", s.deleteCredential)
	}
	handle("GET /api/v1/watches", s.listWatches)
	handle("POST /api/v1/watches", s.addWatch)
	handle("DELETE /api/v1/watches", s.deleteWatch)
	if cfg.VulnDB != nil {
		handle("GET /api/v1/vulndb", s.vulnDBStatus)
		handle("POST /api/v1/vulndb", s.importVulnDB)
	}
	handle("GET /api/v1/whoami", func(w http.ResponseWriter, r *http.Request) error {
		id := Caller(r)
		who := api.WhoAmI{User: id.User, Kind: id.Kind, Roles: []string{}}
		for _, role := range id.Roles {
			who.Roles = append(who.Roles, string(role))
		}
		return writeJSON(w, http.StatusOK, who)
	})
	handle("GET /api/v1/tokens", s.listTokens)
	handle("POST /api/v1/tokens", s.createToken)
	handle("DELETE /api/v1/tokens/{id}", s.revokeTokens)
	handle("GET /api/v1/audit", s.listAudit)
	handle("GET /api/v1/audit:verify", s.verifyAudit)
	handle("GET /api/v1/audit:export", s.exportAudit)
	s.mux.Handle("/api/", s.auth("/api/", func(w http.ResponseWriter, r *http.Request) error {
		return &httpError{http.StatusNotFound, fmt.Sprintf("no API endpoint %s %s", r.Method, r.URL.Path)}
	}))
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			http.Error(w, "builds unavailable: "+err.Error()+" (runs wait until it answers; the API, watching, webhooks and events work)", http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ready")
}

// user returns the caller's user name (see Caller).
func user(r *http.Request) string { return Caller(r).User }

// httpError is an error with the status code to answer.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

// auth checks the bearer token, puts the caller's identity in the
// request's context (Caller, identity.FromContext: the store records it
// as the actor of audit entries), checks that it holds the role the
// route pattern needs (roleFor: 403 naming the role and the user; a
// pattern without a role is refused to all), then calls h and turns its
// error into a JSON error answer. The scheme is matched without regard to case (RFC
// 7235: "bearer" is "Bearer"); every 401 carries WWW-Authenticate with
// the Bearer scheme, and error="invalid_token" when a token was presented
// but is not known (RFC 6750).
func (s *Server) auth(pattern string, h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	need, defined := roleFor(pattern)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		secret = strings.TrimLeft(secret, " ")
		if !strings.EqualFold(scheme, "Bearer") || secret == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="refit"`)
			s.fail(w, r, &httpError{http.StatusUnauthorized, "missing bearer token (set REFIT_TOKEN)"})
			return
		}
		tok, err := s.cfg.Store.LookupToken(r.Context(), secret)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="refit", error="invalid_token"`)
				err = &httpError{http.StatusUnauthorized, "invalid token"}
			}
			s.fail(w, r, err)
			return
		}
		id := identity.Identity{User: tok.User, Kind: identity.KindToken, ID: tok.ID}
		for _, role := range tok.Roles {
			id.Roles = append(id.Roles, identity.Role(role))
		}
		r = r.WithContext(identity.NewContext(r.Context(), id))
		if !defined {
			s.fail(w, r, &httpError{http.StatusForbidden, fmt.Sprintf("%s has no role defined: refused to everyone (a server bug; report it)", pattern)})
			return
		}
		if !id.Has(need) {
			s.fail(w, r, forbidden(id, need))
			return
		}
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	var fe *task.FieldError
	var de *dockerfile.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		code = he.code
	case errors.Is(err, store.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, store.ErrExists):
		code = http.StatusConflict
	case errors.As(err, &mbe):
		code = http.StatusRequestEntityTooLarge
	case errors.As(err, &fe), errors.As(err, &de), errors.As(err, new(*invalidError)):
		code = http.StatusBadRequest
	}
	if code == http.StatusInternalServerError {
		s.cfg.Logger.Error("api request", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, code, api.Error{Message: err.Error()})
}

// taskError says, once, that the task name does not exist (404) or
// already exists (409), in place of the store's wording; other errors
// pass unchanged.
func taskError(name string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &httpError{http.StatusNotFound, fmt.Sprintf("task %s does not exist", name)}
	case errors.Is(err, store.ErrExists):
		return &httpError{http.StatusConflict, fmt.Sprintf("task %s already exists", name)}
	}
	return err
}

// runError says that run id does not exist (404), in place of the
// store's wording; other errors pass unchanged.
func runError(id int64, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &httpError{http.StatusNotFound, fmt.Sprintf("run %s does not exist", api.FormatRunID(id))}
	}
	return err
}

// invalidError marks a request the client got wrong.
type invalidError struct{ err error }

func (e *invalidError) Error() string { return e.err.Error() }
func (e *invalidError) Unwrap() error { return e.err }

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.cfg.Store.ListTasks(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiList(ts, apiTask))
}

// readSpec decodes, defaults and validates a spec from the body, then
// inspects its source for the Dockerfile and its bases.
func (s *Server) readSpec(w http.ResponseWriter, r *http.Request) (store.Task, error) {
	var spec task.Spec
	err := decodeBody(w, r, task.MaxSpecBytes, "task", func(rd io.Reader) (err error) {
		spec, err = task.DecodeJSON(rd)
		return err
	})
	if err != nil {
		return store.Task{}, err
	}
	if name := r.PathValue("name"); name != "" {
		if spec.Name == "" {
			spec.Name = name
		} else if spec.Name != name {
			return store.Task{}, &invalidError{fmt.Errorf("name %q in body does not match %q in path", spec.Name, name)}
		}
	}
	t, err := s.checkSpec(r.Context(), spec)
	if err != nil {
		return store.Task{}, err
	}
	if s.cfg.CheckTasks != nil {
		if err := s.cfg.CheckTasks(r.Context(), []store.Task{t}); err != nil {
			return store.Task{}, checkError(err)
		}
	}
	return t, nil
}

// checkSpec defaults and validates a spec, then inspects its source for
// the Dockerfile and its bases. Its errors are the client's (400).
func (s *Server) checkSpec(ctx context.Context, spec task.Spec) (store.Task, error) {
	spec = spec.Defaults()
	if err := spec.Validate(); err != nil {
		return store.Task{}, err
	}
	// The Dockerfile is read with the build args the task's runs build
	// with: those its baseTags set override the spec's, so the bases
	// stored (and watched) are the ones built on.
	inspect := spec
	if spec.Triggers != nil && len(spec.Triggers.BaseTags) > 0 {
		args, err := s.cfg.Store.TaskTagArgs(ctx, spec.Name)
		if err != nil {
			return store.Task{}, err
		}
		inspect = spec.TagArgs(args)
	}
	bases, err := s.cfg.Inspector.Inspect(ctx, inspect)
	if err != nil {
		if ctx.Err() != nil {
			return store.Task{}, err
		}
		return store.Task{}, &invalidError{err}
	}
	return store.Task{Spec: spec, Bases: bases}, nil
}

// checkError marks a CheckTasks refusal as the client's; a failure to
// check (the store) stays a 500.
func checkError(err error) error {
	var ce *plan.CycleError
	if errors.As(err, &ce) {
		return &invalidError{err}
	}
	return err
}

func (s *Server) createTask(w http.ResponseWriter, r *http.Request) error {
	t, err := s.readSpec(w, r)
	if err != nil {
		return err
	}
	warnings := s.checkBases(r.Context(), t)
	stored, err := s.cfg.Store.CreateTask(r.Context(), t)
	if err != nil {
		return taskError(t.Spec.Name, err)
	}
	t = stored
	warn(w, warnings)
	return writeJSON(w, http.StatusCreated, apiTask(t))
}

func (s *Server) putTask(w http.ResponseWriter, r *http.Request) error {
	t, err := s.readSpec(w, r)
	if err != nil {
		return err
	}
	warnings := s.checkBases(r.Context(), t)
	t, created, changed, err := s.cfg.Store.PutTask(r.Context(), t)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	warn(w, warnings)
	return writeJSON(w, code, api.PutResult{Task: apiTask(t), Created: created, Changed: changed})
}

// warn adds each warning to the answer as a Warning header, as the
// Kubernetes API does: `Warning: 299 - "base image … not found …"`.
// Clients show them (the CLI on stderr); the request succeeded.
func warn(w http.ResponseWriter, warnings []string) {
	for _, text := range warnings {
		w.Header().Add("Warning", api.WarningHeader(text))
	}
}

// checkBases returns the warnings of Config.Bases about t's bases, and
// of baseTags entries no FROM uses.
func (s *Server) checkBases(ctx context.Context, t store.Task) []string {
	warnings := baseTagWarnings(t)
	if s.cfg.Bases == nil {
		return warnings
	}
	return append(warnings, s.cfg.Bases.CheckBases(ctx, t.Bases)...)
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request) error {
	t, err := s.cfg.Store.GetTask(r.Context(), r.PathValue("name"))
	if err != nil {
		return taskError(r.PathValue("name"), err)
	}
	return writeJSON(w, http.StatusOK, apiTask(t))
}

func (s *Server) deleteTask(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Store.DeleteTask(r.Context(), r.PathValue("name")); err != nil {
		return taskError(r.PathValue("name"), err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) queueRun(w http.ResponseWriter, r *http.Request) error {
	run, err := s.cfg.Runs.Queue(r.Context(), r.PathValue("name"), store.Cause{Kind: "manual", User: user(r)})
	if err != nil {
		return taskError(r.PathValue("name"), err)
	}
	return writeJSON(w, http.StatusCreated, apiRun(run))
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.RunFilter{Task: q.Get("task"), State: store.State(q.Get("state"))}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return &httpError{http.StatusBadRequest, fmt.Sprintf("limit %q must be a number from 1 to 1000", l)}
		}
		f.Limit = n
	}
	runs, err := s.cfg.Store.ListRuns(r.Context(), f)
	if err != nil {
		return err
	}
	if len(runs) == 0 && f.Task != "" {
		// A deleted task's runs stay listed; a name that never had a
		// task is most likely a typo, not "no runs yet".
		if _, err := s.cfg.Store.GetTask(r.Context(), f.Task); err != nil {
			return taskError(f.Task, err)
		}
	}
	return writeJSON(w, http.StatusOK, apiList(runs, apiRun))
}

func runID(r *http.Request) (int64, error) {
	id, err := api.ParseRunID(r.PathValue("id"))
	if err != nil {
		return 0, &httpError{http.StatusBadRequest, err.Error()}
	}
	return id, nil
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	run, err := s.cfg.Store.GetRun(r.Context(), id)
	if err != nil {
		return runError(id, err)
	}
	return writeJSON(w, http.StatusOK, apiRun(run))
}

// runLogs streams a run's stored log as newline-delimited JSON LogChunks.
// With follow=1 it keeps the connection open, sending new chunks as they
// are stored, until the run has ended and every chunk was sent.
func (s *Server) runLogs(w http.ResponseWriter, r *http.Request) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.GetRun(r.Context(), id); err != nil {
		return runError(id, err)
	}
	follow := r.URL.Query().Get("follow") == "1" || r.URL.Query().Get("follow") == "true"
	var after int64
	if a := r.URL.Query().Get("after"); a != "" {
		if after, err = strconv.ParseInt(a, 10, 64); err != nil {
			return &httpError{http.StatusBadRequest, fmt.Sprintf("after %q is not a number", a)}
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	ended, release := s.cfg.Runs.Ended(id)
	defer release()
	for {
		// Read the state before the logs: if it had ended, every chunk
		// was stored before it did.
		run, err := s.cfg.Store.GetRun(r.Context(), id)
		if err != nil {
			return nil // the header is sent; the client sees a short stream
		}
		for {
			chunks, err := s.cfg.Store.Logs(r.Context(), id, after, 500)
			if err != nil {
				return nil
			}
			for _, c := range chunks {
				if err := enc.Encode(api.LogChunk{Seq: c.Seq, Data: c.Data}); err != nil {
					return nil
				}
				after = c.Seq
			}
			if len(chunks) < 500 {
				break
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
		if !follow || run.State.Done() || run.State == store.StateAwaitingApproval {
			return nil // an approval writes no log
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-ended:
		case <-time.After(s.cfg.LogPoll):
		}
	}
}
