package bench

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/registry"
)

// BenchmarkRequestsPerRef counts, at a real distribution registry
// (internal/registry: distribution/v3 on the filesystem, served on
// loopback), the requests the registry client makes per reference over
// REFIT_BENCH_REQ_REFS references (default 2,000; each its own
// repository, a single-platform image — the costliest first sight, an
// index needs no config GET), in three phases, each one pass over every
// reference with 8 checks in flight as the watcher makes them:
//
//   - first sight: a new client, nothing known;
//   - first check after a restart: a new client, every reference known
//     (what the store holds), none changed;
//   - steady state: the same client again.
//
// Requests are counted at the registry's HTTP handler; HTTPS probes of the
// plain-HTTP registry never reach a handler, so the listener counts
// connections that open with a TLS handshake. Nothing is asserted.
func BenchmarkRequestsPerRef(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark against a local distribution registry")
	}
	n := envInt(b, "REFIT_BENCH_REQ_REFS", 2000)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	reg, err := registry.New(ctx, registry.Config{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	cnt := &regCounter{next: reg}
	cnt.reset()
	srv := httptest.NewUnstartedServer(cnt)
	tl := &tlsProbeListener{Listener: srv.Listener}
	srv.Listener = tl
	srv.Start()
	b.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	img, err := random.Image(64, 1)
	if err != nil {
		b.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		b.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		b.Fatal(err)
	}
	refs := make([]string, n)
	for i := range refs {
		refs[i] = fmt.Sprintf("%s/req/r%04d:1", host, i)
	}
	t0 := time.Now()
	parallel(b, refs, func(ref string) error {
		r, err := name.ParseReference(ref)
		if err != nil {
			return err
		}
		return remote.Write(r, img)
	})
	b.Logf("pushed %d repositories in %s", n, time.Since(t0).Round(time.Millisecond))

	known := make([]regclient.Result, n)
	idx := map[string]int{}
	for i, r := range refs {
		idx[r] = i
	}
	var mu sync.Mutex
	phase := func(c *regclient.Client, useKnown bool) (kinds map[string]int, probes int64, took time.Duration) {
		cnt.reset()
		tl.probes.Store(0)
		t0 := time.Now()
		parallel(b, refs, func(ref string) error {
			mu.Lock()
			k := regclient.Result{}
			if useKnown {
				k = known[idx[ref]]
			}
			mu.Unlock()
			res, err := c.Check(context.Background(), ref, k)
			if err != nil {
				return err
			}
			mu.Lock()
			known[idx[ref]] = res
			mu.Unlock()
			return nil
		})
		took = time.Since(t0)
		kinds, _ = cnt.snapshot()
		return kinds, tl.probes.Load(), took
	}
	newClient := func() *regclient.Client {
		return regclient.New(regclient.Config{Keychain: anonymous, Insecure: []string{host}})
	}
	b.ResetTimer()
	var out strings.Builder
	fmt.Fprintf(&out, "%d references (single-platform images, one repository each) at a distribution registry on loopback, 8 checks in flight\n", n)
	report := func(label, metric string, kinds map[string]int, probes int64, took time.Duration) {
		total := int64(0)
		for _, v := range kinds {
			total += int64(v)
		}
		perRef := float64(total+probes) / float64(n)
		fmt.Fprintf(&out, "%-28s %.4f requests/ref (%d at the handler + %d HTTPS probes) in %s: %v\n",
			label, perRef, total, probes, took.Round(time.Millisecond), kinds)
		b.ReportMetric(perRef, metric)
	}
	c := newClient()
	kinds, probes, took := phase(c, false)
	report("first sight:", "req/ref-first-sight", kinds, probes, took)
	c = newClient()
	kinds, probes, took = phase(c, true)
	report("first check after restart:", "req/ref-restart", kinds, probes, took)
	kinds, probes, took = phase(c, true)
	report("steady state:", "req/ref-steady", kinds, probes, took)
	b.StopTimer()
	logReport(b, out.String())
	b.ReportMetric(0, "ns/op")
}

// parallel runs fn over refs, 8 at a time, failing b on the first error.
func parallel(b *testing.B, refs []string, fn func(ref string) error) {
	b.Helper()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var first atomic.Value
	for _, r := range refs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(r); err != nil {
				first.CompareAndSwap(nil, fmt.Errorf("%s: %w", r, err))
			}
		})
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		b.Fatal(err)
	}
}

// tlsProbeListener counts connections that open with a TLS handshake
// record: HTTPS probes of a plain-HTTP registry, which no handler sees.
type tlsProbeListener struct {
	net.Listener
	probes atomic.Int64
}

func (l *tlsProbeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &probeConn{Conn: c, r: bufio.NewReader(c), l: l}, nil
}

type probeConn struct {
	net.Conn
	r    *bufio.Reader
	l    *tlsProbeListener
	once sync.Once
}

func (c *probeConn) Read(p []byte) (int, error) {
	c.once.Do(func() {
		if h, err := c.r.Peek(1); err == nil && h[0] == 0x16 {
			c.l.probes.Add(1)
		}
	})
	return c.r.Read(p)
}
