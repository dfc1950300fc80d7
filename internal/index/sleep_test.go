package index

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/store"
)

// TestWatcherSleepsUntilDue: with no tick to fall back on (Tick is an
// hour), the watcher still checks every reference once per 1 s interval
// — it sleeps until the next one is due — and a reference tracked while
// it sleeps is checked at once: the commit that tracked it wakes it
// (Commit.RefsDue, as serve wires it).
func TestWatcherSleepsUntilDue(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 4 s of polling")
	}
	var mu sync.Mutex
	heads := map[string][]time.Time{} // repository → manifest look-ups
	host := serveRegistry(t, func(r *http.Request) {
		if !strings.Contains(r.URL.Path, "/manifests/") {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		repo := strings.TrimPrefix(strings.Split(r.URL.Path, "/manifests/")[0], "/v2/")
		heads[repo] = append(heads[repo], time.Now())
	})
	var refs []string
	for i := range 3 {
		ref := fmt.Sprintf("%s/lib/s%d:1", host, i)
		pushRandom(t, ref)
		refs = append(refs, ref)
	}
	late := host + "/lib/late:1"
	pushRandom(t, late)
	cfg := store.Config{Path: filepath.Join(t.TempDir(), "refit.db")}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(t)}
	}
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.TrackRefs(context.Background(), refs); err != nil {
		t.Fatal(err)
	}
	s := keepRefs{&fullDiskStore{Store: st}}
	const iv = time.Second
	w, err := NewWatcher(WatcherConfig{Store: s, Checker: regclient.New(regclient.Config{Keychain: authn.NewMultiKeychain()}), Observer: s,
		Interval: iv, Tick: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	st.OnCommit(func(c store.Commit) {
		if c.RefsDue {
			w.Wake()
		}
	})
	since := func(repo string, t0 time.Time) []time.Time {
		var out []time.Time
		for _, at := range heads[repo] {
			if !at.Before(t0) {
				out = append(out, at)
			}
		}
		return out
	}
	started := time.Now() // pushes looked manifests up before this
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	time.Sleep(iv + iv/2)
	tracked := time.Now()
	if err := st.TrackRefs(context.Background(), []string{late}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * iv)
	mu.Lock()
	defer mu.Unlock()
	for i := range 3 {
		if n := len(since(fmt.Sprintf("lib/s%d", i), started)); n < 4 {
			t.Errorf("lib/s%d looked up %d times in 4.5 intervals, want at least 4 (once per interval, no tick needed)", i, n)
		}
	}
	if l := since("lib/late", tracked); len(l) == 0 || l[0].Sub(tracked) > iv/2 {
		t.Errorf("a reference tracked while the watcher slept: looked up at %v (tracked at %v), want within %s", l, tracked, iv/2)
	} else {
		t.Logf("new reference looked up %s after it was tracked", l[0].Sub(tracked).Round(time.Millisecond))
	}
}
