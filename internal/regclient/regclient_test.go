package regclient

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/refit-dev/refit/internal/store"
)

// counter is an http.Handler counting requests per "METHOD path" and
// the most requests in flight at once.
type counter struct {
	next  http.Handler
	delay time.Duration

	mu          sync.Mutex
	counts      map[string]int
	inFlight    int
	maxInFlight int
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.counts[r.Method+" "+r.URL.Path]++
	c.inFlight++
	c.maxInFlight = max(c.maxInFlight, c.inFlight)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	c.next.ServeHTTP(w, r)
}

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = map[string]int{}
	c.maxInFlight = 0
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		m[k] = v
	}
	return m
}

func (c *counter) max() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxInFlight
}

// serveRegistry starts a registry on loopback, behind wrap (if any) and a
// counter, and returns the counter and the registry host.
func serveRegistry(t *testing.T, wrap func(http.Handler) http.Handler) (*counter, string) {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	cnt := &counter{next: h, counts: map[string]int{}}
	srv := httptest.NewServer(cnt)
	t.Cleanup(srv.Close)
	return cnt, strings.TrimPrefix(srv.URL, "http://")
}

// anonymous resolves every registry to anonymous access, so tests do
// not depend on the host's Docker config.
var anonymous = authn.NewMultiKeychain()

func randomImage(t *testing.T, os, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = os, arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(t *testing.T, d interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// makeIndex builds a multi-platform index the way BuildKit does: amd64 and
// arm64 images plus an attestation manifest for amd64 (unknown/unknown).
func makeIndex(t *testing.T, amd, arm v1.Image) v1.ImageIndex {
	t.Helper()
	att, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{
				"vnd.docker.reference.type":   "attestation-manifest",
				"vnd.docker.reference.digest": digestOf(t, amd),
			},
		}},
	)
}

func pushIndex(t *testing.T, ref string, idx v1.ImageIndex) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
}

// stale is a known state no registry answer matches: a check given it
// makes the HEAD of a reference already in the index (with nothing known,
// a check GETs the manifest at once).
var stale = Result{Digest: "sha256:" + strings.Repeat("0", 64), Platforms: []store.PlatformDigest{{Platform: "linux/amd64", Digest: "sha256:" + strings.Repeat("0", 64)}}}

func mustCheck(t *testing.T, c *Client, ref string, known Result) Result {
	t.Helper()
	res, err := c.Check(t.Context(), ref, known)
	if err != nil {
		t.Fatalf("Check(%s): %v", ref, err)
	}
	return res
}

func wantCounts(t *testing.T, cnt *counter, want map[string]int) {
	t.Helper()
	if diff := cmp.Diff(want, cnt.snapshot()); diff != "" {
		t.Errorf("requests at the registry (-want +got):\n%s", diff)
	}
}

func TestSingleImage(t *testing.T) {
	cnt, host := serveRegistry(t, nil)
	ref := host + "/lib/single:1"
	img := randomImage(t, "linux", "amd64")
	push(t, ref, img)
	c := New(Config{Keychain: anonymous})

	// First sight: the registry session is set up (ping), then GET the
	// manifest by tag (digest and body in one request) and the config blob.
	cnt.reset()
	dig := digestOf(t, img)
	cfgName, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	res := mustCheck(t, c, ref, Result{})
	want := Result{
		Digest:    dig,
		MediaType: string(mt),
		Platforms: []store.PlatformDigest{{Platform: "linux/amd64", Digest: dig}},
		Requests:  res.Requests,
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("first check (-want +got):\n%s", diff)
	}
	wantCounts(t, cnt, map[string]int{
		"GET /v2/":                       1,
		"GET /v2/lib/single/manifests/1": 1,
		"GET /v2/lib/single/blobs/" + cfgName.String(): 1,
	})
	t.Logf("cold check of a single image: %d requests made by the client, %d seen by the registry", res.Requests, 3)

	// Unchanged: exactly one HEAD, Platforms from known (even where they
	// differ from what a fetch would say: proof nothing was fetched).
	cnt.reset()
	known := res
	known.Platforms = []store.PlatformDigest{{Platform: "linux/amd64", Digest: "sha256:kept"}}
	got := mustCheck(t, c, ref, known)
	want = Result{Digest: dig, MediaType: string(mt), Platforms: known.Platforms, Requests: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unchanged check (-want +got):\n%s", diff)
	}
	wantCounts(t, cnt, map[string]int{"HEAD /v2/lib/single/manifests/1": 1})

	// Changed: HEAD, GET manifest, GET config.
	img2 := randomImage(t, "linux", "amd64")
	push(t, ref, img2)
	cnt.reset()
	dig2 := digestOf(t, img2)
	cfg2, err := img2.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	got = mustCheck(t, c, ref, res)
	want = Result{Digest: dig2, MediaType: string(mt), Platforms: []store.PlatformDigest{{Platform: "linux/amd64", Digest: dig2}}, Requests: 3}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changed check (-want +got):\n%s", diff)
	}
	wantCounts(t, cnt, map[string]int{
		"HEAD /v2/lib/single/manifests/1":           1,
		"GET /v2/lib/single/manifests/" + dig2:      1,
		"GET /v2/lib/single/blobs/" + cfg2.String(): 1,
	})
}

