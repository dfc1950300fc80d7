package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/audit"
	"github.com/refit-dev/refit/internal/identity"
	"github.com/refit-dev/refit/internal/store"
)

// TestAuditChainConcurrentWriters: two stores on one database (two
// processes' writers) append concurrently — tasks and tokens, with
// events in the same transactions — and the chain holds: every entry
// once, numbered without gaps, each hashing its predecessor. The actor
// is the identity the context carries, else "system".
func TestAuditChainConcurrentWriters(t *testing.T) {
	a, where := open(t)
	b := openAt(t, where)
	ctx := identity.NewContext(context.Background(), identity.Identity{User: "alice", Roles: []identity.Role{identity.Operator}, Kind: identity.KindToken})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w, s := range []*store.Store{a, b, a, b} {
		wg.Go(func() {
			for i := range 10 {
				name := fmt.Sprintf("w%d-%d", w, i)
				if _, err := s.CreateTask(ctx, store.Task{Spec: spec(name)}); err != nil {
					errs <- err
					return
				}
				if _, _, err := s.CreateToken(context.Background(), name, []string{"viewer"}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var v audit.Verifier
	actors := map[string]int{}
	if err := a.EachAuditEntry(t.Context(), func(e audit.Entry) error {
		actors[e.Action+" by "+e.Actor]++
		return v.Add(e)
	}); err != nil {
		t.Fatalf("the chain after concurrent writers: %v", err)
	}
	if v.Count() != 80 || actors["task.create by alice"] != 40 || actors["token.create by system"] != 40 {
		t.Errorf("%d entries %v, want 40 task.create by alice and 40 token.create by system", v.Count(), actors)
	}
}

// TestAuditRollsBackWithTheChange: an entry commits with its change or
// not at all — a task create refused (the name is taken) leaves no
// entry.
func TestAuditRollsBackWithTheChange(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	if _, err := s.CreateTask(ctx, store.Task{Spec: spec("app")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTask(ctx, store.Task{Spec: spec("app")}); err == nil {
		t.Fatal("creating app twice: no error")
	}
	es, err := s.AuditEntries(ctx, store.AuditFilter{})
	if err != nil || len(es) != 1 || es[0].Action != "task.create" || es[0].Actor != "system" {
		t.Errorf("entries = %+v, %v; want the one create", es, err)
	}
}

// TestTaskEditor: the audit log says who last created or changed a
// task's spec (what separation of duties needs); a run queued meanwhile
// does not change it.
func TestTaskEditor(t *testing.T) {
	s, _ := open(t)
	as := func(user string) context.Context {
		return identity.NewContext(t.Context(), identity.Identity{User: user, Roles: []identity.Role{identity.Operator}, Kind: identity.KindToken})
	}
	if _, err := s.TaskEditor(t.Context(), "app"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("editor of a task never created: %v, want ErrNotFound", err)
	}
	if _, err := s.CreateTask(as("alice"), store.Task{Spec: spec("app")}); err != nil {
		t.Fatal(err)
	}
	changed := spec("app")
	changed.BuildArgs = map[string]string{"X": "1"}
	if _, _, _, err := s.PutTask(as("bob"), store.Task{Spec: changed}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRun(as("carol"), store.Run{Task: "app", Spec: changed, Cause: store.Cause{Kind: "manual", User: "carol"}}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.TaskEditor(t.Context(), "app"); err != nil || got != "bob" {
		t.Errorf("editor of app = %q, %v; want bob", got, err)
	}
	err := s.InTx(t.Context(), func(tx *store.Tx) error {
		got, err := tx.TaskEditor("app")
		if err == nil && got != "bob" {
			t.Errorf("in a transaction: editor of app = %q, want bob", got)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTxAudit: what another part of refit records in its own
// transaction (an approval, say) is chained like every entry, by the
// identity in the transaction's context, redacted, and rolled back with
// the transaction.
func TestTxAudit(t *testing.T) {
	s, _ := open(t)
	ctx := identity.NewContext(t.Context(), identity.Identity{User: "dave", Roles: []identity.Role{identity.Approver}, Kind: identity.KindToken})
	rec := store.AuditRecord{Action: "run.approve", Subject: "app", Details: map[string]any{"run": "r-1", "comment": "CVE-2026-1234", "password": "hunter2"}}
	if err := s.InTx(ctx, func(tx *store.Tx) error { return tx.Audit(rec) }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := s.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.Audit(rec); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	es, err := s.AuditEntries(t.Context(), store.AuditFilter{Action: "run.approve"})
	if err != nil || len(es) != 1 || es[0].Actor != "dave" || string(es[0].Details) != `{"comment":"CVE-2026-1234","password":"[redacted]","run":"r-1"}` {
		t.Errorf("entries = %+v, %v; want one by dave, the password redacted", es, err)
	}
}

// TestAuditManyEntriesPerTransaction: a transaction that appends many
// entries (a wave queueing runs, with other records between them) reads
// the log's head once and chains the rest on its own appends. Checked
// with two stores on one database (two processes) writing such
// transactions at once, and with one rolled back midway: the chain
// verifies, every committed entry is there once, in the order each
// transaction appended them, and nothing of the rolled-back one is.
func TestAuditManyEntriesPerTransaction(t *testing.T) {
	a, where := open(t)
	b := openAt(t, where)
	ctx := t.Context()
	for _, s := range []*store.Store{a, b} {
		newJobs(t, s)
	}
	j := &jobs{}
	for _, name := range []string{"app", "lib"} {
		if _, err := a.CreateTask(ctx, store.Task{Spec: spec(name)}); err != nil {
			t.Fatal(err)
		}
	}
	const waves, perWave = 6, 20
	var wg sync.WaitGroup
	errs := make(chan error, waves+1)
	for w := range waves {
		s := []*store.Store{a, b}[w%2]
		wg.Go(func() {
			errs <- s.InTx(ctx, func(tx *store.Tx) error {
				for i := range perWave {
					name := []string{"app", "lib"}[i%2]
					if _, err := tx.CreateRun(store.Run{Task: name, Spec: spec(name), Cause: store.Cause{Kind: "base", Base: fmt.Sprintf("w%d", w)}}, j.enqueue); err != nil {
						return err
					}
					if i%5 == 0 {
						if err := tx.Audit(store.AuditRecord{Action: "test.mark", Subject: fmt.Sprintf("w%d-%d", w, i)}); err != nil {
							return err
						}
					}
				}
				return nil
			})
		})
	}
	boom := errors.New("boom")
	wg.Go(func() {
		err := b.InTx(ctx, func(tx *store.Tx) error {
			for i := range 5 {
				if err := tx.Audit(store.AuditRecord{Action: "test.mark", Subject: fmt.Sprintf("gone-%d", i)}); err != nil {
					return err
				}
			}
			return boom
		})
		if !errors.Is(err, boom) {
			errs <- fmt.Errorf("the rolled-back transaction: %v, want boom", err)
			return
		}
		errs <- nil
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// One more single entry after the waves follows the last of them.
	if _, err := b.CreateTask(ctx, store.Task{Spec: spec("after")}); err != nil {
		t.Fatal(err)
	}
	var v audit.Verifier
	var last string
	var runs, marks int
	if err := a.EachAuditEntry(ctx, func(e audit.Entry) error {
		switch e.Action {
		case "run.queue":
			runs++
		case "test.mark":
			marks++
			if e.Subject[:4] == "gone" {
				return fmt.Errorf("entry %d is from the rolled-back transaction", e.Seq)
			}
		}
		last = e.Action + " " + e.Subject
		return v.Add(e)
	}); err != nil {
		t.Fatalf("the chain after transactions of many entries: %v", err)
	}
	if want := 2 + waves*perWave + waves*4 + 1; v.Count() != int64(want) || runs != waves*perWave || marks != waves*4 || last != "task.create after" {
		t.Errorf("%d entries (%d run.queue, %d test.mark), the last %q; want %d (%d, %d), the last task.create after",
			v.Count(), runs, marks, last, want, waves*perWave, waves*4)
	}
	// Each wave's entries are consecutive and in the order appended: the
	// first run queued, its mark, then the runs and marks alternating.
	for w := range waves {
		es, err := a.AuditEntries(ctx, store.AuditFilter{Subject: fmt.Sprintf("w%d-0", w)})
		if err != nil || len(es) != 1 {
			t.Fatalf("the first mark of wave %d: %v, %v", w, es, err)
		}
		seq := es[0].Seq
		page, err := a.AuditEntries(ctx, store.AuditFilter{After: seq - 2, Limit: perWave + 4})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range page {
			got = append(got, e.Action)
		}
		want := []string{}
		for i := range perWave {
			want = append(want, "run.queue")
			if i%5 == 0 {
				want = append(want, "test.mark")
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("wave %d's entries from %d: %v, want %v", w, seq-1, got, want)
		}
	}
}

// TestAuditEntriesSince: listing entries since a time gives those
// appended at or after it, in order (what refit audit --since shows),
// with or without the time index (SQLite has none since migration 21).
func TestAuditEntriesSince(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	if _, err := s.CreateTask(ctx, store.Task{Spec: spec("early")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	mid := time.Now()
	for _, name := range []string{"late1", "late2"} {
		if _, err := s.CreateTask(ctx, store.Task{Spec: spec(name)}); err != nil {
			t.Fatal(err)
		}
	}
	es, err := s.AuditEntries(ctx, store.AuditFilter{Since: mid})
	var got []string
	for _, e := range es {
		got = append(got, e.Subject)
	}
	if err != nil || fmt.Sprint(got) != "[late1 late2]" {
		t.Errorf("entries since the middle: %v, %v; want [late1 late2]", got, err)
	}
}
