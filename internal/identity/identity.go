// Package identity is who calls refit's API: a user name and the roles
// that user holds, as an authenticated request carries them in its
// context. Today every identity comes from an API token (Kind "token");
// the type is shaped so that another source (an OIDC ID token's subject
// and groups) can fill it without its users changing.
//
// The package imports nothing internal: the server puts an Identity in a
// request's context, and the store reads it back to record the actor of
// an audit entry.
package identity

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Role is what an identity may do.
type Role string

// The roles. Admin implies every other role; every role implies Viewer.
// Operator and Approver are separate on purpose: separation of duties
// means the one who changes or runs something is not, by role alone, the
// one who approves it.
const (
	// Viewer reads: tasks, runs, logs, bases, events, the audit log.
	Viewer Role = "viewer"
	// Operator changes: tasks, runs, subscriptions, registry logins,
	// redeliveries.
	Operator Role = "operator"
	// Approver approves or rejects runs awaiting approval.
	Approver Role = "approver"
	// Admin manages tokens, exports the audit log, and may do anything.
	Admin Role = "admin"
)

// Roles lists every role, in order of power.
func Roles() []Role { return []Role{Viewer, Operator, Approver, Admin} }

// ParseRole returns the role named s, or an error listing the roles.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q (want viewer, operator, approver or admin)", s)
}

// System is the actor of what refit does on its own (a base update's
// runs, a run's end). No user may be called this.
const System = "system"

// Kind says where an identity came from.
const KindToken = "token"

var userRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)

// ValidUser checks a user name: 1 to 64 letters, digits and . _ @ + -,
// starting with a letter or digit, and not "system".
func ValidUser(name string) error {
	if !userRE.MatchString(name) {
		return fmt.Errorf("user %q: want 1 to 64 letters, digits and . _ @ + -, starting with a letter or digit", name)
	}
	if strings.EqualFold(name, System) {
		return fmt.Errorf("user %q is reserved for what refit does on its own", name)
	}
	return nil
}

// Identity is an authenticated caller.
type Identity struct {
	// User is the caller's name, as the audit log records it.
	User string `json:"user"`
	// Roles are the caller's roles.
	Roles []Role `json:"roles"`
	// Kind says how the caller authenticated: "token".
	Kind string `json:"kind"`
	// ID names the credential used (the token's ID), for the record.
	ID string `json:"id,omitempty"`
}

// Has reports whether the identity may act in role r: it holds r, or
// admin, or r is viewer and it holds any role.
func (id Identity) Has(r Role) bool {
	if slices.Contains(id.Roles, r) || slices.Contains(id.Roles, Admin) {
		return true
	}
	return r == Viewer && len(id.Roles) > 0
}

type key struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// FromContext returns the identity ctx carries, and false when it carries
// none (refit acting on its own).
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(key{}).(Identity)
	return id, ok
}

// Actor returns the user ctx carries, or System.
func Actor(ctx context.Context) string {
	if id, ok := FromContext(ctx); ok && id.User != "" {
		return id.User
	}
	return System
}
