package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/pgtest"
)

// TestUpgradeKeepsPendingDeliveries: a database of the version before
// delivery heads (3), with a delivery backlog, is upgraded in place; the
// first pending delivery of each line becomes its head, the rest wait
// behind it, and nothing is lost.
func TestUpgradeKeepsPendingDeliveries(t *testing.T) {
	cfg := Config{Path: filepath.Join(t.TempDir(), "refit.db")}
	if pgtest.Wanted() {
		cfg = Config{URL: pgtest.URL(t)}
	}
	ctx := context.Background()
	old := cfg
	old.migrateUpTo = 3
	s, err := Open(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := s.CreateSubscription(ctx, Subscription{URL: "http://127.0.0.1:1/hook"})
	if err != nil {
		t.Fatal(err)
	}
	subjects := []string{"a", "b", "a", "a", "b"}
	now := formatTime(time.Now())
	seqs := make([]int64, len(subjects))
	for i, subj := range subjects {
		if _, err := s.write.ExecContext(ctx, `INSERT INTO events (id, type, subject, time, data) VALUES ($1, $2, $3, $4, '{}')`,
			newEventID(), EventTaskChanged, subj, now); err != nil {
			t.Fatal(err)
		}
		if err := s.write.QueryRowContext(ctx, `SELECT MAX(seq) FROM events`).Scan(&seqs[i]); err != nil {
			t.Fatal(err)
		}
		state := "pending"
		if i == 0 {
			state = "delivered" // a's first is done: a's second heads the line
		}
		if _, err := s.write.ExecContext(ctx, `INSERT INTO deliveries (subscription_id, event_seq, subject, state, next_attempt_at)
			VALUES ($1, (SELECT MAX(seq) FROM events), $2, $3, $4)`, sub.ID, subj, state, now); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	s, err = Open(ctx, cfg) // the upgrade
	if err != nil {
		t.Fatalf("upgrading: %v", err)
	}
	defer s.Close()
	due, err := s.DueDeliveries(ctx, time.Now().Add(time.Second), 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, d := range due {
		got = append(got, d.Event.Seq)
	}
	if want := []int64{seqs[1], seqs[2]}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("due after the upgrade: events %v; want %v (b's first, a's second)", got, want)
	}
	all, err := s.ListDeliveries(ctx, DeliveryFilter{Subscription: sub.ID})
	if err != nil || len(all) != len(subjects) {
		t.Fatalf("deliveries after the upgrade: %d, %v; want all %d", len(all), err, len(subjects))
	}
	var v int
	if err := s.write.QueryRowContext(ctx, `SELECT MAX(version) FROM refit_migrations`).Scan(&v); err != nil || v < 6 {
		t.Errorf("migrated to version %d (%v), want 6 or later", v, err)
	}
}
