package registry

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"
)

// factory builds the Registry under test from cfg.
type factory func(t *testing.T, cfg Config) *Registry

// stubUpstream serves the push-notification wrapper in front of
// go-containerregistry's in-memory registry, so the wrapper and the shared
// protocol tests run without distribution.
func stubUpstream(t *testing.T, cfg Config) *Registry {
	return wrap(t.Context(), ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))), nil, cfg)
}

// request is one request the test server saw.
type request struct {
	method, path, query string
	status              int
}

// server is a Registry served on loopback that records requests.
type server struct {
	host string
	mu   sync.Mutex
	reqs []request
}

func serve(t *testing.T, h http.Handler) *server {
	t.Helper()
	s := &server{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, req)
		s.mu.Lock()
		s.reqs = append(s.reqs, request{req.Method, req.URL.Path, req.URL.RawQuery, rec.statusCode()})
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	s.host = strings.TrimPrefix(srv.URL, "http://")
	return s
}

func (s *server) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

func (s *server) ref(t *testing.T, repoAndRef string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s.host+"/"+repoAndRef, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// pushes collects PushEvents.
type pushes struct {
	mu     sync.Mutex
	events []PushEvent
}

func (p *pushes) add(ev PushEvent) {
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
}

func (p *pushes) take() []PushEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev := p.events
	p.events = nil
	return ev
}

func ctxOpt(t *testing.T) remote.Option { return remote.WithContext(t.Context()) }

func digestOf(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mediaTypeOf(t *testing.T, m interface {
	MediaType() (types.MediaType, error)
}) string {
	t.Helper()
	mt, err := m.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return string(mt)
}

// testPushPull pushes a random image by tag and by digest, reads it back and
// checks the push notifications.
func testPushPull(t *testing.T, newRegistry factory) {
	var got pushes
	srv := serve(t, newRegistry(t, Config{Dir: t.TempDir(), OnPush: got.add}))

	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	dig := digestOf(t, img)
	mt := mediaTypeOf(t, img)
	if err := remote.Write(srv.ref(t, "test/app:v1"), img, ctxOpt(t)); err != nil {
		t.Fatal(err)
	}
	want := []PushEvent{{Repository: "test/app", Tag: "v1", Digest: dig.String(), MediaType: mt}}
	if diff := cmp.Diff(want, got.take()); diff != "" {
		t.Errorf("push by tag: events (-want +got):\n%s", diff)
	}

	for _, r := range []string{"test/app:v1", "test/app@" + dig.String()} {
		desc, err := remote.Head(srv.ref(t, r), ctxOpt(t))
		if err != nil {
			t.Fatalf("HEAD %s: %v", r, err)
		}
		if desc.Digest != dig {
			t.Errorf("HEAD %s: digest %s, want %s", r, desc.Digest, dig)
		}
		pulled, err := remote.Image(srv.ref(t, r), ctxOpt(t))
		if err != nil {
			t.Fatalf("pull %s: %v", r, err)
		}
		if d := digestOf(t, pulled); d != dig {
			t.Errorf("pull %s: digest %s, want %s", r, d, dig)
		}
		layers, err := pulled.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers { // fetch the blobs too
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatalf("reading layer of %s: %v", r, err)
			}
			rc.Close()
		}
	}

	// By digest, into another repository: Tag is empty.
	other, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	odig := digestOf(t, other)
	if err := remote.Write(srv.ref(t, "test/bydigest@"+odig.String()), other, ctxOpt(t)); err != nil {
		t.Fatal(err)
	}
	want = []PushEvent{{Repository: "test/bydigest", Digest: odig.String(), MediaType: mediaTypeOf(t, other)}}
	if diff := cmp.Diff(want, got.take()); diff != "" {
		t.Errorf("push by digest: events (-want +got):\n%s", diff)
	}
}