func TestIndex(t *testing.T) {
	cnt, host := serveRegistry(t, nil)
	ref := host + "/lib/multi:latest"
	amd, arm := randomImage(t, "linux", "amd64"), randomImage(t, "linux", "arm64")
	idx := makeIndex(t, amd, arm)
	pushIndex(t, ref, idx)
	c := New(Config{Keychain: anonymous})

	res := mustCheck(t, c, ref, Result{})
	idxDigest := digestOf(t, idx)
	want := Result{
		Digest:    idxDigest,
		MediaType: string(types.OCIImageIndex),
		Platforms: []store.PlatformDigest{
			{Platform: "linux/amd64", Digest: digestOf(t, amd)},
			{Platform: "linux/arm64", Digest: digestOf(t, arm)},
		},
		Requests: res.Requests,
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("first check (-want +got):\n%s", diff)
	}

	// Unchanged: one HEAD.
	cnt.reset()
	got := mustCheck(t, c, ref, res)
	want.Requests = 1
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unchanged check (-want +got):\n%s", diff)
	}
	wantCounts(t, cnt, map[string]int{"HEAD /v2/lib/multi/manifests/latest": 1})

	// Only arm64 changed: HEAD + GET of the index, no image manifests or
	// configs fetched.
	arm2 := randomImage(t, "linux", "arm64")
	idx2 := makeIndex(t, amd, arm2)
	pushIndex(t, ref, idx2)
	cnt.reset()
	got = mustCheck(t, c, ref, res)
	idx2Digest := digestOf(t, idx2)
	want = Result{
		Digest:    idx2Digest,
		MediaType: string(types.OCIImageIndex),
		Platforms: []store.PlatformDigest{
			{Platform: "linux/amd64", Digest: digestOf(t, amd)},
			{Platform: "linux/arm64", Digest: digestOf(t, arm2)},
		},
		Requests: 2,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("arm64 changed (-want +got):\n%s", diff)
	}
	wantCounts(t, cnt, map[string]int{
		"HEAD /v2/lib/multi/manifests/latest":       1,
		"GET /v2/lib/multi/manifests/" + idx2Digest: 1,
	})
}

func TestIndexPlatforms(t *testing.T) {
	h := func(c byte) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(string(c), 64)} }
	im := &v1.IndexManifest{Manifests: []v1.Descriptor{
		{Digest: h('1'), Platform: &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{Digest: h('2'), Platform: &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.1"}},
		{Digest: h('3'), Platform: &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.2"}},
		{Digest: h('4'), Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}},
		{Digest: h('5'), Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"}},
		{Digest: h('6')},
		{Digest: h('7'), Platform: &v1.Platform{OS: "linux", Architecture: "amd64", OSVersion: "ignored"}},
	}}
	want := []store.PlatformDigest{
		{Platform: "", Digest: h('6').String()},
		{Platform: "linux/amd64", Digest: h('7').String()},
		{Platform: "linux/arm/v7", Digest: h('1').String()},
		{Platform: "windows/amd64:10.0.17763.2", Digest: h('3').String()},
		{Platform: "windows/amd64:10.0.20348.1", Digest: h('2').String()},
	}
	if diff := cmp.Diff(want, indexPlatforms(im)); diff != "" {
		t.Errorf("indexPlatforms (-want +got):\n%s", diff)
	}
}

// stripDigest drops Docker-Content-Digest from an answer.
type stripDigest struct{ http.ResponseWriter }

func (w stripDigest) WriteHeader(code int) {
	w.Header().Del("Docker-Content-Digest")
	w.ResponseWriter.WriteHeader(code)
}

func (w stripDigest) Write(b []byte) (int, error) {
	w.Header().Del("Docker-Content-Digest")
	return w.ResponseWriter.Write(b)
}

// noHeadDigest makes manifest HEAD answers lack Docker-Content-Digest.
func noHeadDigest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
			w = stripDigest{w}
		}
		next.ServeHTTP(w, r)
	})
}

