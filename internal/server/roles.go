package server

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/refit-dev/refit/internal/identity"
)

// routeRoles is the one table of who may call what: the role each API
// route needs ("METHOD /path" as registered). viewer reads; operator
// changes tasks, runs, subscriptions, logins and deliveries; admin
// manages tokens and exports the audit log (admin holds every role,
// and every role may read). A route that is in neither this table nor
// the rules of roleFor is refused to everyone (fail closed), and a test
// holds every route of api.Routes to having a role.
var routeRoles = map[string]identity.Role{
	"GET /api/v1/tasks":                 identity.Viewer,
	"POST /api/v1/tasks":                identity.Operator,
	"POST /api/v1/tasks:apply":          identity.Operator,
	"GET /api/v1/tasks/{name}":          identity.Viewer,
	"PUT /api/v1/tasks/{name}":          identity.Operator,
	"DELETE /api/v1/tasks/{name}":       identity.Operator,
	"POST /api/v1/tasks/{name}/runs":    identity.Operator,
	"GET /api/v1/tasks/{name}/explain":  identity.Viewer,
	"GET /api/v1/tasks/{name}/triggers": identity.Viewer,
	"GET /api/v1/images/explain":        identity.Viewer,
	"GET /api/v1/runs":                  identity.Viewer,
	"GET /api/v1/runs/{id}":             identity.Viewer,
	"GET /api/v1/runs/{id}/logs":        identity.Viewer,
	"GET /api/v1/bases":                 identity.Viewer,
	"GET /api/v1/bases/history":         identity.Viewer,
	"GET /api/v1/graph":                 identity.Viewer,
	"GET /api/v1/subscriptions":         identity.Viewer,
	"POST /api/v1/subscriptions":        identity.Operator,
	"DELETE /api/v1/subscriptions/{id}": identity.Operator,
	"GET /api/v1/events":                identity.Viewer,
	"GET /api/v1/events/stream":         identity.Viewer,
	"POST /api/v1/events/redeliver":     identity.Operator,
	"GET /api/v1/deliveries":            identity.Viewer,
	"DELETE /api/v1/deliveries":         identity.Operator,
	"GET /api/v1/registries":            identity.Viewer,
	"PUT /api/v1/registries/{host}":     identity.Operator,
	"DELETE /api/v1/registries/{host}":  identity.Operator,
	"GET /api/v1/watches":               identity.Viewer,
	"POST /api/v1/watches":              identity.Operator,
	"DELETE /api/v1/watches":            identity.Operator,
	"GET /api/v1/whoami":                identity.Viewer,
	"GET /api/v1/tokens":                identity.Admin,
	"POST /api/v1/tokens":               identity.Admin,
	"DELETE /api/v1/tokens/{id}":        identity.Admin,
	"GET /api/v1/audit":                 identity.Viewer,
	"GET /api/v1/audit:verify":          identity.Viewer,
	"GET /api/v1/audit:export":          identity.Admin,
	"GET /api/v1/bases/diff":            identity.Viewer,
	"GET /api/v1/images/packages":       identity.Viewer,
	"GET /api/v1/images/diff":           identity.Viewer,
	"GET /api/v1/git/secrets":           identity.Viewer,
	"PUT /api/v1/git/secrets":           identity.Operator,
	"DELETE /api/v1/git/secrets":        identity.Operator,
	"GET /api/v1/vulndb":                identity.Viewer,
	"POST /api/v1/vulndb":               identity.Operator,
	// Decisions on runs awaiting approval, and rolling promote tags back
	// (a run's task may ask a stronger role: promote.approvers.role).
	"POST /api/v1/runs/{id}/approve":    identity.Approver,
	"POST /api/v1/runs/{id}/reject":     identity.Approver,
	"POST /api/v1/tasks/{name}/promote": identity.Approver,
	// The catch-all that answers 404 for unknown API paths: any token.
	"/api/": identity.Viewer,
}

// roleFor returns the role a route pattern needs, and false when none is
// defined (the route is then refused to everyone).
func roleFor(pattern string) (identity.Role, bool) {
	r, ok := routeRoles[pattern]
	return r, ok
}

// Caller returns the identity of an authenticated request (the zero
// Identity, with no roles, for one that is not).
func Caller(r *http.Request) identity.Identity {
	id, _ := identity.FromContext(r.Context())
	return id
}

// forbidden is the 403 for a caller without the role a route needs.
func forbidden(id identity.Identity, need identity.Role) error {
	roles := "no role"
	if len(id.Roles) > 0 {
		var s []string
		for _, r := range id.Roles {
			s = append(s, string(r))
		}
		roles = "roles " + strings.Join(s, ", ")
	}
	return &httpError{http.StatusForbidden, fmt.Sprintf("user %s (%s) may not do this: it needs role %s (ask an admin: refit token create --user %s --role %s)",
		id.User, roles, need, id.User, need)}
}
