package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// watchStore keeps the references watched without building.
type watchStore interface {
	PutWatch(ctx context.Context, w store.Watch) (created bool, err error)
	ListWatches(ctx context.Context) ([]store.Watch, error)
	DeleteWatch(ctx context.Context, ref string) error
}

var _ watchStore = (*store.Store)(nil)

func apiWatch(w store.Watch) api.Watch {
	return api.Watch{Ref: w.Ref, Repository: w.Repository, ByDigest: w.ByDigest, Semver: w.Semver,
		Prerelease: w.Prerelease, CreatedAt: w.CreatedAt}
}

// checkWatch checks a watch request, naming the field (prefix + field)
// of a bad one.
func checkWatch(prefix string, req api.WatchRequest) (store.Watch, error) {
	w, err := task.WatchSpec{Ref: req.Ref, Semver: req.Semver, Prerelease: req.Prerelease}.Check()
	if err != nil {
		var fe *task.FieldError
		if errors.As(err, &fe) {
			return store.Watch{}, &invalidError{fmt.Errorf("%s%s: %s", prefix, fe.Field, fe.Msg)}
		}
		return store.Watch{}, &invalidError{err}
	}
	return store.Watch{Ref: w.Ref, Repository: w.Repository, ByDigest: w.ByDigest, Semver: w.Semver, Prerelease: w.Prerelease}, nil
}

func (s *Server) listWatches(w http.ResponseWriter, r *http.Request) error {
	ws, err := s.cfg.Store.ListWatches(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiList(ws, apiWatch))
}

func (s *Server) addWatch(w http.ResponseWriter, r *http.Request) error {
	var req api.WatchRequest
	if err := decodeJSON(w, r, 64<<10, "watch", &req); err != nil {
		return err
	}
	watch, err := checkWatch("", req)
	if err != nil {
		return err
	}
	created, err := s.cfg.Store.PutWatch(r.Context(), watch)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	ws, err := s.cfg.Store.ListWatches(r.Context())
	if err != nil {
		return err
	}
	for _, x := range ws {
		if x.Ref == watch.Ref {
			watch = x
		}
	}
	return writeJSON(w, code, api.WatchResult{Watch: apiWatch(watch), Created: created})
}

func (s *Server) deleteWatch(w http.ResponseWriter, r *http.Request) error {
	ref := r.URL.Query().Get("ref")
	if ref == "" {
		return &invalidError{errors.New("ref: required (the watch's reference)")}
	}
	// The reference as given to add, or as listed.
	key := ref
	if n, err := (task.WatchSpec{Ref: ref}).Check(); err == nil {
		key = n.Ref
	}
	err := s.cfg.Store.DeleteWatch(r.Context(), key)
	if errors.Is(err, store.ErrNotFound) && key != ref {
		err = s.cfg.Store.DeleteWatch(r.Context(), ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		if n, cerr := (task.WatchSpec{Ref: ref, Semver: "*"}).Check(); cerr == nil && n.Ref != key {
			err = s.cfg.Store.DeleteWatch(r.Context(), n.Ref) // a repository watched for its tags
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return &httpError{http.StatusNotFound, fmt.Sprintf("%s is not watched (refit watch list shows what is)", ref)}
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// baseTagWarnings warns of each triggers.baseTags rebuild entry whose
// repository no FROM of the task's Dockerfile builds on: its arg is then
// not what picks the base, and a new tag would rebuild the same image.
// The task is stored all the same (a FROM may name the repository
// through another argument's default).
func baseTagWarnings(t store.Task) []string {
	if t.Spec.Triggers == nil {
		return nil
	}
	var out []string
	for i, bt := range t.Spec.Triggers.BaseTags {
		if bt.Action == "notify" {
			continue
		}
		repo, err := task.Repository(bt.Ref)
		if err != nil {
			continue
		}
		found := false
		for _, b := range t.Bases {
			if b.Kind == dockerfile.KindFrom && repositoryOf(b.Ref) == repo {
				found = true
				break
			}
		}
		if !found {
			out = append(out, fmt.Sprintf("triggers.baseTags[%d]: no FROM of the Dockerfile builds on %s; name it through the build arg: ARG %s, FROM %s:${%s}",
				i, repo, bt.Arg, bt.Ref, bt.Arg))
		}
	}
	return out
}

// repositoryOf is a normalized reference without its tag and digest.
func repositoryOf(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}
