package api

import "time"

// TaskSpec is a task as a user writes it: the body of POST /api/v1/tasks
// and PUT /api/v1/tasks/{name}, and each entry of tasks:apply. The server
// decodes it strictly (unknown fields are errors) with internal/task,
// whose Spec has exactly these JSON fields.
type TaskSpec struct {
	// Name: lowercase letters, digits, '-', '_' and '.', at most 63.
	Name string `json:"name"`
	// Source says where the build context comes from. Required.
	Source TaskSource `json:"source"`
	// Context is the build context directory in the source. Default ".".
	Context string `json:"context,omitempty"`
	// Dockerfile is the Dockerfile path in Context. Default "Dockerfile".
	Dockerfile string `json:"dockerfile,omitempty"`
	// BuildArgs override ARG defaults.
	BuildArgs map[string]string `json:"buildArgs,omitempty"`
	// Target is the stage to build. Default: the last.
	Target string `json:"target,omitempty"`
	// Platforms as os/arch[/variant]. Default: the server's.
	Platforms []string `json:"platforms,omitempty"`
	// Image is the repository to push to. Default: the task name, in the
	// embedded registry.
	Image string `json:"image,omitempty"`
	// Tags are templates ({{.Run.ID}}, {{.Commit.Short}}, …). Default
	// ["latest"].
	Tags []string `json:"tags,omitempty"`
	// Triggers say which events start a run. Default: commit, base and
	// manual.
	Triggers *Triggers `json:"triggers,omitempty"`
	// Test checks the pushed image before promotion; nil = none.
	Test *TaskTest `json:"test,omitempty"`
	// Promote moves tags to a tested (and, by policy, approved) digest;
	// nil = tags are pushed by the build.
	Promote *Promote `json:"promote,omitempty"`
}

// TaskTest is a task's test step: a Dockerfile stage that must build,
// and/or a command run inside the built image.
type TaskTest struct {
	Target  string   `json:"target,omitempty"`
	Command []string `json:"command,omitempty"`
}

// Promote is a task's promotion policy.
type Promote struct {
	Tags   []string `json:"tags"`
	Policy string   `json:"policy,omitempty"` // auto, after-test or approval
	// Approvers: default {role: approver, count: 1}.
	Approvers *Approvers `json:"approvers,omitempty"`
	// RequireApprovalFor: the cause kinds that need approval (default all).
	RequireApprovalFor []string `json:"requireApprovalFor,omitempty"`
	ReapproveOnChange  *bool    `json:"reapproveOnChange,omitempty"` // default true
}

// Approvers is how many distinct users with which role must approve.
type Approvers struct {
	Role  string `json:"role,omitempty"`
	Count int    `json:"count,omitempty"`
}

// TaskSource is exactly one of Git (with Ref) or Dir.
type TaskSource struct {
	Git string `json:"git,omitempty"`
	Ref string `json:"ref,omitempty"` // default "HEAD"
	Dir string `json:"dir,omitempty"` // on the server's machine
}

// Triggers are a task's trigger settings.
type Triggers struct {
	// Commit is true, false or {branches, paths, tags, deletions}.
	Commit CommitTrigger `json:"commit"`

	Base      bool       `json:"base"`
	Manual    bool       `json:"manual"`
	Schedule  []Schedule `json:"schedule,omitempty"`
	BaseScope string     `json:"baseScope,omitempty"` // "runtime" (default) or "all"
	Patch     string     `json:"patch,omitempty"`     // "rebuild" (default) or "rebase"
	// BaseChange is the rebuild policy for base updates; nil = every
	// update rebuilds.
	BaseChange *BaseChange `json:"baseChange,omitempty"`
	// BaseTags follow new version tags of base repositories.
	BaseTags []BaseTag `json:"baseTags,omitempty"`
}

