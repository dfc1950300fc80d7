package api

import "time"

// TaskTriggers answers GET /api/v1/tasks/{name}/triggers: what starts
// runs of a task, one section per kind of trigger, each with what refit
// knows of it now (next due times, last run).
type TaskTriggers struct {
	Task     string          `json:"task"`
	Commit   CommitSection   `json:"commit"`
	Base     BaseTrigger     `json:"base"`
	Manual   ManualTrigger   `json:"manual"`
	Schedule ScheduleTrigger `json:"schedule"`
	BaseTags BaseTagsTrigger `json:"baseTags"`
}

// BaseTagsTrigger is the baseTags section: the repositories whose new
// version tags the task follows.
type BaseTagsTrigger struct {
	Entries []BaseTagStatus `json:"entries"`
}

// BaseTagStatus is one triggers.baseTags entry with what the index knows
// of its repository now.
type BaseTagStatus struct {
	BaseTag
	// Repository is Ref normalized ("docker.io/library/python").
	Repository string `json:"repository"`
	// Newest is the newest matching tag seen (with its digest and when
	// it was first seen); "" before the first listing.
	Newest       string    `json:"newest,omitempty"`
	NewestDigest string    `json:"newestDigest,omitempty"`
	NewestSeenAt time.Time `json:"newestSeenAt,omitzero"`
	// Current is the tag Arg carries in the task's runs now: the one a
	// baseTags rebuild set, else the spec's buildArgs value.
	Current string `json:"current,omitempty"`
	// ListedAt and NextListAt are the repository's last and next
	// listing; LastError the last listing's error, if it failed.
	ListedAt   time.Time `json:"listedAt,omitzero"`
	NextListAt time.Time `json:"nextListAt,omitzero"`
	LastError  string    `json:"lastError,omitempty"`
}

// CommitSection is the commit section: a push to the task's git source
// starts a run, whether a webhook or polling sees it.
type CommitSection struct {
	Enabled bool   `json:"enabled"`
	Repo    string `json:"repo,omitempty"` // the source's repository (credentials masked); "" for a source.dir
	Ref     string `json:"ref,omitempty"`  // the ref followed
	// Filters are the task's triggers.commit filters (none = the ref).
	Filters CommitTrigger `json:"filters"`
	// Webhooks are the paths a git host posts pushes to, one per format
	// (prefix them with the server's address).
	Webhooks []string `json:"webhooks,omitempty"`
	// SecretSet says whether the repository has a webhook secret (refit
	// hook secret set): without one every delivery is refused (401).
	SecretSet bool `json:"secretSet"`
	// Heads are the branch and tag heads refit last saw of the
	// repository (by webhook or polling): ref → commit.
	Heads map[string]string `json:"heads,omitempty"`
	// Deliveries are the last push delivery per source (webhook format or
	// "poll") with its verdict, by source; none before the first.
	Deliveries []GitDelivery `json:"deliveries,omitempty"`
}

// GitDelivery is the last delivery of a push from one source: what a
// webhook answered (refusals of a repository tasks build included) or
// what polling decided.
type GitDelivery struct {
	// Source is the webhook format (github, gitlab, gitea, generic) or
	// "poll".
	Source string    `json:"source"`
	At     time.Time `json:"at"`
	// Delivery is the host's delivery id (polling: refit's own).
	Delivery string `json:"delivery,omitempty"`
	Ref      string `json:"ref,omitempty"`
	SHA      string `json:"sha,omitempty"`
	// Status is the HTTP status answered to a webhook; 0 for polling.
	Status int `json:"status,omitempty"`
	// Message is the verdict: runs queued, replay, no task uses the
	// repository, skipped by a filter (with the reason per task), or why
	// the delivery was refused.
	Message string `json:"message"`
	// Runs are the runs queued or joined ("r-7").
	Runs []string `json:"runs,omitempty"`
}

// BaseTrigger is the base section: a new digest of a base the task
// watches starts a run.
type BaseTrigger struct {
	Enabled bool   `json:"enabled"`
	Scope   string `json:"scope"` // "runtime" (the final stage's base) or "all"
	Patch   string `json:"patch"` // "rebuild" or "rebase"
	// Watched are the bases whose change rebuilds the task (by scope).
	Watched []string `json:"watched"`
}

// ManualTrigger is the manual section: `refit run` / POST runs.
type ManualTrigger struct {
	Enabled bool `json:"enabled"`
}

// ScheduleTrigger is the schedule section: the task's schedules.
type ScheduleTrigger struct {
	Schedules []ScheduleStatus `json:"schedules"`
}

// ScheduleStatus is one schedule with its next due times and last run.
type ScheduleStatus struct {
	Name     string `json:"name"`
	Cron     string `json:"cron"`
	Timezone string `json:"timezone"`
	CatchUp  string `json:"catchUp"`
	// Next are the next three due times, in the schedule's zone. The
	// first may be past: a tick not yet queued (refit is starting).
	Next []time.Time `json:"next"`
	// LastDue is the tick of the last scheduled run, LastRun that run
	// ("r-7") and LastState its state; empty when none ran yet.
	LastDue   time.Time `json:"lastDue,omitzero"`
	LastRun   string    `json:"lastRun,omitempty"`
	LastState RunState  `json:"lastState,omitempty"`
}
