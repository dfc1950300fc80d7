package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RunState is where a run is in its life.
type RunState string

// Run states. Queued, Running, Testing, AwaitingApproval and Promoting
// are live; the rest are ends.
const (
	StateQueued     RunState = "queued"
	StateRunning    RunState = "running"
	StateTesting    RunState = "testing"
	StateSucceeded  RunState = "succeeded"
	StateFailed     RunState = "failed"
	StateCanceled   RunState = "canceled"
	StateSuperseded RunState = "superseded"
	// StateAwaitingApproval: built, tested, pushed by digest; waits for
	// POST /api/v1/runs/{id}/approve (or reject).
	StateAwaitingApproval RunState = "awaiting_approval"
	// StatePromoting: its promote tags are being moved to its digest.
	StatePromoting RunState = "promoting"
	// StateRejected: an approver rejected it; never promoted.
	StateRejected RunState = "rejected"
	StateSkipped  RunState = "skipped" // not built by the task's baseChange policy
)

// Done reports whether the state is an end: the run will not change again.
func (s RunState) Done() bool {
	switch s {
	case StateSucceeded, StateFailed, StateCanceled, StateSuperseded, StateRejected, StateSkipped:
		return true
	}
	return false
}

// Run is one execution of a task: GET /api/v1/runs/{id}, each entry of
// GET /api/v1/runs, and the answer to POST /api/v1/tasks/{name}/runs.
type Run struct {
	ID         string            `json:"id"` // "r-7"
	Task       string            `json:"task"`
	Spec       TaskSpec          `json:"spec"` // the task as it was when the run was queued
	State      RunState          `json:"state"`
	Cause      Cause             `json:"cause"`
	Attempts   int               `json:"attempts"`
	CreatedAt  time.Time         `json:"createdAt"`
	StartedAt  time.Time         `json:"startedAt,omitzero"`
	FinishedAt time.Time         `json:"finishedAt,omitzero"`
	Commit     string            `json:"commit,omitempty"`
	Image      string            `json:"image,omitempty"`  // repository@digest pushed
	Digest     string            `json:"digest,omitempty"` // digest pushed
	Tags       []string          `json:"tags,omitempty"`
	Bases      []UsedBase        `json:"bases,omitempty"`
	Step       string            `json:"step,omitempty"`    // step that failed
	Error      string            `json:"error,omitempty"`   // why it failed
	Timings    map[string]string `json:"timings,omitempty"` // step → duration ("1.2s"), and "total"
	// BlockedBy lists the numbers of upstream runs of the same wave this
	// run waits for (7 for r-7).
	BlockedBy []int64 `json:"blockedBy,omitempty"`
	// Platforms are the pushed image's per-platform manifest digests
	// (Digest is the index's, which differs with its provenance alone):
	// the same inputs give the same ones, and a run whose are unchanged
	// rebuilds nothing downstream.
	Platforms []PlatformDigest `json:"platforms,omitempty"`
}

// UsedBase is a base image a run resolved and pinned.
type UsedBase struct {
	Ref    string `json:"ref"`    // normalized reference, as discovered
	Name   string `json:"name"`   // as written in the Dockerfile
	Stage  string `json:"stage"`  // stage that uses it
	Role   string `json:"role"`   // runtime or build
	Digest string `json:"digest"` // digest pinned into the build
}

