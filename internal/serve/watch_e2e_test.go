package serve_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/serve"
)

// loggedReq is one request a test registry received.
type loggedReq struct {
	at     time.Time
	method string
	path   string
}

// testRegistry is an HTTP server on loopback that records every request
// it gets. refit receives no notifications from it.
type testRegistry struct {
	host string // 127.0.0.1:port
	mu   sync.Mutex
	reqs []loggedReq
}

// newTestRegistry serves h (nil = go-containerregistry's in-memory
// registry) on 127.0.0.1, recording requests. The server closes at the
// end of the test.
func newTestRegistry(t *testing.T, h http.Handler) *testRegistry {
	t.Helper()
	if h == nil {
		h = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	}
	r := &testRegistry{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, loggedReq{time.Now(), req.Method, req.URL.Path})
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// since returns the requests received at or after t0.
func (r *testRegistry) since(t0 time.Time) []loggedReq {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []loggedReq
	for _, q := range r.reqs {
		if !q.at.Before(t0) {
			out = append(out, q)
		}
	}
	return out
}

// manifestRequests counts the manifest requests of method among reqs.
func manifestRequests(reqs []loggedReq, method string) int {
	n := 0
	for _, q := range reqs {
		if q.method == method && strings.Contains(q.path, "/manifests/") {
			n++
		}
	}
	return n
}

// baseInfo returns the index entry of ref.
func baseInfo(t *testing.T, c *client.Client, ref string) api.BaseInfo {
	t.Helper()
	bases, err := c.Bases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bases {
		if b.Ref == ref {
			return b
		}
	}
	t.Fatalf("%s is not in the index: %+v", ref, bases)
	return api.BaseInfo{}
}

// waitBase polls the index until ok holds for ref's entry.
func waitBase(t *testing.T, c *client.Client, ref string, within time.Duration, what string, ok func(api.BaseInfo) bool) api.BaseInfo {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b := baseInfo(t, c, ref)
		if ok(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: waited %s for %s; index has %+v", ref, within, what, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func createTask(t *testing.T, c *client.Client, name, dockerfile string) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": dockerfile})
	if _, err := c.CreateTask(context.Background(), api.TaskSpec{Name: name, Source: api.TaskSource{Dir: dir}}); err != nil {
		t.Fatalf("creating task %s: %v", name, err)
	}
}

