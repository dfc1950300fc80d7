package api_test

import (
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/api"
)

func TestParseRunID(t *testing.T) {
	for in, want := range map[string]int64{"r-7": 7, "7": 7, "r-123456789012": 123456789012} {
		got, err := api.ParseRunID(in)
		if err != nil || got != want {
			t.Errorf("ParseRunID(%q) = %d, %v; want %d", in, got, err, want)
		}
		if back := api.FormatRunID(got); back != "r-"+strings.TrimPrefix(in, "r-") {
			t.Errorf("FormatRunID(%d) = %q", got, back)
		}
	}
	for _, in := range []string{"x", "r-0", "0", "-1", "r--1", "", "r-", "r-7x", "r-r-7", "R-7", " 7", "99999999999999999999"} {
		if got, err := api.ParseRunID(in); err == nil {
			t.Errorf("ParseRunID(%q) = %d, want an error", in, got)
		}
	}
}

func TestCauseString(t *testing.T) {
	tests := []struct {
		c    api.Cause
		want string
	}{
		{api.Cause{Kind: "manual", User: "alice"}, "manual: alice"},
		{api.Cause{Kind: "commit", Ref: "main", SHA: "0123456789abcdef"}, "commit: main 0123456"},
		{api.Cause{Kind: "schedule", Schedule: "@daily"}, "schedule: @daily"},
		{api.Cause{Kind: "cascade", UpstreamRun: 3}, "cascade of r-3"},
		{api.Cause{Kind: "baseTag", Base: "docker.io/library/python", OldTag: "3.12.8", NewTag: "3.12.9"}, "baseTag: docker.io/library/python 3.12.8 → 3.12.9"},
		{api.Cause{Kind: "cascade", UpstreamRun: 4, Upstream: &api.Cause{Kind: "baseTag", Base: "python", OldTag: "1", NewTag: "2"}}, "cascade of r-4 ← baseTag: python 1 → 2"},
		{api.Cause{Kind: "odd"}, "odd"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.c, got, tt.want)
		}
	}
}

// TestWarningHeaderRoundTrip: what the server writes in a Warning header
// the client reads back as it was, quotes and backslashes included, and
// anything not in that form is not taken for a warning.
func TestWarningHeaderRoundTrip(t *testing.T) {
	for _, text := range []string{
		"base image 127.0.0.1:5000/nope:1 not found in registry 127.0.0.1:5000",
		`a "quoted" \ text`,
	} {
		v := api.WarningHeader(text)
		if got, ok := api.ParseWarningHeader(v); !ok || got != text {
			t.Errorf("ParseWarningHeader(WarningHeader(%q) = %q) = %q, %t", text, v, got, ok)
		}
	}
	if got, ok := api.ParseWarningHeader(`299 - "with a date" "Sat, 25 Aug 2012 23:34:45 GMT"`); !ok || got != "with a date" {
		t.Errorf("with a date: %q, %t", got, ok)
	}
	for _, bad := range []string{"", "299", `299 -`, "299 - unquoted", `299 - "unterminated`} {
		if got, ok := api.ParseWarningHeader(bad); ok {
			t.Errorf("ParseWarningHeader(%q) = %q, true; want false", bad, got)
		}
	}
}
