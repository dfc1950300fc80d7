package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/refit-dev/refit/internal/catalog"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// Differ computes and keeps the diffs of base updates; *catalog.Service
// is one.
type Differ interface {
	// Diff computes (or returns the stored) diff from oldRef to newRef
	// (references by digest) for platform; oldRef "" is a platform new
	// to the reference (every package added).
	Diff(ctx context.Context, oldRef, newRef, platform string) (catalog.Diff, error)
	// StoredDiff returns the diff if it was computed, else
	// store.ErrNotFound, without a request.
	StoredDiff(ctx context.Context, oldDigest, newDigest string) (catalog.Diff, error)
}

var _ Differ = (*catalog.Service)(nil)

// defaultDiffWait is how long a run whose policy needs its base's diff
// waits for it before it builds anyway.
const defaultDiffWait = 2 * time.Minute

// diffPoll is how often a run waiting for its diff looks again (the diff
// job also wakes the queue when it is done).
const diffPoll = 2 * time.Second

// PolicyVerdict is what a task's baseChange policy says about one base
// update's diff.
type PolicyVerdict struct {
	// Rebuild is false when the update is skipped.
	Rebuild bool
	// Reason is what explain shows, e.g. "base moved, not rebuilt: no
	// package changed".
	Reason string
}

// Decide applies policy p to diff d. It is pure: the lifecycle calls it
// once the diff is ready.
//
//   - any (or no policy): rebuild.
//   - packages: rebuild when an OS package was added, removed or
//     changed; else skip.
//   - fixes: rebuild when the update fixes a vulnerability at or above
//     MinSeverity (default high); else skip. Without a vulnerability
//     database (d.Vulns nil) nothing can be said: rebuild, and say so.
func Decide(p *task.BaseChange, d catalog.Diff) PolicyVerdict {
	if p == nil {
		return PolicyVerdict{Rebuild: true}
	}
	switch p.RebuildWhen {
	case "packages":
		if !d.PackagesChanged() {
			return PolicyVerdict{Reason: "base moved, not rebuilt: no package changed"}
		}
		return PolicyVerdict{Rebuild: true, Reason: "rebuilt: " + packageSummary(d)}
	case "fixes":
		min := p.MinSeverity
		if min == "" {
			min = "high"
		}
		if d.Vulns == nil {
			return PolicyVerdict{Rebuild: true, Reason: "rebuilt: no vulnerability database to tell what the update fixes (fallback)"}
		}
		var fixes []string
		for _, v := range d.Vulns.Fixes {
			if catalog.SeverityRank(v.Severity) >= catalog.SeverityRank(min) {
				fixes = append(fixes, fmt.Sprintf("%s (%s) in %s", v.ID, v.Severity, v.Package))
			}
		}
		if len(fixes) == 0 {
			return PolicyVerdict{Reason: "base moved, not rebuilt: fixes no vulnerability at or above " + min}
		}
		return PolicyVerdict{Rebuild: true, Reason: "rebuilt: fixes " + strings.Join(fixes, ", ")}
	}
	return PolicyVerdict{Rebuild: true}
}

// Urgent reports whether d fixes a vulnerability at or above the
// policy's urgent severity, and the debounce that applies then.
func Urgent(p *task.BaseChange, d catalog.Diff) (time.Duration, bool) {
	if p == nil || p.Urgent == nil || d.Vulns == nil {
		return 0, false
	}
	for _, v := range d.Vulns.Fixes {
		if catalog.SeverityRank(v.Severity) >= catalog.SeverityRank(p.Urgent.Severity) {
			wait, _ := time.ParseDuration(p.Urgent.Debounce)
			return wait, true
		}
	}
	return 0, false
}

func packageSummary(d catalog.Diff) string {
	var parts []string
	if n := len(d.Changed); n > 0 {
		parts = append(parts, fmt.Sprintf("%d changed", n))
	}
	if n := len(d.Added); n > 0 {
		parts = append(parts, fmt.Sprintf("%d added", n))
	}
	if n := len(d.Removed); n > 0 {
		parts = append(parts, fmt.Sprintf("%d removed", n))
	}
	return "packages " + strings.Join(parts, ", ")
}

// verdict is the policy's answer for a run about to start.
type verdict struct {
	wait   time.Duration // > 0: the diff is not ready; look again after wait
	skip   bool
	reason string // recorded on the run ("" = nothing to say)
}

// judge applies the run's task policy to its base update's diff. A run
// not caused by a base change, or whose policy does not need the diff,
// proceeds at once. One whose diff is not ready waits (and asks for the
// diff, in case nobody did: a coalesced run's old → new pair is new)
// until its policy's Wait has passed since the run was queued; then it
// builds, and says the diff was late.
func (l *Runs) judge(ctx context.Context, run store.Run) (verdict, error) {
	c := run.Cause
	var p *task.BaseChange
	if run.Spec.Triggers != nil {
		p = run.Spec.Triggers.BaseChange
	}
	if l.cfg.Differ == nil || c.Kind != "base" || c.OldDigest == "" || c.NewDigest == "" || p == nil ||
		(p.RebuildWhen != "packages" && p.RebuildWhen != "fixes") {
		return verdict{}, nil
	}
	d, err := l.cfg.Differ.StoredDiff(ctx, c.OldDigest, c.NewDigest)
	if errors.Is(err, store.ErrNotFound) {
		wait := defaultDiffWait
		if w, err := time.ParseDuration(p.Wait); err == nil && p.Wait != "" {
			wait = w
		}
		if left := wait - time.Since(run.CreatedAt); left > 0 {
			if err := l.requestDiff(ctx, c.Base, c.Platform, c.OldDigest, c.NewDigest); err != nil {
				return verdict{}, err
			}
			return verdict{wait: min(left, diffPoll)}, nil
		}
		return verdict{reason: fmt.Sprintf("rebuilt: the base's diff was not ready within %s (fallback)", wait)}, nil
	}
	if err != nil {
		return verdict{}, err
	}
	dec := Decide(p, d)
	return verdict{skip: !dec.Rebuild, reason: dec.Reason}, nil
}
