package store_test

import (
	"fmt"
	"testing"

	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/store"
)

// TestPutTasks: a set of tasks is put in one transaction, each reported
// created, updated or unchanged, with one task.changed event per change
// and its bases tracked.
func TestPutTasks(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	base := []dockerfile.Base{{Ref: "docker.io/library/debian:12", Name: "debian:12", Stage: "0", Role: dockerfile.RoleRuntime}}
	res, err := s.PutTasks(ctx, []store.Task{{Spec: spec("a"), Bases: base}, {Spec: spec("b")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(res); got != "a created, b created" {
		t.Errorf("first PutTasks: %s, want both created", got)
	}
	b2 := spec("b")
	b2.Tags = []string{"stable"}
	res, err = s.PutTasks(ctx, []store.Task{{Spec: spec("a"), Bases: base}, {Spec: b2}, {Spec: spec("c")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(res); got != "a unchanged, b updated, c created" {
		t.Errorf("second PutTasks: %s", got)
	}
	evs, err := s.ListEvents(ctx, store.EventFilter{Type: store.EventTaskChanged})
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, e := range evs {
		subjects = append(subjects, e.Subject)
	}
	if got := fmt.Sprint(subjects); got != "[a b b c]" {
		t.Errorf("task.changed subjects %s, want [a b b c]", got)
	}
	if _, err := s.GetBaseRef(ctx, base[0].Ref); err != nil {
		t.Errorf("base of a put task is not tracked: %v", err)
	}
	if got, err := s.GetTask(ctx, "b"); err != nil || fmt.Sprint(got.Spec.Tags) != "[stable]" {
		t.Errorf("task b after update: %v %v", got.Spec.Tags, err)
	}
}

func outcomes(rs []store.PutResult) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += ", "
		}
		action := "unchanged"
		switch {
		case r.Created:
			action = "created"
		case r.Changed:
			action = "updated"
		}
		s += r.Task.Spec.Name + " " + action
	}
	return s
}
