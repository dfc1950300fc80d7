package plan_test

import (
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

const reg = "127.0.0.1:5000"

func TestCycleRejected(t *testing.T) {
	mk := func(name, image, from string) store.Task {
		res, err := dockerfile.Parse(strings.NewReader("FROM "+from+"\n"), dockerfile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return store.Task{Spec: task.Spec{Name: name, Image: image, Source: task.Source{Dir: "/"}}.Defaults(), Bases: res.Bases}
	}
	tasks := []store.Task{mk("a", "a", reg+"/c"), mk("b", "b", reg+"/a")}
	if err := plan.CheckCycle(tasks, mk("c", "c", "debian"), reg); err != nil {
		t.Errorf("no cycle yet: %v", err)
	}
	err := plan.CheckCycle(tasks, mk("c", "c", reg+"/b"), reg)
	if err == nil || !strings.Contains(err.Error(), "a") || !strings.Contains(err.Error(), "c") || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle a→b→c→a: got %v, want an error naming the tasks", err)
	}
}
