package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/regauth"
	"github.com/refit-dev/refit/internal/store"
)

// gitSecrets stores git webhook secrets (a *regauth.Credentials).
type gitSecrets interface {
	PutGitSecret(ctx context.Context, repo, secret string) (store.GitSecret, error)
	DeleteGitSecret(ctx context.Context, repo string) error
	ListGitSecrets(ctx context.Context) ([]store.GitSecret, error)
}

var _ gitSecrets = (*regauth.Credentials)(nil)

func apiGitSecret(g store.GitSecret) api.GitSecret {
	return api.GitSecret{RepoKey: g.RepoKey, Repo: g.Repo, UpdatedAt: g.UpdatedAt}
}

func (s *Server) listGitSecrets(w http.ResponseWriter, r *http.Request) error {
	list, err := s.cfg.GitSecrets.ListGitSecrets(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiList(list, apiGitSecret))
}

func (s *Server) putGitSecret(w http.ResponseWriter, r *http.Request) error {
	var req api.GitSecretRequest
	if err := decodeJSON(w, r, 4*regauth.MaxGitSecretBytes+4096, "git secret", &req); err != nil {
		return err
	}
	g, err := s.cfg.GitSecrets.PutGitSecret(r.Context(), req.Repo, req.Secret)
	if errors.Is(err, regauth.ErrInvalid) {
		return &invalidError{err}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiGitSecret(g))
}

func (s *Server) deleteGitSecret(w http.ResponseWriter, r *http.Request) error {
	repo := r.URL.Query().Get("repo")
	if repo == "" {
		return &invalidError{errors.New("query parameter repo is required (the repository URL)")}
	}
	if err := s.cfg.GitSecrets.DeleteGitSecret(r.Context(), repo); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
