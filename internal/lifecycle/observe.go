package lifecycle

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/riverqueue/river"

	"github.com/refit-dev/refit/internal/index"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
)

var _ index.Observer = (*Runs)(nil)

// Result says what committing an observation did.
type Result struct {
	// Untracked is true when no task builds on the reference.
	Untracked bool
	// Changed lists the observations of platforms whose digest changed.
	Changed []store.Observation
	// Own is true when the new digest was pushed by one of refit's runs
	// (its dependents are handled by that run's wave).
	Own bool
	// Runs are the runs of the wave, created or coalesced, in build order.
	Runs []store.Run
	// Coalesced counts runs that already waited and absorbed this update.
	Coalesced int
}

// BaseUpdated is the data of a base.updated event: the observation and
// the tasks of the wave it caused (in build order).
type BaseUpdated struct {
	store.Observation
	// Change is "changed" (the platform's manifest moved from OldDigest)
	// or "added" (a platform the reference did not have before).
	Change string   `json:"change"`
	Tasks  []string `json:"tasks"`
}

// Observe commits what a check saw (see Commit) and returns how many
// platforms changed. It is the watcher's index.Observer.
func (l *Runs) Observe(ctx context.Context, o index.Observation) (int, error) {
	res, err := l.Commit(ctx, o)
	return len(res.Changed), err
}

// Commit commits what was seen of o.Ref: the reference's new state, an
// observation per changed platform, and the wave of runs the change
// causes — all in one transaction, so a change is never recorded without
// its runs. An identical digest records only the check; the first check
// of a reference records its baseline and triggers nothing.
func (l *Runs) Commit(ctx context.Context, o index.Observation) (Result, error) {
	var res Result
	err := l.cfg.Store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		res, err = l.commit(tx, o)
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("observing %s: %w", o.Ref, err)
	}
	if len(res.Runs) > 0 {
		l.wake() // a wave without debounce starts now
	}
	if len(res.Changed) > 0 {
		l.cfg.Logger.Info("base updated", "ref", o.Ref, "digest", o.Digest, "source", o.Source,
			"platforms", len(res.Changed), "runs", len(res.Runs), "coalesced", res.Coalesced, "own", res.Own)
	}
	return res, nil
}

func (l *Runs) commit(tx *store.Tx, o index.Observation) (res Result, err error) {
	old, err := tx.BaseRef(o.Ref)
	if errors.Is(err, store.ErrNotFound) {
		res.Untracked = true
		return res, nil
	}
	if err != nil {
		return res, err
	}
	next := o.Next
	if next.IsZero() {
		next = time.Now().Add(l.cfg.Interval)
	}
	cur := store.BaseRef{Ref: o.Ref, Digest: o.Digest, MediaType: o.MediaType, Platforms: o.Platforms}
	record, baseline := plan.Sightings(old, cur, o.Source, time.Now().UTC())
	for _, ob := range record {
		if ob.ID, err = tx.AddObservation(ob); err != nil {
			return res, err
		}
		if !baseline {
			res.Changed = append(res.Changed, ob)
		}
	}
	if err := tx.SaveCheck(cur, len(res.Changed) > 0, next); err != nil {
		return res, err
	}
	if len(res.Changed) == 0 {
		return res, nil
	}
	if res.Own, err = tx.PushedBySucceededRun(o.Digest); err != nil {
		return res, err
	}
	var g *plan.Graph
	var direct []plan.Trigger
	if !res.Own {
		if g, err = l.taskGraph(tx); err != nil {
			return res, err
		}
		direct = g.BaseTriggers(o.Ref, o.Source, res.Changed)
	}
	// The cause before its effects: one base.updated event per changed
	// platform, naming the tasks of the wave, is written before the
	// wave's run.queued events, so that a consumer reading the outbox in
	// order sees the update before the runs it caused.
	var order []string
	var upstream map[string][]string
	if g != nil {
		order, upstream = g.Wave(direct)
	}
	for _, ob := range res.Changed {
		change := "changed"
		if ob.OldDigest == "" {
			change = "added"
		}
		if err := tx.Emit(store.EventBaseUpdated, o.Ref, BaseUpdated{Observation: ob, Change: change, Tasks: order}); err != nil {
			return res, err
		}
		// A platform new to the reference gets a diff too (OldDigest "":
		// every package added), so that nothing about it is silent.
		if err := l.requestDiffTx(tx, o.Ref, ob.Platform, ob.OldDigest, ob.Digest); err != nil {
			return res, err
		}
	}
	res.Runs, res.Coalesced, err = l.queueWave(tx, g, direct, order, upstream)
	return res, err
}

// cascade runs inside the transaction that finished run up, after the
// runs that waited for it were released: every task built on up's output
// that did not already wait for it gets a cascade run, and its own
// downstream wave.
func (l *Runs) cascade(tx *store.Tx, up store.Run, released []int64) error {
	g, err := l.taskGraph(tx)
	if err != nil {
		return err
	}
	pending, err := tx.PendingRuns()
	if err != nil {
		return err
	}
	direct := g.CascadeTriggers(up, pending, released)
	order, upstream := g.Wave(direct)
	_, _, err = l.queueWave(tx, g, direct, order, upstream)
	return err
}

