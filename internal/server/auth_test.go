package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/server"
	"github.com/refit-dev/refit/internal/store"
)

// TestBearerAuth: the API takes its token under any spelling of the
// Bearer scheme (RFC 7235: schemes are case-insensitive), and every 401 —
// no token, another scheme, an unknown token — says how to authenticate
// in WWW-Authenticate, without echoing what was presented.
func TestBearerAuth(t *testing.T) {
	ctx := context.Background()
	cfg := store.Config{Path: filepath.Join(t.TempDir(), "refit.db")}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(t)}
	}
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	token, err := st.NewToken(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Config{Store: st, Index: st, Events: st}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name, authorization string
		ok                  bool
		challenge           string // WWW-Authenticate on a 401
	}{
		{"Bearer", "Bearer " + token, true, ""},
		{"bearer", "bearer " + token, true, ""},
		{"BEARER", "BEARER " + token, true, ""},
		{"two spaces", "Bearer  " + token, true, ""},
		{"no header", "", false, `Bearer realm="refit"`},
		{"scheme only", "Bearer", false, `Bearer realm="refit"`},
		{"empty token", "Bearer ", false, `Bearer realm="refit"`},
		{"basic scheme", "Basic " + token, false, `Bearer realm="refit"`},
		{"bare token", token, false, `Bearer realm="refit"`},
		{"unknown token", "Bearer refit_0000", false, `Bearer realm="refit", error="invalid_token"`},
		{"unknown token lowercase", "bearer refit_0000", false, `Bearer realm="refit", error="invalid_token"`},
		{"token with a suffix", "Bearer " + token + "x", false, `Bearer realm="refit", error="invalid_token"`},
	}
	for _, tt := range tests {
		for _, path := range []string{"/api/v1/whoami", "/api/v1/tasks", "/api/v1/nope"} {
			req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tt.ok {
				if resp.StatusCode == http.StatusUnauthorized {
					t.Errorf("%s %s: 401 %s, want the token taken", tt.name, path, body)
				}
				if path == "/api/v1/whoami" {
					var who struct{ User string }
					if json.Unmarshal(body, &who); resp.StatusCode != http.StatusOK || who.User != "admin" {
						t.Errorf("%s whoami: %d %s, want 200 admin", tt.name, resp.StatusCode, body)
					}
				}
				continue
			}
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s: %d %s, want 401", tt.name, path, resp.StatusCode, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("%s %s: WWW-Authenticate %q, want %q", tt.name, path, got, tt.challenge)
			}
			if strings.Contains(string(body), token[:12]) || strings.Contains(string(body), "refit_0000") {
				t.Errorf("%s %s: the answer echoes the token: %s", tt.name, path, body)
			}
		}
	}
}
