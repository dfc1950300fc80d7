package lifecycle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/riverqueue/river"

	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
)

type worker struct {
	river.WorkerDefaults[Args]
	l *Runs
}

// Work takes a run from queued to its end: start it, execute it, and
// record the end. A failed execution ends the run, not the job; only a
// failure to record state is returned (and retried by the queue).
func (w *worker) Work(ctx context.Context, job *river.Job[Args]) error {
	l := w.l
	st := l.cfg.Store
	log := l.cfg.Logger.With("run", store.FormatRunID(job.Args.RunID))
	v, err := l.policy(ctx, job.Args.RunID)
	if err != nil {
		return err
	}
	if v.wait > 0 {
		// Its base's diff is not ready: the run gets a job due after the
		// wait (a snoozed job would wait for River's 5 s scheduler), and
		// this one ends.
		return l.inTx(ctx, func(tx *store.Tx) error {
			if owns, err := tx.JobOwns(job.Args.RunID, job.ID); err != nil || !owns {
				return err
			}
			return tx.Enqueue(job.Args.RunID, l.enqueuer(v.wait))
		})
	}
	run, err := st.StartRun(ctx, job.Args.RunID, job.ID)
	if errors.Is(err, store.ErrStaleJob) {
		log.Info("run was requeued under another job; this one ends")
		return nil
	}
	if err != nil {
		return err
	}
	if run.State.Done() {
		log.Info("run already ended; nothing to do", "state", run.State)
		return nil
	}
	log.Info("run started", "task", run.Task, "attempt", run.Attempts)
	if v.reason != "" {
		if err := st.NoteDecision(ctx, run.ID, v.reason); err != nil {
			return err
		}
		run.Cause.Decision = v.reason
	}
	if v.skip {
		return l.skip(ctx, run, v.reason)
	}

	logs := newLogWriter(st, run.ID)
	out, execErr := l.cfg.Executor.Execute(ctx, run, &runLogs{logWriter: logs, l: l, run: run})
	logs.Close()

	// Record the end even if the job's context is gone (shutdown).
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	run = ended(ctx, run, out, execErr)
	if run.State == store.StateSucceeded && run.Spec.Promote != nil {
		// Built (and tested): promotion decides the rest (promote.go).
		gone, err := l.gate(saveCtx, run)
		if errors.Is(err, store.ErrFinished) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, id := range gone {
			l.markEnded(id)
		}
		if run.Spec.Test != nil && !slices.Contains(gone, run.ID) {
			l.reattest(saveCtx, run.ID) // the image's record gains its test result
		}
		log.Info("run built; promotion follows its policy", "image", run.Image)
		return nil
	}
	if err := l.finish(saveCtx, run); err != nil {
		if errors.Is(err, store.ErrFinished) {
			return nil
		}
		return err
	}
	l.markEnded(run.ID)
	if run.Spec.Test != nil && run.Step == "test" {
		l.reattest(saveCtx, run.ID) // the pushed image's record says its test failed
	}
	log.Info("run ended", "state", run.State, "image", run.Image, "error", run.Error)
	return nil
}

// policy is the verdict of the run's task policy on its base update
// (see judge); the zero verdict (build now) when there is nothing to
// judge.
func (l *Runs) policy(ctx context.Context, runID int64) (verdict, error) {
	if l.cfg.Differ == nil {
		return verdict{}, nil
	}
	run, err := l.cfg.Store.GetRun(ctx, runID)
	if err != nil || run.State != store.StateQueued {
		return verdict{}, nil // StartRun says what is wrong
	}
	return l.judge(ctx, run)
}

// skip ends a started run as skipped by its task's policy, saying why,
// and releases (cancels) the runs that waited for it.
func (l *Runs) skip(ctx context.Context, run store.Run, reason string) error {
	run.State, run.Step, run.Error = store.StateSkipped, "baseChange", reason
	run.FinishedAt = time.Now().UTC()
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := l.finish(saveCtx, run); err != nil && !errors.Is(err, store.ErrFinished) {
		return err
	}
	l.markEnded(run.ID)
	l.cfg.Logger.Info("run skipped", "run", store.FormatRunID(run.ID), "task", run.Task, "reason", reason)
	return nil
}

