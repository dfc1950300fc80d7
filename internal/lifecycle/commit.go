package lifecycle

import (
	"context"
	"fmt"

	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/redact"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// CommitResult says what committing a push did.
type CommitResult struct {
	// Replay is true when the delivery was taken before: nothing new
	// happened.
	Replay bool
	// Unused is true when no task's source is the repository.
	Unused bool
	// Runs are the runs of the wave, created or coalesced, in build order.
	Runs []store.Run
	// Coalesced counts runs that already waited and absorbed the push.
	Coalesced int
	// Skipped are the tasks on the repository that do not build the push,
	// and why.
	Skipped []plan.Skip
}

// Push commits a git push: the delivery (when delivery is not "", so the
// same delivery twice queues once), the head it moved (when head is true:
// polling's memory) and the wave of runs it causes, each at the pushed
// commit and started after the debounce — all in one transaction. A
// queued run of a task absorbs the push instead of a second run (its
// cause keeps every cause it absorbed).
func (l *Runs) Push(ctx context.Context, p plan.Push, delivery string, head bool) (CommitResult, error) {
	if len(p.Repos) == 0 {
		return CommitResult{}, fmt.Errorf("committing push of %s: no repository", p.Ref)
	}
	var res CommitResult
	err := l.cfg.Store.InTx(ctx, func(tx *store.Tx) error {
		res = CommitResult{}
		// The head first: a move another process already committed is
		// remembered here too.
		if head {
			if err := tx.SaveGitHead(task.RepoKey(p.Repos[0]), p.Ref, p.SHA); err != nil {
				return err
			}
		}
		if delivery != "" {
			fresh, err := tx.TakeEvent(delivery)
			if err != nil || !fresh {
				res.Replay = !fresh
				return err
			}
		}
		g, err := l.taskGraph(tx)
		if err != nil {
			return err
		}
		direct, skipped, used := g.CommitTriggers(p)
		res.Unused, res.Skipped = !used, skipped
		order, upstream := g.Wave(direct)
		res.Runs, res.Coalesced, err = l.queueWave(tx, g, direct, order, upstream)
		return err
	})
	if err != nil {
		return CommitResult{}, fmt.Errorf("committing push of %s to %s: %w", p.Ref, redact.URL(p.Repos[0]), err)
	}
	if len(res.Runs) > 0 {
		l.pilot.wake()
	}
	for _, s := range res.Skipped {
		l.cfg.Logger.Info("push skipped", "task", s.Task, "repo", redact.URL(p.Repos[0]), "ref", p.Ref, "sha", p.SHA, "reason", s.Reason)
	}
	if len(res.Runs) > 0 {
		l.cfg.Logger.Info("commit pushed", "repo", redact.URL(p.Repos[0]), "ref", p.Ref, "sha", p.SHA, "source", p.Source,
			"runs", len(res.Runs), "coalesced", res.Coalesced)
	}
	return res, nil
}

// CommitRepos returns the git repositories that tasks with the commit
// trigger on build from, by task.RepoKey: what polling lists.
func (l *Runs) CommitRepos(ctx context.Context) (map[string]plan.RepoInfo, error) {
	var repos map[string]plan.RepoInfo
	err := l.cfg.Store.InTx(ctx, func(tx *store.Tx) error {
		g, err := l.taskGraph(tx)
		if err != nil {
			return err
		}
		repos = g.Repos()
		return nil
	})
	return repos, err
}