func TestHeadWithoutDigest(t *testing.T) {
	cnt, host := serveRegistry(t, noHeadDigest)
	ref := host + "/lib/nodigest:1"
	img := randomImage(t, "linux", "amd64")
	push(t, ref, img)
	c := New(Config{Keychain: anonymous})
	dig := digestOf(t, img)
	cfgName, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}

	cnt.reset()
	res := mustCheck(t, c, ref, stale)
	if res.Digest != dig || !cmp.Equal(res.Platforms, []store.PlatformDigest{{Platform: "linux/amd64", Digest: dig}}) {
		t.Errorf("first check = %+v, want digest %s on linux/amd64", res, dig)
	}
	// HEAD, then GET by tag (whose body gives the digest), then config.
	wantCounts(t, cnt, map[string]int{
		"GET /v2/":                                       1,
		"HEAD /v2/lib/nodigest/manifests/1":              1,
		"GET /v2/lib/nodigest/manifests/1":               1,
		"GET /v2/lib/nodigest/blobs/" + cfgName.String(): 1,
	})

	// Unchanged: HEAD + GET, nothing else.
	cnt.reset()
	got := mustCheck(t, c, ref, res)
	if got.Digest != dig || got.Requests != 2 || !cmp.Equal(got.Platforms, res.Platforms) {
		t.Errorf("unchanged check = %+v, want digest %s, 2 requests, known platforms", got, dig)
	}
	wantCounts(t, cnt, map[string]int{
		"HEAD /v2/lib/nodigest/manifests/1": 1,
		"GET /v2/lib/nodigest/manifests/1":  1,
	})
}

