package lifecycle

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/refit-dev/refit/internal/catalog"
	"github.com/refit-dev/refit/internal/store"
)

// DiffArgs is the job that computes one base update's diff, off the
// critical path: the update's runs are queued at once, and only those
// whose policy needs the diff wait for it. Jobs are unique per
// (old, new) digest pair, so a base used by many tasks, or seen moving
// by several processes, is diffed once. OldDigest "" is a platform new
// to the reference: its diff lists every package as added.
type DiffArgs struct {
	Ref       string `json:"ref"`
	Platform  string `json:"platform"`
	OldDigest string `json:"old" river:"unique"`
	NewDigest string `json:"new" river:"unique"`
}

// Kind names the job kind in the queue.
func (DiffArgs) Kind() string { return "refit.diff" }

// BaseDiff is the data of a base.diff event: which update it is about
// and what changed.
type BaseDiff struct {
	Ref       string       `json:"ref"`
	Platform  string       `json:"platform"`
	OldDigest string       `json:"oldDigest"`
	NewDigest string       `json:"newDigest"`
	Tasks     []string     `json:"tasks,omitempty"`
	Diff      catalog.Diff `json:"diff"`
}

// diffOpts make diff jobs unique per digest pair (DiffArgs' unique
// fields), whatever their state, while River keeps the job.
var diffOpts = &river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByArgs: true}}

// requestDiffTx inserts the diff job of one update in tx; nothing when
// a job for the pair exists or no Differ is configured.
func (l *Runs) requestDiffTx(tx *store.Tx, ref, platform, oldDigest, newDigest string) error {
	if l.cfg.Differ == nil {
		return nil
	}
	args := DiffArgs{Ref: ref, Platform: platform, OldDigest: oldDigest, NewDigest: newDigest}
	return tx.InsertJob(func(ctx context.Context, stx *sql.Tx) error {
		_, err := l.river.InsertTx(ctx, stx, args, diffOpts)
		return err
	})
}

// requestDiff is requestDiffTx in a transaction of its own.
func (l *Runs) requestDiff(ctx context.Context, ref, platform, oldDigest, newDigest string) error {
	if l.cfg.Differ == nil {
		return nil
	}
	err := l.inTx(ctx, func(tx *store.Tx) error {
		return l.requestDiffTx(tx, ref, platform, oldDigest, newDigest)
	})
	if err != nil {
		return fmt.Errorf("queueing the diff of %s: %w", ref, err)
	}
	return nil
}

type diffWorker struct {
	river.WorkerDefaults[DiffArgs]
	l *Runs
}

// Timeout bounds one diff: two catalogs, each bounded by the catalog
// limits.
func (w *diffWorker) Timeout(*river.Job[DiffArgs]) time.Duration { return 10 * time.Minute }

// Work computes the diff (stored by the Differ), emits base.diff, and
// starts at once the runs of this update whose task's urgent policy
// the diff meets.
func (w *diffWorker) Work(ctx context.Context, job *river.Job[DiffArgs]) error {
	l, a := w.l, job.Args
	oldRef := "" // a platform new to the reference (see catalog.Added)
	if a.OldDigest != "" {
		var err error
		if oldRef, err = catalog.DigestRef(a.Ref, a.OldDigest); err != nil {
			return err
		}
	}
	newRef, err := catalog.DigestRef(a.Ref, a.NewDigest)
	if err != nil {
		return err
	}
	d, err := l.cfg.Differ.Diff(ctx, oldRef, newRef, a.Platform)
	if err != nil {
		l.cfg.Logger.Warn("base diff failed", "ref", a.Ref, "old", a.OldDigest, "new", a.NewDigest, "error", err)
		return err
	}
	err = l.inTx(ctx, func(tx *store.Tx) error {
		pending, err := tx.PendingRuns()
		if err != nil {
			return err
		}
		var tasks []string
		for name, runs := range pending {
			for _, r := range runs {
				c := r.Cause
				if c.Kind != "base" || c.OldDigest != a.OldDigest || c.NewDigest != a.NewDigest || len(r.BlockedBy) > 0 {
					continue
				}
				tasks = append(tasks, name)
				if err := tx.NoteChanges(r.ID, d.Summary()); err != nil {
					return err
				}
				if r.Spec.Triggers == nil {
					continue
				}
				if delay, ok := Urgent(r.Spec.Triggers.BaseChange, d); ok {
					// A new job replaces the debounced one (which then
					// finds itself stale and ends).
					if err := tx.Enqueue(r.ID, l.enqueuer(delay)); err != nil {
						return err
					}
					l.cfg.Logger.Info("urgent fix: run starts without the debounce", "run", store.FormatRunID(r.ID), "task", name)
				}
			}
		}
		return tx.Emit(store.EventBaseDiff, a.Ref, BaseDiff{Ref: a.Ref, Platform: a.Platform,
			OldDigest: a.OldDigest, NewDigest: a.NewDigest, Tasks: tasks, Diff: d})
	})
	if err != nil {
		return fmt.Errorf("recording the diff of %s: %w", a.Ref, err)
	}
	l.cfg.Logger.Info("base diff ready", "ref", a.Ref, "changed", len(d.Changed), "added", len(d.Added), "removed", len(d.Removed))
	return nil
}
