package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/attest"
	"github.com/refit-dev/refit/internal/audit"
	"github.com/refit-dev/refit/internal/catalog"
	ct "github.com/refit-dev/refit/internal/catalog/catalogtest"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/events"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/server"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
	"github.com/refit-dev/refit/internal/vulndb"
	"github.com/refit-dev/refit/internal/vulndb/osvtest"
)

// nopExecutor is the executor of a lifecycle that is never started.
type nopExecutor struct{}

func (nopExecutor) Execute(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error) {
	return lifecycle.Outcome{}, nil
}

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
	data string // the data directory (the SQLite database, the secret key)
	// images is a loopback registry holding debian:12 twice (the tag's
	// last push is the newer), for the catalog routes.
	images   string
	oldImage string // digest of the first debian:12
}

func startContractAPI(t *testing.T) *contractAPI {
	t.Helper()
	return startContractAPIWith(t, nil)
}

// startContractAPIWith is startContractAPI with the server's config
// changed by edit before it starts.
func startContractAPIWith(t *testing.T, edit func(*server.Config)) *contractAPI {
	t.Helper()
	ctx := context.Background()
	data, st, creds := openState(t)
	runs := &fakeRuns{st: st, ended: map[int64]chan struct{}{}}
	images, oldImage := imageRegistry(t)
	cats, err := catalog.NewService(catalog.Config{Images: regclient.New(regclient.Config{}), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := attest.LoadKey(filepath.Join(t.TempDir(), "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	// The real owner of runs decides approvals (never started: its jobs
	// are only committed).
	promos, err := lifecycle.New(ctx, lifecycle.Config{Store: st, Executor: nopExecutor{}, Registry: registryAddr})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		Promotions: promos,
		Store:      st,
		Runs:       runs,
		Inspector:  fakeInspector{},
		Index:      st,
		Registry:   registryAddr,
		Catalogs:   cats,
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
		VulnDB:         vulndb.New(vulndb.Config{Store: st}),
		GitSecrets:     creds,
		LogPoll:        10 * time.Millisecond,
		Images:         st,
		Signer:         signer,
		AuditKey:       testSigningKey("contract test key"),
	}
	if edit != nil {
		edit(&cfg)
	}
	h := server.New(cfg)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	token, err := st.NewToken(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	return &contractAPI{apiServer: apiServer{url: srv.URL, token: token, st: st}, srv: h, runs: runs, data: data, images: images, oldImage: oldImage}
}

// imageRegistry starts a loopback registry and pushes two Debian-like
// images to debian:12; it returns the host and the first one's digest.
func imageRegistry(t *testing.T) (host, oldDigest string) {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host = strings.TrimPrefix(srv.URL, "http://")
	push := func(img v1.Image) string {
		r, err := name.ParseReference(host+"/debian:12", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return d.String()
	}
	oldDigest = push(ct.Debian("12", []ct.Pkg{ct.P("openssl", "3.0.11-1~deb12u2", "amd64"), ct.P("bash", "5.2.15-2+b2", "amd64")}))
	push(ct.Debian("12", []ct.Pkg{ct.P("openssl", "3.0.13-1~deb12u1", "amd64"), ct.P("bash", "5.2.15-2+b2", "amd64")}))
	return host, oldDigest
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
	cover("GET", "/api/v1/tasks/{name}/triggers")
	trig := call[api.TaskTriggers](t, a, "GET", "/api/v1/tasks/app/triggers", nil, http.StatusOK)
	if trig.Task != "app" || !trig.Base.Enabled || !slices.Contains(trig.Base.Watched, "docker.io/library/busybox:latest") ||
		trig.Schedule.Schedules == nil || len(trig.Schedule.Schedules) != 0 {
		t.Errorf("triggers = %+v, want app's base section watching busybox and no schedule", trig)
	}
	call[api.Error](t, a, "GET", "/api/v1/tasks/helo/triggers", nil, http.StatusNotFound)

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

	// The vulnerability database: empty, then an OSV export's zip as the body.
	cover("GET", "/api/v1/vulndb")
	if v := call[api.VulnDBStatus](t, a, "GET", "/api/v1/vulndb", nil, http.StatusOK); v.Imported || v.Ecosystems == nil || len(v.Ecosystems) != 0 {
		t.Errorf("status before any import = %+v, want not imported, no ecosystems ([])", v)
	}
	cover("POST", "/api/v1/vulndb")
	imported := call[api.VulnDBStatus](t, a, "POST", "/api/v1/vulndb", string(osvtest.Zip(osvtest.Fixture())), http.StatusOK)
	if !imported.Imported || imported.Advisories != 6 || len(imported.Ecosystems) != 3 || imported.ImportedAt.IsZero() || imported.NewestModified.IsZero() {
		t.Errorf("import = %+v, want 6 advisories in 3 ecosystems", imported)
	}
	if v := call[api.VulnDBStatus](t, a, "GET", "/api/v1/vulndb", nil, http.StatusOK); !reflect.DeepEqual(v, imported) {
		t.Errorf("status = %+v, want what the import answered, %+v", v, imported)
	}
	// Images: packages, diffs, a base update's diff.
	cover("GET", "/api/v1/images/packages")
	cat := call[api.ImageCatalog](t, a, "GET", "/api/v1/images/packages?image="+a.images+"/debian:12", nil, http.StatusOK)
	if cat.OS.ID != "debian" || len(cat.Packages) != 2 || cat.Packages[1].Name != "openssl" || cat.Packages[1].Version != "3.0.13-1~deb12u1" {
		t.Errorf("packages = %+v, want debian 12 with bash and openssl 3.0.13-1~deb12u1", cat)
	}
	cover("GET", "/api/v1/images/diff")
	diff := call[api.ImageDiff](t, a, "GET", "/api/v1/images/diff?old="+a.images+"/debian@"+a.oldImage+"&new="+a.images+"/debian:12", nil, http.StatusOK)
	if len(diff.Changed) != 1 || diff.Changed[0].Name != "openssl" || diff.Changed[0].New != "3.0.13-1~deb12u1" || diff.New != cat.Digest {
		t.Errorf("image diff = %+v, want openssl changed", diff)
	}
	cover("GET", "/api/v1/bases/diff")
	bd := call[api.BaseDiff](t, a, "GET", "/api/v1/bases/diff?ref="+a.images+"/debian:12&old="+a.oldImage+"&new="+cat.Digest, nil, http.StatusOK)
	if !reflect.DeepEqual(bd.Diff, diff) || bd.OldDigest != a.oldImage {
		t.Errorf("base diff = %+v, want %+v", bd.Diff, diff)
	}
	if e := call[api.Error](t, a, "GET", "/api/v1/images/packages", nil, http.StatusBadRequest); !strings.Contains(e.Message, "image is required") {
		t.Errorf("packages without image: %+v", e)
	}
	if e := call[api.Error](t, a, "GET", "/api/v1/images/packages?image="+a.images+"/nothing:1", nil, http.StatusBadGateway); !strings.Contains(e.Message, "nothing") {
		t.Errorf("packages of a missing image: %+v, want 502 naming it", e)
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
	// Watches: added (201), re-added (200), listed, a bad range refused
	// naming the field, removed by the reference as given.
	cover("POST", "/api/v1/watches")
	wr := call[api.WatchResult](t, a, "POST", "/api/v1/watches", api.WatchRequest{Ref: "python:3.12", Semver: "~3.12"}, http.StatusCreated)
	if !wr.Created || wr.Watch.Ref != "docker.io/library/python:3.12" || !wr.Watch.ByDigest || wr.Watch.Repository != "docker.io/library/python" {
		t.Errorf("watch add = %+v", wr)
	}
	if wr := call[api.WatchResult](t, a, "POST", "/api/v1/watches", api.WatchRequest{Ref: "python:3.12", Semver: "~3.13"}, http.StatusOK); wr.Created || wr.Watch.Semver != "~3.13" {
		t.Errorf("watch re-add = %+v, want updated", wr)
	}
	if e := call[api.Error](t, a, "POST", "/api/v1/watches", api.WatchRequest{Ref: "python", Semver: "~three"}, http.StatusBadRequest); !strings.Contains(e.Message, "semver:") {
		t.Errorf("bad semver: %+v", e)
	}
	cover("GET", "/api/v1/watches")
	if ws := call[[]api.Watch](t, a, "GET", "/api/v1/watches", nil, http.StatusOK); len(ws) != 1 || ws[0].Semver != "~3.13" {
		t.Errorf("watches = %+v", ws)
	}
	cover("DELETE", "/api/v1/watches")
	if code, _ := a.do(t, "DELETE", "/api/v1/watches?ref=python:3.12", nil); code != http.StatusNoContent {
		t.Errorf("watch remove = %d, want 204", code)
	}
	if e := call[api.Error](t, a, "DELETE", "/api/v1/watches?ref=python:3.12", nil, http.StatusNotFound); !strings.Contains(e.Message, "not watched") {
		t.Errorf("remove again: %+v", e)
	}
	// Images: why one exists, from the run that pushed it.
	pushed, err := a.st.CreateRun(ctx, store.Run{Task: "app", Spec: task.Spec{Name: "app", Source: task.Source{Dir: "/src/app"}}, Cause: store.Cause{Kind: "manual", User: "admin"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + strings.Repeat("d", 64)
	pushed.State, pushed.Digest, pushed.Image, pushed.Tags = store.StateSucceeded, digest, registryAddr+"/app@"+digest, []string{"latest"}
	pushed.Platforms = []store.PlatformDigest{{Platform: "linux/amd64", Digest: "sha256:" + strings.Repeat("e", 64)}}
	if err := a.st.SaveRun(ctx, pushed); err != nil {
		t.Fatal(err)
	}
	cover("GET", "/api/v1/images/explain")
	ie := call[api.ImageExplanation](t, a, "GET", "/api/v1/images/explain?ref="+registryAddr+"/app@sha256:"+strings.Repeat("e", 64), nil, http.StatusOK)
	if ie.From != "database" || ie.Attestation.Run.ID != store.FormatRunID(pushed.ID) || len(ie.Attestation.Cause) != 1 || ie.Attestation.Cause[0].User != "admin" || ie.Attestation.Image.Digest != digest {
		t.Errorf("explain image (by its platform digest) = %+v, want the run that pushed it, from the database", ie)
	}
	call[api.Error](t, a, "GET", "/api/v1/images/explain?ref=app@sha256:"+strings.Repeat("f", 64), nil, http.StatusNotFound)
	call[api.Error](t, a, "GET", "/api/v1/images/explain?ref=app:latest", nil, http.StatusBadRequest)
	cover("GET", "/api/v1/signing-key")
	if k := call[api.SigningKey](t, a, "GET", "/api/v1/signing-key", nil, http.StatusOK); k.KeyID != ie.Attestation.Server.ID || !strings.Contains(k.PublicKey, "PUBLIC KEY") {
		t.Errorf("signing key = %+v, want the server id %s", k, ie.Attestation.Server.ID)
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
	for _, action := range []string{"gitsecret.set", "gitsecret.delete"} {
		code, text := a.do(t, "GET", "/api/v1/audit?action="+action, nil)
		if code != http.StatusOK || strings.Count(text, `"subject": "github.com/acme/api"`) != 1 || strings.Contains(text, "s3cret-value") {
			t.Errorf("%s audit entries = %d %s: want one for github.com/acme/api, never the secret", action, code, text)
		}
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

	// Tokens and the audit log.
	cover("POST", "/api/v1/tokens")
	nt := call[api.NewToken](t, a, "POST", "/api/v1/tokens", api.TokenRequest{User: "alice", Roles: []string{"approver", "operator"}}, http.StatusCreated)
	if nt.User != "alice" || !strings.HasPrefix(nt.Secret, "refit_") || !strings.HasPrefix(nt.ID, "t-") || nt.CreatedBy != "admin" ||
		!slices.Equal(nt.Roles, []string{"approver", "operator"}) {
		t.Errorf("new token = %+v", nt)
	}
	call[api.Error](t, a, "POST", "/api/v1/tokens", api.TokenRequest{User: "bob", Roles: []string{"root"}}, http.StatusBadRequest)
	call[api.Error](t, a, "POST", "/api/v1/tokens", api.TokenRequest{User: "system", Roles: []string{"viewer"}}, http.StatusBadRequest)
	cover("GET", "/api/v1/tokens")
	toks := call[[]api.Token](t, a, "GET", "/api/v1/tokens", nil, http.StatusOK)
	if len(toks) != 2 || toks[1].ID != nt.ID || strings.Contains(fmt.Sprint(toks), nt.Secret) {
		t.Errorf("tokens = %+v, want admin's and alice's, no secret", toks)
	}
	cover("DELETE", "/api/v1/tokens/{id}")
	if r := call[api.RevokeResult](t, a, "DELETE", "/api/v1/tokens/alice", nil, http.StatusOK); len(r.Revoked) != 1 || r.Revoked[0].ID != nt.ID || r.Revoked[0].RevokedAt.IsZero() {
		t.Errorf("revoke = %+v", r)
	}
	call[api.Error](t, a, "DELETE", "/api/v1/tokens/alice", nil, http.StatusNotFound)
	call[api.Error](t, a, "DELETE", "/api/v1/tokens/admin", nil, http.StatusConflict)
	cover("GET", "/api/v1/audit")
	entries := call[[]api.AuditEntry](t, a, "GET", "/api/v1/audit?limit=1000", nil, http.StatusOK)
	if len(entries) < 10 || entries[0].Seq != 1 || entries[0].PrevHash != "" || entries[1].PrevHash != entries[0].Hash {
		t.Errorf("audit = %d entries starting %+v, want a chain from 1", len(entries), entries[:min(1, len(entries))])
	}
	if es := call[[]api.AuditEntry](t, a, "GET", "/api/v1/audit?subject=alice&action=token.revoke&since=1h", nil, http.StatusOK); len(es) != 1 || es[0].Actor != "admin" {
		t.Errorf("alice's revocation = %+v, want one entry by admin", es)
	}
	call[api.Error](t, a, "GET", "/api/v1/audit?after=x", nil, http.StatusBadRequest)
	cover("GET", "/api/v1/audit:verify")
	if v := call[api.AuditVerification](t, a, "GET", "/api/v1/audit:verify", nil, http.StatusOK); !v.OK || v.Entries < int64(len(entries)) || !strings.HasPrefix(v.PublicKey, "ed25519:") {
		t.Errorf("verify = %+v", v)
	}
	cover("GET", "/api/v1/audit:export")
	code, text = a.do(t, "GET", "/api/v1/audit:export", nil)
	if res, err := audit.ReadExport(strings.NewReader(text), nil, 0); code != http.StatusOK || err != nil || res.Entries < int64(len(entries)) {
		t.Errorf("export = %d, %v: %+v", code, err, res)
	}
	for line := range strings.Lines(text) {
		var e api.AuditEntry
		if !strings.HasPrefix(line, `{"checkpoint"`) {
			if err := decodeStrict(line, &e); err != nil {
				t.Errorf("export line %q does not decode into api.AuditEntry: %v", line, err)
			}
		}
	}
	// Approvals and rollback: a run of a gated task awaits approval; the
	// user who queued it may not approve it, another may; a rollback to
	// a digest never promoted is refused.
	gated := spec("gated")
	gated.Test = &api.TaskTest{Command: []string{"/bin/true"}}
	gated.Promote = &api.Promote{Tags: []string{"stable"}, Policy: "approval"}
	call[api.Task](t, a, "POST", "/api/v1/tasks", gated, http.StatusCreated)
	waiting := call[api.Run](t, a, "POST", "/api/v1/tasks/gated/runs", nil, http.StatusCreated)
	wid, _ := api.ParseRunID(waiting.ID)
	wrun, err := a.st.GetRun(ctx, wid)
	if err != nil {
		t.Fatal(err)
	}
	wrun.State, wrun.Digest = store.StateAwaitingApproval, "sha256:"+strings.Repeat("d", 64)
	if err := a.st.SaveRun(ctx, wrun); err != nil {
		t.Fatal(err)
	}
	cover("POST", "/api/v1/runs/{id}/approve")
	if e := call[api.Error](t, a, "POST", "/api/v1/runs/"+waiting.ID+"/approve", api.DecisionRequest{Comment: "mine"}, http.StatusForbidden); !strings.Contains(e.Message, "admin caused run "+waiting.ID) {
		t.Errorf("self-approval refused with %q, want it to say admin caused the run", e.Message)
	}
	bobToken, err := a.st.NewToken(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob := *a
	bob.token = bobToken
	if e := call[api.Error](t, &bob, "POST", "/api/v1/runs/"+waiting.ID+"/approve", api.DecisionRequest{Comment: strings.Repeat("x", 5000)}, http.StatusBadRequest); !strings.Contains(e.Message, "comment is 5000 bytes") {
		t.Errorf("a 5000-byte comment: %q, want it refused by size", e.Message)
	}
	if got := call[api.Run](t, &bob, "POST", "/api/v1/runs/"+waiting.ID+"/approve", api.DecisionRequest{Comment: "CVE-2026-1234"}, http.StatusOK); got.State != api.StatePromoting {
		t.Errorf("approved run is %s, want promoting", got.State)
	}
	cover("POST", "/api/v1/runs/{id}/reject")
	if e := call[api.Error](t, &bob, "POST", "/api/v1/runs/"+waiting.ID+"/reject", nil, http.StatusConflict); !strings.Contains(e.Message, "promoting") {
		t.Errorf("rejecting a promoting run: %q, want it to say the run is promoting", e.Message)
	}
	call[api.Error](t, &bob, "POST", "/api/v1/runs/r-99/reject", nil, http.StatusNotFound)
	cover("POST", "/api/v1/tasks/{name}/promote")
	if e := call[api.Error](t, a, "POST", "/api/v1/tasks/gated/promote", api.PromoteRequest{Digest: "sha256:" + strings.Repeat("e", 64)}, http.StatusBadRequest); !strings.Contains(e.Message, "never promoted") {
		t.Errorf("rollback to a digest never promoted: %q", e.Message)
	}
	call[api.Error](t, a, "POST", "/api/v1/tasks/app/promote", api.PromoteRequest{Digest: "sha256:" + strings.Repeat("e", 64)}, http.StatusBadRequest)

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
