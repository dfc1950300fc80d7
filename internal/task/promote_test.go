package task_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refit-dev/refit/internal/task"
)

// TestTestPromoteFields: each bad test or promote field is named in the
// error a user reads.
func TestTestPromoteFields(t *testing.T) {
	promote := func(p task.Promote) func(*task.Spec) {
		return func(s *task.Spec) {
			s.Test = &task.Test{Target: "test"}
			s.Promote = &p
		}
	}
	tests := []struct {
		name  string
		spec  func(*task.Spec)
		field string // "" = valid
	}{
		{"target", func(s *task.Spec) { s.Test = &task.Test{Target: "test"} }, ""},
		{"command", func(s *task.Spec) { s.Test = &task.Test{Command: []string{"/app/selftest", "-v"}} }, ""},
		{"empty test", func(s *task.Spec) { s.Test = &task.Test{} }, "test"},
		{"bad target", func(s *task.Spec) { s.Test = &task.Test{Target: "a b"} }, "test.target"},
		{"empty program", func(s *task.Spec) { s.Test = &task.Test{Command: []string{""}} }, "test.command"},
		{"newline in an argument", func(s *task.Spec) { s.Test = &task.Test{Command: []string{"sh", "x\ny"}} }, "test.command[1]"},
		{"approval", promote(task.Promote{Tags: []string{"stable"}, Policy: "approval",
			Approvers: &task.Approvers{Role: "approver", Count: 2}, RequireApprovalFor: []string{"base", "schedule", "baseTag"}}), ""},
		{"no promote tags", promote(task.Promote{Policy: "auto"}), "promote.tags"},
		{"template promote tag", promote(task.Promote{Tags: []string{"{{.Run.ID}}"}}), "promote.tags[0]"},
		{"promote tag also pushed", func(s *task.Spec) {
			s.Tags = []string{"latest", "stable"}
			s.Promote = &task.Promote{Tags: []string{"stable"}}
		}, "promote.tags[0]"},
		{"unknown policy", promote(task.Promote{Tags: []string{"stable"}, Policy: "manual"}), "promote.policy"},
		{"approval without a test", func(s *task.Spec) {
			s.Promote = &task.Promote{Tags: []string{"stable"}, Policy: "approval"}
		}, "promote.policy"},
		{"unknown role", promote(task.Promote{Tags: []string{"stable"}, Approvers: &task.Approvers{Role: "boss"}}), "promote.approvers.role"},
		{"negative count", promote(task.Promote{Tags: []string{"stable"}, Approvers: &task.Approvers{Count: -1}}), "promote.approvers.count"},
		{"unknown cause kind", promote(task.Promote{Tags: []string{"stable"}, RequireApprovalFor: []string{"base", "push"}}), "promote.requireApprovalFor[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.spec(&s)
			err := s.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if err := s.Defaults().Validate(); err != nil {
					t.Fatalf("Defaults().Validate() = %v, want nil", err)
				}
				return
			}
			var fe *task.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Validate() = %v, want a *FieldError for %s", err, tt.field)
			}
		})
	}
}

// TestPromoteDefaults: without a promote section the build pushes
// "latest" as before; with one, the image is pushed by digest only and
// the policy follows the test.
func TestPromoteDefaults(t *testing.T) {
	if got := good().Defaults().Tags; !slices.Equal(got, []string{"latest"}) {
		t.Errorf("tags without promote = %q, want [latest]", got)
	}
	s := good()
	s.Promote = &task.Promote{Tags: []string{"stable"}}
	d := s.Defaults()
	if len(d.Tags) != 0 {
		t.Errorf("tags with promote = %q, want none (pushed by digest)", d.Tags)
	}
	yes := true
	want := &task.Promote{Tags: []string{"stable"}, Policy: "auto", Approvers: &task.Approvers{Role: "approver", Count: 1},
		RequireApprovalFor: task.CauseKinds, ReapproveOnChange: &yes}
	if diff := cmp.Diff(want, d.Promote); diff != "" {
		t.Errorf("promote defaults (-want +got):\n%s", diff)
	}
	s.Test = &task.Test{Target: "test"}
	if p := s.Defaults().Promote.Policy; p != "after-test" {
		t.Errorf("policy with a test = %q, want after-test", p)
	}
	s.Promote.Policy = "approval"
	s.Promote.RequireApprovalFor = []string{"base"}
	d = s.Defaults()
	if !d.Promote.NeedsApproval("base") || d.Promote.NeedsApproval("commit") {
		t.Errorf("NeedsApproval: base %v commit %v, want true false", d.Promote.NeedsApproval("base"), d.Promote.NeedsApproval("commit"))
	}
	if s.Promote.Approvers != nil {
		t.Error("Defaults changed the spec it was called on")
	}
}

// TestDecodeYAMLTestPromote: the example decodes strictly.
func TestDecodeYAMLTestPromote(t *testing.T) {
	specs, err := task.DecodeYAML([]byte(`name: api
source: {git: https://example.com/api.git}
test:
  target: test
  command: ["/app/selftest"]
promote:
  tags: [stable]
  policy: approval
  approvers: {role: approver, count: 1}
  requireApprovalFor: [base, schedule, baseTag]
  reapproveOnChange: true
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := specs[0].Validate(); err != nil {
		t.Fatal(err)
	}
	if p := specs[0].Promote; p == nil || p.Policy != "approval" || *p.ReapproveOnChange != true {
		t.Errorf("promote = %+v", p)
	}
	if _, err := task.DecodeYAML([]byte("name: api\nsource: {dir: /x}\npromote: {tags: [stable], polcy: auto}\n")); err == nil {
		t.Error("a misspelt promote field decoded without error")
	}
}