// TestPollSecondRegistry: a base on a registry refit hears nothing from is
// found to have moved by polling alone, rebuilt on the new digest, and an
// unchanged reference then costs one manifest HEAD per interval and
// nothing else.
func TestPollSecondRegistry(t *testing.T) {
	reg := newTestRegistry(t, nil)
	// 3 s rather than 2 s: the watcher looks for due references every
	// second, and a check that starts more than half an interval late is
	// (by design) rescheduled one slot further; at 2 s that makes the
	// HEAD count of a short window vary by more than one.
	const interval = 3 * time.Second
	r := startRefitWith(t, serve.Config{PollInterval: interval, Debounce: -1, Insecure: []string{reg.host}})
	ref := reg.host + "/base/busybox:1"
	_, first := pushBase(t, ref, "")
	createTask(t, r.c, "polled", "FROM "+ref+"\nRUN echo polled > /polled\n")
	waitChecked(t, r.c, ref, first)
	if runs := allRuns(t, r.c); len(runs) != 0 {
		t.Fatalf("the baseline check queued runs: %+v", runs)
	}

	base, patched := pushBase(t, ref, "p1")
	runs := settle(t, r.c, 1)
	if len(runs) != 1 {
		t.Fatalf("after one patch: %d runs, want 1", len(runs))
	}
	run := runs[0]
	if run.State != api.StateSucceeded {
		t.Fatalf("run %s: %s at %s: %s", run.ID, run.State, run.Step, run.Error)
	}
	if c := run.Cause; c.Kind != "base" || c.Source != "poll" || c.Base != ref || c.OldDigest != first || c.NewDigest != patched {
		t.Errorf("cause = %+v, want base %s %s → %s seen by poll", c, ref, first, patched)
	}
	checkBuiltOn(t, run, base, ref, patched)

	// Unchanged from here on. Start the window half an interval after a
	// check, so that no check falls near either end of it.
	last := baseInfo(t, r.c, ref).CheckedAt
	b := waitBase(t, r.c, ref, 4*interval, "a check after the build", func(b api.BaseInfo) bool { return b.CheckedAt.After(last) })
	time.Sleep(time.Until(b.CheckedAt.Add(interval / 2)))
	start := time.Now()
	time.Sleep(4 * interval)
	reqs := reg.since(start)
	elapsed := time.Since(start)
	end := baseInfo(t, r.c, ref)

	heads := manifestRequests(reqs, http.MethodHead)
	t.Logf("quiet window: %d requests, %d manifest HEADs in %s", len(reqs), heads, elapsed.Round(time.Millisecond))
	if want := int(elapsed / interval); heads < want-1 || heads > want+1 {
		t.Errorf("%d manifest HEADs in %s at a %s interval, want %d±1", heads, elapsed.Round(time.Millisecond), interval, want)
	}
	if gets := manifestRequests(reqs, http.MethodGet); gets != 0 {
		t.Errorf("%d manifest GETs while the base was unchanged, want 0", gets)
	}
	for _, q := range reqs {
		if q.method != http.MethodHead || q.path != "/v2/base/busybox/manifests/1" {
			t.Errorf("unexpected request while unchanged: %s %s (want only HEAD of the tracked tag)", q.method, q.path)
		}
	}
	if !end.CheckedAt.After(b.CheckedAt) || end.Digest != patched || end.LastError != "" || end.Failures != 0 {
		t.Errorf("index after the quiet window: %+v, want checked again at %s without error", end, patched)
	}
	if n := len(allRuns(t, r.c)); n != 1 {
		t.Errorf("%d runs after the quiet window, want still 1", n)
	}
}

// hookFormat builds a notification of one format for a push of
// host/repo:tag at digest, and authenticates it its own way.
type hookFormat struct {
	name        string
	contentType string
	body        func(host, repo, tag, digest, id string) string
	// auth sets the secret on req (whose body is body).
	auth func(req *http.Request, secret string, body []byte)
}

