package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/events"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/server"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// fakeRuns queues a run as the lifecycle does at its row: a queued run of
// the stored task, written to the real store (no job: nothing executes
// it). Ended answers a channel the test closes with end.
type fakeRuns struct {
	st    *store.Store
	mu    sync.Mutex
	ended map[int64]chan struct{}
}

func (f *fakeRuns) Queue(ctx context.Context, taskName string, cause store.Cause) (store.Run, error) {
	t, err := f.st.GetTask(ctx, taskName)
	if err != nil {
		return store.Run{}, err
	}
	return f.st.CreateRun(ctx, store.Run{Task: taskName, Spec: t.Spec, Cause: cause}, nil)
}

func (f *fakeRuns) Ended(runID int64) (<-chan struct{}, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended[runID] == nil {
		f.ended[runID] = make(chan struct{})
	}
	return f.ended[runID], func() {}
}

// fakeInspector stands for the runner's source inspection (which needs
// the source, not BuildKit): every task builds on busybox.
type fakeInspector struct{}

func (fakeInspector) Inspect(ctx context.Context, spec task.Spec) ([]dockerfile.Base, error) {
	if spec.Dockerfile == "missing" {
		return nil, &dockerfile.Error{Msg: `Dockerfile "missing" not found`}
	}
	return []dockerfile.Base{{Stage: "0", Role: dockerfile.RoleRuntime, Kind: dockerfile.KindFrom,
		Ref: "docker.io/library/busybox:latest", Name: "busybox", Line: 1}}, nil
}

// contractAPI is the whole API (every optional part configured) on a real
// store, with fakes only for what would need BuildKit or a source.
type contractAPI struct {
	apiServer
	srv  *server.Server
	runs *fakeRuns
}

