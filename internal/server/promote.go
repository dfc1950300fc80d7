package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/identity"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/store"
)

// promoter decides on runs awaiting approval and rolls promote tags back
// (the owner of a run's life).
type promoter interface {
	Approve(ctx context.Context, d lifecycle.Decision) (store.Run, error)
	Reject(ctx context.Context, d lifecycle.Decision) (store.Run, error)
	Rollback(ctx context.Context, task, digest, user string) ([]store.Promotion, error)
}

var _ promoter = (*lifecycle.Runs)(nil)

// maxDecisionBody bounds an approve, reject or promote body; maxComment
// a decision's comment (it is kept with the decision and sent in events).
const (
	maxDecisionBody = 64 << 10
	maxComment      = 4 << 10
)

func (s *Server) approveRun(w http.ResponseWriter, r *http.Request) error {
	return s.decide(w, r, s.cfg.Promotions.Approve)
}

func (s *Server) rejectRun(w http.ResponseWriter, r *http.Request) error {
	return s.decide(w, r, s.cfg.Promotions.Reject)
}

// decide records the caller's decision on a run through fn. The route
// table asks approver of every decision and rollback; decide asks the
// run's task's promote.approvers.role too.
func (s *Server) decide(w http.ResponseWriter, r *http.Request, fn func(context.Context, lifecycle.Decision) (store.Run, error)) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	var req api.DecisionRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, maxDecisionBody, "decision", &req); err != nil {
			return err
		}
	}
	if len(req.Comment) > maxComment {
		return &httpError{http.StatusBadRequest, fmt.Sprintf("comment is %d bytes, more than the %d allowed", len(req.Comment), maxComment)}
	}
	// The task may ask a role other than approver (admin, say). A run
	// that cannot be read is not decided on: the check fails closed (a
	// missing run is the lifecycle's 404 below).
	run, err := s.cfg.Store.GetRun(r.Context(), id)
	switch {
	case err == nil:
		if p := run.Spec.Defaults().Promote; p != nil {
			if need := identity.Role(p.Approvers.Role); !Caller(r).Has(need) {
				return forbidden(Caller(r), need)
			}
		}
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("reading run %s for the role its task asks: %w", api.FormatRunID(id), err)
	}
	run, err = fn(r.Context(), lifecycle.Decision{RunID: id, User: user(r), Comment: req.Comment})
	if err != nil {
		return promoteError(runError(id, err))
	}
	return writeJSON(w, http.StatusOK, apiRun(run))
}

func (s *Server) promoteTask(w http.ResponseWriter, r *http.Request) error {
	var req api.PromoteRequest
	if err := decodeJSON(w, r, maxDecisionBody, "promotion", &req); err != nil {
		return err
	}
	if req.Digest == "" {
		return &httpError{http.StatusBadRequest, "digest is required (sha256:… of an image the task promoted before)"}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	ps, err := s.cfg.Promotions.Rollback(ctx, r.PathValue("name"), req.Digest, user(r))
	if err != nil {
		return promoteError(taskError(r.PathValue("name"), err))
	}
	out := []api.Promotion{}
	for _, p := range ps {
		out = append(out, api.Promotion{Task: p.Task, Repository: p.Repository, Tag: p.Tag, OldDigest: p.OldDigest,
			NewDigest: p.NewDigest, By: p.By, CreatedAt: p.CreatedAt, DoneAt: p.DoneAt})
	}
	return writeJSON(w, http.StatusOK, out)
}

// promoteError gives the lifecycle's refusals their status codes.
func promoteError(err error) error {
	switch {
	case errors.Is(err, lifecycle.ErrSelfApproval):
		return &httpError{http.StatusForbidden, err.Error()}
	case errors.Is(err, lifecycle.ErrNotAwaiting), errors.Is(err, store.ErrDuplicate):
		return &httpError{http.StatusConflict, err.Error()}
	case errors.Is(err, lifecycle.ErrNotPromoted), errors.Is(err, lifecycle.ErrNoPromote):
		return &httpError{http.StatusBadRequest, err.Error()}
	}
	return err
}

// noPromotions answers the promotion routes of a server configured
// without them.
type noPromotions struct{}

var errNoPromotions = &httpError{http.StatusNotImplemented, "this server does not promote images"}

func (noPromotions) Approve(context.Context, lifecycle.Decision) (store.Run, error) {
	return store.Run{}, errNoPromotions
}
func (noPromotions) Reject(context.Context, lifecycle.Decision) (store.Run, error) {
	return store.Run{}, errNoPromotions
}
func (noPromotions) Rollback(context.Context, string, string, string) ([]store.Promotion, error) {
	return nil, errNoPromotions
}
