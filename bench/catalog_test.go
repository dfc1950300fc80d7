package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/refit-dev/refit/internal/catalog"
	ct "github.com/refit-dev/refit/internal/catalog/catalogtest"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/registry"
	"github.com/refit-dev/refit/internal/store"
)

// memCache keeps catalogs and diffs in memory, so that every iteration
// of BenchmarkCatalogDiff reads the images again (the store is not what
// it measures).
type memCache struct{}

func (memCache) Catalog(context.Context, string) ([]byte, error)  { return nil, store.ErrNotFound }
func (memCache) PutCatalog(context.Context, string, []byte) error { return nil }
func (memCache) ImageDiff(context.Context, string, string) ([]byte, error) {
	return nil, store.ErrNotFound
}
func (memCache) PutImageDiff(context.Context, string, string, []byte) error { return nil }

// catalogRegistry is a real distribution registry on loopback, with a
// counter of the blob bytes it served.
func catalogRegistry(b *testing.B) (host string, served *atomic.Int64) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	reg, err := registry.New(ctx, registry.Config{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	cnt := &blobCounter{next: reg}
	srv := httptest.NewServer(cnt)
	b.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &cnt.n
}

// blobCounter counts the bytes of blobs a registry serves (GET bodies).
type blobCounter struct {
	next http.Handler
	n    atomic.Int64
}

func (c *blobCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
		w = &countingWriter{ResponseWriter: w, n: &c.n}
	}
	c.next.ServeHTTP(w, r)
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

func pushImage(b *testing.B, host, repo string, img v1.Image) string {
	b.Helper()
	r, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		b.Fatal(err)
	}
	d, _ := img.Digest()
	return r.Context().Name() + "@" + d.String()
}

// peakHeap samples the heap in use every millisecond until stop is
// called, and returns the highest seen above the heap at the start.
func peakHeap() (stop func() uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapAlloc, ms.HeapAlloc
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		if peak < base {
			return 0
		}
		return peak - base
	}
}

// BenchmarkCatalogDiff catalogs two Debian-like bases of n packages
// (synthetic dpkg status files, a tenth of the versions moved) from a
// real distribution registry on loopback and diffs them, every
// iteration from scratch (no cache). It reports the time per diff, the
// peak heap above the start (sampled every ms) and the compressed bytes
// read per diff.
func BenchmarkCatalogDiff(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark against a local distribution registry")
	}
	host, served := catalogRegistry(b)
	for _, n := range []int{200, 1000} {
		b.Run(fmt.Sprintf("packages=%d", n), func(b *testing.B) {
			oldPkgs, newPkgs := ct.Synthetic(n, "1.0-1"), ct.Synthetic(n, "1.0-1")
			for i := 0; i < n; i += 10 {
				newPkgs[i].Version = "1.0-2"
			}
			repo := fmt.Sprintf("debian%d:12", n)
			old := pushImage(b, host, repo, ct.Debian("12", oldPkgs))
			cur := pushImage(b, host, repo, ct.Debian("12", newPkgs))
			svc, err := catalog.NewService(catalog.Config{Images: regclient.New(regclient.Config{}), Store: memCache{}})
			if err != nil {
				b.Fatal(err)
			}
			served.Store(0)
			var peak uint64
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				stop := peakHeap()
				d, err := svc.Diff(context.Background(), old, cur, "")
				peak = max(peak, stop())
				if err != nil {
					b.Fatal(err)
				}
				if len(d.Changed) != n/10 {
					b.Fatalf("%d changed, want %d", len(d.Changed), n/10)
				}
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(served.Load())/float64(b.N), "bytes-read/op")
		})
	}
}

// BenchmarkCatalogTopLayer: a base of 1,000 packages on 64 MiB of
// incompressible lower layers, whose top layer rewrote the package
// database and os-release (as an apt-get upgrade layer does). It reports
// the compressed bytes the catalog read from the registry against the
// image's total size.
func BenchmarkCatalogTopLayer(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark against a local distribution registry")
	}
	host, served := catalogRegistry(b)
	var lower []v1.Layer
	for range 4 {
		l, err := random.Layer(16<<20, types.DockerLayer)
		if err != nil {
			b.Fatal(err)
		}
		lower = append(lower, l)
	}
	top := ct.Layer(map[string]string{
		"var/lib/dpkg/status": ct.DpkgStatus(ct.Synthetic(1000, "1.0-2")...),
		"etc/os-release":      ct.OSRelease("debian", "12", "Debian GNU/Linux 12"),
	})
	ref := pushImage(b, host, "big:1", ct.Debian("12", ct.Synthetic(1000, "1.0-1"), append(lower, top)...))
	var c catalog.Catalog
	served.Store(0)
	b.ResetTimer()
	for range b.N {
		svc, err := catalog.NewService(catalog.Config{Images: regclient.New(regclient.Config{}), Store: memCache{}})
		if err != nil {
			b.Fatal(err)
		}
		if c, err = svc.Catalog(context.Background(), ref, ""); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if len(c.Packages) != 1000 || c.Packages[0].Version != "1.0-2" {
		b.Fatalf("catalog has %d packages (%+v), want the top layer's 1,000", len(c.Packages), c.Packages[:1])
	}
	b.ReportMetric(float64(served.Load())/float64(b.N), "registry-bytes/op")
	b.ReportMetric(float64(c.Size), "image-bytes")
	b.ReportMetric(float64(c.Read.Bytes)/float64(c.Size)*100, "%-of-image-read")
	b.ReportMetric(float64(c.Read.LayersRead), "layers-read")
}

