package serve

import (
	"context"
	"log/slog"

	"github.com/refit-dev/refit/internal/githook"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/redact"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// gitPushes commits git pushes (a *lifecycle.Runs).
type gitPushes interface {
	Push(ctx context.Context, p plan.Push, delivery string, head bool) (lifecycle.CommitResult, error)
}

// acceptGitPush commits a webhook's push through the lifecycle and says
// what it did, for the git host's delivery log.
func acceptGitPush(runs gitPushes) func(ctx context.Context, p githook.Push) (githook.Verdict, error) {
	return func(ctx context.Context, p githook.Push) (githook.Verdict, error) {
		pp := plan.Push{Repos: p.Repos, Ref: p.Ref, SHA: p.SHA, Deleted: p.Deleted,
			DefaultBranch: p.DefaultBranch, Author: p.Author, Message: p.Message, Files: p.Files,
			FilesKnown: p.FilesKnown, Source: "webhook"}
		res, err := runs.Push(ctx, pp, p.Delivery, false)
		if err != nil {
			return githook.Verdict{}, err
		}
		return verdict(redact.URL(p.Repos[0]), p.Ref, res), nil
	}
}

// verdict says in words what committing a push did.
func verdict(repo, ref string, res lifecycle.CommitResult) githook.Verdict {
	return githook.Verdict{Runs: res.RunIDs(), Replay: res.Replay, Message: res.Verdict(repo, ref)}
}

// recordGitDelivery keeps the outcome of a webhook delivery as the last
// one of its repository and format, for `refit task triggers`. It is
// written after the push's transaction committed, not in it: refusals
// and polling have no such transaction and take the same path, and a row
// lost to a crash in between costs nothing (the host had no answer yet
// and redelivers). An unauthenticated (refused) delivery is kept only
// under a repository that tasks build with the commit trigger, so a
// caller cannot add rows: there is at most one per such repository and
// format.
func recordGitDelivery(st *store.Store, repos func(context.Context) (map[string]plan.RepoInfo, error), log *slog.Logger) func(context.Context, githook.Delivery) {
	return func(ctx context.Context, d githook.Delivery) {
		key := ""
		if d.Authenticated {
			key = task.RepoKey(d.Repos[0])
		} else {
			used, err := repos(ctx)
			if err != nil {
				log.Warn("recording a refused git webhook", "err", err)
				return
			}
			for _, r := range d.Repos {
				if _, ok := used[task.RepoKey(r)]; ok {
					key = task.RepoKey(r)
					break
				}
			}
		}
		if key == "" {
			return
		}
		err := st.RecordGitDelivery(ctx, store.GitDelivery{RepoKey: key, Source: string(d.Format), Delivery: d.Delivery,
			Ref: d.Ref, SHA: d.SHA, Status: d.Status, Message: d.Message, Runs: d.Runs})
		if err != nil {
			log.Warn("recording a git webhook delivery", "repo", key, "err", err)
		}
	}
}