// testIndex pushes a random index; its images are pushed by digest first.
func testIndex(t *testing.T, newRegistry factory) {
	var got pushes
	srv := serve(t, newRegistry(t, Config{Dir: t.TempDir(), OnPush: got.add}))

	idx, err := random.Index(512, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref := srv.ref(t, "test/multi:latest")
	if err := remote.WriteIndex(ref, idx, ctxOpt(t)); err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(ref, ctxOpt(t))
	if err != nil {
		t.Fatal(err)
	}
	dig := digestOf(t, idx)
	if d := digestOf(t, pulled); d != dig {
		t.Errorf("pulled index digest %s, want %s", d, dig)
	}

	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var want []PushEvent
	for _, m := range manifest.Manifests {
		want = append(want, PushEvent{Repository: "test/multi", Digest: m.Digest.String(), MediaType: string(m.MediaType)})
	}
	want = append(want, PushEvent{Repository: "test/multi", Tag: "latest", Digest: dig.String(), MediaType: mediaTypeOf(t, idx)})
	events := got.take()
	// Child manifests are pushed concurrently.
	sortEvents := cmpopts.SortSlices(func(a, b PushEvent) bool { return a.Digest < b.Digest })
	if diff := cmp.Diff(want, events, sortEvents); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestPushPull(t *testing.T) { testPushPull(t, stubUpstream) }

func TestIndex(t *testing.T) { testIndex(t, stubUpstream) }

// A manifest PUT that is not answered 201 is not reported; one without a
// Content-Type takes its media type from the manifest.
func TestOnPushRawRequests(t *testing.T) {
	var got pushes
	srv := serve(t, stubUpstream(t, Config{OnPush: got.add}))
	base := "http://" + srv.host + "/v2/test/raw/manifests/"

	put := func(ref, contentType, body string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, base+ref, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	const ociManifest = "application/vnd.oci.image.manifest.v1+json"
	body := `{"schemaVersion":2,"mediaType":"` + ociManifest + `","config":{},"layers":[]}`
	const ociIndex = "application/vnd.oci.image.index.v1+json"
	broken := `{"schemaVersion":2,"mediaType":"` + ociIndex + `","manifests":[{"mediaType":"` + ociManifest +
		`","digest":"sha256:` + strings.Repeat("0", 64) + `","size":2}]}`
	if code := put("broken", ociIndex, broken); code == http.StatusCreated {
		t.Fatalf("PUT of index with unknown manifest: status %d", code)
	}
	if ev := got.take(); len(ev) != 0 {
		t.Errorf("failed PUT reported: %+v", ev)
	}

	if code := put("sniffed", "", body); code != http.StatusCreated {
		t.Fatalf("PUT without Content-Type: status %d", code)
	}
	ev := got.take()
	if len(ev) != 1 || ev[0].MediaType != ociManifest || ev[0].Tag != "sniffed" {
		t.Errorf("events = %+v, want one with media type %s", ev, ociManifest)
	}

	if code := put("withparam", ociManifest+"; charset=utf-8", body); code != http.StatusCreated {
		t.Fatalf("PUT: status %d", code)
	}
	if ev := got.take(); len(ev) != 1 || ev[0].MediaType != ociManifest {
		t.Errorf("events = %+v, want media type without parameters", ev)
	}
}

func TestManifestPut(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		name, ref    string
		ok           bool
	}{
		{"PUT", "/v2/app/manifests/v1", "app", "v1", true},
		{"PUT", "/v2/team/app/manifests/sha256:abc", "team/app", "sha256:abc", true},
		{"PUT", "/v2/a/manifests/b/manifests/v1", "a/manifests/b", "v1", true},
		{"GET", "/v2/app/manifests/v1", "", "", false},
		{"PUT", "/v2/app/blobs/uploads/x", "", "", false},
		{"PUT", "/v2/app/manifests/", "", "", false},
		{"PUT", "/v2/manifests/v1", "", "", false},
		{"PUT", "/v3/app/manifests/v1", "", "", false},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		name, ref, ok := manifestPut(req)
		if name != tc.name || ref != tc.ref || ok != tc.ok {
			t.Errorf("manifestPut(%s %s) = %q, %q, %v; want %q, %q, %v", tc.method, tc.path, name, ref, ok, tc.name, tc.ref, tc.ok)
		}
	}
}

// Distribution's logrus records reach the slog logger at debug level, and
// only through the context the Registry hands it.
func TestDistributionLogger(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	entry := newDistributionLogger(t.Context(), l)
	entry.WithField("vars.name", "test/app").Error("response completed with error")
	out := buf.String()
	for _, want := range []string{"level=DEBUG", `msg="response completed with error"`, "component=distribution", "distribution.level=error", "vars.name=test/app"} {
		if !strings.Contains(out, want) {
			t.Errorf("log output %q lacks %q", out, want)
		}
	}

	ctx := withDistributionLogger(context.WithValue(t.Context(), "k", "v"), entry)
	if ctx.Value("k") != "v" {
		t.Error("other context values are hidden")
	}
	if ctx.Value(struct{}{}) != nil {
		t.Error("unrelated key answered")
	}

	// With debug disabled nothing is formatted or forwarded.
	buf.Reset()
	quiet := slog.New(slog.NewTextHandler(&buf, nil))
	newDistributionLogger(t.Context(), quiet).Error("x")
	if buf.Len() != 0 || newDistributionLogger(t.Context(), quiet).Logger.IsLevelEnabled(logrus.ErrorLevel) {
		t.Errorf("quiet logger logged %q", buf.String())
	}
}
