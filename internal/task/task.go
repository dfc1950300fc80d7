// Package task owns the definition of a build task: what to build (source,
// Dockerfile, arguments), where to push it (image and tag templates) and
// when (triggers). It validates definitions and decodes them strictly from
// JSON and YAML. It does not store tasks or run them.
package task

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/distribution/reference"
	"sigs.k8s.io/yaml"
)

// Spec is a task as a user writes it (API body, `refit apply` YAML).
// JSON and YAML share the field names below; unknown fields are errors.
type Spec struct {
	// Name identifies the task: lowercase letters, digits, '-', '_' and '.',
	// starting with a letter or digit, at most 63 characters.
	Name string `json:"name"`
	// Source says where the build context comes from. Required.
	Source Source `json:"source"`
	// Context is the build context directory, relative to the source root.
	// Default ".".
	Context string `json:"context,omitempty"`
	// Dockerfile is the Dockerfile path relative to Context. Default
	// "Dockerfile".
	Dockerfile string `json:"dockerfile,omitempty"`
	// BuildArgs are passed to the build and override ARG defaults.
	BuildArgs map[string]string `json:"buildArgs,omitempty"`
	// Target is the stage to build. Default: the last stage.
	Target string `json:"target,omitempty"`
	// Platforms to build for, as os/arch[/variant]. Default: the host's.
	Platforms []string `json:"platforms,omitempty"`
	// Image is the repository to push to. A name without a registry host
	// ("api", "team/api") lives in refit's embedded registry. Default: the
	// task name.
	Image string `json:"image,omitempty"`
	// Tags are Go templates evaluated per run ({{.Run.ID}},
	// {{.Commit.Short}}, {{.Commit.SHA}}, {{.Task.Name}}). Default
	// ["latest"]. The image is always pushed by digest as well.
	Tags []string `json:"tags,omitempty"`
	// Triggers says which events start a run. Default: commit, base and
	// manual enabled.
	Triggers *Triggers `json:"triggers,omitempty"`
	// Test checks the pushed image before it may be promoted. nil = no
	// test.
	Test *Test `json:"test,omitempty"`
	// Promote moves tags to a run's image only once it passed its test
	// and, where the policy says so, was approved. nil = no promotion:
	// Tags are pushed by the build, as without a test.
	Promote *Promote `json:"promote,omitempty"`
}

// Test is a task's test step, run by BuildKit after the push: Target, a
// Dockerfile stage built with the image's cache (unit tests run there),
// and/or Command, run inside the built image. At least one is required.
type Test struct {
	// Target is a stage of the task's Dockerfile that must build.
	Target string `json:"target,omitempty"`
	// Command is an argv run inside the built image; a non-zero exit
	// fails the run at step test.
	Command []string `json:"command,omitempty"`
}

// Promotion policies.
const (
	PolicyAuto      = "auto"       // promote every run that succeeded (and passed its test, if any)
	PolicyAfterTest = "after-test" // as auto, and the task must have a test
	PolicyApproval  = "approval"   // as after-test, then wait for approvals (see RequireApprovalFor)
)

// CauseKinds are the kinds of run cause requireApprovalFor may name.
var CauseKinds = []string{"manual", "commit", "base", "schedule", "baseTag", "cascade"}

// Roles are the roles a token may carry.
var Roles = []string{"viewer", "operator", "approver", "admin"}

// Promote is a task's promotion policy.
type Promote struct {
	// Tags are moved to a run's digest when it is promoted (plain tags,
	// not templates). Required. They may not also be in the task's Tags.
	Tags []string `json:"tags"`
	// Policy is auto, after-test or approval. Default: after-test when the
	// task has a test, else auto.
	Policy string `json:"policy,omitempty"`
	// Approvers says who approves, with policy approval. Default
	// {role: approver, count: 1}.
	Approvers *Approvers `json:"approvers,omitempty"`
	// RequireApprovalFor lists the cause kinds whose runs need approval
	// under policy approval; runs of other kinds promote after their test.
	// Default: every kind.
	RequireApprovalFor []string `json:"requireApprovalFor,omitempty"`
	// ReapproveOnChange: an approval is for a digest. When false, a run
	// whose platform images equal those of the task's promoted image is
	// promoted without a new approval. Default true.
	ReapproveOnChange *bool `json:"reapproveOnChange,omitempty"`
}

