package server_test

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/runner"
	"github.com/refit-dev/refit/internal/server"
)

// TestTaskAnswersNameTheTask: what the API says about a task that exists
// or does not is one clean sentence naming it — no database text, no
// repeated prefixes — and a task name that never existed is a 404 for
// GET /runs?task= too, not an empty list.
func TestTaskAnswersNameTheTask(t *testing.T) {
	a := startAPI(t)
	dir := source(t, map[string]string{"Dockerfile": "FROM busybox\n"})
	if code, body := a.do(t, "POST", "/api/v1/tasks", spec("hello", dir, nil)); code != http.StatusCreated {
		t.Fatalf("create hello: %d %s", code, body)
	}
	for _, c := range []struct {
		method, path string
		body         any
		code         int
		want         string
	}{
		{"POST", "/api/v1/tasks", spec("hello", dir, nil), http.StatusConflict, "task hello already exists"},
		{"GET", "/api/v1/tasks/helo", nil, http.StatusNotFound, "task helo does not exist"},
		{"DELETE", "/api/v1/tasks/helo", nil, http.StatusNotFound, "task helo does not exist"},
		{"POST", "/api/v1/tasks/helo/runs", nil, http.StatusNotFound, "task helo does not exist"},
		{"GET", "/api/v1/tasks/helo/explain", nil, http.StatusNotFound, "task helo does not exist"},
		{"GET", "/api/v1/runs?task=helo", nil, http.StatusNotFound, "task helo does not exist"},
		{"GET", "/api/v1/runs/r-99", nil, http.StatusNotFound, "run r-99 does not exist"},
		{"GET", "/api/v1/runs/99/logs", nil, http.StatusNotFound, "run r-99 does not exist"},
	} {
		code, body := a.do(t, c.method, c.path, c.body)
		var e api.Error
		_ = decodeStrict(body, &e)
		if code != c.code || e.Message != c.want {
			t.Errorf("%s %s = %d %q, want %d %q", c.method, c.path, code, e.Message, c.code, c.want)
		}
	}
	// A deleted task's runs stay listed: its name is no 404.
	if code, body := a.do(t, "POST", "/api/v1/tasks/hello/runs", nil); code != http.StatusCreated {
		t.Fatalf("run hello: %d %s", code, body)
	}
	if code, body := a.do(t, "DELETE", "/api/v1/tasks/hello", nil); code != http.StatusNoContent {
		t.Fatalf("delete hello: %d %s", code, body)
	}
	if code, body := a.do(t, "GET", "/api/v1/runs?task=hello", nil); code != http.StatusOK || !strings.Contains(body, `"task": "hello"`) {
		t.Errorf("runs of deleted task hello = %d %s, want 200 with its run", code, body)
	}
}

// TestMissingBaseWarns: a task on a base image its registry does not
// have is created (201) with a Warning header naming the image and the
// registry; a base that exists gives none.
func TestMissingBaseWarns(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	a := startAPIWith(t, func(c *server.Config, r *runner.Runner) { c.Bases = r })
	dir := source(t, map[string]string{"Dockerfile": "FROM " + host + "/nope/missing:1\n"})

	for _, m := range []struct{ method, path string }{{"POST", "/api/v1/tasks"}, {"PUT", "/api/v1/tasks/warned"}} {
		req, err := http.NewRequest(m.method, a.url+m.path, strings.NewReader(`{"name":"warned","source":{"dir":"`+dir+`"}}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+a.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := "base image " + host + "/nope/missing:1 not found in registry " + host
		got := resp.Header.Values("Warning")
		text, ok := "", false
		if len(got) == 1 {
			text, ok = api.ParseWarningHeader(got[0])
		}
		if resp.StatusCode >= 300 || !ok || text != want {
			t.Errorf("%s %s = %d, Warning %q; want success and one warning %q", m.method, m.path, resp.StatusCode, got, want)
		}
	}

	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	okRef, err := name.ParseReference(host + "/ok:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(okRef, img); err != nil {
		t.Fatal(err)
	}
	ok := source(t, map[string]string{"Dockerfile": "FROM " + host + "/ok:1\n"})
	req, _ := http.NewRequest("POST", a.url+"/api/v1/tasks", strings.NewReader(`{"name":"fine","source":{"dir":"`+ok+`"}}`))
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || len(resp.Header.Values("Warning")) != 0 {
		t.Errorf("create on an existing base = %d, Warning %q; want 201 and none", resp.StatusCode, resp.Header.Values("Warning"))
	}
}

// TestBaseTagsWarnsAndRefuses: a baseTags entry with a bad constraint is
// refused (400) naming the field; one whose repository no FROM builds on
// is stored with a Warning; one the Dockerfile names through its arg
// gives none.
func TestBaseTagsWarnsAndRefuses(t *testing.T) {
	a := startAPIWith(t, func(*server.Config, *runner.Runner) {})
	dir := source(t, map[string]string{"Dockerfile": "ARG PYTHON_TAG=3.12.8\nFROM python:${PYTHON_TAG}\n"})
	body := func(name, ref, semver string) string {
		return `{"name":"` + name + `","source":{"dir":"` + dir + `"},"triggers":{"base":true,"baseTags":[{"ref":"` + ref +
			`","arg":"PYTHON_TAG","semver":"` + semver + `"}]}}`
	}
	post := func(b string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", a.url+"/api/v1/tasks", strings.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+a.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		text, _ := io.ReadAll(resp.Body)
		return resp, string(text)
	}
	if resp, text := post(body("bad", "docker.io/library/python", "~three")); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(text, "triggers.baseTags[0].semver") {
		t.Errorf("bad constraint = %d %s, want 400 naming triggers.baseTags[0].semver", resp.StatusCode, text)
	}
	resp, _ := post(body("other", "docker.io/library/node", "^20"))
	if w := resp.Header.Values("Warning"); resp.StatusCode != http.StatusCreated || len(w) != 1 || !strings.Contains(w[0], "no FROM of the Dockerfile builds on docker.io/library/node") {
		t.Errorf("unused repository = %d, Warning %q; want 201 and a warning", resp.StatusCode, w)
	}
	resp, _ = post(body("py", "python", "~3.12"))
	if resp.StatusCode != http.StatusCreated || len(resp.Header.Values("Warning")) != 0 {
		t.Errorf("repository used in FROM = %d, Warning %q; want 201 and none", resp.StatusCode, resp.Header.Values("Warning"))
	}
	if code, text := a.do(t, "GET", "/api/v1/tasks/py", nil); code != http.StatusOK || !strings.Contains(text, `"semver": "~3.12"`) {
		t.Errorf("stored task = %d %s, want its baseTags", code, text)
	}
}
