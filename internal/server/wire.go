package server

import (
	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// This file maps store rows and plan results to the wire types of
// internal/api. Slices the API promises as arrays ([] not null) are made
// non-nil where the handler answers them.

func apiSpec(s task.Spec) api.TaskSpec {
	out := api.TaskSpec{
		Name:       s.Name,
		Source:     api.TaskSource{Git: s.Source.Git, Ref: s.Source.Ref, Dir: s.Source.Dir},
		Context:    s.Context,
		Dockerfile: s.Dockerfile,
		BuildArgs:  s.BuildArgs,
		Target:     s.Target,
		Platforms:  s.Platforms,
		Image:      s.Image,
		Tags:       s.Tags,
	}
	if tr := s.Triggers; tr != nil {
		out.Triggers = &api.Triggers{Commit: api.CommitTrigger(tr.Commit), Base: tr.Base, Manual: tr.Manual,
			BaseScope: tr.BaseScope, Patch: tr.Patch}
		for _, e := range tr.Schedule {
			out.Triggers.Schedule = append(out.Triggers.Schedule, api.Schedule(e))
		}
		for _, bt := range tr.BaseTags {
			out.Triggers.BaseTags = append(out.Triggers.BaseTags, api.BaseTag(bt))
		}
		if b := tr.BaseChange; b != nil {
			out.Triggers.BaseChange = &api.BaseChange{RebuildWhen: b.RebuildWhen, MinSeverity: b.MinSeverity, Wait: b.Wait}
			if b.Urgent != nil {
				out.Triggers.BaseChange.Urgent = &api.Urgent{Severity: b.Urgent.Severity, Debounce: b.Urgent.Debounce}
			}
		}
	}
	if t := s.Test; t != nil {
		out.Test = &api.TaskTest{Target: t.Target, Command: t.Command}
	}
	if p := s.Promote; p != nil {
		out.Promote = &api.Promote{Tags: p.Tags, Policy: p.Policy, RequireApprovalFor: p.RequireApprovalFor,
			ReapproveOnChange: p.ReapproveOnChange}
		if a := p.Approvers; a != nil {
			out.Promote.Approvers = &api.Approvers{Role: a.Role, Count: a.Count}
		}
	}
	return out
}

func apiBases(bs []dockerfile.Base) []api.Base {
	if bs == nil {
		return nil
	}
	out := make([]api.Base, len(bs))
	for i, b := range bs {
		out[i] = api.Base{Stage: b.Stage, Role: string(b.Role), Kind: string(b.Kind), Ref: b.Ref,
			Name: b.Name, Platform: b.Platform, Line: b.Line}
	}
	return out
}

func apiTask(t store.Task) api.Task {
	return api.Task{Spec: apiSpec(t.Spec), Bases: apiBases(t.Bases), CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, TagArgs: t.TagArgs}
}

func apiCause(c store.Cause) api.Cause {
	out := api.Cause{Kind: c.Kind, User: c.User, Repo: c.Repo, Ref: c.Ref, SHA: c.SHA, Author: c.Author,
		Base: c.Base, Platform: c.Platform, OldDigest: c.OldDigest, NewDigest: c.NewDigest,
		Schedule: c.Schedule, ScheduleName: c.ScheduleName, DueAt: c.DueAt, OldTag: c.OldTag, NewTag: c.NewTag, Observation: c.Observation, Source: c.Source, UpstreamRun: c.UpstreamRun,
		Decision: c.Decision, Changes: c.Changes}
	if c.Upstream != nil {
		up := apiCause(*c.Upstream)
		out.Upstream = &up
	}
	out.Message = c.Message
	for _, a := range c.Also {
		out.Also = append(out.Also, apiCause(a))
	}
	return out
}

func apiRun(r store.Run) api.Run {
	out := api.Run{ID: api.FormatRunID(r.ID), Task: r.Task, Spec: apiSpec(r.Spec), State: api.RunState(r.State),
		Cause: apiCause(r.Cause), Attempts: r.Attempts, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt,
		FinishedAt: r.FinishedAt, Commit: r.Commit, Image: r.Image, Digest: r.Digest, Tags: r.Tags,
		Step: r.Step, Error: r.Error, Timings: r.Timings, BlockedBy: r.BlockedBy}
	if r.Bases != nil {
		out.Bases = make([]api.UsedBase, len(r.Bases))
		for i, b := range r.Bases {
			out.Bases[i] = api.UsedBase{Ref: b.Ref, Name: b.Name, Stage: b.Stage, Role: b.Role, Digest: b.Digest}
		}
	}
	for _, p := range r.Platforms {
		out.Platforms = append(out.Platforms, api.PlatformDigest{Platform: p.Platform, Digest: p.Digest})
	}
	return out
}

func apiRuns(rs []store.Run) []api.Run {
	if rs == nil {
		return nil
	}
	out := make([]api.Run, len(rs))
	for i, r := range rs {
		out[i] = apiRun(r)
	}
	return out
}

func apiBaseInfo(b store.BaseRef, uses []api.BaseUse) api.BaseInfo {
	out := api.BaseInfo{Ref: b.Ref, Digest: b.Digest, MediaType: b.MediaType, AddedAt: b.AddedAt,
		CheckedAt: b.CheckedAt, ChangedAt: b.ChangedAt, NextCheckAt: b.NextCheckAt, Failures: b.Failures,
		LastError: b.LastError, ErrorSince: b.ErrorSince, Tasks: uses}
	if b.Platforms != nil {
		out.Platforms = make([]api.PlatformDigest, len(b.Platforms))
		for i, p := range b.Platforms {
			out.Platforms[i] = api.PlatformDigest{Platform: p.Platform, Digest: p.Digest}
		}
	}
	return out
}

func apiObservation(o store.Observation) api.Observation {
	return api.Observation{ID: o.ID, Ref: o.Ref, Platform: o.Platform, Digest: o.Digest, OldDigest: o.OldDigest,
		TopDigest: o.TopDigest, Source: o.Source, SeenAt: o.SeenAt}
}

func apiExplanation(e plan.Explanation) api.Explanation {
	out := api.Explanation{Task: e.Task, Trigger: e.Trigger, Upstream: e.Upstream, Dependent: e.Dependent,
		LastRuns: apiRuns(e.LastRuns), Verdict: e.Verdict}
	if e.Bases != nil {
		out.Bases = make([]api.BaseStatus, len(e.Bases))
		for i, b := range e.Bases {
			out.Bases[i] = api.BaseStatus{Ref: b.Ref, Stage: b.Stage, Role: b.Role, Watched: b.Watched,
				Tracked: b.Tracked, Current: b.Current, MediaType: b.MediaType, Built: b.Built, Stale: b.Stale, CheckedAt: b.CheckedAt,
				ChangedAt: b.ChangedAt, NextCheckAt: b.NextCheckAt, LastError: b.LastError,
				ErrorSince: b.ErrorSince, Pinned: b.Pinned}
		}
	}
	return out
}

func apiEvent(e store.Event) api.Event {
	return api.Event{Seq: e.Seq, ID: e.ID, Type: e.Type, Subject: e.Subject, Time: e.Time, Data: e.Data}
}

func apiSubscription(s store.Subscription) api.Subscription {
	return api.Subscription{ID: s.ID, URL: s.URL, Types: s.Types, Task: s.TaskGlob, BaseRef: s.RefGlob,
		Signed: s.HasSecret, CreatedAt: s.CreatedAt, Cursor: s.Cursor}
}

func apiDelivery(d store.Delivery) api.Delivery {
	return api.Delivery{Subscription: d.SubscriptionID, Event: apiEvent(d.Event), State: d.State,
		Attempts: d.Attempts, NextAttemptAt: d.NextAttemptAt, LastError: d.LastError,
		DeliveredAt: d.DeliveredAt, RetrySince: d.RetrySince}
}

func apiCredential(c store.RegistryCredential) api.RegistryCredential {
	return api.RegistryCredential{Host: c.Host, Username: c.Username, UpdatedAt: c.UpdatedAt}
}

// apiList maps every row with fn; never nil, so an empty list is [].
func apiList[T, U any](rows []T, fn func(T) U) []U {
	out := make([]U, len(rows))
	for i, r := range rows {
		out[i] = fn(r)
	}
	return out
}