// Cause says why a run exists. Kind selects which other fields are set.
type Cause struct {
	// Kind is manual, commit, base, schedule, cascade or baseTag.
	Kind string `json:"kind"`
	// User started a manual run.
	User string `json:"user,omitempty"`
	// Repo, Ref, SHA and Author describe a commit.
	Repo   string `json:"repo,omitempty"`
	Ref    string `json:"ref,omitempty"`
	SHA    string `json:"sha,omitempty"`
	Author string `json:"author,omitempty"`
	// Base, Platform, OldDigest and NewDigest describe a base update.
	Base      string `json:"base,omitempty"`
	Platform  string `json:"platform,omitempty"`
	OldDigest string `json:"oldDigest,omitempty"`
	NewDigest string `json:"newDigest,omitempty"`
	// Schedule is the cron spec of a scheduled run.
	Schedule string `json:"schedule,omitempty"`
	// OldTag and NewTag describe a new base version tag (kind baseTag):
	// Base is the repository, NewDigest what NewTag pointed to, OldTag
	// the newest matching tag seen before.
	OldTag string `json:"oldTag,omitempty"`
	NewTag string `json:"newTag,omitempty"`
	// ScheduleName names the task's schedule (triggers.schedule[].name)
	// and DueAt is the tick the run is for, in the schedule's zone (a
	// catch-up run's is the first tick missed).
	ScheduleName string    `json:"scheduleName,omitempty"`
	DueAt        time.Time `json:"dueAt,omitzero"`
	// Observation is the index observation a base update came from.
	Observation int64 `json:"observation,omitempty"`
	// Source says how a base update was seen: poll, webhook or push.
	Source string `json:"source,omitempty"`
	// UpstreamRun is the number of the run whose push caused this
	// cascade; Upstream is that run's cause.
	UpstreamRun int64  `json:"upstreamRun,omitempty"`
	Upstream    *Cause `json:"upstream,omitempty"`
	// Decision is what the task's baseChange policy made of the base
	// update's diff ("base moved, not rebuilt: no package changed").
	Decision string `json:"decision,omitempty"`
	// Changes summarizes the base update's diff ("openssl 3.0.11-1 →
	// 3.0.13-1; +curl"), once it was ready while the run waited.
	Changes string `json:"changes,omitempty"`
	// Message is a commit's message (its first 4 KiB).
	Message string `json:"message,omitempty"`
	// Also are the other causes a queued run absorbed before it started
	// (a base update arriving while a commit's run waited, or the other
	// way round): the run builds once, for all of them.
	Also []Cause `json:"also,omitempty"`
}

// String renders the cause for people: "manual: alice".
func (c Cause) String() string {
	switch c.Kind {
	case "manual":
		return "manual: " + c.User
	case "commit":
		return fmt.Sprintf("commit: %s %.7s", c.Ref, c.SHA)
	case "base":
		s := fmt.Sprintf("base: %s %.19s → %.19s", c.Base, c.OldDigest, c.NewDigest)
		if c.Changes != "" {
			s += " (" + c.Changes + ")"
		}
		if c.Decision != "" {
			s += "; " + c.Decision
		}
		return s
	case "schedule":
		if c.ScheduleName != "" {
			return fmt.Sprintf("schedule: %s %q due %s", c.ScheduleName, c.Schedule, c.DueAt.Format(time.RFC3339))
		}
		return "schedule: " + c.Schedule
	case "baseTag":
		return fmt.Sprintf("baseTag: %s %s → %s", c.Base, c.OldTag, c.NewTag)
	case "cascade":
		s := "cascade of " + FormatRunID(c.UpstreamRun)
		if c.Upstream != nil {
			s += " ← " + c.Upstream.String()
		}
		return s
	}
	return c.Kind
}

// All renders the cause and every cause it absorbed: "commit: … + base: …".
func (c Cause) All() string {
	s := c.String()
	for _, a := range c.Also {
		s += " + " + a.String()
	}
	return s
}

// RunFilter is the query of GET /api/v1/runs.
type RunFilter struct {
	Task  string   // "" = all tasks
	State RunState // "" = any state
	Limit int      // 1 to 1000; 0 = 50
}

// FormatRunID renders a run number the way the API and users see it: "r-7".
func FormatRunID(n int64) string { return "r-" + strconv.FormatInt(n, 10) }

// ParseRunID reads a run ID, "r-7" or "7", back into its number.
func ParseRunID(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "r-"), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a run ID (like r-7)", s)
	}
	return n, nil
}
