package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/plan"
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
	out.Commit = api.CommitTrigger{Enabled: tr.Commit && spec.Source.Git != "", Repo: spec.Source.Git, Ref: spec.Source.Ref}
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
