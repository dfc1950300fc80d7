package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/regauth"
	"github.com/refit-dev/refit/internal/store"
)

// registryCredentials stores registry logins (a *regauth.Credentials).
type registryCredentials interface {
	Put(ctx context.Context, host, username, password string) (store.RegistryCredential, error)
	Delete(ctx context.Context, host string) error
	List(ctx context.Context) ([]store.RegistryCredential, error)
}

func (s *Server) listCredentials(w http.ResponseWriter, r *http.Request) error {
	creds, err := s.cfg.Credentials.List(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiList(creds, apiCredential))
}

func (s *Server) putCredential(w http.ResponseWriter, r *http.Request) error {
	var req api.CredentialRequest
	if err := decodeJSON(w, r, 2*regauth.MaxPasswordBytes, "credentials", &req); err != nil {
		return err
	}
	cred, err := s.cfg.Credentials.Put(r.Context(), r.PathValue("host"), req.Username, req.Password)
	if errors.Is(err, regauth.ErrInvalid) {
		return &invalidError{err}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiCredential(cred))
}

func (s *Server) deleteCredential(w http.ResponseWriter, r *http.Request) error {
	err := s.cfg.Credentials.Delete(r.Context(), r.PathValue("host"))
	if errors.Is(err, regauth.ErrInvalid) {
		return &invalidError{err}
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
