package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

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