func startContractAPI(t *testing.T) *contractAPI {
	t.Helper()
	ctx := context.Background()
	_, st, creds := openState(t)
	runs := &fakeRuns{st: st, ended: map[int64]chan struct{}{}}
	h := server.New(server.Config{
		Store:     st,
		Runs:      runs,
		Inspector: fakeInspector{},
		Index:     st,
		Registry:  registryAddr,
		CheckTasks: func(ctx context.Context, ts []store.Task) error {
			tasks, err := st.ListTasks(ctx)
			if err != nil {
				return err
			}
			return plan.CheckCycles(tasks, ts, registryAddr)
		},
		Events:         st,
		Stream:         http.NotFoundHandler(),
		ValidateTarget: func(u string) error { return events.ValidateTarget(u, nil) },
		Credentials:    creds,
		GitSecrets:     creds,
		LogPoll:        10 * time.Millisecond,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	token, err := st.NewToken(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	return &contractAPI{apiServer: apiServer{url: srv.URL, token: token, st: st}, srv: h, runs: runs}
}

// call sends a request and decodes the answer strictly into a new value
// of want's type (unknown fields and trailing data are errors); it fails
// the test unless the status is code.
func call[T any](t *testing.T, a *contractAPI, method, path string, body any, code int) T {
	t.Helper()
	got, text := a.do(t, method, path, body)
	if got != code {
		t.Fatalf("%s %s = %d %s, want %d", method, path, got, text, code)
	}
	var v T
	if err := decodeStrict(text, &v); err != nil {
		t.Fatalf("%s %s: the answer does not decode into %T: %v\n%s", method, path, v, err, text)
	}
	return v
}

func decodeStrict(text string, v any) error {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the value: %v", err)
	}
	return nil
}

// TestContract calls every endpoint of api.Routes with a real store and
// decodes every answer strictly into the route's api type, so the
// contract and the handlers agree field for field; the shapes that
// scripts and README rely on (run IDs, causes, arrays never null) are
// checked on the way.
func TestContract(t *testing.T) {
	a := startContractAPI(t)
	ctx := context.Background()
	covered := map[string]bool{}
	cover := func(method, path string) { covered[method+" "+path] = true }
	spec := func(name string) api.TaskSpec {
		return api.TaskSpec{Name: name, Source: api.TaskSource{Dir: "/src/" + name}}
	}

	// Tasks.
	cover("POST", "/api/v1/tasks")
	created := call[api.Task](t, a, "POST", "/api/v1/tasks", spec("app"), http.StatusCreated)
	if created.Name() != "app" || created.Spec.Image != "app" || created.Spec.Triggers == nil || len(created.Bases) != 1 {
		t.Errorf("created task = %+v, want app with defaults and its base", created)
	}
	cover("PUT", "/api/v1/tasks/{name}")
	put := call[api.PutResult](t, a, "PUT", "/api/v1/tasks/web", spec("web"), http.StatusCreated)
	if !put.Created || put.Task.Name() != "web" {
		t.Errorf("PUT a new task = %+v, want created", put)
	}
	if put := call[api.PutResult](t, a, "PUT", "/api/v1/tasks/web", spec("web"), http.StatusOK); put.Created || put.Changed {
		t.Errorf("PUT the same task again = %+v, want neither created nor changed", put)
	}
	cover("POST", "/api/v1/tasks:apply")
	applied := call[api.ApplyResult](t, a, "POST", "/api/v1/tasks:apply", api.ApplyRequest{Tasks: []api.TaskSpec{spec("web"), spec("db")}}, http.StatusOK)
	if fmt.Sprint(applied.Tasks) != "[{web unchanged} {db created}]" {
		t.Errorf("apply = %v", applied.Tasks)
	}
	bad := spec("bad")
	bad.Dockerfile = "missing"
	refused := call[api.Error](t, a, "POST", "/api/v1/tasks:apply", api.ApplyRequest{Tasks: []api.TaskSpec{spec("ok"), bad}}, http.StatusBadRequest)
	if len(refused.Errors) != 1 || refused.Errors[0].Index != 1 || refused.Errors[0].Task != "bad" || !strings.Contains(refused.Message, "nothing applied") {
		t.Errorf("refused apply = %+v, want tasks[1] (bad) refused and nothing applied", refused)
	}
	cover("GET", "/api/v1/tasks")
	if ts := call[[]api.Task](t, a, "GET", "/api/v1/tasks", nil, http.StatusOK); len(ts) != 3 {
		t.Errorf("tasks = %d, want 3", len(ts))
	}
	cover("GET", "/api/v1/tasks/{name}")
	if got := call[api.Task](t, a, "GET", "/api/v1/tasks/app", nil, http.StatusOK); !reflect.DeepEqual(got, created) {
		t.Errorf("GET /tasks/app = %+v, want what the create answered, %+v", got, created)
	}
	if e := call[api.Error](t, a, "GET", "/api/v1/tasks/nope", nil, http.StatusNotFound); !strings.Contains(e.Message, "nope") {
		t.Errorf("missing task: %q, want it named", e.Message)
	}

	// Runs and their logs.
	cover("POST", "/api/v1/tasks/{name}/runs")
	run := call[api.Run](t, a, "POST", "/api/v1/tasks/app/runs", nil, http.StatusCreated)
	if run.ID != "r-1" || run.Task != "app" || run.State != api.StateQueued || !reflect.DeepEqual(run.Cause, api.Cause{Kind: "manual", User: "admin"}) || run.Spec.Name != "app" {
		t.Errorf("queued run = %+v, want r-1 of app, queued, manual by admin", run)
	}
	if _, text := a.do(t, "POST", "/api/v1/tasks/app/runs", nil); !strings.Contains(text, `"id": "r-2"`) || !strings.Contains(text, `"cause": {
    "kind": "manual",
    "user": "admin"
  }`) {
		t.Errorf("run JSON is not shaped as README shows: %s", text)
	}
	cover("GET", "/api/v1/runs")
	if runs := call[[]api.Run](t, a, "GET", "/api/v1/runs", nil, http.StatusOK); len(runs) != 2 || runs[0].ID != "r-2" {
		t.Errorf("runs = %+v, want r-2 then r-1", runs)
	}
	if runs := call[[]api.Run](t, a, "GET", "/api/v1/runs?task=web&state=queued&limit=5", nil, http.StatusOK); runs == nil || len(runs) != 0 {
		t.Errorf("runs of web = %v, want []", runs)
	}
	call[api.Error](t, a, "GET", "/api/v1/runs?limit=0", nil, http.StatusBadRequest)
	cover("GET", "/api/v1/runs/{id}")
	for _, id := range []string{"r-1", "1"} {
		if got := call[api.Run](t, a, "GET", "/api/v1/runs/"+id, nil, http.StatusOK); !reflect.DeepEqual(got, run) {
			t.Errorf("GET /runs/%s = %+v, want %+v", id, got, run)
		}
	}
	call[api.Error](t, a, "GET", "/api/v1/runs/x-1", nil, http.StatusBadRequest)
	call[api.Error](t, a, "GET", "/api/v1/runs/r-99", nil, http.StatusNotFound)
	cover("GET", "/api/v1/runs/{id}/logs")
	if err := a.st.AppendLogs(ctx, 1, [][]byte{[]byte(`{"vertexes":[]}`), []byte(`{"logs":[{"data":"aGk="}]}`)}); err != nil {
		t.Fatal(err)
	}
	code, text := a.do(t, "GET", "/api/v1/runs/r-1/logs", nil)
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if code != http.StatusOK || len(lines) != 2 {
		t.Fatalf("logs = %d %q, want 2 lines", code, text)
	}
	for i, line := range lines {
		var c api.LogChunk
		if err := decodeStrict(line, &c); err != nil || c.Seq != int64(i+1) || len(c.Data) == 0 {
			t.Errorf("log line %d %q: %+v %v", i, line, c, err)
		}
	}
	if _, text := a.do(t, "GET", "/api/v1/runs/r-1/logs?after=1", nil); strings.Count(text, "\n") != 1 || !strings.Contains(text, `"seq":2`) {
		t.Errorf("logs after 1 = %q, want only chunk 2", text)
	}

	// The index: bases, history, graph, explain.
	if err := a.st.SeedBaseRef(ctx, "docker.io/library/busybox:latest", "sha256:"+strings.Repeat("b", 64)); err != nil {
		t.Fatal(err)
	}
	cover("GET", "/api/v1/bases")
	bases := call[[]api.BaseInfo](t, a, "GET", "/api/v1/bases", nil, http.StatusOK)
	if len(bases) != 1 || bases[0].Ref != "docker.io/library/busybox:latest" || len(bases[0].Tasks) != 3 || !bases[0].Tasks[0].Watched {
		t.Errorf("bases = %+v, want busybox used by 3 tasks, watched", bases)
	}
	cover("GET", "/api/v1/bases/history")
	obs := call[[]api.Observation](t, a, "GET", "/api/v1/bases/history?ref=busybox", nil, http.StatusOK)
	if len(obs) != 1 || obs[0].Source != "run" || obs[0].Digest != bases[0].Digest {
		t.Errorf("history = %+v, want the seeded digest", obs)
	}
	call[api.Error](t, a, "GET", "/api/v1/bases/history", nil, http.StatusBadRequest)
	call[api.Error](t, a, "GET", "/api/v1/bases/history?ref=alpine", nil, http.StatusNotFound)
	cover("GET", "/api/v1/graph")
	g := call[api.Graph](t, a, "GET", "/api/v1/graph", nil, http.StatusOK)
	if len(g.Tasks) != 3 || !slices.Contains(g.Refs, "docker.io/library/busybox:latest") || len(g.Edges) != 6 {
		t.Errorf("graph = %+v, want 3 tasks, busybox, 3 build-on and 3 push edges", g)
	}
	cover("GET", "/api/v1/tasks/{name}/explain")
	e := call[api.Explanation](t, a, "GET", "/api/v1/tasks/app/explain", nil, http.StatusOK)
	if e.Task != "app" || len(e.Bases) != 1 || !e.Bases[0].Tracked || len(e.LastRuns) != 2 || e.LastRuns[1].ID != "r-1" || len(e.Verdict) == 0 {
		t.Errorf("explain = %+v, want app's tracked base, its two runs and a verdict", e)
	}

	// Events, subscriptions, deliveries.
	cover("POST", "/api/v1/subscriptions")
	sub := call[api.Subscription](t, a, "POST", "/api/v1/subscriptions", api.SubscriptionRequest{URL: "http://127.0.0.1:1/hook", Types: []string{"run.queued"}, Task: "app*", Secret: "s"}, http.StatusCreated)
	if !sub.Signed || sub.Task != "app*" || !slices.Equal(sub.Types, []string{api.EventPrefix + "run.queued"}) {
		t.Errorf("subscription = %+v", sub)
	}
	cover("GET", "/api/v1/subscriptions")
	if subs := call[[]api.Subscription](t, a, "GET", "/api/v1/subscriptions", nil, http.StatusOK); len(subs) != 1 || !reflect.DeepEqual(subs[0], sub) {
		t.Errorf("subscriptions = %+v, want [%+v]", subs, sub)
	}
	cover("GET", "/api/v1/events")
	evs := call[[]api.Event](t, a, "GET", "/api/v1/events?type=run.queued&limit=10", nil, http.StatusOK)
	var data struct{ ID string }
	if len(evs) == 2 {
		json.Unmarshal(evs[0].Data, &data)
	}
	if len(evs) != 2 || evs[0].Subject != "app" || data.ID != "r-1" {
		t.Fatalf("run.queued events = %+v, want two, of app, carrying the run ID", evs)
	}
	stored, err := a.st.ListEvents(ctx, store.EventFilter{Type: store.EventRunQueued})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.st.FanOut(ctx, store.Subscription{ID: sub.ID, URL: sub.URL, Cursor: sub.Cursor}, stored, stored[len(stored)-1].Seq); err != nil {
		t.Fatal(err)
	}
	cover("GET", "/api/v1/deliveries")
	ds := call[[]api.Delivery](t, a, "GET", "/api/v1/deliveries?subscription="+sub.ID+"&state=pending", nil, http.StatusOK)
	if len(ds) != 2 || ds[0].Subscription != sub.ID || ds[0].State != "pending" || !slices.ContainsFunc(ds, func(d api.Delivery) bool { return d.Event.ID == evs[0].ID }) {
		t.Errorf("deliveries = %+v, want the two events pending for %s", ds, sub.ID)
	}
	cover("POST", "/api/v1/events/redeliver")
	if r := call[api.RedeliverResult](t, a, "POST", "/api/v1/events/redeliver", api.RedeliverRequest{ID: evs[0].ID}, http.StatusOK); r.Redelivered != 1 {
		t.Errorf("redeliver = %+v, want 1", r)
	}
	cover("DELETE", "/api/v1/deliveries")
	if r := call[api.DiscardResult](t, a, "DELETE", "/api/v1/deliveries?state=dead", nil, http.StatusOK); r.Discarded != 0 {
		t.Errorf("discard = %+v, want 0 (none dead)", r)
	}
	cover("GET", "/api/v1/events/stream") // served by events.Stream: see internal/events
	cover("DELETE", "/api/v1/subscriptions/{id}")
	if code, text := a.do(t, "DELETE", "/api/v1/subscriptions/"+sub.ID, nil); code != http.StatusNoContent || text != "" {
		t.Errorf("delete subscription = %d %q, want 204", code, text)
	}

	// Registries, whoami, deletes.
	cover("PUT", "/api/v1/registries/{host}")
	cred := call[api.RegistryCredential](t, a, "PUT", "/api/v1/registries/ghcr.io", api.CredentialRequest{Username: "robot", Password: "p4ss"}, http.StatusOK)
	if cred.Host != "ghcr.io" || cred.Username != "robot" || cred.UpdatedAt.IsZero() {
		t.Errorf("stored login = %+v", cred)
	}
	cover("GET", "/api/v1/registries")
	if creds := call[[]api.RegistryCredential](t, a, "GET", "/api/v1/registries", nil, http.StatusOK); len(creds) != 1 || creds[0] != cred {
		t.Errorf("logins = %+v, want [%+v]", creds, cred)
	}
	cover("DELETE", "/api/v1/registries/{host}")
	if code, _ := a.do(t, "DELETE", "/api/v1/registries/ghcr.io", nil); code != http.StatusNoContent {
		t.Errorf("logout = %d, want 204", code)
	}
	// Git webhook secrets: set under one URL form, listed under the
	// repository's key, never returned, removed under another form.
	cover("PUT", "/api/v1/git/secrets")
	gs := call[api.GitSecret](t, a, "PUT", "/api/v1/git/secrets", api.GitSecretRequest{Repo: "https://github.com/acme/api.git", Secret: "s3cret-value"}, http.StatusOK)
	if gs.RepoKey != "github.com/acme/api" || gs.UpdatedAt.IsZero() {
		t.Errorf("stored git secret = %+v", gs)
	}
	cover("GET", "/api/v1/git/secrets")
	if code, text := a.do(t, "GET", "/api/v1/git/secrets", nil); code != http.StatusOK || strings.Contains(text, "s3cret-value") || !strings.Contains(text, "github.com/acme/api") {
		t.Errorf("git secrets = %d %s: want the repository, never the secret", code, text)
	}
	cover("DELETE", "/api/v1/git/secrets")
	if code, text := a.do(t, "DELETE", "/api/v1/git/secrets?repo="+url.QueryEscape("git@github.com:acme/api"), nil); code != http.StatusNoContent {
		t.Errorf("delete git secret = %d %s, want 204", code, text)
	}
	if code, _ := a.do(t, "DELETE", "/api/v1/git/secrets?repo="+url.QueryEscape("git@github.com:acme/api"), nil); code != http.StatusNotFound {
		t.Errorf("delete git secret again = %d, want 404", code)
	}
	cover("GET", "/api/v1/whoami")
	if w := call[api.WhoAmI](t, a, "GET", "/api/v1/whoami", nil, http.StatusOK); w.User != "admin" {
		t.Errorf("whoami = %+v", w)
	}
	cover("DELETE", "/api/v1/tasks/{name}")
	if code, _ := a.do(t, "DELETE", "/api/v1/tasks/db", nil); code != http.StatusNoContent {
		t.Errorf("delete task = %d, want 204", code)
	}
	cover("GET", "/api/v1/openapi.json")
	call[map[string]any](t, a, "GET", "/api/v1/openapi.json", nil, http.StatusOK)
	if e := call[api.Error](t, a, "GET", "/api/v1/nothing", nil, http.StatusNotFound); !strings.Contains(e.Message, "no API endpoint") {
		t.Errorf("unknown endpoint: %+v", e)
	}

	for _, rt := range api.Routes() {
		if !covered[rt.Method+" "+rt.Path] {
			t.Errorf("%s %s is in api.Routes but not called here", rt.Method, rt.Path)
		}
	}
}

// TestRoutesAreTheContract: the server registers exactly the routes of
// api.Routes (with every optional part configured), so the OpenAPI
// description lists every endpoint and nothing else.
func TestRoutesAreTheContract(t *testing.T) {
	a := startContractAPI(t)
	var want []string
	for _, rt := range api.Routes() {
		want = append(want, rt.Method+" "+rt.Path)
	}
	got := slices.Clone(server.Patterns(a.srv))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the server registers\n%s\napi.Routes lists\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestFollowLogs: a followed log streams until the run ends, woken by the
// run's end, and then stops.
func TestFollowLogs(t *testing.T) {
	a := startContractAPI(t)
	ctx := context.Background()
	call[api.Task](t, a, "POST", "/api/v1/tasks", api.TaskSpec{Name: "app", Source: api.TaskSource{Dir: "/src"}}, http.StatusCreated)
	call[api.Run](t, a, "POST", "/api/v1/tasks/app/runs", nil, http.StatusCreated)
	done := make(chan string)
	go func() {
		_, text := a.do(t, "GET", "/api/v1/runs/r-1/logs?follow=1", nil)
		done <- text
	}()
	if err := a.st.AppendLogs(ctx, 1, [][]byte{[]byte(`{"vertexes":[]}`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case text := <-done:
		t.Fatalf("the follow ended before the run did: %q", text)
	case <-time.After(100 * time.Millisecond):
	}
	r, err := a.st.GetRun(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	r.State, r.FinishedAt, r.Error = store.StateCanceled, time.Now(), "canceled by the test"
	if err := a.st.SaveRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	a.runs.mu.Lock()
	if ch := a.runs.ended[1]; ch != nil {
		close(ch)
	}
	a.runs.mu.Unlock()
	select {
	case text := <-done:
		if strings.Count(text, "\n") != 1 || !strings.Contains(text, `"seq":1`) {
			t.Errorf("followed log = %q, want the one chunk", text)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follow did not end with the run")
	}
}
