package lifecycle

import (
	"context"

	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
)

// CheckTasks returns a *plan.CycleError when storing changed (each new or
// replacing the stored task of its name) would close a dependency cycle.
// It checks on the task graph the planner caches by tasks version, so a
// check reads no task unless the task set changed since the graph was
// built; an apply of many tasks checks once.
func (l *Runs) CheckTasks(ctx context.Context, changed []store.Task) error {
	var g *plan.Graph
	err := l.cfg.Store.InTx(ctx, func(tx *store.Tx) (err error) {
		g, err = l.taskGraph(tx)
		return err
	})
	if err != nil {
		return err
	}
	return g.CheckCycles(changed)
}