// taskGraph returns the graph of the tasks as tx sees them, built anew
// only when the task set changed since the last one: reading and decoding
// every task in each write transaction would cost ~150 ms at 10,000
// tasks.
func (l *Runs) taskGraph(tx *store.Tx) (*plan.Graph, error) {
	v, err := tx.TasksVersion()
	if err != nil {
		return nil, err
	}
	l.graphMu.Lock()
	g, at := l.graph, l.graphAt
	l.graphMu.Unlock()
	if g != nil && at == v {
		return g, nil
	}
	tasks, err := tx.Tasks()
	if err != nil {
		return nil, err
	}
	g = plan.NewGraph(tasks, l.cfg.Registry)
	l.graphMu.Lock()
	l.graph, l.graphAt = g, v
	l.graphMu.Unlock()
	return g, nil
}

// queueWave creates (or coalesces into waiting runs) one run per task of
// the wave Graph.Wave ordered: the triggered tasks and every task built
// on their outputs, each blocked by the runs of the tasks it builds on.
// A run with nothing to wait for is enqueued after the debounce.
func (l *Runs) queueWave(tx *store.Tx, g *plan.Graph, direct []plan.Trigger, order []string, upstream map[string][]string) ([]store.Run, int, error) {
	if len(order) == 0 {
		return nil, 0, nil
	}
	pending, err := tx.PendingRuns()
	if err != nil {
		return nil, 0, err
	}
	causes := map[string]store.Cause{}
	for _, d := range direct {
		causes[d.Task] = d.Cause
	}
	runOf := map[string]store.Run{}
	var out []store.Run
	var ready []int64 // created without blockers: enqueued now
	coalesced := 0
	for _, name := range order {
		var blockers []int64
		for _, u := range upstream[name] {
			blockers = append(blockers, runOf[u].ID)
		}
		cause, isDirect := causes[name]
		if !isDirect {
			cause = plan.CascadeCause(runOf[upstream[name][0]])
		}
		if waiting := pending[name]; len(waiting) > 0 {
			w := waiting[len(waiting)-1]
			// refit's own push of an upstream run, seen before that run
			// was recorded succeeded, is that cascade, not a cause of
			// its own.
			if isDirect && w.Cause.Kind == "cascade" {
				own, err := l.upstreamPush(tx, w, cause)
				if err != nil {
					return nil, 0, err
				}
				isDirect = !own
			}
			r := plan.Coalesce(w, cause, isDirect, blockers)
			if err := tx.UpdatePending(r); err != nil {
				return nil, 0, err
			}
			runOf[name] = r
			out = append(out, r)
			coalesced++
			continue
		}
		t, _ := g.Task(name)
		// Enqueued together below, once the wave's runs are created.
		r, err := tx.CreateRun(store.Run{Task: name, Spec: t.Spec, Cause: cause, BlockedBy: blockers}, nil)
		if err != nil {
			return nil, 0, err
		}
		if len(blockers) == 0 {
			ready = append(ready, r.ID)
		}
		runOf[name] = r
		out = append(out, r)
	}
	if err := tx.EnqueueMany(ready, l.manyEnqueuer(l.cfg.Debounce)); err != nil {
		return nil, 0, err
	}
	return out, coalesced, nil
}

// manyEnqueuer is enqueuer for many runs: one insert of all their jobs.
func (l *Runs) manyEnqueuer(delay time.Duration) store.ManyEnqueuer {
	return func(ctx context.Context, tx *sql.Tx, runIDs []int64) (map[int64]int64, error) {
		opts := runJobOpts(delay)
		params := make([]river.InsertManyParams, len(runIDs))
		for i, id := range runIDs {
			params[i] = river.InsertManyParams{Args: Args{RunID: id}, InsertOpts: opts}
		}
		res, err := l.river.InsertManyTx(ctx, tx, params)
		if err != nil {
			return nil, err
		}
		// By the run each job's arguments name: the order of the rows an
		// insert returns is not the order given.
		jobs := make(map[int64]int64, len(res))
		for _, r := range res {
			var a Args
			if err := json.Unmarshal(r.Job.EncodedArgs, &a); err != nil {
				return nil, fmt.Errorf("reading job %d's arguments: %w", r.Job.ID, err)
			}
			jobs[a.RunID] = r.Job.ID
		}
		return jobs, nil
	}
}

// upstreamPush reports whether the base update cause is the output of
// one of the runs the waiting cascade w waits for (or was queued by).
func (l *Runs) upstreamPush(tx *store.Tx, w store.Run, cause store.Cause) (bool, error) {
	for _, id := range append([]int64{w.Cause.UpstreamRun}, w.BlockedBy...) {
		up, err := tx.GetRun(id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if slices.Contains(plan.Outputs(up.Spec, l.cfg.Registry), cause.Base) {
			return true, nil
		}
	}
	return false, nil
}