func TestRetryAfter(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		status     int
		retryAfter string
		min, max   time.Duration
		text       string
	}{
		{http.StatusTooManyRequests, "7", 7 * time.Second, 7 * time.Second, "429 Too Many Requests (retry after 7s)"},
		{http.StatusServiceUnavailable, date, 85 * time.Second, 91 * time.Second, "503 Service Unavailable (retry after"},
		{http.StatusInternalServerError, "7", 0, 0, "500 Internal Server Error: "},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			cnt, host := serveRegistry(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !strings.Contains(r.URL.Path, "/manifests/") {
						next.ServeHTTP(w, r)
						return
					}
					w.Header().Set("Retry-After", tc.retryAfter)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tc.status)
					fmt.Fprint(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)
				})
			})
			ref := host + "/lib/limited:1"
			c := New(Config{Keychain: anonymous})
			start := time.Now()
			res, err := c.Check(t.Context(), ref, stale)
			elapsed := time.Since(start)
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("Check error = %v, want a *Error", err)
			}
			if re.Status != tc.status || re.RetryAfter < tc.min || re.RetryAfter > tc.max {
				t.Errorf("Error{Status: %d, RetryAfter: %s}, want {%d, %s..%s}", re.Status, re.RetryAfter, tc.status, tc.min, tc.max)
			}
			if !strings.Contains(err.Error(), "checking "+ref+": "+tc.text) {
				t.Errorf("error text %q lacks %q", err, tc.text)
			}
			if b := Backoff(1, err); b < tc.min {
				t.Errorf("Backoff(1, err) = %s, want ≥ %s", b, tc.min)
			}
			// No retries: one HEAD reached the registry, and no time was
			// spent in go-containerregistry's retry sleeps (1s, 3s).
			wantCounts(t, cnt, map[string]int{"GET /v2/": 1, "HEAD /v2/lib/limited/manifests/1": 1})
			if elapsed > 900*time.Millisecond {
				t.Errorf("Check took %s: retried?", elapsed)
			}
			if res.Requests < 2 {
				t.Errorf("Requests = %d, want the ping and the HEAD counted", res.Requests)
			}

			// The Retry-After is the registry's: no caller asks it about
			// any of its repositories before it ends.
			other := host + "/lib/other:1"
			_, cerr := c.Check(t.Context(), other, stale)
			_, rerr := c.Resolve(t.Context(), other)
			if tc.min == 0 {
				if counts := cnt.snapshot(); counts["HEAD /v2/lib/other/manifests/1"]+counts["GET /v2/lib/other/manifests/1"] == 0 {
					t.Errorf("after a %d without Retry-After, the next check sent nothing: %v", tc.status, counts)
				}
				return
			}
			wantCounts(t, cnt, map[string]int{"GET /v2/": 1, "HEAD /v2/lib/limited/manifests/1": 1})
			for _, err := range []error{cerr, rerr} {
				if !errors.As(err, &re) || re.Status != http.StatusTooManyRequests || re.RetryAfter <= 0 || re.RetryAfter > tc.max {
					t.Errorf("within the Retry-After: %v, want a 429 *Error with the time left", err)
				}
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(release) }) // runs before hung.Close
	_, healthy := serveRegistry(t, nil)
	okRef := healthy + "/lib/ok:1"
	img := randomImage(t, "linux", "arm64")
	push(t, okRef, img)

	c := New(Config{Keychain: anonymous, Timeout: 300 * time.Millisecond})
	hungRef := strings.TrimPrefix(hung.URL, "http://") + "/lib/hang:1"
	type outcome struct {
		res  Result
		err  error
		done time.Time
	}
	hungC, okC := make(chan outcome, 1), make(chan outcome, 1)
	start := time.Now()
	go func() {
		res, err := c.Check(t.Context(), hungRef, Result{})
		hungC <- outcome{res, err, time.Now()}
	}()
	go func() {
		time.Sleep(20 * time.Millisecond) // let the hung check start first
		res, err := c.Check(t.Context(), okRef, Result{})
		okC <- outcome{res, err, time.Now()}
	}()
	h, ok := <-hungC, <-okC

	if elapsed := h.done.Sub(start); elapsed < 250*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("hung check returned after %s, want about the 300ms timeout", elapsed)
	}
	var re *Error
	if !errors.As(h.err, &re) || re.Status != 0 || !errors.Is(h.err, context.DeadlineExceeded) {
		t.Errorf("hung check error = %#v, want a Error with Status 0 wrapping DeadlineExceeded", h.err)
	} else if !strings.Contains(h.err.Error(), hungRef) {
		t.Errorf("error %q does not name %s", h.err, hungRef)
	}
	if ok.err != nil || ok.res.Digest != digestOf(t, img) {
		t.Errorf("healthy check = %+v, %v; want digest %s", ok.res, ok.err, digestOf(t, img))
	}
	if !ok.done.Before(h.done) {
		t.Errorf("healthy check finished %s after the hung one: blocked by it", ok.done.Sub(h.done))
	}
}

