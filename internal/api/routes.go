package api

import "net/http"

// Route is one endpoint of the API: what it takes and what it answers.
// The server registers exactly these (internal/server's tests hold it to
// that), and OpenAPI describes them.
type Route struct {
	Method string
	// Path is a net/http pattern path: "/api/v1/tasks/{name}". Every
	// {wildcard} is a path parameter.
	Path    string
	Summary string
	Query   []Param
	// Request is a zero value of the body's type; nil = no body.
	Request any
	// RequestMedia, when set, is the media type of a body that is a
	// file, not JSON ("application/zip"); Request is then nil.
	RequestMedia string
	// Status is the answer's status on success.
	Status int
	// Response is a zero value of the answer's type; nil = no body.
	Response any
	// Stream, when set, is the media type of an answer that is a stream
	// of Response values: "application/x-ndjson" (one JSON value a line)
	// or "text/event-stream" (Server-Sent Events whose data are
	// CloudEvents).
	Stream string
	// Public routes need no token; every other takes "Authorization:
	// Bearer <token>".
	Public bool
}

// Param is a query parameter.
type Param struct {
	Name        string
	Type        string // "string", "integer" or "boolean"
	Description string
	Required    bool
}

// Routes returns every endpoint under /api/v1, a new slice each call.
func Routes() []Route {
	limit := Param{"limit", "integer", "at most this many, 1 to 1000", false}
	return []Route{
		{Method: http.MethodGet, Path: "/api/v1/tasks", Summary: "List tasks", Status: http.StatusOK, Response: []Task{}},
		{Method: http.MethodPost, Path: "/api/v1/tasks", Summary: "Create a task (the server checks its source and Dockerfile)",
			Request: TaskSpec{}, Status: http.StatusCreated, Response: Task{}},
		{Method: http.MethodPost, Path: "/api/v1/tasks:apply", Summary: "Create or update tasks together, all or none (400 lists every refusal in errors)",
			Request: ApplyRequest{}, Status: http.StatusOK, Response: ApplyResult{}},
		{Method: http.MethodGet, Path: "/api/v1/tasks/{name}", Summary: "Show a task", Status: http.StatusOK, Response: Task{}},
		{Method: http.MethodPut, Path: "/api/v1/tasks/{name}", Summary: "Create (201) or update (200) a task by name",
			Request: TaskSpec{}, Status: http.StatusOK, Response: PutResult{}},
		{Method: http.MethodDelete, Path: "/api/v1/tasks/{name}", Summary: "Delete a task (its runs stay)", Status: http.StatusNoContent},
		{Method: http.MethodPost, Path: "/api/v1/tasks/{name}/runs", Summary: "Queue a manual run of a task",
			Status: http.StatusCreated, Response: Run{}},
		{Method: http.MethodGet, Path: "/api/v1/tasks/{name}/explain", Summary: "Explain why a task did (or didn't) rebuild",
			Status: http.StatusOK, Response: Explanation{}},
		{Method: http.MethodGet, Path: "/api/v1/tasks/{name}/triggers", Summary: "Show what starts runs of a task: a section per kind of trigger, with next due times and last runs",
			Status: http.StatusOK, Response: TaskTriggers{}},
		{Method: http.MethodGet, Path: "/api/v1/runs", Summary: "List runs, newest first", Query: []Param{
			{"task", "string", "only runs of this task", false},
			{"state", "string", "only runs in this state", false},
			{"limit", "integer", "at most this many, 1 to 1000 (default 50)", false},
		}, Status: http.StatusOK, Response: []Run{}},
		{Method: http.MethodGet, Path: "/api/v1/runs/{id}", Summary: "Show a run (id r-7 or 7)", Status: http.StatusOK, Response: Run{}},
		{Method: http.MethodGet, Path: "/api/v1/runs/{id}/logs", Summary: "A run's build log, one LogChunk a line", Query: []Param{
			{"follow", "boolean", "1 or true: keep streaming until the run has ended", false},
			{"after", "integer", "only chunks after this seq", false},
		}, Status: http.StatusOK, Response: LogChunk{}, Stream: "application/x-ndjson"},
		{Method: http.MethodPost, Path: "/api/v1/runs/{id}/approve", Summary: "Approve a run awaiting approval (403 for the user who caused it; 409 when it is not awaiting approval)",
			Request: DecisionRequest{}, Status: http.StatusOK, Response: Run{}},
		{Method: http.MethodPost, Path: "/api/v1/runs/{id}/reject", Summary: "Reject a run awaiting approval: it is never promoted",
			Request: DecisionRequest{}, Status: http.StatusOK, Response: Run{}},
		{Method: http.MethodPost, Path: "/api/v1/tasks/{name}/promote", Summary: "Point the task's promote tags back at a digest it promoted before (rollback); answers when done",
			Request: PromoteRequest{}, Status: http.StatusOK, Response: []Promotion{}},
		{Method: http.MethodGet, Path: "/api/v1/bases", Summary: "Base references in the index and the tasks that use them",
			Status: http.StatusOK, Response: []BaseInfo{}},
		{Method: http.MethodGet, Path: "/api/v1/bases/history", Summary: "Every digest a reference has pointed to, newest first", Query: []Param{
			{"ref", "string", "the reference, e.g. docker.io/library/debian:12", true},
		}, Status: http.StatusOK, Response: []Observation{}},
		{Method: http.MethodGet, Path: "/api/v1/bases/diff", Summary: "What changed in a base update: OS release, packages, config, layers (default: the last change)", Query: []Param{
			{"ref", "string", "the reference, e.g. docker.io/library/debian:12", true},
			{"old", "string", "the old platform manifest digest (with new; default: the last change's)", false},
			{"new", "string", "the new platform manifest digest", false},
			{"platform", "string", "e.g. linux/amd64 (default: the last change's platform)", false},
		}, Status: http.StatusOK, Response: BaseDiff{}},
		{Method: http.MethodGet, Path: "/api/v1/images/packages", Summary: "The OS release and OS packages of an image", Query: []Param{
			{"image", "string", "the image, by tag or digest", true},
			{"platform", "string", "e.g. linux/arm64 (default linux/amd64 in an index)", false},
		}, Status: http.StatusOK, Response: ImageCatalog{}},
		{Method: http.MethodGet, Path: "/api/v1/images/diff", Summary: "What changed from one image to another", Query: []Param{
			{"old", "string", "the first image, by tag or digest", true},
			{"new", "string", "the second image", true},
			{"platform", "string", "e.g. linux/arm64 (default linux/amd64 in an index)", false},
		}, Status: http.StatusOK, Response: ImageDiff{}},
		{Method: http.MethodGet, Path: "/api/v1/graph", Summary: "The dependency graph of tasks and references", Status: http.StatusOK, Response: Graph{}},
		{Method: http.MethodGet, Path: "/api/v1/subscriptions", Summary: "List subscriptions", Status: http.StatusOK, Response: []Subscription{}},
		{Method: http.MethodPost, Path: "/api/v1/subscriptions", Summary: "Subscribe a URL to events",
			Request: SubscriptionRequest{}, Status: http.StatusCreated, Response: Subscription{}},
		{Method: http.MethodDelete, Path: "/api/v1/subscriptions/{id}", Summary: "Delete a subscription and its pending deliveries", Status: http.StatusNoContent},
		{Method: http.MethodGet, Path: "/api/v1/events", Summary: "List events, oldest first", Query: []Param{
			{"after", "integer", "only events with a seq after this", false},
			{"type", "string", "only this type, with or without the dev.refit. prefix", false},
			{"subject", "string", "only this subject (task name or base reference)", false},
			limit,
		}, Status: http.StatusOK, Response: []Event{}},
		{Method: http.MethodGet, Path: "/api/v1/events/stream", Summary: "Follow events live as Server-Sent Events (id: seq, event: type, data: the CloudEvent)", Query: []Param{
			{"after", "integer", "start after this seq; -1 = from now on (Last-Event-ID overrides)", false},
		}, Status: http.StatusOK, Stream: "text/event-stream"},
		{Method: http.MethodPost, Path: "/api/v1/events/redeliver", Summary: "Send events again to subscriptions",
			Request: RedeliverRequest{}, Status: http.StatusOK, Response: RedeliverResult{}},
		{Method: http.MethodGet, Path: "/api/v1/deliveries", Summary: "List deliveries to subscriptions", Query: []Param{
			{"subscription", "string", "only this subscription", false},
			{"state", "string", "only pending, delivered or dead", false},
		}, Status: http.StatusOK, Response: []Delivery{}},
		{Method: http.MethodDelete, Path: "/api/v1/deliveries", Summary: "Delete dead-lettered deliveries", Query: []Param{
			{"state", "string", "must be dead", true},
			{"subscription", "string", "only this subscription", false},
			{"event", "string", "only this event id", false},
		}, Status: http.StatusOK, Response: DiscardResult{}},
		{Method: http.MethodGet, Path: "/api/v1/registries", Summary: "List stored registry logins (never passwords)",
			Status: http.StatusOK, Response: []RegistryCredential{}},
		{Method: http.MethodPut, Path: "/api/v1/registries/{host}", Summary: "Store a login for a registry host",
			Request: CredentialRequest{}, Status: http.StatusOK, Response: RegistryCredential{}},
		{Method: http.MethodDelete, Path: "/api/v1/registries/{host}", Summary: "Remove the login stored for a registry host", Status: http.StatusNoContent},
		{Method: http.MethodGet, Path: "/api/v1/watches", Summary: "List references watched without building",
			Status: http.StatusOK, Response: []Watch{}},
		{Method: http.MethodPost, Path: "/api/v1/watches", Summary: "Watch a reference without building: create (201) or update (200)",
			Request: WatchRequest{}, Status: http.StatusOK, Response: WatchResult{}},
		{Method: http.MethodDelete, Path: "/api/v1/watches", Summary: "Stop watching a reference", Query: []Param{
			{"ref", "string", "the watch's reference, as listed or as given to add", true},
		}, Status: http.StatusNoContent},
		{Method: http.MethodGet, Path: "/api/v1/vulndb", Summary: "What the offline vulnerability database holds, per ecosystem, and its age",
			Status: http.StatusOK, Response: VulnDBStatus{}},
		{Method: http.MethodPost, Path: "/api/v1/vulndb", Summary: "Replace the vulnerability database with an OSV export (the zip OSV publishes per ecosystem), all or nothing",
			RequestMedia: "application/zip", Status: http.StatusOK, Response: VulnDBStatus{}},
		{Method: http.MethodGet, Path: "/api/v1/images/explain", Summary: "Explain why an image exists, from the run that pushed it", Query: []Param{
			{"ref", "string", "the image by digest: repository@sha256:…", true},
		}, Status: http.StatusOK, Response: ImageExplanation{}},
		{Method: http.MethodGet, Path: "/api/v1/signing-key", Summary: "The public key attestations are signed with", Status: http.StatusOK, Response: SigningKey{}, Public: true},
		{Method: http.MethodGet, Path: "/api/v1/whoami", Summary: "Who the token in use authenticates: user, roles, kind", Status: http.StatusOK, Response: WhoAmI{}},
		{Method: http.MethodGet, Path: "/api/v1/tokens", Summary: "List API tokens, revoked ones too (never secrets)", Status: http.StatusOK, Response: []Token{}},
		{Method: http.MethodPost, Path: "/api/v1/tokens", Summary: "Create a token for a user with roles (its secret is answered this once)",
			Request: TokenRequest{}, Status: http.StatusCreated, Response: NewToken{}},
		{Method: http.MethodDelete, Path: "/api/v1/tokens/{id}", Summary: "Revoke a token by ID, or every token of a user by name",
			Status: http.StatusOK, Response: RevokeResult{}},
		{Method: http.MethodGet, Path: "/api/v1/audit", Summary: "List audit log entries, oldest first", Query: []Param{
			{"after", "integer", "only entries with a seq after this", false},
			{"since", "string", "only entries at or after this time (RFC 3339) or this long ago (2h)", false},
			{"subject", "string", "only this subject (task name, user, host…)", false},
			{"actor", "string", "only this actor (a user, or system)", false},
			{"action", "string", "only this action (task.update, run.queue…)", false},
			limit,
		}, Status: http.StatusOK, Response: []AuditEntry{}},
		{Method: http.MethodGet, Path: "/api/v1/audit:verify", Summary: "Recompute the audit log's hash chain; name the first broken entry",
			Status: http.StatusOK, Response: AuditVerification{}},
		{Method: http.MethodGet, Path: "/api/v1/audit:export", Summary: "The whole audit log as JSON Lines, closed by a signed checkpoint line {\"checkpoint\":…}",
			Status: http.StatusOK, Response: AuditEntry{}, Stream: "application/x-ndjson"},
		{Method: http.MethodGet, Path: "/api/v1/git/secrets", Summary: "List repositories with a git webhook secret (never the secrets)",
			Status: http.StatusOK, Response: []GitSecret{}},
		{Method: http.MethodPut, Path: "/api/v1/git/secrets", Summary: "Set the webhook secret of a git repository",
			Request: GitSecretRequest{}, Status: http.StatusOK, Response: GitSecret{}},
		{Method: http.MethodDelete, Path: "/api/v1/git/secrets", Summary: "Remove the webhook secret of a git repository", Query: []Param{
			{"repo", "string", "the repository URL", true},
		}, Status: http.StatusNoContent},
		{Method: http.MethodGet, Path: "/api/v1/openapi.json", Summary: "This description (OpenAPI 3.1)", Status: http.StatusOK, Response: map[string]any{}, Public: true},
	}
}
