package catalog_test

import (
	"bytes"
	"context"
	"github.com/refit-dev/refit/internal/vulndb"
	"github.com/refit-dev/refit/internal/vulndb/osvtest"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/catalog"
	ct "github.com/refit-dev/refit/internal/catalog/catalogtest"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/store"
)

// blobBytes counts the bytes of blobs served by a registry.
type blobBytes struct {
	next http.Handler
	n    atomic.Int64
}

func (b *blobBytes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
		w = &countingWriter{ResponseWriter: w, n: &b.n}
	}
	b.next.ServeHTTP(w, r)
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// env is a loopback registry, the registry client and a store (SQLite,
// or PostgreSQL with REFIT_TEST_POSTGRES=1).
type env struct {
	host  string
	blobs *blobBytes
	svc   *catalog.Service
	st    *store.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b := &blobBytes{next: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	cfg := store.Config{Path: filepath.Join(t.TempDir(), "refit.db")}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(t)}
	}
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := catalog.NewService(catalog.Config{Images: regclient.New(regclient.Config{}), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return &env{host: strings.TrimPrefix(srv.URL, "http://"), blobs: b, svc: svc, st: st}
}

func (e *env) push(t *testing.T, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(e.host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, _ := img.Digest()
	return d.String()
}

func TestServiceDiffOverRegistry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	old := e.push(t, "debian:12", ct.Debian("12", []ct.Pkg{ct.P("openssl", "3.0.11-1~deb12u2", "amd64"), ct.P("bash", "5.2.15-2+b2", "amd64")}))
	cur := e.push(t, "debian:12", ct.Debian("12", []ct.Pkg{ct.P("openssl", "3.0.13-1~deb12u1", "amd64"), ct.P("bash", "5.2.15-2+b2", "amd64")}))
	d, err := e.svc.Diff(ctx, e.host+"/debian@"+old, e.host+"/debian:12", "")
	if err != nil {
		t.Fatal(err)
	}
	if d.Old != old || d.New != cur {
		t.Errorf("diff %s → %s, want %s → %s", d.Old, d.New, old, cur)
	}
	want := []catalog.PackageChange{{Name: "openssl", Arch: "amd64", Type: "deb", Old: "3.0.11-1~deb12u2", New: "3.0.13-1~deb12u1", Direction: "upgrade", Source: "openssl"}}
	if diff := cmp.Diff(want, d.Changed); diff != "" || len(d.Added)+len(d.Removed) != 0 || d.Vulns != nil {
		t.Errorf("changed (-want +got):\n%s\nadded %v removed %v vulns %v", diff, d.Added, d.Removed, d.Vulns)
	}
	if e.svc.Reads() != 2 {
		t.Errorf("reads = %d, want 2", e.svc.Reads())
	}
	// Stored: asked again by digests, no registry request and no read.
	before := e.blobs.n.Load()
	again, err := e.svc.Diff(ctx, e.host+"/debian@"+old, e.host+"/debian@"+cur, "")
	if err != nil || cmp.Diff(d, again) != "" || e.blobs.n.Load() != before || e.svc.Reads() != 2 {
		t.Errorf("second diff: err %v, blob bytes %d → %d, reads %d", err, before, e.blobs.n.Load(), e.svc.Reads())
	}
}

// The same base used by 1,000 tasks is catalogued once.
func TestServiceCataloguesADigestOnce(t *testing.T) {
	e := newEnv(t)
	e.push(t, "alpine:3.19", ct.Alpine("3.19.1", ct.Synthetic(100, "1.0-r0")))
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for range 1000 {
		wg.Go(func() {
			if _, err := e.svc.Catalog(context.Background(), e.host+"/alpine:3.19", "linux/amd64"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if e.svc.Reads() != 1 {
		t.Errorf("1,000 catalog requests read the image %d times, want once", e.svc.Reads())
	}
}

// A multi-platform base: the catalog of each platform is its own image's.
func TestServiceIndexPlatforms(t *testing.T) {
	e := newEnv(t)
	amd := ct.Alpine("3.19.1", []ct.Pkg{ct.P("musl", "1.2.4-r4", "x86_64")})
	arm, err := mutate.ConfigFile(ct.Alpine("3.19.1", []ct.Pkg{ct.P("musl", "1.2.4-r4", "aarch64")}), &v1.ConfigFile{Architecture: "arm64", OS: "linux", RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	r, err := name.ParseReference(e.host+"/alpine:3.19", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	for plat, want := range map[string]string{"": "x86_64", "linux/amd64": "x86_64", "linux/arm64": "aarch64"} {
		c, err := e.svc.Catalog(context.Background(), e.host+"/alpine:3.19", plat)
		if err != nil {
			t.Fatalf("platform %q: %v", plat, err)
		}
		if len(c.Packages) != 1 || c.Packages[0].Arch != want {
			t.Errorf("platform %q: packages %+v, want musl for %s", plat, c.Packages, want)
		}
	}
	if _, err := e.svc.Catalog(context.Background(), e.host+"/alpine:3.19", "linux/s390x"); err == nil || !strings.Contains(err.Error(), "no image for platform linux/s390x") {
		t.Errorf("a platform the index lacks: %v", err)
	}
}

// vulnsOf adapts the vulnerability database to the catalog's Vulns, as
// refit serve does.
type vulnsOf struct{ db *vulndb.DB }

func (v vulnsOf) Changes(ctx context.Context, eco, name, o, n string) ([]catalog.Vuln, []catalog.Vuln, error) {
	fx, in, err := v.db.Changes(ctx, eco, name, o, n)
	conv := func(vs []vulndb.Vuln) (out []catalog.Vuln) {
		for _, x := range vs {
			out = append(out, catalog.Vuln(x))
		}
		return out
	}
	return conv(fx), conv(in), err
}

// A diff stored before the vulnerability database was imported names
// what the update fixes once it is: vulnerabilities are looked up at
// each read, not stored with the diff.
func TestStoredDiffNamesVulnsAfterImport(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	db := vulndb.New(vulndb.Config{Store: e.st})
	svc, err := catalog.NewService(catalog.Config{Images: regclient.New(regclient.Config{}), Store: e.st,
		Vulns: vulnsOf{db}, Ecosystem: vulndb.Ecosystem})
	if err != nil {
		t.Fatal(err)
	}
	old := e.push(t, "debian:12", ct.Debian("12", []ct.Pkg{ct.P("openssl", "3.0.11-1~deb12u2", "amd64")}))
	cur := e.push(t, "debian:12", ct.Debian("12", []ct.Pkg{ct.P("openssl", "3.0.13-1~deb12u1", "amd64")}))
	before, err := svc.Diff(ctx, e.host+"/debian@"+old, e.host+"/debian@"+cur, "")
	if err != nil {
		t.Fatal(err)
	}
	if before.Vulns == nil || len(before.Vulns.Fixes)+len(before.Vulns.Introduces) != 0 {
		t.Fatalf("diff with an empty database: vulns %+v, want an empty section", before.Vulns)
	}
	zip := osvtest.Zip(osvtest.Fixture())
	if _, err := db.Import(ctx, bytes.NewReader(zip), int64(len(zip))); err != nil {
		t.Fatal(err)
	}
	for _, get := range []func() (catalog.Diff, error){
		func() (catalog.Diff, error) { return svc.Diff(ctx, e.host+"/debian@"+old, e.host+"/debian@"+cur, "") },
		func() (catalog.Diff, error) { return svc.StoredDiff(ctx, old, cur) },
	} {
		d, err := get()
		if err != nil {
			t.Fatal(err)
		}
		if d.Vulns == nil || len(d.Vulns.Fixes) != 1 || d.Vulns.Fixes[0].ID != "CVE-2024-0727" {
			t.Errorf("stored diff after the import: vulns %+v, want it to fix CVE-2024-0727", d.Vulns)
		}
	}
	if svc.Reads() != 2 {
		t.Errorf("catalog reads = %d, want 2 (the diff itself was stored)", svc.Reads())
	}
}
