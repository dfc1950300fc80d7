package store_test

import (
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/store"
)

// emitEvents writes one event per subject given, in order, and returns
// them.
func emitEvents(t *testing.T, s *store.Store, subjects ...string) []store.Event {
	t.Helper()
	before, err := s.LastEventSeq(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range subjects {
		if err := s.InTx(t.Context(), func(tx *store.Tx) error {
			return tx.Emit(store.EventTaskChanged, subj, map[string]string{"task": subj})
		}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.ListEvents(t.Context(), store.EventFilter{After: before, Limit: 1000})
	if err != nil || len(evs) != len(subjects) {
		t.Fatalf("ListEvents = %d events, %v; want %d", len(evs), err, len(subjects))
	}
	return evs
}

// due returns the seqs DueDeliveries gives now.
func due(t *testing.T, s *store.Store) []int64 {
	t.Helper()
	ds, err := s.DueDeliveries(t.Context(), time.Now(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, d := range ds {
		seqs = append(seqs, d.Event.Seq)
	}
	return seqs
}

// TestDueDeliveriesFollowLines: only the first pending delivery of each
// (subscription, subject) is due; finishing it, delivered or dead, makes
// the next one due; a redelivered event goes before later ones of its
// subject again, with a fresh retry window.
func TestDueDeliveriesFollowLines(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	sub, err := s.CreateSubscription(ctx, store.Subscription{URL: "http://127.0.0.1:1/hook"})
	if err != nil {
		t.Fatal(err)
	}
	evs := emitEvents(t, s, "a", "b", "a", "a", "b")
	a1, b1, a2, a3, b2 := evs[0].Seq, evs[1].Seq, evs[2].Seq, evs[3].Seq, evs[4].Seq
	if moved, err := s.FanOut(ctx, sub, evs, b2); err != nil || !moved {
		t.Fatalf("FanOut = %v, %v", moved, err)
	}
	check := func(step string, want ...int64) {
		t.Helper()
		if got := due(t, s); !cmpEqual(want, got) {
			t.Fatalf("%s: due %v, want %v", step, got, want)
		}
	}
	check("after fan-out", a1, b1)

	if err := s.RecordAttempt(ctx, sub.ID, a1, store.DeliveryResult{Next: time.Now().Add(time.Hour), Error: "HTTP 500"}); err != nil {
		t.Fatal(err)
	}
	check("a1 waiting on a retry holds up a, not b", b1)

	if err := s.RecordAttempt(ctx, sub.ID, a1, store.DeliveryResult{Delivered: true}); err != nil {
		t.Fatal(err)
	}
	check("a1 delivered", b1, a2)
	if err := s.RecordAttempt(ctx, sub.ID, a2, store.DeliveryResult{Dead: true, Error: "gave up"}); err != nil {
		t.Fatal(err)
	}
	check("a2 dead", b1, a3)

	before := time.Now()
	n, err := s.Redeliver(ctx, store.RedeliverFilter{Dead: true})
	if err != nil || n != 1 {
		t.Fatalf("Redeliver = %d, %v; want 1", n, err)
	}
	check("a2 redelivered goes before a3", b1, a2)
	ds, err := s.ListDeliveries(ctx, store.DeliveryFilter{Subscription: sub.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Event.Seq != a2 {
			continue
		}
		if d.State != "pending" || d.Attempts != 0 || d.RetrySince.Before(before) || !d.RetryStart().Equal(d.RetrySince) {
			t.Errorf("redelivered delivery %+v: want pending, 0 attempts, retry window from now", d)
		}
	}

	for _, seq := range []int64{b1, a2, a3, b2} {
		if err := s.RecordAttempt(ctx, sub.ID, seq, store.DeliveryResult{Delivered: true}); err != nil {
			t.Fatal(err)
		}
	}
	check("all delivered")
}

// TestSinkCursor: a new sink starts after the newest event, advances only
// forward, and holds back pruning until it has the events; a sink no
// longer configured holds back nothing.
func TestSinkCursor(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	old := emitEvents(t, s, "a")
	c, err := s.SinkCursor(ctx, "nats")
	if err != nil || c != old[0].Seq {
		t.Fatalf("SinkCursor of a new sink = %d, %v; want %d (the newest event)", c, err, old[0].Seq)
	}
	evs := emitEvents(t, s, "a", "b")
	if err := s.AdvanceSink(ctx, "nats", evs[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceSink(ctx, "nats", old[0].Seq); err != nil { // backwards: ignored
		t.Fatal(err)
	}
	if c, _ := s.SinkCursor(ctx, "nats"); c != evs[0].Seq {
		t.Fatalf("cursor %d after advancing to %d and back", c, evs[0].Seq)
	}
	n, err := s.PruneEvents(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("PruneEvents = %d, %v; want the 2 events the sink has", n, err)
	}
	if err := s.KeepSinks(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneEvents(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("PruneEvents after dropping the sink = %d, %v; want 1", n, err)
	}
}

// TestDiscardDead: discarding drops dead-lettered deliveries only, and
// their events are pruned after; a pending delivery keeps its event.
func TestDiscardDead(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	sub, err := s.CreateSubscription(ctx, store.Subscription{URL: "http://127.0.0.1:1/hook"})
	if err != nil {
		t.Fatal(err)
	}
	evs := emitEvents(t, s, "dead", "pending")
	if _, err := s.FanOut(ctx, sub, evs, evs[1].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, sub.ID, evs[0].Seq, store.DeliveryResult{Dead: true, Error: "gave up"}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneEvents(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("PruneEvents with a dead and a pending delivery = %d, %v; want 0", n, err)
	}
	if n, err := s.DiscardDead(ctx, store.DiscardFilter{Subscription: "s-other"}); err != nil || n != 0 {
		t.Fatalf("DiscardDead of another subscription = %d, %v; want 0", n, err)
	}
	n, err := s.DiscardDead(ctx, store.DiscardFilter{Subscription: sub.ID})
	if err != nil || n != 1 {
		t.Fatalf("DiscardDead = %d, %v; want 1", n, err)
	}
	ds, err := s.ListDeliveries(ctx, store.DeliveryFilter{Subscription: sub.ID})
	if err != nil || len(ds) != 1 || ds[0].State != "pending" {
		t.Fatalf("deliveries left: %+v, %v; want the pending one", ds, err)
	}
	if n, err := s.PruneEvents(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("PruneEvents after discarding = %d, %v; want the discarded event", n, err)
	}
	left, _ := s.ListEvents(ctx, store.EventFilter{})
	if len(left) != 1 || left[0].ID != evs[1].ID {
		t.Errorf("events left %+v, want only the pending one", left)
	}
}

// TestEventsInCommitOrderOnPostgres: with two writers (two processes on
// one database), an event emitted by a later transaction can neither take
// a lower seq nor become visible before the earlier one commits — so a
// subscriber's cursor never passes over an event still in flight.
func TestEventsInCommitOrderOnPostgres(t *testing.T) {
	if !pgtest.Wanted() {
		t.Skip("PostgreSQL only (" + pgtest.EnvRequire + "=1)")
	}
	url := pgtest.URL(t)
	a, b := openAt(t, url), openAt(t, url)
	ctx := t.Context()

	emitted := make(chan struct{})
	release := make(chan struct{})
	aDone := make(chan error, 1)
	go func() {
		aDone <- a.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.Emit(store.EventTaskChanged, "first", map[string]string{"by": "a"}); err != nil {
				return err
			}
			close(emitted)
			<-release // hold the transaction open
			return nil
		})
	}()
	<-emitted
	bDone := make(chan error, 1)
	go func() {
		bDone <- b.InTx(ctx, func(tx *store.Tx) error {
			return tx.Emit(store.EventTaskChanged, "second", map[string]string{"by": "b"})
		})
	}()
	select {
	case err := <-bDone:
		t.Fatalf("the second writer committed its event (%v) while the first one's was uncommitted", err)
	case <-time.After(300 * time.Millisecond):
	}
	if evs, _ := b.ListEvents(ctx, store.EventFilter{}); len(evs) != 0 {
		t.Fatalf("events visible while the first is uncommitted: %+v", evs)
	}
	close(release)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	evs, err := b.ListEvents(ctx, store.EventFilter{})
	if err != nil || len(evs) != 2 || evs[0].Subject != "first" || evs[1].Subject != "second" || evs[0].Seq >= evs[1].Seq {
		t.Fatalf("events %+v, %v; want first then second, in seq order", evs, err)
	}
}
