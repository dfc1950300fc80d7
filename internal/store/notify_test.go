package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/store"
)

// TestJobsNotify: on PostgreSQL a transaction that enqueues jobs
// notifies store.JobsChannel once, at commit (two runs in one
// transaction: one notification); one that rolls back, or enqueues
// nothing, does not. On SQLite there is nothing to listen to.
func TestJobsNotify(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	jl, err := s.ListenJobs(ctx)
	if !s.Postgres() {
		if !errors.Is(err, store.ErrNoListen) {
			t.Fatalf("ListenJobs on SQLite: %v, want ErrNoListen", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer jl.Close(context.Background())
	j := newJobs(t, s)
	run := store.Run{Task: "app", Spec: spec("app"), Cause: store.Cause{Kind: "manual", User: "alice"}}
	two := func(tx *store.Tx) error {
		for range 2 {
			if _, err := tx.CreateRun(run, j.enqueue); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.InTx(ctx, two); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := jl.Wait(waitCtx); err != nil {
		t.Fatalf("no notification of a committed transaction that enqueued runs: %v", err)
	}
	rollback := errors.New("rolled back")
	if err := s.InTx(ctx, func(tx *store.Tx) error {
		if err := two(tx); err != nil {
			return err
		}
		return rollback
	}); !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	if _, err := s.CreateRun(ctx, run, nil); err != nil { // no job
		t.Fatal(err)
	}
	createRun(t, s, "app", j.enqueue)
	if err := jl.Wait(waitCtx); err != nil {
		t.Fatalf("no notification of a run created with its job: %v", err)
	}
	// Nothing else is pending: the rolled-back and the jobless
	// transactions sent nothing, and the two runs made one notification.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := jl.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an extra notification (or error %v): a rolled-back or jobless transaction notified, or one notified twice", err)
	}
}
