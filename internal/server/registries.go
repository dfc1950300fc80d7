package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/refit-dev/refit/internal/regauth"
	"github.com/refit-dev/refit/internal/store"
)

// registryCredentials stores registry logins (a *regauth.Credentials).
type registryCredentials interface {
	Put(ctx context.Context, host, username, password string) (store.RegistryCredential, error)
	Delete(ctx context.Context, host string) error
	List(ctx context.Context) ([]store.RegistryCredential, error)
}

// CredentialRequest is the body of PUT /api/v1/registries/{host}.
type CredentialRequest struct {
	Username string `json:"username"`
	Password string `json:"password"` // or token; stored encrypted, never returned
}

func (s *Server) listCredentials(w http.ResponseWriter, r *http.Request) error {
	creds, err := s.cfg.Credentials.List(r.Context())
	if err != nil {
		return err
	}
	if creds == nil {
		creds = []store.RegistryCredential{}
	}
	return writeJSON(w, http.StatusOK, creds)
}

func (s *Server) putCredential(w http.ResponseWriter, r *http.Request) error {
	var req CredentialRequest
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
	return writeJSON(w, http.StatusOK, cred)
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