// Approvers is how many distinct users with which role must approve.
type Approvers struct {
	Role  string `json:"role,omitempty"`  // default "approver"
	Count int    `json:"count,omitempty"` // default 1
}

// NeedsApproval reports whether a run with the given cause kind waits for
// approval under p (defaults applied).
func (p *Promote) NeedsApproval(kind string) bool {
	return p != nil && p.Policy == PolicyApproval && slices.Contains(p.RequireApprovalFor, kind)
}

// Source is where a task's files come from: exactly one of Git or Dir.
type Source struct {
	// Git is a repository URL (https://, http://, ssh://, git://, file://
	// or a local path to a repository).
	Git string `json:"git,omitempty"`
	// Ref is a branch, tag or commit in Git. Default "HEAD" (the
	// repository's default branch).
	Ref string `json:"ref,omitempty"`
	// Dir is a local directory on the server's machine, for development.
	Dir string `json:"dir,omitempty"`
}

// Triggers holds the trigger settings of a task. Used by the index and
// scheduler; the core only stores them.
type Triggers struct {
	// Commit says which pushes to the git source start a run: true (the
	// source's ref), false, or an object of filters (see CommitTrigger).
	Commit CommitTrigger `json:"commit"`

	Base   bool `json:"base"`
	Manual bool `json:"manual"`
	// Schedule lists the times the task runs, with nothing changed (see
	// Schedule). The old form, one cron spec string, is one entry named
	// "default".
	Schedule Schedules `json:"schedule,omitempty"`
	// BaseScope is "runtime" (only the final stage's base, default) or
	// "all" (every stage's base).
	BaseScope string `json:"baseScope,omitempty"`
	// Patch is "rebuild" (default) or "rebase".
	Patch string `json:"patch,omitempty"`
	// BaseTags follow new version tags of base repositories (see
	// BaseTag). Default none.
	BaseTags []BaseTag `json:"baseTags,omitempty"`
	// BaseChange says which base updates rebuild the task, from what
	// changed in the base (its package diff). nil = every update.
	BaseChange *BaseChange `json:"baseChange,omitempty"`
}

// BaseChange is the rebuild policy for base updates.
type BaseChange struct {
	// RebuildWhen is "any" (default: every update), "packages" (skip
	// an update that changed no OS package) or "fixes" (only an update
	// that fixes a vulnerability at or above MinSeverity).
	RebuildWhen string `json:"rebuildWhen,omitempty"`
	// MinSeverity is low, medium, high (default) or critical; for fixes.
	MinSeverity string `json:"minSeverity,omitempty"`
	// Urgent starts a run whose update fixes a vulnerability at or above
	// Urgent.Severity after Urgent.Debounce instead of the server's
	// debounce. nil = no urgent path.
	Urgent *Urgent `json:"urgent,omitempty"`
	// Wait bounds how long a run waits for the base's diff when the
	// policy needs it (a Go duration, e.g. "2m"; default 2m); then it
	// builds, and the fallback is recorded.
	Wait string `json:"wait,omitempty"`
}

// Urgent is the urgent path of a BaseChange policy.
type Urgent struct {
	Severity string `json:"severity"`
	// Debounce is a Go duration ("0s"); default 0s.
	Debounce string `json:"debounce,omitempty"`
}

// NeedsDiff reports whether the policy decides from the base's diff.
func (b *BaseChange) NeedsDiff() bool {
	return b != nil && (b.RebuildWhen == "packages" || b.RebuildWhen == "fixes" || b.Urgent != nil)
}

// FieldError says which field of a spec is wrong and why.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Msg) }

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	tagRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	platRE = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$`)
	argRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// stageRE is what the Dockerfile frontend accepts as a stage name.
	stageRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.-]{0,127}$`)
)

// HostPlatform is the default build platform: linux on the host's
// architecture.
func HostPlatform() string { return "linux/" + runtime.GOARCH }

