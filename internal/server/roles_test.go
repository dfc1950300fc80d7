package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/identity"
	"github.com/refit-dev/refit/internal/server"
	"github.com/refit-dev/refit/internal/store"
)

// TestEveryRouteHasARole: every route of the contract that needs a
// token has a role in the server's table, so none is refused to all by
// mistake; a route that is not in the table is refused (fail closed).
// Decisions on runs and rollbacks need approver.
func TestEveryRouteHasARole(t *testing.T) {
	for _, rt := range api.Routes() {
		if rt.Public {
			continue
		}
		role, ok := server.RoleFor(rt.Method + " " + rt.Path)
		if !ok {
			t.Errorf("%s %s has no role in internal/server/roles.go: it would be refused to everyone", rt.Method, rt.Path)
			continue
		}
		want := identity.Viewer
		switch {
		case strings.HasPrefix(rt.Path, "/api/v1/tokens"), rt.Path == "/api/v1/audit:export":
			want = identity.Admin
		case rt.Method == http.MethodPost && (strings.HasSuffix(rt.Path, "/approve") || strings.HasSuffix(rt.Path, "/reject") || strings.HasSuffix(rt.Path, "/promote")):
			want = identity.Approver
		case rt.Method != http.MethodGet:
			want = identity.Operator
		}
		if role != want {
			t.Errorf("%s %s needs %s, want %s", rt.Method, rt.Path, role, want)
		}
	}
	for _, pattern := range []string{"POST /api/v1/runs/{id}:approve", "POST /api/v1/runs/{id}/cancel", "GET /api/v1/secret-things"} {
		if role, ok := server.RoleFor(pattern); ok {
			t.Errorf("RoleFor(%q) = %q; want none (refused to everyone)", pattern, role)
		}
	}
}

