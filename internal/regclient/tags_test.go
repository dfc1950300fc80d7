package regclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	refitregistry "github.com/refit-dev/refit/internal/registry"
)

// tagServer speaks the distribution API's tag listing for one
// repository ("lib/python") with n tags, paginated as distribution does:
// ?n= and ?last=, and a Link header to the next page (unless noLink).
type tagServer struct {
	tags   []string
	noLink bool
	// status, when set, answers every tags/list request with it and
	// Retry-After: retryAfter.
	status     atomic.Int32
	retryAfter string

	pings, pages atomic.Int32
}

func newTagServer(n int) *tagServer {
	ts := &tagServer{}
	for i := range n {
		ts.tags = append(ts.tags, fmt.Sprintf("1.%d.%d", i/100, i%100))
	}
	sort.Strings(ts.tags)
	return ts
}

func (ts *tagServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v2/":
		ts.pings.Add(1)
		w.WriteHeader(http.StatusOK)
		return
	case r.URL.Path != "/v2/lib/python/tags/list":
		http.NotFound(w, r)
		return
	}
	ts.pages.Add(1)
	if s := ts.status.Load(); s != 0 {
		w.Header().Set("Retry-After", ts.retryAfter)
		w.WriteHeader(int(s))
		fmt.Fprint(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)
		return
	}
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	if n <= 0 {
		n = len(ts.tags)
	}
	start := 0
	if last := r.URL.Query().Get("last"); last != "" {
		start = sort.SearchStrings(ts.tags, last)
		if start < len(ts.tags) && ts.tags[start] == last {
			start++
		}
	}
	end := min(start+n, len(ts.tags))
	if end < len(ts.tags) && !ts.noLink {
		w.Header().Set("Link", fmt.Sprintf(`</v2/lib/python/tags/list?n=%d&last=%s>; rel="next"`, n, ts.tags[end-1]))
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"name": "lib/python", "tags": ts.tags[start:end]})
}

func listAll(t *testing.T, c *Client, repo string) ([]string, TagList, error) {
	t.Helper()
	var got []string
	res, err := c.Tags(context.Background(), repo, func(tag string) { got = append(got, tag) })
	return got, res, err
}

// TestTagsPaginated: 10,000 tags in pages of 1,000 come back complete,
// in order, in 10 page requests and one ping — following the Link
// header, or ?last= when a registry sends a full page without one.
func TestTagsPaginated(t *testing.T) {
	for _, noLink := range []bool{false, true} {
		t.Run(fmt.Sprintf("noLink=%v", noLink), func(t *testing.T) {
			ts := newTagServer(10_000)
			ts.noLink = noLink
			srv := httptest.NewServer(ts)
			defer srv.Close()
			host := strings.TrimPrefix(srv.URL, "http://")
			c := New(Config{})
			got, res, err := listAll(t, c, host+"/lib/python")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, ts.tags) {
				t.Fatalf("got %d tags (first %q), want the registry's %d in order", len(got), got[:min(3, len(got))], len(ts.tags))
			}
			wantPages := 10
			if noLink {
				wantPages = 11 // the last full page is followed by an empty one
			}
			if res.Pages != wantPages || ts.pages.Load() != int32(wantPages) || ts.pings.Load() != 1 {
				t.Errorf("pages %d (server saw %d), pings %d; want %d pages and 1 ping", res.Pages, ts.pages.Load(), ts.pings.Load(), wantPages)
			}
			if res.Requests != wantPages+1 {
				t.Errorf("Requests = %d, want %d", res.Requests, wantPages+1)
			}
			// A second listing reuses the session: pages only.
			ts.pages.Store(0)
			if _, _, err := listAll(t, c, host+"/lib/python"); err != nil {
				t.Fatal(err)
			}
			if ts.pings.Load() != 1 || ts.pages.Load() != int32(wantPages) {
				t.Errorf("second listing: pings %d, pages %d; want no new ping and %d pages", ts.pings.Load(), ts.pages.Load(), wantPages)
			}
		})
	}
}

// TestTagsBounded: a listing longer than MaxTags or MaxTagPages, a page
// over MaxPageBytes and a Link to another host stop with an error naming
// the limit.
func TestTagsBounded(t *testing.T) {
	ts := newTagServer(5_000)
	srv := httptest.NewServer(ts)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{MaxTags: 2_500}, "more than 2500 tags"},
		{Config{TagPageSize: 100, MaxTagPages: 7}, "more than 7 pages"},
		{Config{MaxPageBytes: 1_000}, "over 1000 bytes"},
	} {
		ts.pages.Store(0)
		_, _, err := listAll(t, New(tc.cfg), host+"/lib/python")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.cfg, err, tc.want)
		}
		if p := ts.pages.Load(); p > 7 {
			t.Errorf("%+v: %d page requests, want it to stop early", tc.cfg, p)
		}
	}

	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Link", `<http://127.0.0.2:1/v2/lib/python/tags/list?last=a>; rel="next"`)
		fmt.Fprint(w, `{"name":"lib/python","tags":["a"]}`)
	}))
	defer evil.Close()
	_, _, err := listAll(t, New(Config{}), strings.TrimPrefix(evil.URL, "http://")+"/lib/python")
	if err == nil || !strings.Contains(err.Error(), "another registry") {
		t.Errorf("Link to another host: err = %v, want it refused", err)
	}
}

