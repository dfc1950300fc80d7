package events

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/store"
)

// countingStore counts the dispatcher's rounds: each starts by listing
// the subscriptions.
type countingStore struct {
	*store.Store
	rounds atomic.Int64
}

func (c *countingStore) ListSubscriptions(ctx context.Context) ([]store.Subscription, error) {
	c.rounds.Add(1)
	return c.Store.ListSubscriptions(ctx)
}

// TestDispatcherWakesOnlyForWantedEvents: with polling an hour away, the
// dispatcher does a round only for a commit that wrote an event a
// subscription wants or that changed the subscriptions — not for other
// commits, with or without events — and still delivers what is wanted at
// once. Streams are woken by every commit that wrote events.
func TestDispatcherWakesOnlyForWantedEvents(t *testing.T) {
	s := openStore(t)
	cs := &countingStore{Store: s}
	var mu sync.Mutex
	var got []string
	rcv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, r.Header.Get(HeaderWebhookID))
		mu.Unlock()
	}))
	cfg := testConfig(s)
	cfg.Store, cfg.Poll = cs, time.Hour
	d, _ := start(t, cfg)
	s.OnCommit(d.Committed)
	t.Cleanup(func() { s.OnCommit(nil) })
	waitFor(t, 5*time.Second, "the first round", func() bool { return cs.rounds.Load() >= 1 })
	// Until its first round has listed the subscriptions, the dispatcher
	// takes any event as wanted; on a loaded machine that listing can
	// come after the round began.
	waitFor(t, 5*time.Second, "the subscriptions listed", func() bool {
		d.subsMu.Lock()
		defer d.subsMu.Unlock()
		return d.subsKnown
	})

	// No subscription wants anything yet: events wake no round.
	quiet := func(what string) {
		t.Helper()
		before := cs.rounds.Load()
		time.Sleep(300 * time.Millisecond)
		if n := cs.rounds.Load() - before; n != 0 {
			t.Errorf("%s: the dispatcher did %d rounds, want none", what, n)
		}
	}
	streamWoken := d.changes()
	emit(t, s, [2]string{store.EventTaskChanged, "app"})
	quiet("an event with no subscriptions")
	select {
	case <-streamWoken:
	default:
		t.Error("a commit that wrote an event did not wake the streams")
	}

	// A subscription: its creation wakes a round.
	before := cs.rounds.Load()
	subscribe(t, s, store.Subscription{URL: rcv.URL, Types: []string{"task.changed"}, TaskGlob: "app*"})
	waitFor(t, 5*time.Second, "a round after a subscription was created", func() bool { return cs.rounds.Load() > before })

	emit(t, s, [2]string{store.EventTaskChanged, "other"}, [2]string{store.EventRunQueued, "app"})
	quiet("events no subscription wants")
	if err := s.KeepSinks(context.Background()); err != nil { // a write without events
		t.Fatal(err)
	}
	quiet("a commit without events")

	want := emit(t, s, [2]string{store.EventTaskChanged, "app1"})
	waitFor(t, 5*time.Second, "the wanted event delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1 && got[0] == want[0].ID
	})
}
