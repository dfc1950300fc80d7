package lifecycle

import (
	"context"
	"fmt"
	"strings"

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
		l.wake()
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

// Verdict says in words what committing a push of ref to repo (its URL,
// credentials masked by the caller) did: what a git host's delivery log
// and `refit task triggers` show.
//
// When some tasks build the push and others skip it, the message names
// the skipped ones too, each with its reason.
func (r CommitResult) Verdict(repo, ref string) string {
	var why []string
	for _, s := range r.Skipped {
		why = append(why, s.Task+": "+s.Reason)
	}
	switch {
	case r.Replay:
		return "delivery seen before; nothing new queued"
	case r.Unused:
		return fmt.Sprintf("no task builds repository %s", repo)
	case len(r.Runs) == 0:
		return fmt.Sprintf("no task builds %s: %s", ref, strings.Join(why, "; "))
	}
	msg := fmt.Sprintf("%d run(s) queued or joined for %s", len(r.Runs), ref)
	if r.Coalesced > 0 {
		msg += fmt.Sprintf(" (%d joined a run already waiting)", r.Coalesced)
	}
	if len(why) > 0 {
		msg += "; skipped " + strings.Join(why, "; ")
	}
	return msg
}

// RunIDs are the runs of the result as users write them ("r-7").
func (r CommitResult) RunIDs() []string {
	var ids []string
	for _, run := range r.Runs {
		ids = append(ids, store.FormatRunID(run.ID))
	}
	return ids
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
