package index

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

var errDiskFull = errors.New("database or disk is full (13)")

// serveRegistry starts a registry on loopback that calls seen with each
// request, and returns its host.
func serveRegistry(t *testing.T, seen func(*http.Request)) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen(r)
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushRandom pushes a small random image to ref and returns its digest.
func pushRandom(t *testing.T, ref string) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// noDigestRegistry starts a registry answering every manifest request
// with Content-Type ct and body (on GET), and never a
// Docker-Content-Digest; it returns its host.
func noDigestRegistry(t *testing.T, ct, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
		case strings.Contains(r.URL.Path, "/manifests/"):
			w.Header().Set("Content-Type", ct)
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

// fullDiskStore is a real store whose writes fail while full is set, as
// they do when the data disk fills up; reads still work.
type fullDiskStore struct {
	*store.Store
	full atomic.Bool
}

func (f *fullDiskStore) RecordCheckError(ctx context.Context, ref, msg string, next time.Time) error {
	if f.full.Load() {
		return errDiskFull
	}
	return f.Store.RecordCheckError(ctx, ref, msg, next)
}

func (f *fullDiskStore) TrackRefs(ctx context.Context, refs []string) error {
	if f.full.Load() {
		return errDiskFull
	}
	return f.Store.TrackRefs(ctx, refs)
}

// Observe commits a check the way the planner does (one transaction),
// and fails like it while the disk is full.
func (f *fullDiskStore) Observe(ctx context.Context, o Observation) (int, error) {
	if f.full.Load() {
		return 0, errDiskFull
	}
	b := store.BaseRef{Ref: o.Ref, Digest: o.Digest, MediaType: o.MediaType, Platforms: o.Platforms}
	return 0, f.Store.InTx(ctx, func(tx *store.Tx) error { return tx.SaveCheck(b, false, o.Next) })
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := strings.TrimSpace(b.buf.String()); s != "" {
		return strings.Split(s, "\n")
	}
	return nil
}

// TestWatcherFullDiskIsNoStorm: a check whose result cannot be recorded
// leaves its reference due; the watcher used to check it again at every
// tick, a HEAD to the registry each time, logging each. Now it backs
// off, logs the episode once, and records the check once the store can.
func TestWatcherFullDiskIsNoStorm(t *testing.T) {
	var heads atomic.Int32 // manifest look-ups (HEAD, or GET on first sight) at the registry
	ref := serveRegistry(t, func(r *http.Request) {
		if (r.Method == http.MethodHead || r.Method == http.MethodGet) && r.URL.Path == "/v2/lib/full/manifests/1" {
			heads.Add(1)
		}
	}) + "/lib/full:1"
	digest := pushRandom(t, ref)
	heads.Store(0) // the push's own HEAD
	cfg := store.Config{Path: filepath.Join(t.TempDir(), "refit.db")}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(t)}
	}
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &fullDiskStore{Store: st}
	if err := st.TrackRefs(context.Background(), []string{ref}); err != nil {
		t.Fatal(err)
	}
	s.full.Store(true)
	var logs logBuffer
	w, err := NewWatcher(WatcherConfig{Store: s, Checker: regclient.New(regclient.Config{Keychain: authn.NewMultiKeychain()}), Observer: s,
		Interval: time.Hour, Tick: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// Its first sync with the tasks fails too (the disk is full) and the
	// next is an Interval away, so the untracked-by-tasks reference stays.
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
	time.Sleep(2 * time.Second)
	for range 50 { // hints wake the watcher: still no storm
		w.Wake()
		time.Sleep(time.Millisecond)
	}
	if n := heads.Load(); n == 0 || n >= 20 {
		t.Errorf("with the disk full for 2s the registry got %d manifest look-ups for one reference, want a handful (1..19)", n)
	}
	failing := logs.lines()
	if len(failing) == 0 || len(failing) > 3 || !strings.Contains(failing[0], "disk is full") {
		t.Errorf("logged %d lines while the disk was full, want 1..3 saying the disk is full:\n%s",
			len(failing), strings.Join(failing[:min(len(failing), 8)], "\n"))
	}

	s.full.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := st.GetBaseRef(context.Background(), ref)
		if err == nil && b.Digest == digest {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("check not recorded 10s after the store recovered: %+v %v", b, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	all := logs.lines()
	if len(all) != len(failing)+1 || !strings.Contains(all[len(all)-1], "recovered") {
		t.Errorf("log after recovery:\n%s\nwant the failing lines and one \"recovered\"", strings.Join(all[:min(len(all), 8)], "\n"))
	}
}

// countingObserver counts the checks it is asked to commit.
type countingObserver struct{ n atomic.Int32 }

func (o *countingObserver) Observe(context.Context, Observation) (int, error) {
	o.n.Add(1)
	return 0, nil
}

// TestWatcherRecordsGarbageManifestAsError: a registry that answers the
// HEAD without Docker-Content-Digest and the GET with no manifest gets a
// check error on the reference, naming it; nothing is observed, so no
// run is planned.
func TestWatcherRecordsGarbageManifestAsError(t *testing.T) {
	ref := noDigestRegistry(t, "application/vnd.oci.image.index.v1+json", "{}") + "/lib/odd:1"
	st, err := store.Open(context.Background(), store.Config{Path: filepath.Join(t.TempDir(), "refit.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// A task builds on it, so the watcher's sync keeps it tracked.
	spec := task.Spec{Name: "app", Source: task.Source{Dir: "/src"}}.Defaults()
	if _, err := st.CreateTask(context.Background(), store.Task{Spec: spec,
		Bases: []dockerfile.Base{{Stage: "0", Role: dockerfile.RoleRuntime, Kind: dockerfile.KindFrom, Ref: ref}}}); err != nil {
		t.Fatal(err)
	}
	obs := &countingObserver{}
	w, err := NewWatcher(WatcherConfig{Store: &fullDiskStore{Store: st}, Checker: regclient.New(regclient.Config{Keychain: authn.NewMultiKeychain()}),
		Observer: obs, Interval: time.Hour, Tick: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(5 * time.Second)
	var b store.BaseRef
	for {
		if b, err = st.GetBaseRef(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
		if b.Failures > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if b.Failures == 0 || !strings.Contains(b.LastError, ref) || !strings.Contains(b.LastError, "Docker-Content-Digest") {
		t.Errorf("reference after the check: failures %d, last error %q; want an error naming %s and the missing header", b.Failures, b.LastError, ref)
	}
	if b.Digest != "" || obs.n.Load() != 0 {
		t.Errorf("digest %q stored, %d observations committed; want none", b.Digest, obs.n.Load())
	}
	if h, err := st.Observations(context.Background(), ref, 10); err != nil || len(h) != 0 {
		t.Errorf("history of %s = %v, %v; want empty", ref, h, err)
	}
}

// TestHint: a hint marks the tracked reference (as Docker names it) for
// an immediate check and wakes the watcher; a replayed webhook event
// hints nothing; a name that does not parse is an error naming it.
func TestHint(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(t.TempDir(), "refit.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const ref = "docker.io/library/debian:12"
	if err := st.TrackRefs(ctx, []string{ref}); err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(WatcherConfig{Store: st, Checker: regclient.New(regclient.Config{Keychain: authn.NewMultiKeychain()}), Observer: &countingObserver{}})
	if err != nil {
		t.Fatal(err)
	}
	hinted := func() string {
		t.Helper()
		b, err := st.GetBaseRef(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		return b.HintSource
	}
	settle := func() { // a check of the reference clears its hint
		t.Helper()
		if err := st.InTx(ctx, func(tx *store.Tx) error {
			return tx.SaveCheck(store.BaseRef{Ref: ref}, false, time.Now().Add(time.Hour))
		}); err != nil {
			t.Fatal(err)
		}
	}
	settle()
	if err := w.Hint(ctx, []string{"debian:12"}, "webhook", "evt-1"); err != nil {
		t.Fatalf("Hint: %v", err)
	}
	if got := hinted(); got != "webhook" {
		t.Errorf("after a hint the reference's hint source is %q, want webhook", got)
	}
	select {
	case <-w.wake:
	default:
		t.Error("a hint of a tracked reference did not wake the watcher")
	}
	settle()
	if err := w.Hint(ctx, []string{"debian:12"}, "webhook", "evt-1"); err != nil {
		t.Fatalf("replayed Hint: %v", err)
	}
	if got := hinted(); got != "" {
		t.Errorf("a replayed event hinted the reference (source %q)", got)
	}
	if err := w.Hint(ctx, []string{"Not A Ref"}, "webhook", ""); err == nil || !strings.Contains(err.Error(), "Not A Ref") {
		t.Errorf("Hint of a bad name = %v, want an error naming it", err)
	}
}
