package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/build"
	"github.com/refit-dev/refit/internal/events"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/regauth"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/runner"
	"github.com/refit-dev/refit/internal/server"
	"github.com/refit-dev/refit/internal/store"
)

// registryAddr stands for the embedded registry: images named without a
// host are pushed here, so tasks can build on each other.
const registryAddr = "127.0.0.1:5999"

// apiServer is the HTTP API served over loopback on a real store (SQLite, or
// PostgreSQL with REFIT_TEST_POSTGRES=1), with the real runner's source
// inspection and the planner's cycle check, wired as `refit serve` does.
type apiServer struct {
	url   string
	token string
	st    *store.Store
}

// openState opens a store (SQLite in a temporary data directory, or
// PostgreSQL with REFIT_TEST_POSTGRES=1) and the registry logins sealed
// with a key in that directory, as refit serve does; both close with the
// test.
func openState(t *testing.T) (string, *store.Store, *regauth.Credentials) {
	t.Helper()
	data := t.TempDir()
	cfg := store.Config{Path: filepath.Join(data, "refit.db")}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(t)}
	}
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := regauth.LoadKey(filepath.Join(data, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := regauth.New(regauth.Config{Store: st, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return data, st, creds
}

func startAPI(t *testing.T) *apiServer {
	t.Helper()
	return startAPIWith(t, nil)
}

// startAPIWith is startAPI with the server's config changed by edit
// (given the runner, as refit serve wires it) before it starts.
func startAPIWith(t *testing.T, edit func(*server.Config, *runner.Runner)) *apiServer {
	t.Helper()
	ctx := context.Background()
	data, st, creds := openState(t)
	run, err := runner.New(runner.Config{
		Store:    st,
		Builder:  build.New(func() string { return "unix://" + filepath.Join(data, "no-buildkitd.sock") }, creds),
		Resolver: regclient.New(regclient.Config{}),
		Registry: registryAddr,
		WorkDir:  t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	runs, err := lifecycle.New(ctx, lifecycle.Config{Store: st, Executor: run, Registry: registryAddr})
	if err != nil {
		t.Fatal(err)
	}
	scfg := server.Config{
		Store:          st,
		Runs:           runs,
		Inspector:      run,
		Index:          st,
		Registry:       registryAddr,
		CheckTasks:     runs.CheckTasks,
		Events:         st,
		ValidateTarget: func(u string) error { return events.ValidateTarget(u, nil) },
		Credentials:    creds,
	}
	if edit != nil {
		edit(&scfg, run)
	}
	srv := httptest.NewServer(server.New(scfg))
	t.Cleanup(srv.Close)
	token, err := st.NewToken(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	return &apiServer{url: srv.URL, token: token, st: st}
}

// do sends body (a string as is, anything else as JSON) and returns the
// status and the answer's body.
func (a *apiServer) do(t *testing.T, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(j))
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// noTasks fails the test when any task, or any task.changed event, was
// stored.
func (a *apiServer) noTasks(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	ts, err := a.st.ListTasks(ctx)
	if err != nil || len(ts) != 0 {
		t.Errorf("tasks stored after refused requests: %d (%v), want none", len(ts), err)
	}
	evs, err := a.st.ListEvents(ctx, store.EventFilter{Type: store.EventTaskChanged})
	if err != nil || len(evs) != 0 {
		t.Errorf("task.changed events after refused requests: %d (%v), want none", len(evs), err)
	}
}

// source writes a directory with files and returns its path.
func source(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, body := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func spec(name, dir string, extra map[string]any) map[string]any {
	s := map[string]any{"name": name, "source": map[string]string{"dir": dir}}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

// TestOversizedBodiesAre413: every JSON body the API reads is bounded the
// same way, and a body over the bound is 413 naming the limit, not a 400
// "unexpected EOF".
func TestOversizedBodiesAre413(t *testing.T) {
	a := startAPI(t)
	big := func(n int) string { return `{"name":"` + strings.Repeat("a", n) + `"}` }
	for _, c := range []struct {
		method, path, body, limit string
	}{
		{"POST", "/api/v1/tasks", big(1 << 20), "1 MiB"},
		{"PUT", "/api/v1/tasks/a", big(1 << 20), "1 MiB"},
		{"POST", "/api/v1/tasks:apply", `{"tasks":[` + big(32<<20) + `]}`, "32 MiB"},
		{"POST", "/api/v1/subscriptions", `{"url":"http://127.0.0.1/","secret":"` + strings.Repeat("s", 64<<10) + `"}`, "64 KiB"},
		{"POST", "/api/v1/events/redeliver", `{"id":"` + strings.Repeat("i", 64<<10) + `"}`, "64 KiB"},
		{"PUT", "/api/v1/registries/r.example", `{"username":"u","password":"` + strings.Repeat("p", 2*regauth.MaxPasswordBytes) + `"}`, "KiB"},
	} {
		code, body := a.do(t, c.method, c.path, c.body)
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "larger than the") || !strings.Contains(body, c.limit) {
			t.Errorf("%s %s with %d bytes: %d %.200s; want 413 naming the limit (%s)", c.method, c.path, len(c.body), code, body, c.limit)
		}
	}
	a.noTasks(t)
}

// TestTaskCreateRefusesBadInput: tag templates are checked against the
// data runs give them, and build-arg values with control characters are
// refused, at create, with a 400 naming the field; nothing is stored.
func TestTaskCreateRefusesBadInput(t *testing.T) {
	a := startAPI(t)
	dir := source(t, map[string]string{"Dockerfile": "FROM busybox\n"})
	for _, c := range []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{"unknown template field", map[string]any{"tags": []string{"latest", "{{.Env.HOME}}"}}, "tags[1]"},
		{"commit template on a dir source", map[string]any{"tags": []string{"{{.Commit.Short}}"}}, "tags[0]"},
		{"template giving a bad tag", map[string]any{"tags": []string{"{{.Task.Name}}/x"}}, "tags[0]"},
		{"newline in a build arg", map[string]any{"buildArgs": map[string]string{"FOO": "a\nRUN evil"}}, "buildArgs.FOO: value contains a control character (U+000A)"},
		{"NUL in a build arg", map[string]any{"buildArgs": map[string]string{"FOO": "a\x00"}}, "buildArgs.FOO: value contains a control character (U+0000)"},
		{"newline in a build arg name", map[string]any{"buildArgs": map[string]string{"A\nB": "1"}}, "buildArgs"},
	} {
		for _, m := range []struct{ method, path string }{{"POST", "/api/v1/tasks"}, {"PUT", "/api/v1/tasks/x"}} {
			code, body := a.do(t, m.method, m.path, spec("x", dir, c.extra))
			if code != http.StatusBadRequest || !strings.Contains(body, c.want) {
				t.Errorf("%s: %s %s = %d %s; want 400 naming %q", c.name, m.method, m.path, code, body, c.want)
			}
		}
	}
	a.noTasks(t)
	// A tab is fine, and so are templates runs can fill.
	code, body := a.do(t, "POST", "/api/v1/tasks", spec("ok", dir, map[string]any{
		"buildArgs": map[string]string{"FOO": "a\tb"}, "tags": []string{"{{.Run.ID}}", "{{.Task.Name}}"},
	}))
	if code != http.StatusCreated {
		t.Errorf("valid task: %d %s, want 201", code, body)
	}
}

// TestSubscriptionURL: a URL that cannot be reached (an impossible port,
// no host, another scheme) is refused naming url; nothing is stored.
func TestSubscriptionURL(t *testing.T) {
	a := startAPI(t)
	for _, u := range []string{
		"http://127.0.0.1:99999/", "http://127.0.0.1:0/", "https://example.com:65536/x",
		"http://127.0.0.1:-1/", "http://:8080/", "ftp://example.com/", "example.com/hook",
	} {
		code, body := a.do(t, "POST", "/api/v1/subscriptions", map[string]string{"url": u})
		if code != http.StatusBadRequest || !strings.Contains(body, "url: ") {
			t.Errorf("subscription to %s: %d %s; want 400 naming url", u, code, body)
		}
	}
	if subs, err := a.st.ListSubscriptions(context.Background()); err != nil || len(subs) != 0 {
		t.Errorf("subscriptions after refused creates: %v %v, want none", subs, err)
	}
	for _, u := range []string{"http://127.0.0.1:65535/", "https://example.com/hook", "http://127.0.0.1:1/"} {
		if code, body := a.do(t, "POST", "/api/v1/subscriptions", map[string]string{"url": u}); code != http.StatusCreated {
			t.Errorf("subscription to %s: %d %s, want 201", u, code, body)
		}
	}
}

// TestRedeliver: an unknown event id is 404 naming it, a malformed one
// 400; since takes a duration ago or RFC 3339, and says so otherwise.
func TestRedeliver(t *testing.T) {
	a := startAPI(t)
	dir := source(t, map[string]string{"Dockerfile": "FROM busybox\n"})
	if code, body := a.do(t, "POST", "/api/v1/tasks", spec("app", dir, nil)); code != http.StatusCreated {
		t.Fatalf("creating a task: %d %s", code, body)
	}
	evs, err := a.st.ListEvents(context.Background(), store.EventFilter{})
	if err != nil || len(evs) == 0 {
		t.Fatalf("no event after creating a task: %v", err)
	}
	const unknown = "0b7f3c2e-1d4a-4e5f-8a9b-0c1d2e3f4a5b"
	for _, c := range []struct {
		body any
		code int
		want string
	}{
		{map[string]string{"id": unknown}, http.StatusNotFound, unknown},
		{map[string]string{"id": "nonexistent"}, http.StatusBadRequest, `id: \"nonexistent\" is not an event id`},
		{map[string]string{"id": evs[0].ID, "subscription": "s-nope"}, http.StatusNotFound, "s-nope"},
		{map[string]string{"since": "yesterday"}, http.StatusBadRequest, "RFC 3339"},
		{map[string]string{"since": "yesterday"}, http.StatusBadRequest, "2h"},
		{map[string]string{"since": "-2h"}, http.StatusBadRequest, "since: "},
		{map[string]string{"id": evs[0].ID}, http.StatusOK, `"redelivered"`},
		{map[string]string{"id": strings.ToUpper(evs[0].ID)}, http.StatusOK, `"redelivered"`},
		{map[string]string{"since": "2h"}, http.StatusOK, `"redelivered"`},
		{map[string]string{"since": "90m"}, http.StatusOK, `"redelivered"`},
		{map[string]string{"since": "2026-05-03T10:00:00Z"}, http.StatusOK, `"redelivered"`},
		{map[string]any{"dead": true}, http.StatusOK, `"redelivered"`},
	} {
		code, body := a.do(t, "POST", "/api/v1/events/redeliver", c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("redeliver %v: %d %s; want %d with %q", c.body, code, body, c.code, c.want)
		}
	}
}

// applyErrors is the 400 answer of an apply.
type applyErrors struct {
	Error  string          `json:"error"`
	Errors []api.TaskError `json:"errors"`
}

// TestApplyAllOrNothing: an apply checks every task (fields, templates,
// source, Dockerfile, cycles) before storing any; a refusal lists every
// bad task, and stores nothing, not even the good ones before it.
func TestApplyAllOrNothing(t *testing.T) {
	a := startAPI(t)
	dir := source(t, map[string]string{
		"Dockerfile":     "FROM busybox\n",
		"bad/Dockerfile": "FROM busybox\nNOTANINSTRUCTION foo\n",
		"a/Dockerfile":   "FROM " + registryAddr + "/b:latest\n",
		"b/Dockerfile":   "FROM " + registryAddr + "/a:latest\n",
	})
	code, body := a.do(t, "POST", "/api/v1/tasks:apply", map[string]any{"tasks": []any{
		spec("good", dir, nil),
		spec("syntax", dir, map[string]any{"context": "bad"}),
		spec("tmpl", dir, map[string]any{"tags": []string{"{{.Env.HOME}}"}}),
		spec("unknown", dir, map[string]any{"colour": "red"}),
		spec("missing", dir, map[string]any{"dockerfile": "nope/Dockerfile"}),
		spec("good", dir, map[string]any{"image": "other"}),
		spec("BAD", dir, nil),
		spec("", dir, nil),
		spec("", dir, nil),
	}})
	var ae applyErrors
	if err := json.Unmarshal([]byte(body), &ae); code != http.StatusBadRequest || err != nil {
		t.Fatalf("apply with bad tasks: %d %s; want 400 with errors", code, body)
	}
	want := []struct {
		index      int
		task, text string
	}{
		{1, "syntax", "line 2"},
		{2, "tmpl", "tags[0]"},
		{3, "unknown", `"colour"`},
		{4, "missing", `"nope/Dockerfile" not found`},
		{5, "good", "tasks[0]"},
		{6, "BAD", "name"},
		{7, "", "not a valid task name"},
		{8, "", "not a valid task name"},
	}
	if len(ae.Errors) != len(want) {
		t.Errorf("apply refused %d tasks, want %d: %s", len(ae.Errors), len(want), body)
	}
	for i, w := range want {
		if i >= len(ae.Errors) {
			break
		}
		if e := ae.Errors[i]; e.Index != w.index || e.Task != w.task || !strings.Contains(e.Error, w.text) {
			t.Errorf("error %d = %+v; want tasks[%d] (%s) saying %q", i, e, w.index, w.task, w.text)
		}
	}
	if !strings.Contains(ae.Error, "8 of 9") || !strings.Contains(ae.Error, "nothing applied") {
		t.Errorf("summary %q does not say how many were refused and that nothing was applied", ae.Error)
	}
	a.noTasks(t)

	// Two new tasks that build on each other are a cycle only together.
	code, body = a.do(t, "POST", "/api/v1/tasks:apply", map[string]any{"tasks": []any{
		spec("a", dir, map[string]any{"context": "a"}),
		spec("b", dir, map[string]any{"context": "b"}),
	}})
	if code != http.StatusBadRequest || !strings.Contains(body, "cycle") || !strings.Contains(body, `"task": "a"`) {
		t.Errorf("apply of a cycle: %d %s; want 400 naming the cycle", code, body)
	}
	if code, body := a.do(t, "POST", "/api/v1/tasks:apply", `{"tasks":[]}`); code != http.StatusBadRequest || !strings.Contains(body, "no tasks") {
		t.Errorf("empty apply: %d %s, want 400", code, body)
	}
	a.noTasks(t)

	// A good set is stored at once, with one task.changed event each;
	// applying it again changes nothing.
	set := []any{spec("one", dir, nil), spec("two", dir, map[string]any{"tags": []string{"{{.Run.ID}}"}})}
	for round, wantAction := range []string{"created", "unchanged"} {
		code, body = a.do(t, "POST", "/api/v1/tasks:apply", map[string]any{"tasks": set})
		var res api.ApplyResult
		if err := json.Unmarshal([]byte(body), &res); code != http.StatusOK || err != nil {
			t.Fatalf("apply round %d: %d %s", round, code, body)
		}
		got := fmt.Sprint(res.Tasks)
		if want := fmt.Sprintf("[{one %s} {two %s}]", wantAction, wantAction); got != want {
			t.Errorf("apply round %d: %s, want %s", round, got, want)
		}
	}
	set[1] = spec("two", dir, map[string]any{"tags": []string{"latest"}})
	code, body = a.do(t, "POST", "/api/v1/tasks:apply", map[string]any{"tasks": set})
	if code != http.StatusOK || !strings.Contains(body, `"name": "one",
      "action": "unchanged"`) || !strings.Contains(body, `"name": "two",
      "action": "updated"`) {
		t.Errorf("apply with one change: %d %s", code, body)
	}
	evs, err := a.st.ListEvents(context.Background(), store.EventFilter{Type: store.EventTaskChanged})
	if err != nil || len(evs) != 3 {
		t.Errorf("task.changed events: %d (%v), want 3 (two created, one updated)", len(evs), err)
	}
	// The per-task PUT still works beside it.
	if code, body := a.do(t, "PUT", "/api/v1/tasks/three", spec("three", dir, nil)); code != http.StatusCreated {
		t.Errorf("PUT /tasks/three: %d %s, want 201", code, body)
	}
}
