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

// TestEveryRefOncePerShortInterval: at a 1 s poll interval, with the
// default 1 s tick, each reference is checked once per interval — its
// next check is due an interval after the last was due, not an interval
// (and a bit) after it finished, which skipped every other interval for
// about half the references. HEADs are counted at the registry.
func TestEveryRefOncePerShortInterval(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 8 s of polling")
	}
	var mu sync.Mutex
	counting := false
	heads := map[string]int{} // repository → manifest HEADs while counting
	host := serveRegistry(t, func(r *http.Request) {
		if r.Method != http.MethodHead || !strings.Contains(r.URL.Path, "/manifests/") {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if counting {
			heads[strings.TrimPrefix(strings.Split(r.URL.Path, "/manifests/")[0], "/v2/")]++
		}
	})
	const n = 12
	var refs []string
	for i := range n {
		ref := fmt.Sprintf("%s/lib/r%02d:1", host, i)
		pushRandom(t, ref)
		refs = append(refs, ref)
	}
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
	s := keepRefs{&fullDiskStore{Store: st}} // never full: its Observe saves the check
	const iv = time.Second
	w, err := NewWatcher(WatcherConfig{Store: s, Checker: regclient.New(regclient.Config{Keychain: authn.NewMultiKeychain()}), Observer: s,
		Interval: iv})
	if err != nil {
		t.Fatal(err)
	}
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
	// Let every reference be seen once and settle into its schedule.
	time.Sleep(3 * iv)
	mu.Lock()
	counting = true
	mu.Unlock()
	const window = 6
	time.Sleep(window * iv)
	mu.Lock()
	counting = false
	got := heads
	mu.Unlock()
	var bad []string
	for i := range n {
		repo := fmt.Sprintf("lib/r%02d", i)
		if c := got[repo]; c < window-1 || c > window+1 {
			bad = append(bad, fmt.Sprintf("%s: %d", repo, c))
		}
	}
	t.Logf("HEADs per reference over %d intervals of %s: %v", window, iv, got)
	if len(bad) > 0 {
		t.Errorf("over %d intervals, references checked a number of times other than %d±1: %v", window, window, bad)
	}
}

// keepRefs retires nothing: no task uses the references of a test that
// tracks them directly.
type keepRefs struct{ *fullDiskStore }

func (keepRefs) RetireRefs(context.Context, map[string]bool) (int, error) { return 0, nil }