var hookFormats = []hookFormat{
	{
		name:        "distribution",
		contentType: "application/vnd.docker.distribution.events.v2+json",
		body: func(host, repo, tag, digest, id string) string {
			return `{"events":[{
  "id": "` + id + `",
  "timestamp": "` + time.Now().UTC().Format(time.RFC3339Nano) + `",
  "action": "push",
  "target": {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "size": 1000,
    "digest": "` + digest + `",
    "length": 1000,
    "repository": "` + repo + `",
    "url": "http://` + host + `/v2/` + repo + `/manifests/` + digest + `",
    "tag": "` + tag + `"
  },
  "request": {"id": "req-` + id + `", "addr": "127.0.0.1:40000", "host": "` + host + `", "method": "PUT", "useragent": "test"},
  "actor": {"name": "ci"},
  "source": {"addr": "registry-0:5000", "instanceID": "test"}
}]}`
		},
		auth: func(req *http.Request, secret string, _ []byte) { req.Header.Set("Authorization", "Bearer "+secret) },
	},
	{
		name:        "harbor",
		contentType: "application/json",
		body: func(host, repo, tag, digest, _ string) string {
			ns, name, _ := strings.Cut(repo, "/")
			return `{
  "type": "PUSH_ARTIFACT",
  "occur_at": ` + fmt.Sprint(time.Now().Unix()) + `,
  "operator": "robot$ci",
  "event_data": {
    "resources": [{"digest": "` + digest + `", "tag": "` + tag + `", "resource_url": "` + host + `/` + repo + `:` + tag + `"}],
    "repository": {"date_created": 1700000000, "name": "` + name + `", "namespace": "` + ns + `", "repo_full_name": "` + repo + `", "repo_type": "private"}
  }
}`
		},
		// Harbor sends its configured "auth header" verbatim.
		auth: func(req *http.Request, secret string, _ []byte) { req.Header.Set("Authorization", secret) },
	},
	{
		name:        "acr",
		contentType: "application/json",
		body: func(host, repo, tag, digest, id string) string {
			now := time.Now().UTC().Format(time.RFC3339Nano)
			return `[{
  "id": "` + id + `",
  "topic": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/test",
  "subject": "` + repo + `:` + tag + `",
  "eventType": "Microsoft.ContainerRegistry.ImagePushed",
  "eventTime": "` + now + `",
  "data": {
    "id": "data-` + id + `",
    "timestamp": "` + now + `",
    "action": "push",
    "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1000, "digest": "` + digest + `", "length": 1000, "repository": "` + repo + `", "tag": "` + tag + `"},
    "request": {"id": "req-` + id + `", "host": "` + host + `", "method": "PUT", "useragent": "test"}
  },
  "dataVersion": "1.0",
  "metadataVersion": "1"
}]`
		},
		auth: func(req *http.Request, secret string, body []byte) {
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write(body)
			req.Header.Set("X-Refit-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		},
	},
}

// dockerHubBody is a Docker Hub push of repo:tag; it names neither a
// registry host nor a digest.
func dockerHubBody(repo, tag string) string {
	return `{
  "callback_url": "https://registry.hub.docker.com/u/` + repo + `/hook/x/",
  "push_data": {"pushed_at": ` + fmt.Sprint(time.Now().Unix()) + `, "pusher": "ci", "tag": "` + tag + `"},
  "repository": {"name": "` + repo[strings.Index(repo, "/")+1:] + `", "namespace": "` + repo[:strings.Index(repo, "/")] + `", "repo_name": "` + repo + `", "status": "Active"}
}`
}

// postHook sends body to the webhook endpoint of format, authenticated by
// auth, and returns the status and response body.
func postHook(t *testing.T, apiURL, format, contentType string, body []byte, auth func(*http.Request, []byte)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, apiURL+"/hooks/registry/"+format, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	auth(req, body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s webhook: %v", format, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestWebhookFormats: each supported notification format, from a
// registry refit does not poll in practice (1 h), rebuilds the task on the
// pushed digest; a redelivery, a wrong secret, an oversized or malformed
// body do not cause a check or a run; a Docker Hub notification (which
// names no host and no digest) makes refit check the docker.io tag.
func TestWebhookFormats(t *testing.T) {
	reg := newTestRegistry(t, nil)
	secrets := map[string]string{}
	for _, f := range []string{"distribution", "harbor", "dockerhub", "acr"} {
		secrets[f] = "secret-for-" + f + "-0123456789"
	}
	r := startRefitWith(t, serve.Config{PollInterval: time.Hour, Debounce: -1, Insecure: []string{reg.host}, HookSecrets: secrets})

	type hooked struct {
		f        hookFormat
		repo     string
		ref      string
		first    string // digest at the baseline
		notified string // digest of the notified push
		silent   string // digest pushed without a notification
		body     []byte // the delivered notification
		checked  time.Time
	}
	var hs []*hooked
	for _, f := range hookFormats {
		h := &hooked{f: f, repo: "hooks/" + f.name}
		h.ref = reg.host + "/" + h.repo + ":1"
		_, h.first = pushBase(t, h.ref, "")
		createTask(t, r.c, "on-"+f.name, "FROM "+h.ref+"\nRUN echo "+f.name+" > /hooked\n")
		hs = append(hs, h)
	}
	for _, h := range hs {
		waitChecked(t, r.c, h.ref, h.first)
	}
	nruns := 0
	eventN := 0
	newID := func() string {
		eventN++
		return fmt.Sprintf("%s-%d-%d", t.Name(), time.Now().UnixNano(), eventN)
	}
	auth := func(f hookFormat, secret string) func(*http.Request, []byte) {
		return func(req *http.Request, body []byte) { f.auth(req, secret, body) }
	}

	// A notified push is built, on the notified digest.
	for _, h := range hs {
		_, h.notified = pushBase(t, h.ref, h.f.name+"-1")
		h.body = []byte(h.f.body(reg.host, h.repo, "1", h.notified, newID()))
		status, resp := postHook(t, r.APIURL, h.f.name, h.f.contentType, h.body, auth(h.f, secrets[h.f.name]))
		if status != http.StatusAccepted || resp != `{"accepted":1}` {
			t.Fatalf("%s webhook: %d %s, want 202 {\"accepted\":1}", h.f.name, status, resp)
		}
		nruns++
		runs := settle(t, r.c, nruns)
		if len(runs) != nruns {
			t.Fatalf("after the %s webhook: %d runs, want %d", h.f.name, len(runs), nruns)
		}
		run := runs[nruns-1]
		if run.Task != "on-"+h.f.name || run.State != api.StateSucceeded {
			t.Fatalf("%s webhook: run %s of %s is %s (%s), want a succeeded run of on-%s", h.f.name, run.ID, run.Task, run.State, run.Error, h.f.name)
		}
		if c := run.Cause; c.Kind != "base" || c.Source != "webhook" || c.Base != h.ref || c.OldDigest != h.first || c.NewDigest != h.notified {
			t.Errorf("%s webhook: cause %+v, want base %s %s → %s seen by webhook", h.f.name, c, h.ref, h.first, h.notified)
		}
		if got := usedDigest(run, h.ref); got != h.notified {
			t.Errorf("%s webhook: built on %s, want %s", h.f.name, got, h.notified)
		}
	}

	// The tags move again, silently. Deliveries that must not cause a
	// check follow: had any caused one, it would find the new digest and
	// queue a run.
	for _, h := range hs {
		_, h.silent = pushBase(t, h.ref, h.f.name+"-2")
		h.checked = baseInfo(t, r.c, h.ref).CheckedAt
	}
	oversized := append([]byte(`{"events":[],"padding":"`), bytes.Repeat([]byte("x"), 1<<20)...)
	oversized = append(oversized, `"}`...)
	for _, h := range hs {
		good := auth(h.f, secrets[h.f.name])
		// A registry redelivering the same notification.
		if status, resp := postHook(t, r.APIURL, h.f.name, h.f.contentType, h.body, good); status != http.StatusAccepted && status != http.StatusOK {
			t.Errorf("%s redelivery: %d %s, want 200 or 202", h.f.name, status, resp)
		}
		// The new push, announced with a wrong secret.
		forged := []byte(h.f.body(reg.host, h.repo, "1", h.silent, newID()))
		if status, resp := postHook(t, r.APIURL, h.f.name, h.f.contentType, forged, auth(h.f, secrets[h.f.name]+"-wrong")); status != http.StatusUnauthorized {
			t.Errorf("%s with a wrong secret: %d %s, want 401", h.f.name, status, resp)
		}
		// Another format's secret does not open this format either.
		other := "distribution"
		if h.f.name == other {
			other = "harbor"
		}
		if status, resp := postHook(t, r.APIURL, h.f.name, h.f.contentType, forged, auth(h.f, secrets[other])); status != http.StatusUnauthorized {
			t.Errorf("%s with %s's secret: %d %s, want 401", h.f.name, other, status, resp)
		}
		if status, resp := postHook(t, r.APIURL, h.f.name, h.f.contentType, oversized, good); status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s with a body over 1 MiB: %d %s, want 413", h.f.name, status, resp)
		}
		malformed := forged[:len(forged)/2]
		if status, resp := postHook(t, r.APIURL, h.f.name, h.f.contentType, malformed, good); status != http.StatusBadRequest {
			t.Errorf("%s with malformed JSON: %d %s, want 400", h.f.name, status, resp)
		}
	}
	time.Sleep(5 * time.Second)
	if runs := allRuns(t, r.c); len(runs) != nruns {
		t.Errorf("after redeliveries and refused notifications: %d runs, want still %d", len(runs), nruns)
	}
	for _, h := range hs {
		if b := baseInfo(t, r.c, h.ref); !b.CheckedAt.Equal(h.checked) || b.Digest != h.notified {
			t.Errorf("%s: checked at %v (before: %v), digest %s: a refused or repeated notification caused a check", h.f.name, b.CheckedAt, h.checked, b.Digest)
		}
	}

	// A genuine notification of the silent push is taken.
	for _, h := range hs {
		body := []byte(h.f.body(reg.host, h.repo, "1", h.silent, newID()))
		if status, resp := postHook(t, r.APIURL, h.f.name, h.f.contentType, body, auth(h.f, secrets[h.f.name])); status != http.StatusAccepted {
			t.Fatalf("%s webhook for the second push: %d %s, want 202", h.f.name, status, resp)
		}
	}
	nruns += len(hs)
	runs := settle(t, r.c, nruns)
	if len(runs) != nruns {
		t.Fatalf("after the second notifications: %d runs, want %d", len(runs), nruns)
	}
	for _, h := range hs {
		run := lastOf(runs, "on-"+h.f.name)
		if run.State != api.StateSucceeded || run.Cause.Source != "webhook" || run.Cause.OldDigest != h.notified || run.Cause.NewDigest != h.silent {
			t.Errorf("%s second push: run %s %s cause %+v, want succeeded, webhook %s → %s", h.f.name, run.ID, run.State, run.Cause, h.notified, h.silent)
		}
	}

	// Docker Hub names no registry (always docker.io) and no digest: the
	// notification makes refit check the docker.io tag itself. Without
	// network the check fails, but it is made at once, not at the
	// scheduled retry.
	hubRef := "docker.io/refit-e2e-test/hooked:1"
	createTask(t, r.c, "on-dockerhub", "FROM "+hubRef+"\n")
	hubAuth := func(secret string) func(*http.Request, []byte) {
		return func(req *http.Request, _ []byte) { req.URL.RawQuery = url.Values{"token": {secret}}.Encode() }
	}
	var before api.BaseInfo
	for {
		before = waitBase(t, r.c, hubRef, time.Minute, "a first check", func(b api.BaseInfo) bool {
			return b.Digest != "" || b.Failures > before.Failures
		})
		if before.Digest != "" {
			t.Fatalf("%s resolved to %s: this test expects no route to Docker Hub", hubRef, before.Digest)
		}
		if time.Until(before.NextCheckAt) > 4*time.Second {
			break // time left before the retry to tell a webhook's check from it
		}
	}
	if status, resp := postHook(t, r.APIURL, "dockerhub", "application/json", []byte(dockerHubBody("refit-e2e-test/hooked", "1")), hubAuth(secrets["dockerhub"])); status != http.StatusAccepted || resp != `{"accepted":1}` {
		t.Fatalf("dockerhub webhook: %d %s, want 202 {\"accepted\":1}", status, resp)
	}
	posted := time.Now()
	after := baseInfo(t, r.c, hubRef)
	hinted := !after.NextCheckAt.After(posted) || // due now, the check pending or in flight
		after.Failures > before.Failures && after.CheckedAt.Before(before.NextCheckAt) // already checked, before the retry
	if !hinted || posted.After(before.NextCheckAt) {
		t.Errorf("dockerhub webhook did not make %s due: before %+v, after %+v", hubRef, before, after)
	}
	if !strings.Contains(after.LastError, hubRef) {
		t.Errorf("last error of %s = %q, want it to name the reference", hubRef, after.LastError)
	}
	if status, _ := postHook(t, r.APIURL, "dockerhub", "application/json", []byte(dockerHubBody("refit-e2e-test/hooked", "1")), hubAuth("wrong")); status != http.StatusUnauthorized {
		t.Errorf("dockerhub with a wrong token: %d, want 401", status)
	}
	if n := len(allRuns(t, r.c)); n != nruns {
		t.Errorf("%d runs after the Docker Hub notification, want still %d", n, nruns)
	}
}

// TestWatcherSurvivesBadRegistries: a rate-limiting registry and one that
// never answers do not stop the watcher from checking a healthy one; the
// rate limit's Retry-After is honoured and the hang ends in a timeout.
func TestWatcherSurvivesBadRegistries(t *testing.T) {
	limited := newTestRegistry(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK) // the API version check passes
			return
		}
		w.Header().Set("Retry-After", "30")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)
	}))
	release := make(chan struct{})
	var hung atomic.Int32
	hanging := newTestRegistry(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(func() { close(release) }) // runs before the servers close
	healthy := newTestRegistry(t, nil)

	limitedRef := limited.host + "/base/limited:1"
	hangingRef := hanging.host + "/base/hanging:1"
	healthyRef := healthy.host + "/base/healthy:1"
	_, healthyDigest := pushBase(t, healthyRef, "")

	r := startRefitWith(t, serve.Config{PollInterval: time.Second, Debounce: -1,
		Insecure: []string{limited.host, hanging.host, healthy.host}})
	start := time.Now()
	for name, ref := range map[string]string{"limited": limitedRef, "hanging": hangingRef, "healthy": healthyRef} {
		createTask(t, r.c, name, "FROM "+ref+"\nRUN true\n")
	}

	// Until the hanging check gives up, the healthy reference is checked
	// again and again.
	healthyChecks := map[time.Time]bool{}
	var lim, hang api.BaseInfo
	deadline := time.Now().Add(90 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no error recorded for the hanging registry after 90 s: %+v", hang)
		}
		bases, err := r.c.Bases(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bases {
			switch b.Ref {
			case limitedRef:
				lim = b
			case hangingRef:
				hang = b
			case healthyRef:
				if b.LastError != "" || b.Failures != 0 {
					t.Fatalf("healthy reference failed: %+v", b)
				}
				if b.Digest == healthyDigest {
					healthyChecks[b.CheckedAt] = true
				}
			}
		}
		if hang.LastError != "" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("healthy reference checked %d times while the hanging check was in flight", len(healthyChecks))
	if hung.Load() == 0 {
		t.Errorf("the hanging registry got no request, yet %s failed: %s", hangingRef, hang.LastError)
	}
	if !strings.Contains(hang.LastError, "no answer within") || hang.Failures != 1 {
		t.Errorf("hanging reference: failures %d, error %q, want one timeout", hang.Failures, hang.LastError)
	}
	if waited := hang.CheckedAt.Sub(start); waited < 15*time.Second {
		t.Errorf("hanging reference failed %s after start, before the checker's timeout", waited)
	}
	if len(healthyChecks) < 3 {
		t.Errorf("the healthy reference was checked %d times while the hanging one was in flight, want it checked every interval", len(healthyChecks))
	}

	// The rate-limited reference failed once, naming the 429, and is not
	// due again before the 30 s Retry-After.
	lim = baseInfo(t, r.c, limitedRef)
	if !strings.Contains(lim.LastError, "429") {
		t.Errorf("rate-limited reference: error %q, want it to name the 429", lim.LastError)
	}
	if wait := lim.NextCheckAt.Sub(lim.CheckedAt); wait < 25*time.Second {
		t.Errorf("rate-limited reference: next check %s after the failed one, want the 30 s Retry-After honoured", wait)
	}
	// Every caller (the check at task creation, the watcher) shares the
	// registry's Retry-After: no manifest request reaches it within 30 s
	// of the previous one.
	var prev time.Time
	for _, q := range limited.since(start) {
		if !strings.Contains(q.path, "/manifests/") {
			continue
		}
		if !prev.IsZero() && q.at.Sub(prev) < 29*time.Second {
			t.Errorf("rate-limited registry asked again %s after a 429 with Retry-After: 30", q.at.Sub(prev).Round(time.Millisecond))
		}
		prev = q.at
	}
	if elapsed := time.Since(start); lim.Failures > 1+int(elapsed/(25*time.Second)) {
		t.Errorf("rate-limited reference failed %d times in %s despite Retry-After: 30", lim.Failures, elapsed)
	}

	// And the healthy reference is still being checked.
	last := baseInfo(t, r.c, healthyRef).CheckedAt
	waitBase(t, r.c, healthyRef, 30*time.Second, "another check", func(b api.BaseInfo) bool {
		return b.CheckedAt.After(last) && b.LastError == ""
	})
}
