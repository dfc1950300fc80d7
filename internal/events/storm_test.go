package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refit-dev/refit/internal/store"
)

// errDiskFull is what SQLite says when the data disk is full.
var errDiskFull = errors.New("database or disk is full (13)")

// fullDiskStore is a real store whose writes fail while full is set, as
// they do when the data disk fills up; reads still work.
type fullDiskStore struct {
	*store.Store
	full       atomic.Bool
	readsFail  atomic.Bool // reads fail too (the database is unreadable)
	recordings atomic.Int32
}

func (f *fullDiskStore) RecordAttempt(ctx context.Context, subID string, seq int64, r store.DeliveryResult) error {
	f.recordings.Add(1)
	if f.full.Load() {
		return errDiskFull
	}
	return f.Store.RecordAttempt(ctx, subID, seq, r)
}

func (f *fullDiskStore) FanOut(ctx context.Context, sub store.Subscription, matched []store.Event, cursor int64) (bool, error) {
	if f.full.Load() {
		return false, errDiskFull
	}
	return f.Store.FanOut(ctx, sub, matched, cursor)
}

func (f *fullDiskStore) AdvanceSink(ctx context.Context, name string, cursor int64) error {
	if f.full.Load() {
		return errDiskFull
	}
	return f.Store.AdvanceSink(ctx, name, cursor)
}

func (f *fullDiskStore) PruneEvents(ctx context.Context, before time.Time) (int, error) {
	if f.full.Load() {
		return 0, errDiskFull
	}
	return f.Store.PruneEvents(ctx, before)
}

func (f *fullDiskStore) ListEvents(ctx context.Context, ef store.EventFilter) ([]store.Event, error) {
	if f.readsFail.Load() {
		return nil, fmt.Errorf("listing events: %w", errDiskFull)
	}
	return f.Store.ListEvents(ctx, ef)
}

// logBuffer collects log lines, safe for concurrent use.
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
	s := strings.TrimSpace(b.buf.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestFullDiskIsNoStorm: with the data disk full, a delivery the
// receiver accepts cannot be recorded, so it stays due. It used to be
// resent as fast as the receiver answered (11,788 requests in 10 s); now
// the dispatcher backs off as it does for a network error and logs the
// episode, not each attempt. Once the disk has room again every event is
// delivered, in order per subject.
func TestFullDiskIsNoStorm(t *testing.T) {
	s := &fullDiskStore{Store: openStore(t)}
	rcv := &receiver{t: t}
	srv := serve(t, rcv)
	sub := subscribe(t, s.Store, store.Subscription{URL: srv.URL + "/hook"})
	var pairs [][2]string
	for range 3 {
		pairs = append(pairs, [2]string{store.EventRunQueued, "a"}, [2]string{store.EventRunStarted, "b"})
	}
	want := emit(t, s.Store, pairs...)
	// The deliveries were queued before the disk filled up.
	if _, err := s.Store.FanOut(context.Background(), sub, want, want[len(want)-1].Seq); err != nil {
		t.Fatal(err)
	}
	s.full.Store(true)

	var logs logBuffer
	cfg := testConfig(s.Store)
	cfg.Store = s
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	d, _ := start(t, cfg)
	d.Notify()
	time.Sleep(2 * time.Second)
	for range 50 { // commits elsewhere wake the dispatcher: still no storm
		d.Notify()
		time.Sleep(time.Millisecond)
	}

	sent := len(rcv.tries())
	if sent == 0 || sent >= 20 {
		t.Errorf("with the disk full for 2s the receiver got %d requests, want a handful (1..19)", sent)
	}
	if n := s.recordings.Load(); n >= 20 {
		t.Errorf("%d attempts to record a delivery in 2s, want a handful", n)
	}
	failing := logs.lines()
	if len(failing) == 0 || len(failing) > 5 {
		t.Errorf("logged %d lines while the disk was full, want 1..5 (once per episode):\n%s", len(failing), head(failing))
	} else if !slices.ContainsFunc(failing, func(l string) bool {
		return strings.Contains(l, "disk is full") && strings.Contains(l, "recording delivery of event")
	}) {
		t.Errorf("no line says recording a delivery failed:\n%s", head(failing))
	}

	s.full.Store(false)
	waitFor(t, 10*time.Second, "every event delivered and recorded", func() bool {
		ds, err := s.Store.ListDeliveries(context.Background(), store.DeliveryFilter{Subscription: sub.ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, dl := range ds {
			if dl.State != "delivered" {
				return false
			}
		}
		return len(ds) == len(want)
	})
	// At least once, in order per subject: resends repeat the head of
	// a line, never an event after a later one.
	got := rcv.received()
	firsts := map[string][]string{}
	for _, e := range got {
		ids := firsts[e.Subject]
		if len(ids) > 0 && ids[len(ids)-1] == e.ID {
			continue // the same event again: a resend of an unrecorded delivery
		}
		firsts[e.Subject] = append(ids, e.ID)
	}
	if diff := cmp.Diff(storedBySubject(want), firsts); diff != "" {
		t.Errorf("events per subject, resends folded (-want +got):\n%s", diff)
	}
	if total := len(rcv.tries()); total >= 30 {
		t.Errorf("%d requests in all for %d events, want a handful of resends", total, len(want))
	}
	all := logs.lines()
	t.Logf("%d requests while the disk was full, %d in all; log:\n%s", sent, len(rcv.tries()), head(all))
	if len(all) > len(failing)+1 || !strings.Contains(all[len(all)-1], "recovered") {
		t.Errorf("log after recovery:\n%s\nwant the failing lines and one \"recovered\"", head(all))
	}
}

// TestSinkBacksOffStoreErrors: a sink whose store cannot be read backs
// off and logs the episode once, not every poll; when the store
// recovers it publishes every event in order.
func TestSinkBacksOffStoreErrors(t *testing.T) {
	s := &fullDiskStore{Store: openStore(t)}
	var logs logBuffer
	cfg := testConfig(s.Store)
	cfg.Store = s
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink := &refusingSink{}
	runSink(t, d, sink)
	waitFor(t, 5*time.Second, "the sink's cursor", func() bool {
		var n int
		s.DB().QueryRow(`SELECT COUNT(*) FROM sinks`).Scan(&n)
		return n == 1
	})
	s.readsFail.Store(true)
	emit(t, s.Store, [2]string{store.EventRunQueued, "a"}, [2]string{store.EventRunQueued, "b"})
	d.Notify()
	time.Sleep(2 * time.Second)
	if lines := logs.lines(); len(lines) == 0 || len(lines) > 3 {
		t.Errorf("logged %d lines in 2s of store errors (poll every %v), want 1..3:\n%s", len(lines), cfg.Poll, head(lines))
	}
	s.readsFail.Store(false)
	waitFor(t, 10*time.Second, "both events published", func() bool { return len(sink.accepted()) == 2 })
	if got := sink.accepted(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("published %v, want a b", got)
	}
}

// head is the first lines of a log, for messages.
func head(lines []string) string {
	if len(lines) > 8 {
		return strings.Join(lines[:8], "\n") + fmt.Sprintf("\n… (%d more)", len(lines)-8)
	}
	return strings.Join(lines, "\n")
}
