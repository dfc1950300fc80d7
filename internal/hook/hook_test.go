package hook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testSecret = "s3cr3t-Hunter2-webhook"

func allSecrets() map[Format]string {
	return map[Format]string{
		FormatDistribution: testSecret,
		FormatHarbor:       testSecret,
		FormatDockerHub:    testSecret,
		FormatACR:          testSecret,
	}
}

// recorder is an Accept callback that records what it was given.
type recorder struct {
	mu    sync.Mutex
	calls []acceptCall
	err   error
}

type acceptCall struct {
	format Format
	pushes []Push
}

func (r *recorder) accept(_ context.Context, f Format, pushes []Push) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, acceptCall{f, append([]Push(nil), pushes...)})
	return r.err
}

func (r *recorder) all() []acceptCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]acceptCall(nil), r.calls...)
}

func newServer(t *testing.T, cfg Config) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	if cfg.Accept == nil {
		cfg.Accept = rec.accept
	}
	if cfg.Secrets == nil {
		cfg.Secrets = allSecrets()
	}
	mux := http.NewServeMux()
	mux.Handle(Route, Handler(cfg))
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv, rec
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, target string, header http.Header, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func bearer(secret string) http.Header {
	return http.Header{"Authorization": {"Bearer " + secret}, "Content-Type": {"application/json"}}
}

func post(t *testing.T, srv *httptest.Server, f Format, body string) response {
	t.Helper()
	return do(t, http.MethodPost, srv.URL+Route+string(f), bearer(testSecret), strings.NewReader(body))
}

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts.UTC()
}

// parsePushes is parse without the Event Grid validation code.
func parsePushes(f Format, contentType string, body []byte) ([]Push, error) {
	pushes, _, err := parse(f, contentType, body)
	return pushes, err
}