// Defaults returns a copy of s with every unset field given its default.
func (s Spec) Defaults() Spec {
	if s.Context == "" {
		s.Context = "."
	}
	if s.Dockerfile == "" {
		s.Dockerfile = "Dockerfile"
	}
	if len(s.Platforms) == 0 {
		s.Platforms = []string{HostPlatform()}
	}
	if s.Image == "" {
		s.Image = s.Name
	}
	if len(s.Tags) == 0 && s.Promote == nil {
		// With a promote section the image is pushed by digest only,
		// unless tags are set: promotion moves the promote tags.
		s.Tags = []string{"latest"}
	}
	if s.Promote != nil {
		p := *s.Promote
		if p.Policy == "" {
			p.Policy = PolicyAuto
			if s.Test != nil {
				p.Policy = PolicyAfterTest
			}
		}
		a := Approvers{}
		if p.Approvers != nil {
			a = *p.Approvers
		}
		if a.Role == "" {
			a.Role = "approver"
		}
		if a.Count == 0 {
			a.Count = 1
		}
		p.Approvers = &a
		if len(p.RequireApprovalFor) == 0 {
			p.RequireApprovalFor = slices.Clone(CauseKinds)
		}
		if p.ReapproveOnChange == nil {
			t := true
			p.ReapproveOnChange = &t
		}
		s.Promote = &p
	}
	if s.Triggers == nil {
		s.Triggers = &Triggers{Commit: CommitOn(), Base: true, Manual: true}
	}
	if s.Triggers.Schedule != nil {
		tr := *s.Triggers // the caller's triggers stay as they are
		tr.Schedule = tr.Schedule.withDefaults()
		s.Triggers = &tr
	}
	if s.Triggers.BaseScope == "" {
		s.Triggers.BaseScope = "runtime"
	}
	if s.Triggers.Patch == "" {
		s.Triggers.Patch = "rebuild"
	}
	if s.Source.Git != "" && s.Source.Ref == "" {
		s.Source.Ref = "HEAD"
	}
	return s
}

// Validate checks the spec's fields (not the Dockerfile: see the caller)
// and returns a *FieldError naming the first bad field.
func (s Spec) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return &FieldError{"name", fmt.Sprintf("%q is not a valid task name (lowercase letters, digits, '.', '_', '-'; at most 63)", s.Name)}
	}
	switch {
	case s.Source.Git == "" && s.Source.Dir == "":
		return &FieldError{"source", "one of source.git or source.dir is required"}
	case s.Source.Git != "" && s.Source.Dir != "":
		return &FieldError{"source", "source.git and source.dir are exclusive"}
	case s.Source.Dir != "" && s.Source.Ref != "":
		return &FieldError{"source.ref", "a ref needs source.git"}
	case s.Source.Dir != "" && !path.IsAbs(s.Source.Dir):
		return &FieldError{"source.dir", fmt.Sprintf("%q must be an absolute path", s.Source.Dir)}
	}
	for _, f := range []struct{ field, v string }{{"context", s.Context}, {"dockerfile", s.Dockerfile}} {
		if f.v == "" {
			continue
		}
		if c := path.Clean(f.v); path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
			return &FieldError{f.field, fmt.Sprintf("%q must be a relative path inside the source", f.v)}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.BuildArgs)) {
		if !argRE.MatchString(k) {
			return &FieldError{"buildArgs", fmt.Sprintf("%q is not a valid build argument name", k)}
		}
		if err := checkArgValue(s.BuildArgs[k]); err != nil {
			return &FieldError{"buildArgs." + k, err.Error()}
		}
	}
	for _, p := range s.Platforms {
		if !platRE.MatchString(p) {
			return &FieldError{"platforms", fmt.Sprintf("%q is not os/arch[/variant]", p)}
		}
	}
	if s.Image != "" {
		if _, err := reference.ParseNormalizedNamed(s.Image); err != nil {
			return &FieldError{"image", fmt.Sprintf("%q: %v", s.Image, err)}
		}
		if strings.ContainsAny(s.Image, "@") || hasTag(s.Image) {
			return &FieldError{"image", fmt.Sprintf("%q must be a repository without tag or digest (use tags)", s.Image)}
		}
	}
	sample := s.sampleTagData()
	for i, t := range s.Tags {
		field := fmt.Sprintf("tags[%d]", i)
		if !strings.Contains(t, "{{") {
			if !tagRE.MatchString(t) {
				return &FieldError{field, fmt.Sprintf("%q is not a valid image tag", t)}
			}
			continue
		}
		if _, err := renderTag(field, t, sample); err != nil {
			msg := err.Error()
			var ee template.ExecError
			switch {
			case errors.As(err, &ee):
				msg += " (templates see .Run.ID, .Commit.SHA, .Commit.Short and .Task.Name)"
			case s.Source.Dir != "" && strings.Contains(t, ".Commit"):
				msg += " (a source.dir has no commit)"
			}
			return &FieldError{field, msg}
		}
	}
	if err := s.validateTestPromote(); err != nil {
		return err
	}
	if tr := s.Triggers; tr != nil {
		switch tr.BaseScope {
		case "", "runtime", "all":
		default:
			return &FieldError{"triggers.baseScope", fmt.Sprintf("%q must be runtime or all", tr.BaseScope)}
		}
		switch tr.Patch {
		case "", "rebuild", "rebase":
		default:
			return &FieldError{"triggers.patch", fmt.Sprintf("%q must be rebuild or rebase", tr.Patch)}
		}
		if err := validateBaseTags(tr.BaseTags); err != nil {
			return err
		}
		if err := validateSchedules(tr.Schedule); err != nil {
			return err
		}
		if err := tr.BaseChange.validate(); err != nil {
			return err
		}
		if err := tr.Commit.validate(); err != nil {
			return err
		}
		if tr.Commit.filtered() && s.Source.Dir != "" {
			return &FieldError{"triggers.commit", "filters need source.git (a source.dir has no commits)"}
		}
	}
	return nil
}

