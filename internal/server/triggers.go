package server

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/redact"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// triggers answers GET /api/v1/tasks/{name}/triggers: a section per kind
// of trigger. Each kind's owner fills its section.
func (s *Server) triggers(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	t, err := s.cfg.Store.GetTask(ctx, r.PathValue("name"))
	if err != nil {
		return taskError(r.PathValue("name"), err)
	}
	spec := t.Spec.Defaults()
	tr := spec.Triggers
	out := api.TaskTriggers{Task: spec.Name}
	if out.Commit, err = s.commitSection(r, spec); err != nil {
		return err
	}
	out.Base = api.BaseTrigger{Enabled: tr.Base, Scope: tr.BaseScope, Patch: tr.Patch, Watched: []string{}}
	g := plan.NewGraph([]store.Task{t}, s.cfg.Registry)
	for _, b := range t.Bases {
		if g.Watches(spec.Name, b.Ref) && !slices.Contains(out.Base.Watched, b.Ref) {
			out.Base.Watched = append(out.Base.Watched, b.Ref)
		}
	}
	out.Manual = api.ManualTrigger{Enabled: tr.Manual}
	if out.Schedule, err = s.scheduleSection(r, spec.Name, tr.Schedule); err != nil {
		return err
	}
	if out.BaseTags, err = s.baseTagsSection(r, t); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// scheduleSection lists the task's schedules: the next three due times
// (from the scheduler's stored next due time, or from now for one it has
// not read yet, or not since it changed) and the last scheduled run.
func (s *Server) scheduleSection(r *http.Request, taskName string, list []task.Schedule) (api.ScheduleTrigger, error) {
	out := api.ScheduleTrigger{Schedules: []api.ScheduleStatus{}}
	if len(list) == 0 {
		return out, nil
	}
	rows, err := s.cfg.Store.TaskSchedules(r.Context(), taskName)
	if err != nil {
		return out, err
	}
	byName := map[string]store.ScheduleState{}
	for _, row := range rows {
		byName[row.Name] = row
	}
	for _, e := range list {
		st := api.ScheduleStatus{Name: e.Name, Cron: e.Cron, Timezone: e.Timezone, CatchUp: e.CatchUp, Next: []time.Time{}}
		loc := e.Location()
		row, ok := byName[e.Name]
		var stored task.Schedule
		if ok && json.Unmarshal([]byte(row.Spec), &stored) == nil && stored == e {
			st.Next = append(st.Next, row.NextDue.In(loc))
			st.Next = append(st.Next, e.Next(row.NextDue, 2)...)
		} else {
			st.Next = append(st.Next, e.Next(time.Now(), 3)...)
		}
		if ok && row.LastRun != 0 {
			st.LastDue = row.LastDue.In(loc)
			st.LastRun = api.FormatRunID(row.LastRun)
			if run, err := s.cfg.Store.GetRun(r.Context(), row.LastRun); err == nil {
				st.LastState = api.RunState(run.State)
			}
		}
		out.Schedules = append(out.Schedules, st)
	}
	return out, nil
}

// baseTagsSection lists the task's baseTags entries with the newest
// matching tag the index has seen for each, the repository's listing
// state, and the tag the entry's arg carries in the task's runs now.
func (s *Server) baseTagsSection(r *http.Request, t store.Task) (api.BaseTagsTrigger, error) {
	out := api.BaseTagsTrigger{Entries: []api.BaseTagStatus{}}
	if t.Spec.Triggers == nil || len(t.Spec.Triggers.BaseTags) == 0 {
		return out, nil
	}
	repos, err := s.cfg.Store.ListTagRepos(r.Context())
	if err != nil {
		return out, err
	}
	byRepo := map[string]store.TagRepo{}
	for _, tr := range repos {
		byRepo[tr.Repository] = tr
	}
	for _, bt := range t.Spec.Triggers.BaseTags {
		st := api.BaseTagStatus{BaseTag: api.BaseTag(bt)}
		st.Repository, _ = task.Repository(bt.Ref)
		if tr, ok := byRepo[st.Repository]; ok {
			seen := tr.Newest[task.RuleKey(bt.Semver, bt.Prerelease)]
			st.Newest, st.NewestDigest, st.NewestSeenAt = seen.Tag, seen.Digest, seen.SeenAt
			st.ListedAt, st.NextListAt, st.LastError = tr.ListedAt, tr.NextListAt, tr.LastError
		}
		if bt.Arg != "" {
			st.Current = cmp.Or(t.TagArgs[bt.Arg], t.Spec.BuildArgs[bt.Arg])
		}
		out.Entries = append(out.Entries, st)
	}
	return out, nil
}

// commitSection is the commit trigger of a git task: its filters, the
// webhook paths to give the git host, whether the repository has a
// webhook secret, the heads refit last saw and the last delivery per
// source with its verdict.
func (s *Server) commitSection(r *http.Request, spec task.Spec) (api.CommitSection, error) {
	tr := spec.Triggers
	out := api.CommitSection{Enabled: tr.Commit.Enabled && spec.Source.Git != "", Filters: api.CommitTrigger(tr.Commit)}
	if spec.Source.Git == "" {
		return out, nil
	}
	out.Repo, out.Ref = redact.URL(spec.Source.Git), spec.Source.Ref
	for _, h := range []string{"github", "gitlab", "gitea", "generic"} {
		out.Webhooks = append(out.Webhooks, "/hooks/git/"+h)
	}
	key := task.RepoKey(spec.Source.Git)
	if s.cfg.GitSecrets != nil {
		list, err := s.cfg.GitSecrets.ListGitSecrets(r.Context())
		if err != nil {
			return out, err
		}
		out.SecretSet = slices.ContainsFunc(list, func(g store.GitSecret) bool { return g.RepoKey == key })
	}
	heads, err := s.cfg.Store.GitHeads(r.Context(), key)
	if err != nil {
		return out, err
	}
	if len(heads) > 0 {
		out.Heads = heads
	}
	deliveries, err := s.cfg.Store.GitDeliveries(r.Context(), key)
	if err != nil {
		return out, err
	}
	for _, d := range deliveries {
		out.Deliveries = append(out.Deliveries, api.GitDelivery{Source: d.Source, At: d.At, Delivery: d.Delivery,
			Ref: d.Ref, SHA: d.SHA, Status: d.Status, Message: d.Message, Runs: d.Runs})
	}
	return out, nil
}
