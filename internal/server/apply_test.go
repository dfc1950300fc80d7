package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/runner"
	"github.com/refit-dev/refit/internal/server"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// countingInspector is the real runner, counting its inspections.
type countingInspector struct {
	*runner.Runner
	n atomic.Int64
}

func (c *countingInspector) Inspect(ctx context.Context, spec task.Spec) ([]dockerfile.Base, error) {
	c.n.Add(1)
	return c.Runner.Inspect(ctx, spec)
}

// TestApplyUnchangedWritesNothing: applying the same tasks again inspects
// no source, checks no cycle, writes no event and leaves the tasks
// version (the planner's graph cache) alone. A dir task whose Dockerfile
// changed is inspected again: it is updated when its bases changed, and
// stays unchanged (with no event) when they did not. A task whose bases a
// run changed is inspected again too.
func TestApplyUnchangedWritesNothing(t *testing.T) {
	insp := &countingInspector{}
	var cycleChecks atomic.Int64
	a := startAPIWith(t, func(cfg *server.Config, run *runner.Runner) {
		insp.Runner = run
		cfg.Inspector = insp
		check := cfg.CheckTasks
		cfg.CheckTasks = func(ctx context.Context, ts []store.Task) error {
			cycleChecks.Add(1)
			return check(ctx, ts)
		}
	})
	ctx := context.Background()
	dir := source(t, map[string]string{
		"a/Dockerfile": "FROM " + registryAddr + "/base/a:1\nRUN true\n",
		"b/Dockerfile": "FROM " + registryAddr + "/base/b:1\n",
	})
	set := map[string]any{"tasks": []any{
		spec("one", dir, map[string]any{"context": "a"}),
		spec("two", dir, map[string]any{"context": "b", "buildArgs": map[string]string{"X": "1", "Y": "2"}}),
		spec("three", dir, map[string]any{"context": "a", "tags": []string{"{{.Run.ID}}"}}),
	}}
	apply := func(want string) {
		t.Helper()
		code, body := a.do(t, "POST", "/api/v1/tasks:apply", set)
		var res api.ApplyResult
		if err := json.Unmarshal([]byte(body), &res); code != http.StatusOK || err != nil {
			t.Fatalf("apply: %d %s", code, body)
		}
		if got := fmt.Sprint(res.Tasks); got != want {
			t.Errorf("apply: %s, want %s", got, want)
		}
	}
	type state struct {
		inspections, cycleChecks, version int64
		events                            int
	}
	now := func() state {
		t.Helper()
		evs, err := a.st.ListEvents(ctx, store.EventFilter{Type: store.EventTaskChanged})
		if err != nil {
			t.Fatal(err)
		}
		var v int64
		if err := a.st.InTx(ctx, func(tx *store.Tx) (err error) { v, err = tx.TasksVersion(); return err }); err != nil {
			t.Fatal(err)
		}
		return state{insp.n.Load(), cycleChecks.Load(), v, len(evs)}
	}

	apply("[{one created} {two created} {three created}]")
	before := now()
	if before.inspections != 3 || before.cycleChecks != 1 || before.events != 3 {
		t.Fatalf("first apply: %+v, want 3 inspections, 1 cycle check, 3 events", before)
	}
	for range 2 {
		apply("[{one unchanged} {two unchanged} {three unchanged}]")
		if got := now(); got != before {
			t.Errorf("unchanged apply: %+v, want %+v (no inspection, cycle check, event or new tasks version)", got, before)
		}
	}

	// A Dockerfile edit that keeps the bases: both tasks on it are looked
	// at again, and nothing is written.
	write := func(rel, body string) {
		if err := os.WriteFile(filepath.Join(dir, rel), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a/Dockerfile", "FROM "+registryAddr+"/base/a:1\nRUN echo changed\n")
	apply("[{one unchanged} {two unchanged} {three unchanged}]")
	if got := now(); got.inspections != before.inspections+2 || got.events != before.events || got.version != before.version {
		t.Errorf("apply after a Dockerfile edit that keeps the bases: %+v, want 2 more inspections and no event or new version (was %+v)", got, before)
	}
	apply("[{one unchanged} {two unchanged} {three unchanged}]")
	if got := now(); got.inspections != before.inspections+2 {
		t.Errorf("second apply after the edit: %d inspections, want %d (the new Dockerfile is known now)", got.inspections, before.inspections+2)
	}

	// A new base: updated, with its event.
	write("b/Dockerfile", "FROM "+registryAddr+"/base/c:1\n")
	apply("[{one unchanged} {two updated} {three unchanged}]")
	got, err := a.st.GetTask(ctx, "two")
	if err != nil || len(got.Bases) != 1 || got.Bases[0].Ref != registryAddr+"/base/c:1" {
		t.Errorf("task two after its base changed: %+v (%v), want base %s/base/c:1", got.Bases, err, registryAddr)
	}
	before = now()

	// A run that found other bases: the next apply looks again, and puts
	// back what the Dockerfile says.
	if err := a.st.SetTaskBases(ctx, "one", []dockerfile.Base{{Ref: registryAddr + "/base/z:1", Role: dockerfile.RoleRuntime}}); err != nil {
		t.Fatal(err)
	}
	apply("[{one updated} {two unchanged} {three unchanged}]")
	if got := now(); got.inspections != before.inspections+1 {
		t.Errorf("apply after a run changed the bases: %d inspections, want %d", got.inspections, before.inspections+1)
	}
}

// TestApplyCycleWithStoredTask: a task applied alone that closes a cycle
// with a stored one is refused, and so is one that closes it by a later
// change of the stored one; a change that opens the cycle again is taken.
func TestApplyCycleWithStoredTask(t *testing.T) {
	a := startAPI(t)
	dir := source(t, map[string]string{
		"a/Dockerfile": "FROM " + registryAddr + "/b:latest\n",
		"b/Dockerfile": "FROM " + registryAddr + "/a:latest\n",
		"c/Dockerfile": "FROM busybox\n",
	})
	apply := func(specs ...any) (int, string) {
		return a.do(t, "POST", "/api/v1/tasks:apply", map[string]any{"tasks": specs})
	}
	if code, body := apply(spec("a", dir, map[string]any{"context": "a"})); code != http.StatusOK {
		t.Fatalf("apply of a: %d %s", code, body)
	}
	if code, body := apply(spec("b", dir, map[string]any{"context": "b"})); code != http.StatusBadRequest || !strings.Contains(body, "cycle") || !strings.Contains(body, "a → b → a") && !strings.Contains(body, "b → a → b") {
		t.Errorf("apply of b, which a builds on and which builds on a: %d %s; want 400 naming the cycle", code, body)
	}
	if code, body := apply(spec("b", dir, map[string]any{"context": "c"})); code != http.StatusOK {
		t.Fatalf("apply of b on busybox: %d %s", code, body)
	}
	if code, body := apply(spec("b", dir, map[string]any{"context": "b"})); code != http.StatusBadRequest || !strings.Contains(body, "cycle") {
		t.Errorf("apply of b changed to build on a: %d %s; want 400 naming the cycle", code, body)
	}
	// a stops building on b: now b may build on a.
	if code, body := apply(spec("a", dir, map[string]any{"context": "c"}), spec("b", dir, map[string]any{"context": "b"})); code != http.StatusOK {
		t.Errorf("apply of a on busybox and b on a: %d %s, want 200", code, body)
	}
}

// TestApplyWatches: an apply's watches are stored with its tasks (or
// alone), re-applying updates them, and a bad one refuses the whole
// apply, naming it, with nothing stored.
func TestApplyWatches(t *testing.T) {
	a := startAPI(t)
	dir := source(t, map[string]string{"Dockerfile": "FROM " + registryAddr + "/base/a:1\n"})
	body := map[string]any{"tasks": []any{spec("one", dir, nil)},
		"watches": []any{map[string]any{"ref": "python:3.12", "semver": "~3.12"}, map[string]any{"ref": "docker.io/library/node", "semver": "^22"}}}
	code, text := a.do(t, "POST", "/api/v1/tasks:apply", body)
	var res api.ApplyResult
	json.Unmarshal([]byte(text), &res)
	if code != http.StatusOK || len(res.Tasks) != 1 || len(res.Watches) != 2 || res.Watches[0] != (api.AppliedWatch{Ref: "docker.io/library/python:3.12", Action: "created"}) {
		t.Fatalf("apply = %d %s", code, text)
	}
	code, text = a.do(t, "POST", "/api/v1/tasks:apply", map[string]any{"watches": []any{map[string]any{"ref": "docker.io/library/node", "semver": "^20"}}})
	if code != http.StatusOK || !strings.Contains(text, `"action": "updated"`) {
		t.Errorf("apply of watches alone = %d %s, want the watch updated", code, text)
	}
	code, text = a.do(t, "POST", "/api/v1/tasks:apply", map[string]any{"tasks": []any{spec("two", dir, nil)},
		"watches": []any{map[string]any{"ref": "debian:12"}, map[string]any{"ref": "Debian", "semver": "1"}}})
	if code != http.StatusBadRequest || !strings.Contains(text, "watches[1].ref") {
		t.Errorf("apply with a bad watch = %d %s, want 400 naming watches[1].ref", code, text)
	}
	code, text = a.do(t, "GET", "/api/v1/watches", nil)
	var ws []api.Watch
	json.Unmarshal([]byte(text), &ws)
	if code != http.StatusOK || len(ws) != 2 || ws[0].Semver != "^20" {
		t.Errorf("watches = %d %s, want python and node (^20), nothing of the refused apply", code, text)
	}
	if code, _ := a.do(t, "GET", "/api/v1/tasks/two", nil); code != http.StatusNotFound {
		t.Errorf("task of the refused apply: %d, want 404", code)
	}
}
