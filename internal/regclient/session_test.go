package regclient

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/refit-dev/refit/internal/store"
)

// tlsCounting counts connections that open with a TLS handshake (an
// HTTPS probe of a plain-HTTP registry: the handler never sees it).
type tlsCounting struct {
	net.Listener
	probes atomic.Int32
}

func (l *tlsCounting) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &peekConn{Conn: c, r: bufio.NewReader(c), l: l}, nil
}

type peekConn struct {
	net.Conn
	r      *bufio.Reader
	l      *tlsCounting
	peeked bool
}

func (c *peekConn) Read(b []byte) (int, error) {
	if !c.peeked {
		c.peeked = true
		if p, err := c.r.Peek(1); err == nil && p[0] == 0x16 {
			c.l.probes.Add(1)
		}
	}
	return c.r.Read(b)
}

// serveCountingRegistry is serveRegistry whose listener also counts
// HTTPS probes.
func serveCountingRegistry(t *testing.T) (*counter, *tlsCounting, string) {
	t.Helper()
	cnt := &counter{next: registry.New(registry.Logger(log.New(io.Discard, "", 0))), counts: map[string]int{}}
	srv := httptest.NewUnstartedServer(cnt)
	l := &tlsCounting{Listener: srv.Listener}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return cnt, l, strings.TrimPrefix(srv.URL, "http://")
}

// TestSessionPerRegistry: a client new to a registry (a restart) checks
// many known references with one ping for the registry — not one per
// repository — and one HEAD each, and never probes a plain-HTTP registry
// over HTTPS. First sight of a reference is one GET of the manifest.
func TestSessionPerRegistry(t *testing.T) {
	cnt, tlsProbes, host := serveCountingRegistry(t)
	const n = 5
	var refs []string
	known := map[string]Result{}
	for i := range n {
		ref := fmt.Sprintf("%s/lib/r%d:1", host, i)
		amd, arm := randomImage(t, "linux", "amd64"), randomImage(t, "linux", "arm64")
		pushIndex(t, ref, makeIndex(t, amd, arm))
		refs = append(refs, ref)
	}

	// First sight: ping once, then one GET per reference (an index: its
	// body lists the platforms; no HEAD, no second GET).
	cnt.reset()
	tlsProbes.probes.Store(0)
	c := New(Config{Keychain: anonymous})
	for _, ref := range refs {
		res := mustCheck(t, c, ref, Result{})
		if res.MediaType != string(types.OCIImageIndex) || len(res.Platforms) != 2 {
			t.Fatalf("first sight of %s = %+v, want an index of 2 platforms", ref, res)
		}
		known[ref] = res
	}
	want := map[string]int{"GET /v2/": 1}
	for i := range n {
		want[fmt.Sprintf("GET /v2/lib/r%d/manifests/1", i)] = 1
	}
	wantCounts(t, cnt, want)
	if p := tlsProbes.probes.Load(); p != 0 {
		t.Errorf("%d HTTPS probes of a plain-HTTP (loopback) registry, want 0", p)
	}

	// After a restart (a new client), the same references: one ping for
	// the registry and one HEAD per reference.
	cnt.reset()
	tlsProbes.probes.Store(0)
	c = New(Config{Keychain: anonymous})
	for _, ref := range refs {
		if got := mustCheck(t, c, ref, known[ref]); got.Digest != known[ref].Digest {
			t.Errorf("check of %s after a restart: digest %s, want %s", ref, got.Digest, known[ref].Digest)
		}
	}
	want = map[string]int{"GET /v2/": 1}
	for i := range n {
		want[fmt.Sprintf("HEAD /v2/lib/r%d/manifests/1", i)] = 1
	}
	wantCounts(t, cnt, want)
	if p := tlsProbes.probes.Load(); p != 0 {
		t.Errorf("%d HTTPS probes after a restart, want 0", p)
	}
}

// TestKnownDigestWithoutPlatforms: a reference whose digest is known but
// not its platforms (a run's resolution seeded only the digest) gets its
// body fetched once even though the digest did not move, so the index
// learns each platform's manifest; the next check is one HEAD.
func TestKnownDigestWithoutPlatforms(t *testing.T) {
	cnt, host := serveRegistry(t, nil)
	ref := host + "/lib/seeded:1"
	amd, arm := randomImage(t, "linux", "amd64"), randomImage(t, "linux", "arm64")
	idx := makeIndex(t, amd, arm)
	pushIndex(t, ref, idx)
	c := New(Config{Keychain: anonymous})
	seeded := Result{Digest: digestOf(t, idx)}
	mustCheck(t, c, ref, stale) // session set up
	cnt.reset()
	res := mustCheck(t, c, ref, seeded)
	wantPlats := []store.PlatformDigest{
		{Platform: "linux/amd64", Digest: digestOf(t, amd)},
		{Platform: "linux/arm64", Digest: digestOf(t, arm)},
	}
	if res.Digest != seeded.Digest || !cmp.Equal(res.Platforms, wantPlats) {
		t.Errorf("check of a seeded index = %+v, want %s with platforms %v", res, seeded.Digest, wantPlats)
	}
	wantCounts(t, cnt, map[string]int{
		"HEAD /v2/lib/seeded/manifests/1":               1,
		"GET /v2/lib/seeded/manifests/" + seeded.Digest: 1,
	})
	cnt.reset()
	mustCheck(t, c, ref, res)
	wantCounts(t, cnt, map[string]int{"HEAD /v2/lib/seeded/manifests/1": 1})
}