// validateTestPromote checks the test and promote sections.
func (s Spec) validateTestPromote() error {
	if t := s.Test; t != nil {
		if t.Target == "" && len(t.Command) == 0 {
			return &FieldError{"test", "needs a target, a command or both"}
		}
		if t.Target != "" && !stageRE.MatchString(t.Target) {
			return &FieldError{"test.target", fmt.Sprintf("%q is not a valid stage name", t.Target)}
		}
		if len(t.Command) > 0 && t.Command[0] == "" {
			return &FieldError{"test.command", "the program (first element) is empty"}
		}
		for i, a := range t.Command {
			if err := checkArgValue(a); err != nil {
				return &FieldError{fmt.Sprintf("test.command[%d]", i), err.Error()}
			}
		}
	}
	p := s.Promote
	if p == nil {
		return nil
	}
	if len(p.Tags) == 0 {
		return &FieldError{"promote.tags", "at least one tag to promote is required"}
	}
	for i, t := range p.Tags {
		field := fmt.Sprintf("promote.tags[%d]", i)
		if !tagRE.MatchString(t) {
			return &FieldError{field, fmt.Sprintf("%q is not a valid image tag (promote tags are not templates)", t)}
		}
		if slices.Contains(s.Tags, t) {
			return &FieldError{field, fmt.Sprintf("%q is also in tags: a build would push it before the test and promotion", t)}
		}
	}
	switch p.Policy {
	case "", PolicyAuto:
	case PolicyAfterTest, PolicyApproval:
		if s.Test == nil {
			return &FieldError{"promote.policy", fmt.Sprintf("%q needs a test section (or use policy auto)", p.Policy)}
		}
	default:
		return &FieldError{"promote.policy", fmt.Sprintf("%q must be auto, after-test or approval", p.Policy)}
	}
	if a := p.Approvers; a != nil {
		if a.Role != "" && !slices.Contains(Roles, a.Role) {
			return &FieldError{"promote.approvers.role", fmt.Sprintf("%q must be one of %s", a.Role, strings.Join(Roles, ", "))}
		}
		if a.Count < 0 || a.Count > 10 {
			return &FieldError{"promote.approvers.count", fmt.Sprintf("%d must be from 1 to 10", a.Count)}
		}
	}
	for i, k := range p.RequireApprovalFor {
		if !slices.Contains(CauseKinds, k) {
			return &FieldError{fmt.Sprintf("promote.requireApprovalFor[%d]", i), fmt.Sprintf("%q must be one of %s", k, strings.Join(CauseKinds, ", "))}
		}
	}
	return nil
}

