package server

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/identity"
	"github.com/refit-dev/refit/internal/store"
)

func apiToken(t store.Token) api.Token {
	return api.Token{ID: t.ID, User: t.User, Roles: t.Roles, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy, RevokedAt: t.RevokedAt}
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.cfg.Store.ListTokens(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiList(ts, apiToken))
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req api.TokenRequest
	if err := decodeJSON(w, r, 64<<10, "token", &req); err != nil {
		return err
	}
	if err := identity.ValidUser(req.User); err != nil {
		return &invalidError{err}
	}
	if len(req.Roles) == 0 {
		return &invalidError{errors.New("roles: give at least one of viewer, operator, approver, admin")}
	}
	var roles []string
	for _, name := range req.Roles {
		role, err := identity.ParseRole(name)
		if err != nil {
			return &invalidError{fmt.Errorf("roles: %w", err)}
		}
		if !slices.Contains(roles, string(role)) {
			roles = append(roles, string(role))
		}
	}
	t, secret, err := s.cfg.Store.CreateToken(r.Context(), req.User, roles)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, api.NewToken{Token: apiToken(t), Secret: secret})
}

func (s *Server) revokeTokens(w http.ResponseWriter, r *http.Request) error {
	which := r.PathValue("id")
	ts, err := s.cfg.Store.RevokeTokens(r.Context(), which)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &httpError{http.StatusNotFound, fmt.Sprintf("no active token has ID or user %s (refit token list)", which)}
	case errors.Is(err, store.ErrLastAdmin):
		return &httpError{http.StatusConflict, fmt.Sprintf("not revoking %s: %v", which, store.ErrLastAdmin)}
	case err != nil:
		return err
	}
	return writeJSON(w, http.StatusOK, api.RevokeResult{Revoked: apiList(ts, apiToken)})
}