// TestTagsRetryAfter: a 429 with Retry-After is a *Error carrying it, and
// holds the registry: neither a listing nor a check sends it a request
// until then.
func TestTagsRetryAfter(t *testing.T) {
	ts := newTagServer(10)
	ts.status.Store(http.StatusTooManyRequests)
	ts.retryAfter = "120"
	srv := httptest.NewServer(ts)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := New(Config{})
	_, _, err := listAll(t, c, host+"/lib/python")
	var re *Error
	if !errors.As(err, &re) || re.Status != http.StatusTooManyRequests || re.RetryAfter != 120*time.Second {
		t.Fatalf("err = %#v, want a 429 *Error with RetryAfter 2m", err)
	}
	if d := Backoff(1, err); d < 120*time.Second {
		t.Errorf("Backoff = %s, want at least the Retry-After", d)
	}
	before := ts.pages.Load()
	_, _, err = listAll(t, c, host+"/lib/python")
	if !errors.As(err, &re) || re.RetryAfter <= 0 || ts.pages.Load() != before {
		t.Errorf("during the hold: err = %v, pages %d → %d; want a held error and no request", err, before, ts.pages.Load())
	}
	if _, err := c.Check(context.Background(), host+"/lib/python:1", Result{}); !errors.As(err, &re) || re.RetryAfter <= 0 {
		t.Errorf("a check during the hold: err = %v, want it held too", err)
	}
}

// TestTagsRealRegistry lists a repository of refit's embedded registry
// (distribution v3), which pages with ?n=, ?last= and Link.
func TestTagsRealRegistry(t *testing.T) {
	reg, err := refitregistry.New(t.Context(), refitregistry.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"3.12.8", "3.12.9", "3.13.0", "latest"}
	for _, tag := range want {
		ref, _ := name.ParseReference(host+"/library/python:"+tag, name.Insecure)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := listAll(t, New(Config{TagPageSize: 2}), host+"/library/python")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("tags = %q, want %q", got, want)
	}
}

func TestParseTagsPage(t *testing.T) {
	for _, tc := range []struct {
		body string
		want []string
		err  string
	}{
		{`{"name":"a","tags":["1","2"]}`, []string{"1", "2"}, ""},
		{`{"tags":null,"name":"a"}`, nil, ""},
		{`{"name":{"x":[1,2]},"tags":["x"],"extra":[{}]}`, []string{"x"}, ""},
		{`{"tags":[1]}`, nil, "not a string"},
		{`{"tags":[""]}`, nil, "empty"},
		{`{"tags":"x"}`, nil, "not a list"},
		{`[]`, nil, "want"},
		{`{"tags":["a"]`, nil, "EOF"},
		{`{"tags":["` + strings.Repeat("a", 129) + `"]}`, nil, "over 128"},
	} {
		var got []string
		_, _, err := ParseTagsPage(strings.NewReader(tc.body), func(s string) error { got = append(got, s); return nil })
		if tc.err == "" && (err != nil || !slices.Equal(got, tc.want)) {
			t.Errorf("%s: got %q, %v; want %q", tc.body, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err = %v, want %q", tc.body, err, tc.err)
		}
	}
}

// FuzzParseTagsPage: any body parses or fails without a panic, every tag
// handed on is a non-empty string of at most 128 bytes, and the parser
// allocates in proportion to the body, not more.
func FuzzParseTagsPage(f *testing.F) {
	for _, s := range []string{`{"name":"a","tags":["1","2"]}`, `{"tags":null}`, `{"a":{"b":[1,{"c":null}]},"tags":[]}`, `{"tags":["a"`, `[`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		n := 0
		_, _, _ = ParseTagsPage(strings.NewReader(string(body)), func(s string) error {
			if s == "" || len(s) > maxTagLen {
				t.Fatalf("tag %q handed on", s)
			}
			n++
			return nil
		})
		runtime.ReadMemStats(&ms1)
		if grew := ms1.TotalAlloc - ms0.TotalAlloc; grew > uint64(64*len(body)+1<<20) {
			t.Fatalf("parsing %d bytes allocated %d", len(body), grew)
		}
	})
}

// BenchmarkTags lists repositories of 1,000, 10,000 and 100,000 tags
// served in pages of 1,000 by an httptest server speaking the
// distribution API, and reports the requests per listing and the peak
// heap in use while listing, over the heap before it. Linear: time and
// requests grow with the tags, the peak heap does not.
func BenchmarkTags(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("tags=%d", n), func(b *testing.B) { benchTags(b, n) })
	}
}

func benchTags(b *testing.B, n int) {
	ts := newTagServer(n)
	srv := httptest.NewServer(ts)
	defer srv.Close()
	repo := strings.TrimPrefix(srv.URL, "http://") + "/lib/python"
	c := New(Config{})
	ctx := context.Background()
	var peak uint64
	var requests int
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	for b.Loop() {
		count := 0
		res, err := c.Tags(ctx, repo, func(tag string) {
			count++
			if count%1000 == 0 {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		})
		if err != nil || count != n {
			b.Fatalf("listed %d tags: %v", count, err)
		}
		requests = res.Requests
	}
	b.ReportMetric(float64(requests), "requests/listing")
	b.ReportMetric(float64(peak-min(peak, base.HeapInuse))/(1<<20), "peak-heap-MiB-over-start")
}