// BaseTag follows a base repository's version tags: a new tag matching
// Semver rebuilds the task with Arg set to it (action "rebuild", the
// default) or only emits a base.tagged event ("notify").
type BaseTag struct {
	Ref        string `json:"ref"`                  // repository without tag ("docker.io/library/python")
	Arg        string `json:"arg,omitempty"`        // build-arg carrying the tag; required for rebuild
	Semver     string `json:"semver"`               // constraint ("~3.12"), Masterminds/semver syntax
	Prerelease bool   `json:"prerelease,omitempty"` // count pre-release (and suffixed) tags
	Action     string `json:"action,omitempty"`     // "rebuild" (default) or "notify"
}

// Schedule is one entry of triggers.schedule: run the task at the times
// Cron names, read in Timezone. (A spec may also give triggers.schedule
// as one cron string: one entry named "default". Stored tasks always
// show the list.)
type Schedule struct {
	Name     string `json:"name"`               // unique per task
	Cron     string `json:"cron"`               // "0 3 * * 1", @daily, @every 1h
	Timezone string `json:"timezone,omitempty"` // IANA zone; default "UTC"
	CatchUp  string `json:"catchUp,omitempty"`  // "once" (default) or "skip"
}

// BaseChange says which base updates rebuild a task, from the base's
// package diff.
type BaseChange struct {
	RebuildWhen string  `json:"rebuildWhen,omitempty"` // "any" (default), "packages" or "fixes"
	MinSeverity string  `json:"minSeverity,omitempty"` // for fixes: low, medium, high (default), critical
	Urgent      *Urgent `json:"urgent,omitempty"`
	Wait        string  `json:"wait,omitempty"` // how long a run waits for the diff; default "2m"
}

// Urgent: a fix at or above Severity starts the run after Debounce.
type Urgent struct {
	Severity string `json:"severity"`
	Debounce string `json:"debounce,omitempty"`
}

// Base is one image reference a task's Dockerfile builds on.
type Base struct {
	Stage    string `json:"stage"` // stage name, or its index when unnamed
	Role     string `json:"role"`  // "runtime" or "build"
	Kind     string `json:"kind"`  // "from", "copy-from" or "mount-from"
	Ref      string `json:"ref"`   // normalized as Docker does
	Name     string `json:"name"`  // as written, after ARG expansion
	Platform string `json:"platform,omitempty"`
	Line     int    `json:"line"`
}

// Task is a stored task: its spec with defaults filled in, and the bases
// its Dockerfile was found to build on.
type Task struct {
	Spec      TaskSpec  `json:"spec"`
	Bases     []Base    `json:"bases"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// TagArgs are the build args triggers.baseTags set to the newest tag
	// seen (arg → tag): every run of the task builds with them, over
	// spec.buildArgs. Shown by GET /tasks/{name} only.
	TagArgs map[string]string `json:"tagArgs,omitempty"`
}

// Name returns the task's name.
func (t Task) Name() string { return t.Spec.Name }

// PutResult answers PUT /api/v1/tasks/{name} (201 when created, else 200).
type PutResult struct {
	Task    Task `json:"task"`
	Created bool `json:"created"`
	Changed bool `json:"changed"`
}

// ApplyRequest is the body of POST /api/v1/tasks:apply: tasks to create
// or update together, all or none.
type ApplyRequest struct {
	Tasks []TaskSpec `json:"tasks"`
	// Watches are created or updated with the tasks (never removed).
	Watches []WatchRequest `json:"watches,omitempty"`
}

// ApplyResult answers an apply that stored every task (200).
type ApplyResult struct {
	Tasks   []AppliedTask  `json:"tasks"`             // in the request's order
	Watches []AppliedWatch `json:"watches,omitempty"` // in the request's order
}

// AppliedWatch says what an apply did to one watch.
type AppliedWatch struct {
	Ref    string `json:"ref"`    // normalized
	Action string `json:"action"` // "created" or "updated"
}

// AppliedTask says what an apply did to one task.
type AppliedTask struct {
	Name   string `json:"name"`
	Action string `json:"action"` // "created", "updated" or "unchanged"
}

// TaskError is why an apply refused one task; an apply that refuses any
// answers 400 with an Error listing every one.
type TaskError struct {
	Index int    `json:"index"`          // position in the request's tasks
	Task  string `json:"task,omitempty"` // its name, when it has one
	Error string `json:"error"`
}
