// Package api is refit's wire contract: the request and response types of
// every endpoint under /api/v1, the table of those endpoints (Routes) and
// the OpenAPI 3.1 description generated from both (OpenAPI). The server
// maps its rows to these types, the client and the CLI speak only these.
//
// The JSON of these types is the API: a change of a field name, a tag or
// an omitempty changes what scripts, webhook receivers and README's
// examples see. The package imports nothing internal (it is shared by
// internal/server, internal/client and cmd/refit) and holds no behaviour
// beyond the wire forms of values (run IDs "r-7", RunState.Done,
// Cause.String for people, Warning headers) and the description of itself. It does not
// validate requests: the server does, strictly (task specs through
// internal/task, whose Spec has the same JSON as TaskSpec).
package api

import (
	"encoding/json"
	"strings"
)

// Error is the body of every error answer (4xx, 5xx).
type Error struct {
	Message string `json:"error"`
	// Errors lists every task an apply refused (400 from tasks:apply).
	Errors []TaskError `json:"errors,omitempty"`
}

// WhoAmI answers GET /api/v1/whoami: who the token in use authenticates.
type WhoAmI struct {
	User string `json:"user"`
	// Roles are the caller's roles; Kind how it authenticated ("token").
	Roles []string `json:"roles,omitempty"`
	Kind  string   `json:"kind,omitempty"`
}

// LogChunk is one line of GET /api/v1/runs/{id}/logs (newline-delimited
// JSON): a BuildKit status update, numbered from 1.
type LogChunk struct {
	Seq  int64           `json:"seq"`
	Data json.RawMessage `json:"data"`
}

// WarningHeader renders text as the value of a Warning header (RFC 7234
// section 5.5, as the Kubernetes API uses it): `299 - "text"`. A
// successful answer carries one per thing the server noticed but did not
// refuse, such as a task's base image not found in its registry.
func WarningHeader(text string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", " ", "\r", " ")
	return `299 - "` + r.Replace(text) + `"`
}

// ParseWarningHeader returns the text of a Warning header value written
// by WarningHeader (any code and agent), and false for anything else.
func ParseWarningHeader(v string) (string, bool) {
	code, rest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || len(code) != 3 {
		return "", false
	}
	_, rest, ok = strings.Cut(rest, " ") // the agent
	if !ok || len(rest) < 2 || rest[0] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(rest); i++ {
		switch c := rest[i]; c {
		case '\\':
			if i+1 < len(rest) {
				i++
				b.WriteByte(rest[i])
			}
		case '"':
			return b.String(), true // a date may follow; it is not needed
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}