func TestParse(t *testing.T) {
	tests := []struct {
		name        string
		format      Format
		contentType string
		body        string
		want        []Push
	}{
		{
			name: "distribution", format: FormatDistribution,
			contentType: "application/vnd.docker.distribution.events.v1+json",
			body:        distributionBody,
			want: []Push{{
				Source: "distribution", EventID: "320678d8-ca14-430f-8bb6-4ca139cd83f7",
				Registry: "registry.example.com:5000", Repository: "library/debian", Tag: "bookworm",
				Digest: digestA, MediaType: "application/vnd.docker.distribution.manifest.v2+json",
				Time: mustTime(t, "2024-05-02T14:00:05.123456789Z"),
			}, {
				Source: "distribution", EventID: "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
				Registry: "registry.example.com:5000", Repository: "acme/base",
				Digest: digestC, MediaType: "application/vnd.oci.image.index.v1+json",
				Time: mustTime(t, "2024-05-02T14:00:07Z"),
			}},
		},
		{
			name: "harbor push", format: FormatHarbor, contentType: "application/json", body: harborPushBody,
			want: []Push{{
				Source:   "harbor",
				EventID:  syntheticID("harbor", "acme/base", "v1.4.2", digestD, time.Unix(1714658405, 0)),
				Registry: "harbor.example.com", Repository: "acme/base", Tag: "v1.4.2", Digest: digestD,
				Time: time.Unix(1714658405, 0).UTC(),
			}},
		},
		{name: "harbor pull", format: FormatHarbor, body: harborPullBody},
		{name: "harbor delete", format: FormatHarbor, body: harborDeleteBody},
		{name: "harbor scan", format: FormatHarbor, body: harborScanBody},
		{
			name: "harbor cloudevents", format: FormatHarbor, contentType: "application/cloudevents+json",
			body: harborCloudEventBody,
			want: []Push{{
				Source: "harbor", EventID: "4b0f7a6e-7d1e-4a2f-8c3b-9e0d1c2b3a4f#0",
				Registry: "harbor.example.com:8443", Repository: "library/alpine", Tag: "3.20", Digest: digestG,
				Time: mustTime(t, "2024-05-02T14:10:00Z"),
			}, {
				Source: "harbor", EventID: "4b0f7a6e-7d1e-4a2f-8c3b-9e0d1c2b3a4f#1",
				Registry: "harbor.example.com:8443", Repository: "library/alpine", Tag: "latest", Digest: digestG,
				Time: mustTime(t, "2024-05-02T14:10:00Z"),
			}},
		},
		{
			name: "dockerhub", format: FormatDockerHub, contentType: "application/json", body: dockerHubBody,
			want: []Push{{
				Source:   "dockerhub",
				EventID:  syntheticID("dockerhub", "acme/app", "latest", "", time.Unix(1714658405, 0)),
				Registry: "docker.io", Repository: "acme/app", Tag: "latest",
				Time: time.Unix(1714658405, 0).UTC(),
			}},
		},
		{
			name: "acr event grid", format: FormatACR, contentType: "application/json; charset=utf-8",
			body: acrEventGridBody,
			want: []Push{{
				Source: "acr", EventID: "831e1650-001e-001b-66ab-eeb76e069631",
				Registry: "acmeacr.azurecr.io", Repository: "base", Tag: "v2", Digest: digestE,
				MediaType: "application/vnd.docker.distribution.manifest.v2+json",
				Time:      mustTime(t, "2024-05-02T14:20:05.276585742Z"),
			}, {
				Source: "acr", EventID: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
				Registry: "acmeacr.azurecr.io", Repository: "tools/builder", Digest: digestF,
				MediaType: "application/vnd.oci.image.manifest.v1+json",
				Time:      mustTime(t, "2024-05-02T14:23:00.5Z"),
			}},
		},
		{
			name: "acr cloudevent", format: FormatACR, contentType: "application/cloudevents+json; charset=utf-8",
			body: acrCloudEventBody,
			want: []Push{{
				Source: "acr", EventID: "9d1b4a3c-2e5f-4c6d-8a7b-0c1d2e3f4a5b",
				Registry: "acmeacr.azurecr.io", Repository: "base", Tag: "v3", Digest: digestC,
				MediaType: "application/vnd.oci.image.manifest.v1+json",
				Time:      mustTime(t, "2024-05-02T14:30:00.0123456Z"),
			}},
		},
		{
			name: "acr cloudevents batch", format: FormatACR, contentType: "application/cloudevents-batch+json",
			body: acrCloudEventBatchBody,
			want: []Push{{
				Source: "acr", EventID: "bb1b4a3c-2e5f-4c6d-8a7b-0c1d2e3f4a5b",
				Registry: "acmeacr.azurecr.io", Repository: "base", Tag: "v4", Digest: digestD,
				MediaType: "application/vnd.docker.distribution.manifest.list.v2+json",
				Time:      mustTime(t, "2024-05-02T14:32:00Z"), // from the event: data has no timestamp
			}},
		},
		{name: "acr validation only", format: FormatACR, body: eventGridValidationBody},
		{name: "distribution empty", format: FormatDistribution, body: `{"events":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePushes(tt.format, tt.contentType, []byte(tt.body))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name        string
		format      Format
		contentType string
		body        string
		is          error
		want        string
	}{
		{name: "unknown format", format: "quay", body: `{}`, is: ErrUnknownFormat, want: `"quay"`},
		{name: "form content type", format: FormatHarbor, contentType: "application/x-www-form-urlencoded",
			body: harborPushBody, is: ErrUnsupportedMediaType},
		{name: "cloudevents to distribution", format: FormatDistribution, contentType: "application/cloudevents+json",
			body: distributionBody, is: ErrUnsupportedMediaType},
		{name: "bad content type", format: FormatACR, contentType: "application/json; ;", body: `[]`, is: ErrUnsupportedMediaType},
		{name: "empty", format: FormatDockerHub, body: "  \n", want: "body is empty"},
		{name: "truncated", format: FormatDistribution, body: `{"events":[`, want: "invalid JSON"},
		{name: "events missing", format: FormatDistribution, body: `{"event":[]}`, want: "events: missing"},
		{name: "events wrong type", format: FormatDistribution, body: `{"events":"push"}`,
			want: "events: got JSON string, want array"},
		{name: "distribution repository missing", format: FormatDistribution,
			body: `{"events":[{"action":"pull"},{"id":"x","action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + digestA + `","tag":"v1"}}]}`,
			want: "events[1].target.repository: missing"},
		{name: "distribution bad digest", format: FormatDistribution,
			body: `{"events":[{"id":"x","action":"push","target":{"repository":"a/b","tag":"v1","digest":"sha256:abc"}}]}`,
			want: `events[0].target.digest: invalid digest "sha256:abc"`},
		{name: "distribution bad timestamp", format: FormatDistribution,
			body: `{"events":[{"id":"x","timestamp":"yesterday","action":"push","target":{"repository":"a/b","tag":"v1"}}]}`,
			want: "events[0].timestamp: not an RFC 3339 time"},
		{name: "distribution nested type", format: FormatDistribution,
			body: `{"events":[{"action":"push","target":{"repository":7}}]}`,
			want: "events[0].target.repository: got JSON number, want string"},
		{name: "harbor repository missing", format: FormatHarbor,
			body: `{"type":"PUSH_ARTIFACT","occur_at":1,"event_data":{"resources":[{"tag":"v1"}]}}`,
			want: "event_data.repository.repo_full_name: missing"},
		{name: "harbor resource without tag or digest", format: FormatHarbor,
			body: `{"type":"PUSH_ARTIFACT","occur_at":1,"event_data":{"resources":[{"tag":"v1"},{"resource_url":"h/a/b"}],"repository":{"repo_full_name":"a/b"}}}`,
			want: "event_data.resources[1].tag: missing"},
		{name: "harbor type missing", format: FormatHarbor, body: `{"occur_at":1}`, want: "type: missing"},
		{name: "dockerhub push_data missing", format: FormatDockerHub, body: `{"repository":{"repo_name":"a/b"}}`,
			want: "push_data: missing"},
		{name: "dockerhub repository missing", format: FormatDockerHub,
			body: `{"push_data":{"tag":"v1","pushed_at":1},"repository":{}}`, want: "repository.repo_name: missing"},
		{name: "dockerhub bad time", format: FormatDockerHub,
			body: `{"push_data":{"tag":"v1","pushed_at":-5},"repository":{"repo_name":"a/b"}}`,
			want: "push_data.pushed_at: time out of range"},
		{name: "acr repository missing", format: FormatACR,
			body: `[{"id":"1","eventType":"Microsoft.ContainerRegistry.ImagePushed","data":{"action":"push","target":{"tag":"v1"}}}]`,
			want: "events[0].data.target.repository: missing"},
		{name: "acr single event", format: FormatACR,
			body: `{"specversion":"1.0","id":"1","type":"Microsoft.ContainerRegistry.ImagePushed","data":{"target":{"repository":"a","tag":"bad tag"}}}`,
			want: `event.data.target.tag: invalid tag "bad tag"`},
		{name: "acr validation without code", format: FormatACR,
			body: `[{"id":"1","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{}}]`,
			want: "events[0].data.validationCode: missing"},
		{name: "acr scalar", format: FormatACR, body: `"hello"`, want: "body: want a JSON array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePushes(tt.format, tt.contentType, []byte(tt.body))
			if err == nil {
				t.Fatalf("Parse = %v, want error", got)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %q", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestPushRef(t *testing.T) {
	tests := []struct {
		p    Push
		want string
	}{
		{Push{Registry: "docker.io", Repository: "library/debian", Tag: "bookworm", Digest: digestA}, "docker.io/library/debian:bookworm"},
		{Push{Registry: "r.example:5000", Repository: "acme/base", Digest: digestC}, "r.example:5000/acme/base@" + digestC},
		{Push{Repository: "acme/base", Tag: "v1"}, "acme/base:v1"},
	}
	for _, tt := range tests {
		if got := tt.p.Ref(); got != tt.want {
			t.Errorf("Ref() = %q, want %q", got, tt.want)
		}
	}
}

// TestHandlerFormats posts each format's payload over HTTP and checks what
// Accept receives and what the registry is told.
func TestHandlerFormats(t *testing.T) {
	tests := []struct {
		format      Format
		contentType string
		body        string
		wantN       int
	}{
		{FormatDistribution, "application/vnd.docker.distribution.events.v1+json", distributionBody, 2},
		{FormatDistribution, "application/vnd.docker.distribution.events.v2+json", distributionBody, 2},
		{FormatHarbor, "application/json", harborPushBody, 1},
		{FormatHarbor, "application/json", harborPullBody, 0},
		{FormatHarbor, "", harborDeleteBody, 0},
		{FormatHarbor, "application/cloudevents+json", harborCloudEventBody, 2},
		{FormatDockerHub, "application/json", dockerHubBody, 1},
		{FormatACR, "application/json; charset=utf-8", acrEventGridBody, 2},
		{FormatACR, "application/cloudevents+json; charset=utf-8", acrCloudEventBody, 1},
		{FormatACR, "application/cloudevents-batch+json; charset=utf-8", acrCloudEventBatchBody, 1},
	}
	for _, tt := range tests {
		t.Run(string(tt.format)+" "+tt.contentType, func(t *testing.T) {
			srv, rec := newServer(t, Config{})
			h := bearer(testSecret)
			h.Set("Content-Type", tt.contentType)
			resp := do(t, http.MethodPost, srv.URL+Route+string(tt.format), h, strings.NewReader(tt.body))
			wantStatus := http.StatusOK
			if tt.wantN > 0 {
				wantStatus = http.StatusAccepted
			}
			if resp.status != wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.status, wantStatus, resp.body)
			}
			var got struct{ Accepted int }
			if err := json.Unmarshal([]byte(resp.body), &got); err != nil || got.Accepted != tt.wantN {
				t.Errorf("body = %s (%v), want accepted %d", resp.body, err, tt.wantN)
			}
			if ct := resp.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			want, err := parsePushes(tt.format, tt.contentType, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			calls := rec.all()
			if tt.wantN == 0 {
				if len(calls) != 0 {
					t.Errorf("Accept called for a notification without pushes: %v", calls)
				}
				return
			}
			if len(calls) != 1 {
				t.Fatalf("Accept called %d times, want 1", len(calls))
			}
			if calls[0].format != tt.format {
				t.Errorf("Accept format = %q, want %q", calls[0].format, tt.format)
			}
			if diff := cmp.Diff(want, calls[0].pushes); diff != "" {
				t.Errorf("Accept pushes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandlerStripPrefixAndPattern(t *testing.T) {
	rec := &recorder{}
	h := Handler(Config{Secrets: allSecrets(), Accept: rec.accept})
	mux := http.NewServeMux()
	mux.Handle("/a/", http.StripPrefix("/a", h))
	mux.Handle("POST /b/{format}", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, path := range []string{"/a/dockerhub", "/b/dockerhub"} {
		resp := do(t, http.MethodPost, srv.URL+path, bearer(testSecret), strings.NewReader(dockerHubBody))
		if resp.status != http.StatusAccepted {
			t.Errorf("%s: status = %d; %s", path, resp.status, resp.body)
		}
	}
}

func TestAuthMethods(t *testing.T) {
	srv, rec := newServer(t, Config{})
	body := dockerHubBody
	target := srv.URL + Route + "dockerhub"
	tests := []struct {
		name   string
		header http.Header
		query  string
		ok     bool
	}{
		{name: "bearer", header: http.Header{"Authorization": {"Bearer " + testSecret}}, ok: true},
		{name: "bearer lowercase", header: http.Header{"Authorization": {"bearer " + testSecret}}, ok: true},
		{name: "raw authorization (harbor auth header)", header: http.Header{"Authorization": {testSecret}}, ok: true},
		{name: "query token", query: "?token=" + url.QueryEscape(testSecret), ok: true},
		{name: "refit signature", header: http.Header{"X-Refit-Signature-256": {sign(testSecret, body)}}, ok: true},
		{name: "hub signature", header: http.Header{"X-Hub-Signature-256": {sign(testSecret, body)}}, ok: true},
		{name: "uppercase hex signature", header: http.Header{"X-Refit-Signature-256": {"sha256=" + strings.ToUpper(strings.TrimPrefix(sign(testSecret, body), "sha256="))}}, ok: true},
		{name: "none"},
		{name: "wrong bearer", header: http.Header{"Authorization": {"Bearer " + testSecret + "x"}}},
		{name: "secret prefix", header: http.Header{"Authorization": {"Bearer " + testSecret[:5]}}},
		{name: "wrong raw", header: http.Header{"Authorization": {"nope"}}},
		{name: "basic scheme", header: http.Header{"Authorization": {"Basic " + testSecret}}},
		{name: "wrong query", query: "?token=wrong"},
		{name: "wrong signature", header: http.Header{"X-Refit-Signature-256": {sign("other", body)}}},
		{name: "signature of other body", header: http.Header{"X-Hub-Signature-256": {sign(testSecret, body+" ")}}},
		{name: "signature not hex", header: http.Header{"X-Hub-Signature-256": {"sha256=zz"}}},
		{name: "signature wrong algorithm", header: http.Header{"X-Hub-Signature-256": {strings.Replace(sign(testSecret, body), "sha256", "sha1", 1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(rec.all())
			resp := do(t, http.MethodPost, target+tt.query, tt.header, strings.NewReader(body))
			if tt.ok {
				if resp.status != http.StatusAccepted {
					t.Fatalf("status = %d, want 202; %s", resp.status, resp.body)
				}
				if len(rec.all()) != before+1 {
					t.Error("Accept not called")
				}
				return
			}
			if resp.status != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401; %s", resp.status, resp.body)
			}
			if resp.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if strings.Contains(resp.body, testSecret) || strings.Contains(resp.body, testSecret[:5]) {
				t.Errorf("response leaks the secret: %s", resp.body)
			}
			if len(rec.all()) != before {
				t.Error("Accept called for an unauthenticated request")
			}
		})
	}
}

func TestSecretsArePerFormat(t *testing.T) {
	secrets := allSecrets()
	secrets[FormatHarbor] = "harbor-only"
	srv, _ := newServer(t, Config{Secrets: secrets})
	resp := do(t, http.MethodPost, srv.URL+Route+"harbor", bearer(testSecret), strings.NewReader(harborPushBody))
	if resp.status != http.StatusUnauthorized {
		t.Errorf("another format's secret: status = %d, want 401", resp.status)
	}
	resp = do(t, http.MethodPost, srv.URL+Route+"harbor", bearer("harbor-only"), strings.NewReader(harborPushBody))
	if resp.status != http.StatusAccepted {
		t.Errorf("own secret: status = %d, want 202; %s", resp.status, resp.body)
	}
}

func TestUnconfiguredFormat(t *testing.T) {
	for _, secrets := range []map[Format]string{
		{FormatHarbor: testSecret},
		{FormatHarbor: testSecret, FormatDockerHub: ""},
		{},
	} {
		srv, rec := newServer(t, Config{Secrets: secrets})
		resp := post(t, srv, FormatDockerHub, dockerHubBody)
		if resp.status != http.StatusForbidden {
			t.Fatalf("status = %d, want 403; %s", resp.status, resp.body)
		}
		if !strings.Contains(resp.body, "webhook source dockerhub is not configured") {
			t.Errorf("body = %s", resp.body)
		}
		if len(rec.all()) != 0 {
			t.Error("Accept called")
		}
	}
}

func TestRouting(t *testing.T) {
	srv, _ := newServer(t, Config{})
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, Route + "quay", http.StatusNotFound},
		{http.MethodPost, Route, http.StatusNotFound},
		{http.MethodPost, Route + "harbor/extra", http.StatusNotFound},
		{http.MethodGet, Route + "harbor", http.StatusMethodNotAllowed},
		{http.MethodPut, Route + "distribution", http.StatusMethodNotAllowed},
		{http.MethodOptions, Route + "harbor", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		resp := do(t, tt.method, srv.URL+tt.path, bearer(testSecret), strings.NewReader(harborPushBody))
		if resp.status != tt.want {
			t.Errorf("%s %s: status = %d, want %d; %s", tt.method, tt.path, resp.status, tt.want, resp.body)
		}
		if tt.want == http.StatusMethodNotAllowed && resp.header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tt.method, tt.path)
		}
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(resp.body), &e); err != nil || e.Error == "" {
			t.Errorf("%s %s: body %q is not a JSON error", tt.method, tt.path, resp.body)
		}
	}
}

// chunked hides the length of a reader so the client sends it chunked.
type chunked struct{ io.Reader }

func TestOversized(t *testing.T) {
	const limit = 1024
	srv, rec := newServer(t, Config{MaxBody: limit})
	big := `{"events":[],"pad":"` + strings.Repeat("x", 2*limit) + `"}`
	target := srv.URL + Route + "distribution"

	resp := do(t, http.MethodPost, target, bearer(testSecret), strings.NewReader(big))
	if resp.status != http.StatusRequestEntityTooLarge {
		t.Errorf("with Content-Length: status = %d, want 413; %s", resp.status, resp.body)
	}
	resp = do(t, http.MethodPost, target, bearer(testSecret), chunked{strings.NewReader(big)})
	if resp.status != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked: status = %d, want 413; %s", resp.status, resp.body)
	}
	resp = do(t, http.MethodPost, target, http.Header{"X-Refit-Signature-256": {sign(testSecret, big)}}, chunked{strings.NewReader(big)})
	if resp.status != http.StatusRequestEntityTooLarge {
		t.Errorf("signed: status = %d, want 413; %s", resp.status, resp.body)
	}
	if calls := rec.all(); len(calls) != 0 {
		t.Errorf("Accept called %d times for oversized bodies", len(calls))
	}

	// A body of exactly MaxBody bytes is fine.
	push := `{"events":[{"id":"1","action":"push","target":{"repository":"a/b","tag":"v1"}}]}`
	exact := push + strings.Repeat(" ", limit-len(push))
	resp = do(t, http.MethodPost, target, bearer(testSecret), chunked{strings.NewReader(exact)})
	if resp.status != http.StatusAccepted {
		t.Errorf("exactly MaxBody: status = %d, want 202; %s", resp.status, resp.body)
	}
}

func TestDefaultMaxBody(t *testing.T) {
	srv, _ := newServer(t, Config{})
	big := `{"events":[],"pad":"` + strings.Repeat("x", int(DefaultMaxBody)) + `"}`
	resp := post(t, srv, FormatDistribution, big)
	if resp.status != http.StatusRequestEntityTooLarge {
		t.Errorf("status = %d, want 413", resp.status)
	}
}

func TestUnsupportedMediaType(t *testing.T) {
	srv, rec := newServer(t, Config{})
	for _, ct := range []string{"text/html", "application/x-www-form-urlencoded", "application/cloudevents+json", "bogus/;;"} {
		h := bearer(testSecret)
		h.Set("Content-Type", ct)
		resp := do(t, http.MethodPost, srv.URL+Route+"dockerhub", h, strings.NewReader(dockerHubBody))
		if resp.status != http.StatusUnsupportedMediaType {
			t.Errorf("%q: status = %d, want 415; %s", ct, resp.status, resp.body)
		}
	}
	if len(rec.all()) != 0 {
		t.Error("Accept called")
	}
}

// TestAuthenticateBeforeContentType: a request that is not authenticated
// learns nothing about what the endpoint accepts: a wrong signature, a
// wrong token or none at all on a form body gets 401, not 415; only an
// authenticated request hears that its content type is wrong.
func TestAuthenticateBeforeContentType(t *testing.T) {
	srv, rec := newServer(t, Config{})
	form := "a=1&b=2"
	tests := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"wrong signature", http.Header{"X-Refit-Signature-256": {sign("wrong", form)}}, http.StatusUnauthorized},
		{"wrong hub signature", http.Header{"X-Hub-Signature-256": {sign(testSecret, form+"x")}}, http.StatusUnauthorized},
		{"wrong bearer", http.Header{"Authorization": {"Bearer wrong"}}, http.StatusUnauthorized},
		{"nothing", http.Header{}, http.StatusUnauthorized},
		{"good signature", http.Header{"X-Refit-Signature-256": {sign(testSecret, form)}}, http.StatusUnsupportedMediaType},
		{"good bearer", http.Header{"Authorization": {"bearer " + testSecret}}, http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		tt.header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp := do(t, http.MethodPost, srv.URL+Route+"harbor", tt.header, strings.NewReader(form))
		if resp.status != tt.want {
			t.Errorf("%s: status = %d, want %d; %s", tt.name, resp.status, tt.want, resp.body)
		}
		if tt.want == http.StatusUnauthorized && resp.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tt.name)
		}
	}
	if len(rec.all()) != 0 {
		t.Error("Accept called")
	}
}

func TestMalformed(t *testing.T) {
	srv, rec := newServer(t, Config{})
	tests := []struct {
		format Format
		body   string
		want   string
	}{
		{FormatDistribution, `{"events":[{"id":`, "invalid JSON"},
		{FormatDistribution, ``, "body is empty"},
		{FormatDistribution, `{"events":[{"action":"pull"},{"action":"push","target":{"tag":"v1"}}]}`, "events[1].target.repository: missing"},
		{FormatHarbor, `{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"tag":"v1"}],"repository":{}}}`, "event_data.repository.repo_full_name: missing"},
		{FormatDockerHub, `{"callback_url":"x","repository":{"repo_name":"a/b"}}`, "push_data: missing"},
		{FormatACR, `[{"id":"1","eventType":"Microsoft.ContainerRegistry.ImageDeleted"},{"id":"2","eventType":"Microsoft.ContainerRegistry.ImagePushed","data":{"target":{"digest":"` + digestA + `"}}}]`, "events[1].data.target.repository: missing"},
	}
	for _, tt := range tests {
		resp := post(t, srv, tt.format, tt.body)
		if resp.status != http.StatusBadRequest {
			t.Errorf("%s %s: status = %d, want 400; %s", tt.format, tt.body, resp.status, resp.body)
			continue
		}
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(resp.body), &e); err != nil {
			t.Fatalf("body %q: %v", resp.body, err)
		}
		if !strings.Contains(e.Error, tt.want) {
			t.Errorf("%s: error %q does not contain %q", tt.format, e.Error, tt.want)
		}
	}
	if len(rec.all()) != 0 {
		t.Error("Accept called for malformed bodies")
	}
}

func TestAcceptError(t *testing.T) {
	rec := &recorder{err: errors.New("database is locked")}
	srv, _ := newServer(t, Config{Accept: rec.accept})
	resp := post(t, srv, FormatHarbor, harborPushBody)
	if resp.status != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500; %s", resp.status, resp.body)
	}
	if strings.Contains(resp.body, "database is locked") {
		t.Errorf("internal error leaked to the registry: %s", resp.body)
	}
	if len(rec.all()) != 1 {
		t.Errorf("Accept called %d times, want 1", len(rec.all()))
	}
}

func TestReplaySameEventIDs(t *testing.T) {
	srv, rec := newServer(t, Config{})
	bodies := map[Format][]string{
		FormatDistribution: {distributionBody},
		FormatHarbor:       {harborPushBody, harborCloudEventBody},
		FormatDockerHub:    {dockerHubBody},
		FormatACR:          {acrEventGridBody, acrCloudEventBody, acrCloudEventBatchBody},
	}
	seen := map[string]string{}
	for f, bs := range bodies {
		for _, body := range bs {
			for range 2 {
				if resp := post(t, srv, f, body); resp.status != http.StatusAccepted {
					t.Fatalf("%s: status = %d; %s", f, resp.status, resp.body)
				}
			}
			calls := rec.all()
			first, second := calls[len(calls)-2], calls[len(calls)-1]
			if diff := cmp.Diff(first.pushes, second.pushes); diff != "" {
				t.Errorf("%s: replay differs (-first +second):\n%s", f, diff)
			}
			for _, p := range second.pushes {
				if p.EventID == "" {
					t.Errorf("%s: empty EventID in %+v", f, p)
				}
				if prev, dup := seen[p.EventID]; dup && prev != p.Ref() {
					t.Errorf("EventID %q shared by %s and %s", p.EventID, prev, p.Ref())
				}
				seen[p.EventID] = p.Ref()
			}
		}
	}
	// A different push time is a different event for formats without ids.
	later := strings.Replace(dockerHubBody, "1.714658405e+09", "1.714658999e+09", 1)
	a, _ := parsePushes(FormatDockerHub, "", []byte(dockerHubBody))
	b, _ := parsePushes(FormatDockerHub, "", []byte(later))
	if a[0].EventID == b[0].EventID {
		t.Error("Docker Hub pushes at different times share an EventID")
	}
}

func TestEventGridValidation(t *testing.T) {
	srv, rec := newServer(t, Config{})
	target := srv.URL + Route + "acr"
	h := http.Header{"Content-Type": {"application/json"}, "Aeg-Event-Type": {"SubscriptionValidation"}}

	// Without the token: no validation response.
	resp := do(t, http.MethodPost, target, h, strings.NewReader(eventGridValidationBody))
	if resp.status != http.StatusUnauthorized || strings.Contains(resp.body, "512d38b6") {
		t.Fatalf("unauthenticated validation: status = %d; %s", resp.status, resp.body)
	}

	resp = do(t, http.MethodPost, target+"?token="+url.QueryEscape(testSecret), h, strings.NewReader(eventGridValidationBody))
	if resp.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; %s", resp.status, resp.body)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(resp.body), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}, got); diff != "" {
		t.Errorf("validation response (-want +got):\n%s", diff)
	}
	if len(rec.all()) != 0 {
		t.Error("Accept called for a validation event")
	}
}

func TestCloudEventsHandshake(t *testing.T) {
	srv, rec := newServer(t, Config{})
	target := srv.URL + Route + "acr"
	origin := http.Header{"Webhook-Request-Origin": {"eventgrid.azure.net"}, "Webhook-Request-Rate": {"120"}}

	resp := do(t, http.MethodOptions, target, origin, nil)
	if resp.status != http.StatusUnauthorized {
		t.Errorf("without token: status = %d, want 401", resp.status)
	}
	if resp.header.Get("WebHook-Allowed-Origin") != "" {
		t.Error("handshake granted without token")
	}
	// An HMAC cannot authenticate an OPTIONS request: there is no body.
	h := origin.Clone()
	h.Set("X-Hub-Signature-256", sign(testSecret, ""))
	if resp := do(t, http.MethodOptions, target, h, nil); resp.status != http.StatusUnauthorized {
		t.Errorf("signature only: status = %d, want 401", resp.status)
	}

	resp = do(t, http.MethodOptions, target+"?token="+url.QueryEscape(testSecret), origin, nil)
	if resp.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; %s", resp.status, resp.body)
	}
	if got := resp.header.Get("WebHook-Allowed-Origin"); got != "eventgrid.azure.net" {
		t.Errorf("WebHook-Allowed-Origin = %q", got)
	}
	if got := resp.header.Get("WebHook-Allowed-Rate"); got != "*" {
		t.Errorf("WebHook-Allowed-Rate = %q", got)
	}
	if got := resp.header.Get("Allow"); !strings.Contains(got, "POST") {
		t.Errorf("Allow = %q", got)
	}

	resp = do(t, http.MethodOptions, target, bearer(testSecret), nil)
	if resp.status != http.StatusBadRequest {
		t.Errorf("without WebHook-Request-Origin: status = %d, want 400", resp.status)
	}
	if len(rec.all()) != 0 {
		t.Error("Accept called")
	}
}