// TestRolesOverHTTP: each role is allowed and refused on representative
// routes through real HTTP; a refusal is a 403 naming the user and the
// role needed; a revoked token is refused at once; a manual run and its
// audit entry name the real user.
func TestRolesOverHTTP(t *testing.T) {
	a := startContractAPI(t)
	ctx := context.Background()
	tokens := map[string]string{"admin": a.token}
	for _, u := range []struct{ user, role string }{{"vera", "viewer"}, {"otto", "operator"}, {"abby", "approver"}} {
		nt := call[api.NewToken](t, a, "POST", "/api/v1/tokens", api.TokenRequest{User: u.user, Roles: []string{u.role}}, http.StatusCreated)
		tokens[u.role] = nt.Secret
	}
	as := func(role string) *contractAPI {
		b := *a
		b.token = tokens[role]
		return &b
	}
	call[api.Task](t, a, "POST", "/api/v1/tasks", api.TaskSpec{Name: "app", Source: api.TaskSource{Dir: "/src/app"}}, http.StatusCreated)

	type req struct {
		method, path string
		body         any
	}
	cases := []struct {
		req
		allowed []string // roles that may; the others get 403
		need    string
	}{
		{req{"GET", "/api/v1/tasks", nil}, []string{"viewer", "operator", "approver", "admin"}, ""},
		{req{"GET", "/api/v1/runs", nil}, []string{"viewer", "operator", "approver", "admin"}, ""},
		{req{"GET", "/api/v1/audit", nil}, []string{"viewer", "operator", "approver", "admin"}, ""},
		{req{"GET", "/api/v1/audit:verify", nil}, []string{"viewer", "operator", "approver", "admin"}, ""},
		{req{"PUT", "/api/v1/tasks/web", api.TaskSpec{Name: "web", Source: api.TaskSource{Dir: "/src/web"}}}, []string{"operator", "admin"}, "operator"},
		{req{"POST", "/api/v1/tasks/app/runs", nil}, []string{"operator", "admin"}, "operator"},
		{req{"POST", "/api/v1/subscriptions", api.SubscriptionRequest{URL: "http://127.0.0.1:1/h"}}, []string{"operator", "admin"}, "operator"},
		{req{"PUT", "/api/v1/registries/ghcr.io", api.CredentialRequest{Username: "u", Password: "p"}}, []string{"operator", "admin"}, "operator"},
		{req{"GET", "/api/v1/tokens", nil}, []string{"admin"}, "admin"},
		{req{"POST", "/api/v1/tokens", api.TokenRequest{User: "zed", Roles: []string{"viewer"}}}, []string{"admin"}, "admin"},
		{req{"GET", "/api/v1/audit:export", nil}, []string{"admin"}, "admin"},
	}
	users := map[string]string{"viewer": "vera", "operator": "otto", "approver": "abby", "admin": "admin"}
	for _, c := range cases {
		for _, role := range []string{"viewer", "operator", "approver", "admin"} {
			code, text := as(role).do(t, c.method, c.path, c.body)
			allowed := false
			for _, r := range c.allowed {
				allowed = allowed || r == role
			}
			if allowed {
				if code == http.StatusForbidden || code == http.StatusUnauthorized || code >= 500 {
					t.Errorf("%s %s as %s: %d %s, want it allowed", c.method, c.path, role, code, text)
				}
				continue
			}
			var e api.Error
			json.Unmarshal([]byte(text), &e)
			if code != http.StatusForbidden || !strings.Contains(e.Message, "needs role "+c.need) || !strings.Contains(e.Message, "user "+users[role]) {
				t.Errorf("%s %s as %s: %d %q, want 403 naming user %s and role %s", c.method, c.path, role, code, e.Message, users[role], c.need)
			}
		}
	}

	// whoami says who and with which roles.
	if w := call[api.WhoAmI](t, as("approver"), "GET", "/api/v1/whoami", nil, http.StatusOK); w.User != "abby" || w.Kind != "token" || len(w.Roles) != 1 || w.Roles[0] != "approver" {
		t.Errorf("whoami as abby = %+v", w)
	}

	// The operator's manual run records the operator, and so does its
	// audit entry.
	run := call[api.Run](t, as("operator"), "POST", "/api/v1/tasks/app/runs", nil, http.StatusCreated)
	if run.Cause.Kind != "manual" || run.Cause.User != "otto" {
		t.Errorf("otto's run has cause %+v, want manual by otto", run.Cause)
	}
	es, err := a.st.AuditEntries(ctx, store.AuditFilter{Action: "run.queue", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range es {
		found = found || (e.Actor == "otto" && strings.Contains(string(e.Details), `"run":"`+run.ID+`"`))
	}
	if !found {
		t.Errorf("no run.queue entry by otto for %s in %d entries", run.ID, len(es))
	}
	creates, err := a.st.AuditEntries(ctx, store.AuditFilter{Action: "task.create", Subject: "web"})
	if err != nil || len(creates) != 1 || creates[0].Actor == "system" {
		t.Errorf("task.create of web = %+v, %v; want one entry by its creator", creates, err)
	}

	// Revoking the operator's tokens refuses it at once.
	call[api.RevokeResult](t, a, "DELETE", "/api/v1/tokens/otto", nil, http.StatusOK)
	if code, _ := as("operator").do(t, "GET", "/api/v1/tasks", nil); code != http.StatusUnauthorized {
		t.Errorf("a revoked token: %d, want 401", code)
	}
}

// runReadFails is the store with every read of a run failing, as a
// dropped database connection would.
type runReadFails struct{ *store.Store }

func (runReadFails) GetRun(context.Context, int64) (store.Run, error) {
	return store.Run{}, errors.New("database connection lost")
}

// A decision on a run whose task may ask a role other than approver is
// refused when the run cannot be read: the role check fails closed
// rather than letting the decision go ahead unchecked.
func TestDecisionRoleCheckFailsClosed(t *testing.T) {
	a := startContractAPIWith(t, func(cfg *server.Config) {
		cfg.Store = runReadFails{cfg.Store.(*store.Store)}
	})
	for _, verb := range []string{"approve", "reject"} {
		code, text := a.do(t, "POST", "/api/v1/runs/r-1/"+verb, api.DecisionRequest{Comment: "ok"})
		if code != http.StatusInternalServerError {
			t.Errorf("%s with the run unreadable: %d %s, want 500 (not decided)", verb, code, text)
		}
	}
}