func (b *BaseChange) validate() error {
	if b == nil {
		return nil
	}
	switch b.RebuildWhen {
	case "", "any", "packages", "fixes":
	default:
		return &FieldError{"triggers.baseChange.rebuildWhen", fmt.Sprintf("%q must be any, packages or fixes", b.RebuildWhen)}
	}
	sev := func(field, v string, empty bool) error {
		switch v {
		case "low", "medium", "high", "critical":
			return nil
		case "":
			if empty {
				return nil
			}
		}
		return &FieldError{field, fmt.Sprintf("%q must be low, medium, high or critical", v)}
	}
	if err := sev("triggers.baseChange.minSeverity", b.MinSeverity, true); err != nil {
		return err
	}
	if b.Wait != "" {
		if d, err := time.ParseDuration(b.Wait); err != nil || d < 0 {
			return &FieldError{"triggers.baseChange.wait", fmt.Sprintf("%q is not a duration like 2m", b.Wait)}
		}
	}
	if u := b.Urgent; u != nil {
		if err := sev("triggers.baseChange.urgent.severity", u.Severity, false); err != nil {
			return err
		}
		if u.Debounce != "" {
			if d, err := time.ParseDuration(u.Debounce); err != nil || d < 0 {
				return &FieldError{"triggers.baseChange.urgent.debounce", fmt.Sprintf("%q is not a duration like 0s", u.Debounce)}
			}
		}
	}
	return nil
}

// hasTag reports whether the last path component of a repository carries
// a ":tag" (a colon after the host part does not count).
func hasTag(repo string) bool {
	last := repo[strings.LastIndex(repo, "/")+1:]
	return strings.Contains(last, ":")
}

// checkArgValue refuses a build argument value that is not UTF-8 or holds
// a control character other than tab: a newline or NUL in a value would
// reach the build's environment and logs as something else than written.
func checkArgValue(v string) error {
	if !utf8.ValidString(v) {
		return errors.New("value is not valid UTF-8")
	}
	for _, r := range v {
		if r != '\t' && unicode.IsControl(r) {
			return fmt.Errorf("value contains a control character (%U)", r)
		}
	}
	return nil
}

// TagData is what tag templates see.
type TagData struct {
	Run    struct{ ID string }
	Commit struct{ SHA, Short string }
	Task   struct{ Name string }
}

// sampleTagData is what a run of s could give its tag templates, at its
// longest: the largest run ID, and a commit only for a git source.
func (s Spec) sampleTagData() TagData {
	var d TagData
	d.Run.ID = fmt.Sprintf("r-%d", math.MaxInt64)
	if s.Source.Git != "" {
		d.Commit.SHA = strings.Repeat("f", 40)
		d.Commit.Short = d.Commit.SHA[:7]
	}
	d.Task.Name = s.Name
	return d
}

// renderTag evaluates one tag template (named name in errors) against d
// and checks the result is a valid tag. Fields TagData lacks are errors.
func renderTag(name, t string, d TagData) (string, error) {
	tpl, err := template.New(name).Option("missingkey=error").Parse(t)
	if err != nil {
		return "", fmt.Errorf("parsing tag template %q: %w", t, err)
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, d); err != nil {
		return "", fmt.Errorf("rendering tag template %q: %w", t, err)
	}
	tag := b.String()
	if !tagRE.MatchString(tag) {
		return "", fmt.Errorf("tag template %q gave %q, which is not a valid tag", t, tag)
	}
	return tag, nil
}

// RenderTags evaluates the tag templates and checks each result is a valid
// tag. A template that needs a commit on a source without one is an error.
func RenderTags(templates []string, d TagData) ([]string, error) {
	var tags []string
	seen := map[string]bool{}
	for i, t := range templates {
		tag, err := renderTag(fmt.Sprintf("tags[%d]", i), t, d)
		if err != nil {
			return nil, err
		}
		if !seen[tag] {
			seen[tag] = true
			tags = append(tags, tag)
		}
	}
	return tags, nil
}

// Repository returns the full repository a task pushes to: its Image
// (default: the task name), prefixed with embeddedRegistry ("host:port")
// when the image names no registry host.
func (s Spec) Repository(embeddedRegistry string) string {
	img := s.Image
	if img == "" {
		img = s.Name
	}
	first, _, found := strings.Cut(img, "/")
	if found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return img
	}
	return embeddedRegistry + "/" + img
}

// MaxSpecBytes bounds a decoded task document.
const MaxSpecBytes = 1 << 20

// MaxFileBytes bounds a task file given to DecodeYAML: room for tens of
// thousands of tasks, and no more than the API takes in one apply (32 MiB
// of JSON, which is about the size of the same tasks in YAML).
const MaxFileBytes = 32 << 20

