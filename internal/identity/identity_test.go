package identity_test

import (
	"context"
	"testing"

	"github.com/refit-dev/refit/internal/identity"
)

func TestHas(t *testing.T) {
	id := func(roles ...identity.Role) identity.Identity { return identity.Identity{User: "u", Roles: roles} }
	for _, c := range []struct {
		who  identity.Identity
		role identity.Role
		want bool
	}{
		{id(identity.Admin), identity.Approver, true},
		{id(identity.Admin), identity.Operator, true},
		{id(identity.Operator), identity.Viewer, true},
		{id(identity.Approver), identity.Viewer, true},
		{id(identity.Operator), identity.Approver, false},
		{id(identity.Approver), identity.Operator, false},
		{id(identity.Viewer), identity.Operator, false},
		{id(identity.Operator, identity.Approver), identity.Approver, true},
		{id(), identity.Viewer, false},
		{id(identity.Viewer), identity.Admin, false},
	} {
		if got := c.who.Has(c.role); got != c.want {
			t.Errorf("%v.Has(%s) = %t, want %t", c.who.Roles, c.role, got, c.want)
		}
	}
}

func TestValidUserAndRole(t *testing.T) {
	for _, ok := range []string{"alice", "a.b-c_d@example.com", "ci+bot", "0"} {
		if err := identity.ValidUser(ok); err != nil {
			t.Errorf("ValidUser(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "system", "System", "-x", "a b", "a/b", string(make([]byte, 65))} {
		if err := identity.ValidUser(bad); err == nil {
			t.Errorf("ValidUser(%q): no error", bad)
		}
	}
	if _, err := identity.ParseRole("root"); err == nil {
		t.Error("ParseRole(root): no error")
	}
	if r, err := identity.ParseRole("approver"); err != nil || r != identity.Approver {
		t.Errorf("ParseRole(approver) = %q, %v", r, err)
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	if identity.Actor(ctx) != identity.System {
		t.Error("a context without an identity acts as", identity.Actor(ctx))
	}
	ctx = identity.NewContext(ctx, identity.Identity{User: "alice", Kind: identity.KindToken})
	if id, ok := identity.FromContext(ctx); !ok || id.User != "alice" || identity.Actor(ctx) != "alice" {
		t.Errorf("FromContext = %+v, %t", id, ok)
	}
}