func TestPerRegistry(t *testing.T) {
	cnt, host := serveRegistry(t, nil)
	var refs []string
	for i := range 3 {
		ref := fmt.Sprintf("%s/lib/slow%d:1", host, i)
		push(t, ref, randomImage(t, "linux", "amd64"))
		refs = append(refs, ref)
	}
	cnt.reset()
	cnt.delay = 30 * time.Millisecond
	c := New(Config{Keychain: anonymous, PerRegistry: 1})
	var wg sync.WaitGroup
	errs := make([]error, len(refs))
	for i, ref := range refs {
		wg.Go(func() { _, errs[i] = c.Check(t.Context(), ref, Result{}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Check(%s): %v", refs[i], err)
		}
	}
	if m := cnt.max(); m != 1 {
		t.Errorf("at most %d requests in flight at the registry, want 1", m)
	}
	// go-containerregistry's session (credentials, token) is per
	// repository, but the registry's ping answer is kept per registry:
	// three repositories, one ping.
	if n := cnt.snapshot()["GET /v2/"]; n != 1 {
		t.Errorf("%d pings, want one per registry", n)
	}

	t.Run("waiting respects ctx", func(t *testing.T) {
		release := make(chan struct{})
		hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer hung.Close()
		c := New(Config{Keychain: anonymous, PerRegistry: 1, Timeout: 5 * time.Second})
		host := strings.TrimPrefix(hung.URL, "http://")
		holder := make(chan struct{})
		defer func() { <-holder }()
		defer close(release) // runs first: frees the holder's request
		go func() {
			defer close(holder)
			c.Check(t.Context(), host+"/lib/a:1", Result{})
		}()
		time.Sleep(50 * time.Millisecond) // a:1 holds the only slot
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		res, err := c.Check(ctx, host+"/lib/b:1", Result{})
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("waiting Check returned after %s, want about 100ms", elapsed)
		}
		if err == nil || !strings.Contains(err.Error(), "waiting for a request slot") || res.Requests != 0 {
			t.Errorf("waiting Check = %+v, %v; want a slot timeout without requests", res, err)
		}
	})
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n        int
		err      error
		min, max time.Duration
	}{
		{0, nil, 8 * time.Second, 12 * time.Second},
		{1, nil, 8 * time.Second, 12 * time.Second},
		{2, nil, 16 * time.Second, 24 * time.Second},
		{3, nil, 32 * time.Second, 48 * time.Second},
		{8, nil, 1024 * time.Second, 1536 * time.Second}, // 1280s ±20%
		{9, nil, 24 * time.Minute, 30 * time.Minute},     // 2560s, capped
		{1000, nil, 24 * time.Minute, 30 * time.Minute},  // no overflow
		{1, errors.New("dial tcp: refused"), 8 * time.Second, 12 * time.Second},
		{1, &Error{Status: 429, RetryAfter: time.Second}, 8 * time.Second, 12 * time.Second},
		{1, &Error{Status: 429, RetryAfter: time.Hour}, time.Hour, time.Hour},
		{20, fmt.Errorf("wrapped: %w", &Error{Status: 503, RetryAfter: 2 * time.Hour}), 2 * time.Hour, 2 * time.Hour},
	} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := Backoff(tc.n, tc.err)
			if d < tc.min || d > tc.max {
				t.Fatalf("Backoff(%d, %v) = %s, want in [%s, %s]", tc.n, tc.err, d, tc.min, tc.max)
			}
			seen[d] = true
		}
		if tc.min != tc.max && len(seen) < 10 {
			t.Errorf("Backoff(%d, %v): only %d distinct values in 200 calls: no jitter?", tc.n, tc.err, len(seen))
		}
	}
}

func TestMissingTag(t *testing.T) {
	_, host := serveRegistry(t, nil)
	push(t, host+"/lib/present:1", randomImage(t, "linux", "amd64"))
	c := New(Config{Keychain: anonymous})
	for _, ref := range []string{host + "/lib/present:nope", host + "/lib/absent:1"} {
		_, err := c.Check(t.Context(), ref, Result{})
		var re *Error
		if !errors.As(err, &re) || re.Status != http.StatusNotFound || re.Ref != ref {
			t.Errorf("Check(%s) error = %v, want a 404 Error", ref, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "checking "+ref+": 404 Not Found") {
			t.Errorf("error text %q does not start with the ref and status", err)
		}
	}
}

// fixedKeychain hands out one username and password for every registry.
type fixedKeychain struct{ user, pass string }

func (k fixedKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig{Username: k.user, Password: k.pass}), nil
}

func TestCredentials(t *testing.T) {
	// The registry wants user:right. With leak set, it answers manifest
	// HEADs without auth and without a digest (forcing the GET fallback)
	// and echoes the Authorization header it got into its 401 body.
	basicAuth := func(leak bool) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if leak && r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
					next.ServeHTTP(stripDigest{w}, r)
					return
				}
				if u, p, ok := r.BasicAuth(); ok && u == "user" && p == "right" {
					next.ServeHTTP(w, r)
					return
				}
				w.Header().Set("WWW-Authenticate", `Basic realm="refit-test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials","detail":%q}]}`, "got "+r.Header.Get("Authorization"))
			})
		}
	}
	secretB64 := base64.StdEncoding.EncodeToString([]byte("user:secret"))
	for _, leak := range []bool{false, true} {
		t.Run(fmt.Sprintf("leak=%v", leak), func(t *testing.T) {
			_, host := serveRegistry(t, basicAuth(leak))
			ref := host + "/lib/private:1"
			img := randomImage(t, "linux", "amd64")
			r, err := name.ParseReference(ref)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "user", Password: "right"})); err != nil {
				t.Fatal(err)
			}

			c := New(Config{Keychain: fixedKeychain{"user", "secret"}})
			_, err = c.Check(t.Context(), ref, Result{})
			var re *Error
			if !errors.As(err, &re) || re.Status != http.StatusUnauthorized {
				t.Fatalf("Check error = %v, want a 401 Error", err)
			}
			text := err.Error()
			for _, secret := range []string{"secret", secretB64} {
				if strings.Contains(text, secret) {
					t.Errorf("error text carries the credentials (%q): %s", secret, text)
				}
			}
			if leak && !strings.Contains(text, "Basic [redacted]") {
				t.Errorf("error text %q: want the echoed header redacted", text)
			}

			// The right password works, through the same code path.
			c = New(Config{Keychain: fixedKeychain{"user", "right"}})
			if res := mustCheck(t, c, ref, Result{}); res.Digest != digestOf(t, img) {
				t.Errorf("with the right password: digest %s, want %s", res.Digest, digestOf(t, img))
			}
		})
	}
}