// ended returns the started run as it ends after an execution that gave
// out and err: succeeded on no error; canceled when ctx (the job's) ended;
// else failed, at the step a *StepError names.
func ended(ctx context.Context, run store.Run, out Outcome, err error) store.Run {
	run = out.Pushed(run)
	run.Timings = map[string]string{"queued": run.StartedAt.Sub(run.CreatedAt).Round(time.Millisecond).String()}
	maps.Copy(run.Timings, out.Timings)
	run.FinishedAt = time.Now().UTC()
	run.Timings["total"] = run.FinishedAt.Sub(run.StartedAt).Round(time.Millisecond).String()
	var se *StepError
	switch {
	case err == nil:
		run.State = store.StateSucceeded
	case ctx.Err() != nil:
		run.State = store.StateCanceled
		run.Error = "canceled: " + context.Cause(ctx).Error()
		if errors.As(err, &se) {
			run.Step = se.Step
		}
	case errors.As(err, &se):
		run.State, run.Step, run.Error = store.StateFailed, se.Step, se.Err.Error()
	default:
		run.State, run.Error = store.StateFailed, err.Error()
	}
	return run
}

// finish records that r ended and, in the same transaction, releases the
// runs of its wave that waited for it — when it succeeded, each with no
// other blocker left is enqueued; when it did not, they are canceled,
// transitively, each saying which upstream run stopped it — and, when it
// succeeded and pushed a different image than the task's previous
// succeeded run (see samePlatforms), cascades to the tasks built on its
// output: a rebuild that changed nothing rebuilds nothing. Nor does it
// build the runs of its wave that were queued only because of it: they
// end as not built (see release).
func (l *Runs) finish(ctx context.Context, r store.Run) error {
	if !r.State.Done() {
		return fmt.Errorf("finishing run %s: state %s is not an end", store.FormatRunID(r.ID), r.State)
	}
	return l.inTx(ctx, func(tx *store.Tx) error { return l.finishTx(tx, r) })
}

// finishTx is finish's transaction: the run's end, what it means for the
// runs waiting on it, and its cascade when it pushed something new.
func (l *Runs) finishTx(tx *store.Tx, r store.Run) error {
	if err := tx.SaveRun(r); err != nil {
		return err
	}
	outcome, err := l.outcome(tx, r)
	if err != nil {
		return err
	}
	released, err := l.release(tx, r, outcome)
	if err != nil || outcome != pushedNew {
		return err
	}
	return l.cascade(tx, r, released)
}

// upstreamOutcome is what an ended run means for the runs that wait
// for it.
type upstreamOutcome int

const (
	// pushedNew: it succeeded and pushed an image that differs from the
	// task's previous one (or is not known to be the same).
	pushedNew upstreamOutcome = iota
	// pushedSame: it succeeded and pushed the same platform images as
	// the task's previous succeeded run.
	pushedSame
	// notBuilt: it failed or was canceled (no image at all).
	notBuilt
	// notNeeded: it was not built because nothing it builds on changed
	// (its previous image stands).
	notNeeded
)

// outcome says what the ended run r means for the runs that wait for it.
func (l *Runs) outcome(tx *store.Tx, r store.Run) (upstreamOutcome, error) {
	if r.State != store.StateSucceeded {
		return notBuilt, nil
	}
	prev, err := tx.PreviousSucceeded(r.Task, r.ID)
	if errors.Is(err, store.ErrNotFound) {
		return pushedNew, nil
	}
	if err != nil {
		return 0, err
	}
	if samePlatforms(prev.Platforms, r.Platforms) {
		l.cfg.Logger.Info("image unchanged: no cascade", "run", store.FormatRunID(r.ID),
			"same_as", store.FormatRunID(prev.ID), "digest", r.Digest)
		return pushedSame, nil
	}
	return pushedNew, nil
}