// BenchmarkCatalogShared: 1,000 tasks build on the same base; each asks
// for its catalog at once (as 1,000 runs would). It reports how many
// times the image was read (catalogued) — the goal is once — with a real
// SQLite store as the cache.
func BenchmarkCatalogShared(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark against a local distribution registry")
	}
	host, _ := catalogRegistry(b)
	ref := pushImage(b, host, "shared:1", ct.Alpine("3.19.1", ct.Synthetic(200, "1.0-r0")))
	var reads int64
	for range b.N {
		st, err := store.Open(context.Background(), store.Config{Path: filepath.Join(b.TempDir(), "refit.db")})
		if err != nil {
			b.Fatal(err)
		}
		svc, err := catalog.NewService(catalog.Config{Images: regclient.New(regclient.Config{}), Store: st})
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 1000 {
			wg.Go(func() {
				if _, err := svc.Catalog(context.Background(), ref, ""); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		reads += svc.Reads()
		st.Close()
	}
	b.ReportMetric(float64(reads)/float64(b.N), "catalog-reads/1000-tasks")
}

// BenchmarkCatalogBigLayer: single-layer bases of 32 MiB of
// incompressible files plus the package database (1,000 packages) and
// os-release, in the tar order real layers have (by path). "alpine":
// etc/os-release and lib/apk/db/installed come before usr/, so the read
// stops near the start of the layer and closes its stream. "debian":
// var/lib/dpkg/status comes after usr/ (the os-release it links to is
// in usr/lib), so the layer is read to about its end. It reports the
// bytes the registry served and the compressed bytes the catalog read,
// against the image's size.
func BenchmarkCatalogBigLayer(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark against a local distribution registry")
	}
	host, served := catalogRegistry(b)
	big := make([]byte, 32<<20)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(big)
	images := []struct {
		name string
		img  v1.Image
	}{
		{"alpine", ct.Image(v1.Config{}, ct.Layer(map[string]string{
			"etc/os-release":       ct.OSRelease("alpine", "3.19.1", "Alpine Linux v3.19"),
			"lib/apk/db/installed": ct.ApkInstalled(ct.Synthetic(1000, "1.0-r0")...),
			"usr/lib/libbig.so":    string(big),
		}))},
		{"debian", ct.Image(v1.Config{}, ct.Layer(map[string]string{
			"etc/os-release":                  "->../usr/lib/os-release",
			"usr/lib/os-release":              ct.OSRelease("debian", "12", "Debian GNU/Linux 12"),
			"usr/lib/x86_64-linux-gnu/libbig": string(big),
			"var/lib/dpkg/status":             ct.DpkgStatus(ct.Synthetic(1000, "1.0-1")...),
		}))},
		// FROM debian plus apt-get install: the database in a small top
		// layer, the base layer entered only for its os-release.
		{"debian-derived", ct.Image(v1.Config{},
			ct.Layer(map[string]string{
				"etc/os-release":                  "->../usr/lib/os-release",
				"usr/lib/os-release":              ct.OSRelease("debian", "12", "Debian GNU/Linux 12"),
				"usr/lib/x86_64-linux-gnu/libbig": string(big),
				"var/lib/dpkg/status":             ct.DpkgStatus(ct.Synthetic(10, "0.9-1")...),
			}),
			ct.Layer(map[string]string{
				"var/lib/dpkg/status": ct.DpkgStatus(ct.Synthetic(1000, "1.0-1")...),
			}))},
	}
	for _, im := range images {
		b.Run(im.name, func(b *testing.B) {
			ref := pushImage(b, host, im.name+"-big:1", im.img)
			var c catalog.Catalog
			served.Store(0)
			b.ResetTimer()
			for range b.N {
				svc, err := catalog.NewService(catalog.Config{Images: regclient.New(regclient.Config{}), Store: memCache{}})
				if err != nil {
					b.Fatal(err)
				}
				if c, err = svc.Catalog(context.Background(), ref, ""); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if len(c.Packages) != 1000 || c.OS.ID != strings.TrimSuffix(im.name, "-derived") {
				b.Fatalf("catalog has %d packages, os %+v; want 1,000 of %s", len(c.Packages), c.OS, im.name)
			}
			b.ReportMetric(float64(served.Load())/float64(b.N), "registry-bytes/op")
			b.ReportMetric(float64(c.Read.Bytes), "catalog-bytes")
			b.ReportMetric(float64(c.Size), "image-bytes")
			b.ReportMetric(float64(c.Read.Bytes)/float64(c.Size)*100, "%-of-image-read")
		})
	}
}