// changingKeychain is a login that can change, with a generation as
// regauth.Credentials has.
type changingKeychain struct {
	mu   sync.Mutex
	user string
	gen  uint64
}

func (k *changingKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return authn.FromConfig(authn.AuthConfig{Username: k.user, Password: "pw"}), nil
}

func (k *changingKeychain) Generation() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gen
}

// set changes the login; announce says whether the generation moves.
func (k *changingKeychain) set(user string, announce bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.user = user
	if announce {
		k.gen++
	}
}

// TestLoginChange: a session keeps the login it was built with (one HEAD
// per check, no new credentials look-up), until the keychain's generation
// moves: the next check then uses the new login.
func TestLoginChange(t *testing.T) {
	var mu sync.Mutex
	var users []string // the user of each manifest HEAD
	_, host := serveRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, _, ok := r.BasicAuth()
			if !ok {
				w.Header().Set("WWW-Authenticate", `Basic realm="refit-test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
				mu.Lock()
				users = append(users, u)
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	})
	ref := host + "/lib/login:1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, randomImage(t, "linux", "amd64"), remote.WithAuth(&authn.Basic{Username: "pusher", Password: "pw"})); err != nil {
		t.Fatal(err)
	}
	kc := &changingKeychain{user: "old"}
	c := New(Config{Keychain: kc})
	check := func() string {
		t.Helper()
		mustCheck(t, c, ref, stale)
		mu.Lock()
		defer mu.Unlock()
		return users[len(users)-1]
	}
	if u := check(); u != "old" {
		t.Fatalf("first check as %q, want old", u)
	}
	kc.set("unannounced", false)
	if u := check(); u != "old" {
		t.Errorf("check after an unannounced change as %q, want old (the session's login)", u)
	}
	kc.set("new", true)
	if u := check(); u != "new" {
		t.Errorf("check after the login changed as %q, want new", u)
	}
	if u := check(); u != "new" {
		t.Errorf("next check as %q, want new", u)
	}
}

// TestResolve: a run's base look-up is one HEAD on the session the
// watcher's checks set up, nothing for a pinned digest, and a clear error
// naming the reference for a missing tag.
func TestResolve(t *testing.T) {
	cnt, host := serveRegistry(t, nil)
	ref := host + "/lib/app:1"
	img := randomImage(t, "linux", "amd64")
	push(t, ref, img)
	dig := digestOf(t, img)
	c := New(Config{Keychain: anonymous})
	mustCheck(t, c, ref, Result{}) // the watcher's first check sets up the session

	cnt.reset()
	got, err := c.Resolve(context.Background(), ref)
	if err != nil || got != dig {
		t.Fatalf("Resolve(%s) = %s, %v; want %s", ref, got, err, dig)
	}
	wantCounts(t, cnt, map[string]int{"HEAD /v2/lib/app/manifests/1": 1})

	cnt.reset()
	pinned := host + "/lib/app@" + dig
	if got, err := c.Resolve(context.Background(), pinned); err != nil || got != dig {
		t.Errorf("Resolve(%s) = %s, %v; want the pinned digest", pinned, got, err)
	}
	wantCounts(t, cnt, map[string]int{})

	_, err = c.Resolve(context.Background(), host+"/lib/app:missing")
	var rerr *Error
	if !errors.As(err, &rerr) || rerr.Status != http.StatusNotFound || !strings.Contains(err.Error(), "lib/app:missing") {
		t.Errorf("Resolve of a missing tag = %v, want a 404 naming the reference", err)
	}
}

// oddRegistry answers every manifest HEAD with 200, a Content-Type
// and a Content-Length but no Docker-Content-Digest, and every manifest
// GET with body (Content-Type ct, and Docker-Content-Digest digest when
// not empty): a registry, or something posing as one, whose answers
// must not be taken for a manifest unchecked.
func oddRegistry(t *testing.T, ct, body, digest string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.Contains(r.URL.Path, "/manifests/"):
			if ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			if r.Method == http.MethodGet && digest != "" {
				w.Header().Set("Docker-Content-Digest", digest)
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			if r.Method == http.MethodGet {
				io.WriteString(w, body)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestHeadWithoutDigestVerifiesManifest: when the HEAD has no
// Docker-Content-Digest, the digest comes from a GET whose body is
// checked to be a manifest; an empty or garbage body, or one whose
// digest is not the one the registry claims, is an error naming the
// reference — for the watcher's Check and for a run's Resolve alike.
func TestHeadWithoutDigestVerifiesManifest(t *testing.T) {
	// A real registry that only omits the header: the right digest.
	_, host := serveRegistry(t, noHeadDigest)
	ref := host + "/lib/ok:1"
	img := randomImage(t, "linux", "amd64")
	push(t, ref, img)
	c := New(Config{Keychain: anonymous})
	if res := mustCheck(t, c, ref, Result{}); res.Digest != digestOf(t, img) {
		t.Errorf("Check(%s) digest = %s, want %s", ref, res.Digest, digestOf(t, img))
	}
	if got, err := c.Resolve(t.Context(), ref); err != nil || got != digestOf(t, img) {
		t.Errorf("Resolve(%s) = %s, %v; want %s", ref, got, err, digestOf(t, img))
	}

	const index = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`
	for _, tc := range []struct {
		name, ct, body, digest, want string
	}{
		{"empty body", "application/vnd.oci.image.manifest.v1+json", "", "", "empty body"},
		{"empty object as an index", "application/vnd.oci.image.index.v1+json", "{}", "", "schemaVersion 0"},
		{"html", "text/html", "<html>not here</html>", "", "not a JSON object"},
		{"schema 1", "application/vnd.docker.distribution.manifest.v1+prettyjws", `{"schemaVersion":1,"name":"x"}`, "", "schemaVersion 1"},
		{"unknown media type", "application/json", `{"schemaVersion":2,"config":{}}`, "", `media type "application/json"`},
		{"types disagree", "application/vnd.docker.distribution.manifest.v2+json", index, "", "Content-Type"},
		{"digest mismatch", "application/vnd.oci.image.index.v1+json", index,
			"sha256:0000000000000000000000000000000000000000000000000000000000000000", "does not match"},
		{"too large", "application/vnd.oci.image.index.v1+json",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","annotations":{"x":"` + strings.Repeat("a", 4<<20) + `"}}`, "", "over the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := oddRegistry(t, tc.ct, tc.body, tc.digest) + "/lib/odd:1"
			c := New(Config{Keychain: anonymous})
			res, err := c.Check(t.Context(), ref, stale)
			var rerr *Error
			if !errors.As(err, &rerr) || !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), "Docker-Content-Digest") {
				t.Errorf("Check(%s) = %+v, %v; want a Error naming the reference, the missing header and %q", ref, res, err, tc.want)
			}
			if res.Digest != "" {
				t.Errorf("Check(%s) returned digest %s from a body that is no manifest", ref, res.Digest)
			}
			got, err := c.Resolve(t.Context(), ref)
			if err == nil || got != "" || !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Resolve(%s) = %q, %v; want an error naming the reference and %q", ref, got, err, tc.want)
			}
		})
	}
}

// Image calls have slots of their own (ImagesPerRegistry): a second one
// waits while the first holds the only slot, and a check does not.
func TestImagesPerRegistry(t *testing.T) {
	_, host := serveRegistry(t, nil)
	ref := host + "/lib/img:1"
	push(t, ref, randomImage(t, "linux", "amd64"))
	c := New(Config{Keychain: anonymous, PerRegistry: 1, ImagesPerRegistry: 1})
	holding, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- c.Image(t.Context(), ref, "", 0, func(context.Context, v1.Image) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	if _, err := c.Check(t.Context(), ref, Result{}); err != nil {
		t.Errorf("check while an image read holds its slot: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := c.Image(ctx, ref, "", 0, func(context.Context, v1.Image) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "waiting for an image read slot") {
		t.Errorf("second image read = %v, want it to wait for the image read slot", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first image read: %v", err)
	}
}
