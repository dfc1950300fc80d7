package build

import (
	"errors"
	"fmt"
	"testing"

	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
)

// TestExitCode: the exit code of a failed process is found in BuildKit's
// typed error or in its message, the innermost when there are several.
func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code int
		ok   bool
	}{
		{"nil", nil, 0, false},
		{"no code", errors.New("failed to solve: pull access denied"), 0, false},
		{"message", errors.New(`failed to solve: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`), 3, true},
		{"wrapped message", fmt.Errorf("running: %w", errors.New("exit code: 127")), 127, true},
		{"typed", fmt.Errorf("running: %w", &gwpb.ExitError{ExitCode: 42}), 42, true},
		{"innermost", errors.New("step exit code: 1: inner exit code: 2"), 2, true},
		{"huge", errors.New("exit code: 99999999999999999999999"), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, ok := ExitCode(tt.err)
			if code != tt.code || ok != tt.ok {
				t.Errorf("ExitCode(%v) = %d, %v; want %d, %v", tt.err, code, ok, tt.code, tt.ok)
			}
		})
	}
}