// Hash returns a digest of the spec with its defaults applied and of
// revision, a string naming what else the spec's inspection read (the
// Dockerfile's content, a commit): two specs with the same hash and
// revision have the same fields and the same Dockerfile bases.
func (s Spec) Hash(revision string) string {
	b, _ := json.Marshal(s.Defaults()) // a Spec always encodes; map keys sorted
	h := sha256.New()
	h.Write(b)
	h.Write([]byte{0})
	h.Write([]byte(revision))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// DecodeJSON decodes one spec strictly: unknown fields are errors, and so
// is anything after the spec or a document over MaxSpecBytes. The reader's
// own errors (an *http.MaxBytesError) are wrapped, not replaced.
func DecodeJSON(r io.Reader) (Spec, error) {
	var s Spec
	lr := &io.LimitedReader{R: r, N: MaxSpecBytes + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	err := dec.Decode(&s)
	if err == nil {
		_, err = dec.Token()
		var se *json.SyntaxError
		switch {
		case err == io.EOF:
			err = nil
		case err == nil || errors.As(err, &se):
			err = errors.New("unexpected data after the task")
		}
	}
	if lr.N <= 0 {
		return Spec{}, fmt.Errorf("decoding task: more than the %d bytes allowed", MaxSpecBytes)
	}
	if err != nil {
		return Spec{}, fmt.Errorf("decoding task: %w", err)
	}
	return s, nil
}

// DecodeYAML decodes a YAML stream of one or more task documents separated
// by "---", or a document with a top-level "tasks:" list, of at most
// MaxFileBytes. Unknown fields
// are errors that name the document; every bad document is reported (the
// errors joined), not only the first. A file of watches alone is "no
// tasks": DecodeFile reads both.
func DecodeYAML(data []byte) ([]Spec, error) {
	f, err := DecodeFile(data)
	if err != nil {
		return nil, err
	}
	if len(f.Tasks) == 0 {
		return nil, errors.New("no tasks in file")
	}
	return f.Tasks, nil
}

// File is what a task file holds: tasks and references to watch.
type File struct {
	Tasks   []Spec
	Watches []WatchSpec
}

// DecodeFile decodes a task file as DecodeYAML does, where a document
// may also be (or hold beside "tasks:") a top-level "watches:" list of
// WatchSpec. A file with neither tasks nor watches is an error.
func DecodeFile(data []byte) (File, error) {
	if len(data) > MaxFileBytes {
		return File{}, fmt.Errorf("task file is %d bytes, more than the %d allowed (split it into several files)", len(data), MaxFileBytes)
	}
	var docs []string // the documents with more than comments
	for _, doc := range splitYAML(data) {
		if strings.TrimSpace(stripComments(doc)) != "" {
			docs = append(docs, doc)
		}
	}
	// Documents decode independently: a file of thousands of tasks
	// decodes on every CPU, the results kept in the file's order.
	type decoded struct {
		specs   []Spec
		watches []WatchSpec
		err     error
	}
	out := make([]decoded, len(docs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(docs)) {
		wg.Go(func() {
			for i := range next {
				out[i].specs, out[i].watches, out[i].err = decodeYAMLDoc(docs[i])
			}
		})
	}
	for i := range docs {
		next <- i
	}
	close(next)
	wg.Wait()
	var f File
	var errs []error
	for i, d := range out {
		if d.err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i+1, d.err))
			continue
		}
		f.Tasks = append(f.Tasks, d.specs...)
		f.Watches = append(f.Watches, d.watches...)
	}
	if len(errs) > 0 {
		return File{}, errors.Join(errs...)
	}
	if len(f.Tasks) == 0 && len(f.Watches) == 0 {
		return File{}, errors.New("no tasks in file")
	}
	return f, nil
}

// decodeYAMLDoc decodes one document of DecodeFile: a task, or a
// document of "tasks:" and "watches:" lists.
func decodeYAMLDoc(doc string) ([]Spec, []WatchSpec, error) {
	body := strings.TrimSpace(stripComments(doc))
	if strings.HasPrefix(body, "tasks:") || strings.HasPrefix(body, "watches:") {
		var list struct {
			Tasks   []Spec      `json:"tasks"`
			Watches []WatchSpec `json:"watches"`
		}
		err := yaml.UnmarshalStrict([]byte(doc), &list)
		return list.Tasks, list.Watches, err
	}
	var s Spec
	if err := yaml.UnmarshalStrict([]byte(doc), &s); err != nil {
		return nil, nil, err
	}
	return []Spec{s}, nil, nil
}

func splitYAML(data []byte) []string {
	var docs []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if strings.TrimRight(line, " \r\n") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return append(docs, cur.String())
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}