func TestLogsNeverContainSecretsOrBodies(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&buf, &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := &recorder{err: errors.New("boom")}
	srv, _ := newServer(t, Config{Logger: logger, Accept: rec.accept})
	target := srv.URL + Route
	do(t, http.MethodPost, target+"dockerhub?token="+testSecret, nil, strings.NewReader(dockerHubBody))
	do(t, http.MethodPost, target+"dockerhub", bearer(testSecret+"x"), strings.NewReader(dockerHubBody))
	do(t, http.MethodPost, target+"harbor", bearer(testSecret), strings.NewReader(`{"type":"PUSH_ARTIFACT","operator":"needle-operator"}`))
	do(t, http.MethodPost, target+"acr", bearer(testSecret), strings.NewReader(eventGridValidationBody))
	mu.Lock()
	defer mu.Unlock()
	out := buf.String()
	if out == "" {
		t.Fatal("nothing logged")
	}
	for _, s := range []string{testSecret, "needle-operator", "acmebot", "512d38b6"} {
		if strings.Contains(out, s) {
			t.Errorf("log contains %q:\n%s", s, out)
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestHandlerRequiresAccept(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Handler with nil Accept did not panic")
		}
	}()
	Handler(Config{Secrets: allSecrets()})
}

func FuzzParse(f *testing.F) {
	fuzzFormats := []Format{FormatDistribution, FormatHarbor, FormatDockerHub, FormatACR}
	seeds := []struct {
		format      Format
		contentType string
		body        string
	}{
		{FormatDistribution, "application/vnd.docker.distribution.events.v1+json", distributionBody},
		{FormatHarbor, "application/json", harborPushBody},
		{FormatHarbor, "", harborPullBody},
		{FormatHarbor, "application/cloudevents+json", harborCloudEventBody},
		{FormatDockerHub, "application/json", dockerHubBody},
		{FormatACR, "application/json", acrEventGridBody},
		{FormatACR, "application/cloudevents+json", acrCloudEventBody},
		{FormatACR, "application/cloudevents-batch+json", acrCloudEventBatchBody},
		{FormatACR, "", eventGridValidationBody},
	}
	for _, s := range seeds {
		i := uint8(0)
		for j, ff := range fuzzFormats {
			if ff == s.format {
				i = uint8(j)
			}
		}
		f.Add(i, s.contentType, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, fi uint8, contentType string, body []byte) {
		if len(body) > 64<<10 {
			return
		}
		format := fuzzFormats[int(fi)%len(fuzzFormats)]
		pushes, err := parsePushes(format, contentType, body)
		again, err2 := parsePushes(format, contentType, body)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(pushes, again) {
			t.Fatalf("Parse is not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			if pushes != nil {
				t.Fatalf("pushes %v returned with error %v", pushes, err)
			}
			return
		}
		for _, p := range pushes {
			if p.Source != string(format) || p.EventID == "" || p.Repository == "" || (p.Tag == "" && p.Digest == "") {
				t.Fatalf("invalid push %+v", p)
			}
			if strings.ContainsAny(p.Ref(), " \t\r\n") {
				t.Fatalf("Ref %q contains whitespace", p.Ref())
			}
			checkReference(t, p)
		}
	})
}
