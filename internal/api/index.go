package api

import "time"

// PlatformDigest is the digest of one platform's manifest.
type PlatformDigest struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
}

// BaseInfo is one entry of GET /api/v1/bases: a base reference as the
// index sees it, and the tasks that build on it.
type BaseInfo struct {
	Ref         string           `json:"ref"`
	Digest      string           `json:"digest,omitempty"` // what the tag points to (index or manifest): what runs pin
	MediaType   string           `json:"mediaType,omitempty"`
	Platforms   []PlatformDigest `json:"platforms,omitempty"`
	AddedAt     time.Time        `json:"addedAt"`
	CheckedAt   time.Time        `json:"checkedAt,omitzero"`
	ChangedAt   time.Time        `json:"changedAt,omitzero"`
	NextCheckAt time.Time        `json:"nextCheckAt"`
	Failures    int              `json:"failures,omitempty"` // checks failed in a row
	LastError   string           `json:"lastError,omitempty"`
	ErrorSince  time.Time        `json:"errorSince,omitzero"`
	Tasks       []BaseUse        `json:"tasks"`
}

// BaseUse is a task that builds on a reference, and how.
type BaseUse struct {
	Task    string `json:"task"`
	Stage   string `json:"stage"`
	Role    string `json:"role"`
	Watched bool   `json:"watched"` // a change of the reference rebuilds the task
}

// Observation is one entry of GET /api/v1/bases/history: a digest a
// reference was seen to point to.
type Observation struct {
	ID        int64     `json:"id"`
	Ref       string    `json:"ref"`
	Platform  string    `json:"platform"`
	Digest    string    `json:"digest"`
	OldDigest string    `json:"oldDigest,omitempty"`
	TopDigest string    `json:"topDigest"`
	Source    string    `json:"source"` // poll, webhook or push
	SeenAt    time.Time `json:"seenAt"`
}

// Graph is GET /api/v1/graph: tasks, the references they build on, and
// edges "task builds on ref" and "task pushes ref".
type Graph struct {
	Tasks []string    `json:"tasks"`
	Refs  []string    `json:"refs"`
	Edges []GraphEdge `json:"edges"`
}

// GraphEdge is one edge of the dependency graph.
type GraphEdge struct {
	From string `json:"from"`
	To   string `json:"to"`
	Kind string `json:"kind"` // "runtime", "build" (task ← ref) or "pushes" (task → ref)
	// Watched says whether a change of the reference rebuilds the task.
	Watched bool `json:"watched,omitempty"`
}

// Explanation is GET /api/v1/tasks/{name}/explain: why a task did (or
// didn't) rebuild.
type Explanation struct {
	Task      string       `json:"task"`
	Trigger   string       `json:"trigger"` // the base trigger's setting, in words
	Bases     []BaseStatus `json:"bases"`
	Upstream  []string     `json:"upstream,omitempty"`   // tasks whose output this task builds on
	Dependent []string     `json:"dependents,omitempty"` // tasks built on this task's output
	LastRuns  []Run        `json:"lastRuns,omitempty"`
	Verdict   []string     `json:"verdict"`
}

// BaseStatus is one base of a task, as the index sees it.
type BaseStatus struct {
	Ref         string    `json:"ref"`
	Stage       string    `json:"stage"`
	Role        string    `json:"role"`
	Watched     bool      `json:"watched"`             // a change rebuilds the task
	Tracked     bool      `json:"tracked"`             // in the index
	Current     string    `json:"current,omitempty"`   // the digest the tag points to (as in GET /bases)
	MediaType   string    `json:"mediaType,omitempty"` // Current's: an index or a manifest
	Built       string    `json:"built,omitempty"`     // digest the last successful run used
	Stale       bool      `json:"stale"`               // built on a digest that is no longer current
	CheckedAt   time.Time `json:"checkedAt,omitzero"`
	ChangedAt   time.Time `json:"changedAt,omitzero"`
	NextCheckAt time.Time `json:"nextCheckAt,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
	ErrorSince  time.Time `json:"errorSince,omitzero"`
	Pinned      bool      `json:"pinned,omitempty"` // FROM names a digest: it never moves
}
