package attest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/refit-dev/refit/internal/redact"
	"github.com/refit-dev/refit/internal/store"
)

// RunDB is what building a run's story reads from refit's database:
// the runs of a cascade and the observation a base update came from.
type RunDB interface {
	GetRun(ctx context.Context, id int64) (store.Run, error)
	Observation(ctx context.Context, id int64) (store.Observation, error)
	// Approvals are the decisions on a run awaiting approval.
	Approvals(ctx context.Context, runID int64) ([]store.Approval, error)
}

var _ RunDB = (*store.Store)(nil)

// FromRun returns the predicate for run as refit's database tells it:
// the run, its cause chain (each cascade followed to the run it came
// from, up to 64 links; the base update's observation time looked up),
// its source and commit, the bases it pinned and the image it pushed.
// serverID is the signing key's ID. A run or observation of the chain
// that is gone ends the chain with what the cause carries; only a
// failing database is an error.
func FromRun(ctx context.Context, db RunDB, run store.Run, serverID string) (Predicate, error) {
	p := Predicate{
		Run: RunInfo{ID: store.FormatRunID(run.ID), Task: run.Task, State: string(run.State),
			CreatedAt: run.CreatedAt, StartedAt: run.StartedAt, FinishedAt: run.FinishedAt},
		Server:     ServerInfo{ID: serverID},
		AttestedAt: time.Now().UTC().Truncate(time.Millisecond), // several statements of a run in one second still order
	}
	spec := run.Spec
	if spec.Source.Git != "" {
		p.Source = SourceInfo{Repo: redact.URL(spec.Source.Git), Ref: spec.Source.Ref, SHA: run.Commit}
	} else {
		p.Source = SourceInfo{Dir: spec.Source.Dir}
	}
	for _, b := range run.Bases {
		p.Bases = append(p.Bases, Base{Ref: b.Ref, Stage: b.Stage, Role: b.Role, Digest: b.Digest})
	}
	p.Image = Image{Repository: repository(run.Image), Digest: run.Digest, Tags: run.Tags}
	for _, pl := range run.Platforms {
		p.Image.Platforms = append(p.Image.Platforms, Platform{Platform: pl.Platform, Digest: pl.Digest})
	}
	p.Test = testResult(run)
	if run.Spec.Promote != nil && run.State == store.StateSucceeded {
		// Promoted: its promote tags point here (until a newer promotion).
		p.Image.Tags = append(p.Image.Tags, run.Spec.Promote.Tags...)
	}
	decisions, err := db.Approvals(ctx, run.ID)
	if err != nil {
		return p, err
	}
	for _, a := range decisions {
		if a.Digest == run.Digest {
			p.Approvals = append(p.Approvals, Approval{User: a.User, Decision: a.Decision, Comment: a.Comment, At: a.CreatedAt})
		}
	}
	chain, err := Chain(ctx, db, run)
	if err != nil {
		return p, err
	}
	p.Cause = chain
	return p, nil
}

// testResult is the run's test as its state tells it: passed once a
// tested run went on to approval or promotion, failed when it ended at
// step test; nil for a run without a test or still testing.
func testResult(run store.Run) *TestResult {
	t := run.Spec.Test
	if t == nil {
		return nil
	}
	res := &TestResult{Target: t.Target, Command: t.Command, At: run.FinishedAt}
	switch {
	case run.State == store.StateFailed && run.Step == "test":
		res.Result = "failed"
	case run.State == store.StateAwaitingApproval, run.State == store.StatePromoting, run.State == store.StateSucceeded,
		run.State == store.StateRejected, run.State == store.StateSuperseded:
		res.Result = "passed"
	default:
		return nil
	}
	return res
}

// Chain returns run's cause chain: its own cause first, then for a
// cascade each upstream run's, down to the root cause.
func Chain(ctx context.Context, db RunDB, run store.Run) ([]CauseLink, error) {
	var links []CauseLink
	r := run
	for len(links) < maxChain {
		c := r.Cause
		link, err := linkOf(ctx, db, c)
		if err != nil {
			return links, err
		}
		link.Run, link.Task = store.FormatRunID(r.ID), r.Task
		if c.Kind != "cascade" || c.UpstreamRun == 0 {
			return append(links, link), nil
		}
		link.UpstreamRun = store.FormatRunID(c.UpstreamRun)
		up, err := db.GetRun(ctx, c.UpstreamRun)
		if errors.Is(err, store.ErrNotFound) {
			// The upstream run is gone: end with the cause it carried.
			links = append(links, link)
			if c.Upstream != nil && len(links) < maxChain {
				root, err := linkOf(ctx, db, *c.Upstream)
				if err != nil {
					return links, err
				}
				links = append(links, root)
			}
			return links, nil
		}
		if err != nil {
			return links, fmt.Errorf("cause chain of run %s: %w", store.FormatRunID(run.ID), err)
		}
		link.UpstreamTask, link.UpstreamImage = up.Task, up.Image
		links = append(links, link)
		r = up
	}
	return links, nil
}

// linkOf is the link of cause c, without the run it caused.
func linkOf(ctx context.Context, db RunDB, c store.Cause) (CauseLink, error) {
	l := CauseLink{Kind: c.Kind, User: c.User, Schedule: c.Schedule,
		Repo: redact.URL(c.Repo), Ref: c.Ref, SHA: c.SHA, Author: c.Author,
		Base: c.Base, Platform: c.Platform, OldDigest: c.OldDigest, NewDigest: c.NewDigest, Via: c.Source}
	if c.Kind == "base" && c.Observation != 0 {
		o, err := db.Observation(ctx, c.Observation)
		switch {
		case err == nil:
			l.ObservedAt = o.SeenAt
			if l.Via == "" {
				l.Via = o.Source
			}
		case !errors.Is(err, store.ErrNotFound):
			return l, fmt.Errorf("observation %d: %w", c.Observation, err)
		}
	}
	return l, nil
}

// repository is image ("repo@sha256:…") without its digest.
func repository(image string) string {
	if i := strings.LastIndexByte(image, '@'); i >= 0 {
		return image[:i]
	}
	return image
}
