package server

import (
	"context"
	"net/http"
	"slices"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
)

// indexStore is what the index endpoints read.
type indexStore interface {
	ListBaseRefs(ctx context.Context) ([]store.BaseRef, error)
	GetBaseRef(ctx context.Context, ref string) (store.BaseRef, error)
	Observations(ctx context.Context, ref string, limit int) ([]store.Observation, error)
}

func (s *Server) listBases(w http.ResponseWriter, r *http.Request) error {
	refs, err := s.cfg.Index.ListBaseRefs(r.Context())
	if err != nil {
		return err
	}
	tasks, err := s.cfg.Store.ListTasks(r.Context())
	if err != nil {
		return err
	}
	g := plan.NewGraph(tasks, s.cfg.Registry)
	out := []api.BaseInfo{}
	for _, b := range refs {
		uses := []api.BaseUse{}
		for _, t := range g.Tasks {
			for _, tb := range t.Bases {
				if tb.Ref == b.Ref {
					uses = append(uses, api.BaseUse{Task: t.Spec.Name, Stage: tb.Stage, Role: string(tb.Role), Watched: g.Watches(t.Spec.Name, b.Ref)})
				}
			}
		}
		out = append(out, apiBaseInfo(b, uses))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) baseHistory(w http.ResponseWriter, r *http.Request) error {
	ref := r.URL.Query().Get("ref")
	if ref == "" {
		return &httpError{http.StatusBadRequest, "ref is required: /api/v1/bases/history?ref=docker.io/library/debian:12"}
	}
	norm, err := normalizeRef(ref)
	if err != nil {
		return &httpError{http.StatusBadRequest, err.Error()}
	}
	obs, err := s.cfg.Index.Observations(r.Context(), norm, 1000)
	if err != nil {
		return err
	}
	if len(obs) == 0 {
		if _, err := s.cfg.Index.GetBaseRef(r.Context(), norm); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, apiList(obs, apiObservation))
}

func (s *Server) graph(w http.ResponseWriter, r *http.Request) error {
	tasks, err := s.cfg.Store.ListTasks(r.Context())
	if err != nil {
		return err
	}
	g := plan.NewGraph(tasks, s.cfg.Registry)
	out := api.Graph{Tasks: []string{}, Refs: []string{}, Edges: []api.GraphEdge{}}
	addRef := func(ref string) {
		if !slices.Contains(out.Refs, ref) {
			out.Refs = append(out.Refs, ref)
		}
	}
	for _, t := range g.Tasks {
		out.Tasks = append(out.Tasks, t.Spec.Name)
		for _, b := range t.Bases {
			addRef(b.Ref)
			out.Edges = append(out.Edges, api.GraphEdge{From: b.Ref, To: t.Spec.Name, Kind: string(b.Role), Watched: g.Watches(t.Spec.Name, b.Ref)})
		}
		for _, o := range plan.Outputs(t.Spec, s.cfg.Registry) {
			addRef(o)
			out.Edges = append(out.Edges, api.GraphEdge{From: t.Spec.Name, To: o, Kind: "pushes"})
		}
	}
	slices.Sort(out.Refs)
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) explain(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	t, err := s.cfg.Store.GetTask(ctx, r.PathValue("name"))
	if err != nil {
		return taskError(r.PathValue("name"), err)
	}
	tasks, err := s.cfg.Store.ListTasks(ctx)
	if err != nil {
		return err
	}
	refs, err := s.cfg.Index.ListBaseRefs(ctx)
	if err != nil {
		return err
	}
	byRef := map[string]store.BaseRef{}
	for _, b := range refs {
		byRef[b.Ref] = b
	}
	runs, err := s.cfg.Store.ListRuns(ctx, store.RunFilter{Task: t.Spec.Name, Limit: 5})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiExplanation(plan.Explain(plan.NewGraph(tasks, s.cfg.Registry), t, byRef, runs)))
}

func normalizeRef(ref string) (string, error) {
	return dockerfile.Normalize(ref)
}
