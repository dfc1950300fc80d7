package api

import "time"

// DecisionRequest is the body of POST /api/v1/runs/{id}/approve and
// /reject (it may be empty).
type DecisionRequest struct {
	// Comment says why (a ticket, a CVE); it is recorded with the decision.
	Comment string `json:"comment,omitempty"`
}

// PromoteRequest is the body of POST /api/v1/tasks/{name}/promote: point
// the task's promote tags back at a digest it promoted before.
type PromoteRequest struct {
	Digest string `json:"digest"`
}

// Promotion is one tag a promotion moved.
type Promotion struct {
	Task       string    `json:"task"`
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	OldDigest  string    `json:"oldDigest,omitempty"` // "" when the tag did not exist
	NewDigest  string    `json:"newDigest"`
	By         string    `json:"by"`
	CreatedAt  time.Time `json:"createdAt"`
	DoneAt     time.Time `json:"doneAt,omitzero"`
}