// samePlatforms reports whether two pushes hold the same images: the
// same digest for every platform, and at least one known. An index
// digest is not compared: it moves with the provenance's timestamps
// alone. Unknown platform digests (a run from before they were
// recorded, or whose read-back failed) count as a change.
func samePlatforms(a, b []store.PlatformDigest) bool {
	if len(a) == 0 || len(a) != len(b) {
		return false
	}
	sorted := func(p []store.PlatformDigest) []store.PlatformDigest {
		return slices.SortedFunc(slices.Values(p), func(x, y store.PlatformDigest) int {
			return cmp.Or(cmp.Compare(x.Platform, y.Platform), cmp.Compare(x.Digest, y.Digest))
		})
	}
	return slices.Equal(sorted(a), sorted(b))
}

// release updates the runs that waited for up, which ended with the
// given outcome, and returns their IDs. When up built nothing, they are
// canceled, transitively. When up's image is the one it had (pushedSame)
// or up was not needed, a run queued only because of up — a cascade
// whose cause is up and that waits for nothing else — is not needed
// either: it ends canceled at step "upstream", saying so, and releases
// its own dependents the same way. A run with a cause of its own (a base
// update, a commit, a manual run) builds all the same, and a cascade
// that still waits for another upstream run is attributed to that one.
// A run released by an upstream that pushed a new image is attributed
// to it, so that it cannot be dropped later on account of another.
func (l *Runs) release(tx *store.Tx, up store.Run, outcome upstreamOutcome) ([]int64, error) {
	waiting, err := tx.WaitingFor(up.ID)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, d := range waiting {
		ids = append(ids, d.ID)
		d.BlockedBy = slices.DeleteFunc(d.BlockedBy, func(id int64) bool { return id == up.ID })
		if outcome == notBuilt {
			d.State = store.StateCanceled
			d.Step = "upstream"
			d.Error = fmt.Sprintf("not built: upstream run %s (task %s) %s", store.FormatRunID(up.ID), up.Task, up.State)
			d.FinishedAt = time.Now().UTC()
			if err := tx.SaveRun(d); errors.Is(err, store.ErrFinished) {
				continue // canceled already, through another run it waited for
			} else if err != nil {
				return nil, err
			}
			if _, err := l.release(tx, d, notBuilt); err != nil {
				return nil, err
			}
			continue
		}
		onlyUp := d.Cause.Kind == "cascade" && d.Cause.UpstreamRun == up.ID
		switch {
		case outcome == pushedNew && d.Cause.Kind == "cascade" && slices.Contains(d.BlockedBy, d.Cause.UpstreamRun):
			d.Cause = plan.CascadeCause(up)
		case outcome != pushedNew && onlyUp && len(d.BlockedBy) > 0:
			other, err := tx.GetRun(d.BlockedBy[0])
			if err != nil {
				return nil, err
			}
			d.Cause = plan.CascadeCause(other)
		case outcome != pushedNew && onlyUp:
			why := "pushed an unchanged image"
			if outcome == notNeeded {
				why = "was not needed either"
			}
			d.State = store.StateCanceled
			d.Step = "upstream"
			d.Error = fmt.Sprintf("not built: upstream run %s (task %s) %s", store.FormatRunID(up.ID), up.Task, why)
			d.FinishedAt = time.Now().UTC()
			if err := tx.SaveRun(d); errors.Is(err, store.ErrFinished) {
				continue
			} else if err != nil {
				return nil, err
			}
			if _, err := l.release(tx, d, notNeeded); err != nil {
				return nil, err
			}
			continue
		}
		if err := tx.UpdatePending(d); err != nil {
			return nil, err
		}
		if len(d.BlockedBy) == 0 {
			if err := tx.Enqueue(d.ID, l.enqueuer(0)); err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}
