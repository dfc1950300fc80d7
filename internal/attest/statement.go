package attest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Statement is an in-toto Statement v1 carrying refit's run predicate.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Subject is one artifact a Statement is about: the image's repository
// and one of its digests (the index, or a platform's manifest).
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"` // {"sha256": "<hex>"}
}

// Predicate is refit's run predicate (PredicateType): why the image
// exists. Test and Approvals stay empty until the parts that decide
// them fill them (see Attach): each attestation is a complete
// statement, and the newest of a run (by AttestedAt) is its story.
type Predicate struct {
	Run    RunInfo    `json:"run"`
	Server ServerInfo `json:"server"`
	Source SourceInfo `json:"source"`
	// Cause is the chain from this run back to what started it: first
	// this run's own cause, then (for a cascade) each upstream run's,
	// ending with the base update, commit, schedule or manual run at
	// its root.
	Cause []CauseLink `json:"cause"`
	// Bases are the base images the build pinned, by digest.
	Bases []Base `json:"bases"`
	Image Image  `json:"image"`
	// Test is the run's test result, when the run was tested.
	Test *TestResult `json:"test,omitempty"`
	// Approvals are the decisions on the run, when it needed them.
	Approvals []Approval `json:"approvals,omitempty"`
	// AttestedAt is when this statement was made.
	AttestedAt time.Time `json:"attestedAt"`
}

// RunInfo names the run.
type RunInfo struct {
	ID         string    `json:"id"` // "r-7"
	Task       string    `json:"task"`
	State      string    `json:"state,omitempty"`
	CreatedAt  time.Time `json:"createdAt,omitzero"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"` // build and push done
}

// ServerInfo names the refit server that built the image: ID is its
// signing key's fingerprint, stable for as long as the key is kept.
type ServerInfo struct {
	ID string `json:"id"`
}

// SourceInfo is what the image was built from: a git repository at a
// commit, or a server directory.
type SourceInfo struct {
	Repo string `json:"repo,omitempty"` // git URL, credentials redacted
	Ref  string `json:"ref,omitempty"`
	SHA  string `json:"sha,omitempty"`
	Dir  string `json:"dir,omitempty"`
}

// CauseLink is one step of a cause chain.
type CauseLink struct {
	// Kind is manual, commit, base, schedule or cascade.
	Kind string `json:"kind"`
	// Run and Task name the run this link is the cause of.
	Run  string `json:"run,omitempty"`
	Task string `json:"task,omitempty"`
	// UpstreamRun names the run a cascade followed (the next link is
	// that run's cause); UpstreamImage is what it pushed.
	UpstreamRun   string `json:"upstreamRun,omitempty"`
	UpstreamTask  string `json:"upstreamTask,omitempty"`
	UpstreamImage string `json:"upstreamImage,omitempty"`
	// A base update: Base moved from OldDigest to NewDigest (for
	// Platform), observed at ObservedAt via Via (poll, webhook, push).
	Base       string    `json:"base,omitempty"`
	Platform   string    `json:"platform,omitempty"`
	OldDigest  string    `json:"oldDigest,omitempty"`
	NewDigest  string    `json:"newDigest,omitempty"`
	ObservedAt time.Time `json:"observedAt,omitzero"`
	Via        string    `json:"via,omitempty"`
	// A commit.
	Repo   string `json:"repo,omitempty"`
	Ref    string `json:"ref,omitempty"`
	SHA    string `json:"sha,omitempty"`
	Author string `json:"author,omitempty"`
	// A manual run's user; a schedule's spec.
	User     string `json:"user,omitempty"`
	Schedule string `json:"schedule,omitempty"`
}

// Base is a base image pinned into the build.
type Base struct {
	Ref    string `json:"ref"`
	Stage  string `json:"stage,omitempty"`
	Role   string `json:"role,omitempty"`
	Digest string `json:"digest"`
}

// Image is what the run pushed.
type Image struct {
	Repository string     `json:"repository"`
	Digest     string     `json:"digest"`
	Platforms  []Platform `json:"platforms,omitempty"`
	Tags       []string   `json:"tags,omitempty"`
}

// Platform is one platform's image manifest digest.
type Platform struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
}

// TestResult is a run's test outcome (filled by the test step).
type TestResult struct {
	Result   string    `json:"result"` // passed or failed
	Target   string    `json:"target,omitempty"`
	Command  []string  `json:"command,omitempty"`
	ExitCode int       `json:"exitCode,omitempty"`
	At       time.Time `json:"at,omitzero"`
}

// Approval is one decision on a run (filled by the approval step).
type Approval struct {
	User     string    `json:"user"`
	Decision string    `json:"decision"` // approved or rejected
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}

// maxChain bounds a cause chain, when made and when read.
const maxChain = 64

// ParseStatement decodes an in-toto Statement of refit's predicate
// from untrusted bytes (at most MaxEnvelope) and checks its shape:
// statement and predicate types, at least one subject with a sha256
// digest, a run id, a cause chain of at most 64 links.
func ParseStatement(b []byte) (Statement, error) {
	var s Statement
	if len(b) > MaxEnvelope {
		return s, fmt.Errorf("statement of %d bytes is over the %d-byte limit", len(b), MaxEnvelope)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decoding in-toto statement: %w", err)
	}
	if s.Type != StatementType {
		return s, fmt.Errorf("statement type %.64q, want %s", s.Type, StatementType)
	}
	if s.PredicateType != PredicateType {
		return s, fmt.Errorf("predicate type %.64q, want %s", s.PredicateType, PredicateType)
	}
	if len(s.Subject) == 0 {
		return s, fmt.Errorf("statement has no subject")
	}
	for _, sub := range s.Subject {
		if !validHex(sub.Digest["sha256"]) {
			return s, fmt.Errorf("statement subject %.64q has no sha256 digest", sub.Name)
		}
	}
	if s.Predicate.Run.ID == "" {
		return s, fmt.Errorf("statement names no run")
	}
	if len(s.Predicate.Cause) > maxChain {
		return s, fmt.Errorf("cause chain of %d links, at most %d", len(s.Predicate.Cause), maxChain)
	}
	return s, nil
}

// Covers reports whether digest ("sha256:<hex>") is one of s's subjects.
func (s Statement) Covers(digest string) bool {
	hex, ok := strings.CutPrefix(digest, "sha256:")
	if !ok {
		return false
	}
	for _, sub := range s.Subject {
		if sub.Digest["sha256"] == hex {
			return true
		}
	}
	return false
}

// validHex reports whether s is 64 lowercase hex digits.
func validHex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// NewStatement returns the statement about the image p describes: its
// subjects are the image's index (or manifest) digest and each
// platform's manifest digest.
func NewStatement(p Predicate) Statement {
	s := Statement{Type: StatementType, PredicateType: PredicateType, Predicate: p}
	add := func(d string) {
		hex, ok := strings.CutPrefix(d, "sha256:")
		if !ok || s.Covers(d) {
			return
		}
		s.Subject = append(s.Subject, Subject{Name: p.Image.Repository, Digest: map[string]string{"sha256": hex}})
	}
	add(p.Image.Digest)
	for _, pl := range p.Image.Platforms {
		add(pl.Digest)
	}
	return s
}
