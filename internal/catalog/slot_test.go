package catalog_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/refit-dev/refit/internal/catalog"
	ct "github.com/refit-dev/refit/internal/catalog/catalogtest"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/store"
)

// slowBlob serves one blob slowly: the first 64 KiB, then nothing until
// release is closed. streaming is closed once those bytes are out, and
// ended when the handler returns (the stream is over).
type slowBlob struct {
	next      http.Handler
	digest    string
	streaming chan struct{}
	release   chan struct{}
	ended     chan struct{}
}

func (s *slowBlob) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+s.digest) {
		s.next.ServeHTTP(w, r)
		return
	}
	defer close(s.ended)
	rec := httptest.NewRecorder()
	s.next.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	body := rec.Body.Bytes()
	n := min(64<<10, len(body))
	w.Write(body[:n])
	w.(http.Flusher).Flush()
	close(s.streaming)
	select {
	case <-s.release:
		w.Write(body[n:])
	case <-r.Context().Done():
	}
}

// A catalog read streaming a slow layer does not hold the registry's
// request slot: with PerRegistry 1, a HEAD of another reference on the
// same registry is answered while the stream is still open.
func TestCatalogReadLeavesChecksTheirSlot(t *testing.T) {
	// The database is in the lower layer, so the catalog must read the
	// slow top layer to its end.
	top := ct.Layer(map[string]string{"usr/share/big": noise(256 << 10)})
	img := ct.Debian("12", []ct.Pkg{ct.P("libc6", "2.36-9", "amd64")}, top)
	d, err := top.Digest()
	if err != nil {
		t.Fatal(err)
	}
	slow := &slowBlob{next: registry.New(registry.Logger(log.New(io.Discard, "", 0))), digest: d.String(),
		streaming: make(chan struct{}), release: make(chan struct{}), ended: make(chan struct{})}
	srv := httptest.NewServer(slow)
	defer srv.Close()
	e := &env{host: strings.TrimPrefix(srv.URL, "http://")}
	e.push(t, "debian:12", img)
	e.push(t, "other:1", ct.Image(v1.Config{}))

	ctx := t.Context()
	rc := regclient.New(regclient.Config{PerRegistry: 1, Timeout: 10 * time.Second})
	svc, err := catalog.NewService(catalog.Config{Images: rc, Store: memStore{}})
	if err != nil {
		t.Fatal(err)
	}
	known, err := rc.Check(ctx, e.host+"/other:1", regclient.Result{})
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		c   catalog.Catalog
		err error
	}
	read := make(chan result, 1)
	go func() {
		c, err := svc.Catalog(ctx, e.host+"/debian:12", "")
		read <- result{c, err}
	}()
	select {
	case <-slow.streaming:
	case r := <-read:
		t.Fatalf("catalog ended before the slow layer streamed: %+v", r)
	}

	// One HEAD, answered while the stream is open.
	res, err := rc.Check(ctx, e.host+"/other:1", known)
	select {
	case <-slow.ended:
		t.Fatal("the layer stream ended before the check was answered")
	default:
	}
	if err != nil || res.Digest != known.Digest || res.Requests != 1 {
		t.Errorf("check while a catalog streams = %+v, %v; want the known digest in one request, no wait for a slot", res, err)
	}

	close(slow.release)
	r := <-read
	if r.err != nil {
		t.Fatalf("catalog: %v", r.err)
	}
	if got := names(r.c); len(got) != 1 || got[0] != "libc6=2.36-9" {
		t.Errorf("catalog packages %v, want libc6=2.36-9", got)
	}
}

// memStore keeps nothing, so every catalog is read from the registry.
type memStore struct{}

func (memStore) Catalog(context.Context, string) ([]byte, error)  { return nil, store.ErrNotFound }
func (memStore) PutCatalog(context.Context, string, []byte) error { return nil }
func (memStore) ImageDiff(context.Context, string, string) ([]byte, error) {
	return nil, store.ErrNotFound
}
func (memStore) PutImageDiff(context.Context, string, string, []byte) error { return nil }
