package serve

import (
	"context"
	"fmt"
	"strings"

	"github.com/refit-dev/refit/internal/githook"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/redact"
	"github.com/refit-dev/refit/internal/store"
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
	var v githook.Verdict
	for _, r := range res.Runs {
		v.Runs = append(v.Runs, store.FormatRunID(r.ID))
	}
	switch {
	case res.Replay:
		v.Replay = true
		v.Message = "delivery seen before; nothing new queued"
	case res.Unused:
		v.Message = fmt.Sprintf("no task builds repository %s", repo)
	case len(res.Runs) == 0:
		var why []string
		for _, s := range res.Skipped {
			why = append(why, s.Task+": "+s.Reason)
		}
		v.Message = fmt.Sprintf("no task builds %s: %s", ref, strings.Join(why, "; "))
	default:
		v.Message = fmt.Sprintf("%d run(s) queued or joined for %s", len(res.Runs), ref)
		if res.Coalesced > 0 {
			v.Message += fmt.Sprintf(" (%d joined a run already waiting)", res.Coalesced)
		}
	}
	return v
}
