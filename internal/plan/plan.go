// Package plan owns the pure decisions about what to build when
// something changes: the dependency graph of tasks (which task builds on
// which base reference, and whose output is another task's base), which
// tasks a base update or a finished run triggers, the wave of runs ordered
// top-down, how a new trigger coalesces into a run already waiting,
// explaining why a task would rebuild, and rejecting dependency cycles.
// It reads no store and writes nothing: internal/lifecycle commits what
// it decides. It does not poll registries or build.
package plan

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// Trigger is a task to run and why.
type Trigger struct {
	Task  string
	Cause store.Cause
}

// BaseTriggers returns the tasks that a change of ref triggers directly
// (their cascades are Wave's): each task that watches ref and builds for
// a platform among changed (an unknown platform matches all), caused by
// the base update that platform saw.
func (g *Graph) BaseTriggers(ref, source string, changed []store.Observation) []Trigger {
	var direct []Trigger
	for _, name := range g.watchers[ref] {
		t := g.byName[name]
		if obs, ok := g.triggeredBy(t, ref, changed); ok {
			direct = append(direct, Trigger{Task: t.Spec.Name, Cause: store.Cause{
				Kind: "base", Base: ref, Platform: obs.Platform, OldDigest: obs.OldDigest, NewDigest: obs.Digest,
				Observation: obs.ID, Source: source,
			}})
		}
	}
	return direct
}

// CascadeTriggers returns the tasks a succeeded run up triggers: every
// task built on up's output that did not already wait for it (released
// lists the runs that did; pending is the queued runs by task), each with
// a cascade cause. A manual or commit run of a base image's task so
// rebuilds what sits on it, once.
func (g *Graph) CascadeTriggers(up store.Run, pending map[string][]store.Run, released []int64) []Trigger {
	if up.State != store.StateSucceeded {
		return nil
	}
	src, ok := g.byName[up.Task]
	if !ok {
		return nil
	}
	waited := map[string]bool{}
	for name, runs := range pending {
		for _, r := range runs {
			if slices.Contains(released, r.ID) {
				waited[name] = true
			}
		}
	}
	var direct []Trigger
	for _, d := range g.dependents(src) {
		if waited[d.Spec.Name] || d.Spec.Name == up.Task {
			continue
		}
		c := up.Cause
		direct = append(direct, Trigger{Task: d.Spec.Name, Cause: store.Cause{Kind: "cascade", UpstreamRun: up.ID, Upstream: &c}})
	}
	return direct
}

// CascadeCause is the cause of a run that a wave adds because it builds
// on up's output: a cascade of up, carrying the cause the wave started
// from.
func CascadeCause(up store.Run) store.Cause {
	c := up.Cause
	if c.Kind == "cascade" && c.Upstream != nil {
		c = *c.Upstream
	}
	return store.Cause{Kind: "cascade", UpstreamRun: up.ID, Upstream: &c}
}

// Coalesce returns waiting, a queued run of the task, absorbing a new
// trigger instead of a second run: a waiting run of the same base update
// (direct, same base and platform) takes the newest digest, a waiting
// cascade of the same upstream run takes that run's cause as it is now,
// a waiting cascade triggered directly takes the direct cause, and it
// waits for blockers too.
func Coalesce(waiting store.Run, cause store.Cause, direct bool, blockers []int64) store.Run {
	r := waiting
	r.BlockedBy = slices.Clone(r.BlockedBy)
	if direct && r.Cause.Kind == "base" && r.Cause.Base == cause.Base && r.Cause.Platform == cause.Platform {
		r.Cause.NewDigest, r.Cause.Observation, r.Cause.Source = cause.NewDigest, cause.Observation, cause.Source
		r.Cause.Changes = "" // the diff it named was of the older update
	} else if direct && (cause.Kind == "commit" || r.Cause.Kind == "commit") {
		r.Cause = coalesceCommit(r.Cause, cause)
	}
	// A waiting cascade that is now triggered directly too has a cause
	// of its own: it must build even if its upstream pushes nothing new
	// (see lifecycle's release), so the direct cause is the one it keeps.
	if direct && r.Cause.Kind == "cascade" {
		r.Cause = cause
	}
	// A cascade of the same upstream run carries that run's cause as it
	// is now: the upstream may have absorbed a newer digest meanwhile.
	if !direct && r.Cause.Kind == "cascade" && cause.Kind == "cascade" && r.Cause.UpstreamRun == cause.UpstreamRun {
		r.Cause = cause
	}
	for _, b := range blockers {
		if !slices.Contains(r.BlockedBy, b) && b != r.ID {
			r.BlockedBy = append(r.BlockedBy, b)
		}
	}
	return r
}

// Sightings decides what a check that saw seen records against old, the
// reference as stored: one history entry per platform whose digest moved,
// stamped with source and at. A platform's old digest is that platform's
// previous manifest, never the index's digest; a platform not there
// before has none ("added", not "changed"). Only when the stored state
// knows no platforms (a run's resolution seeded the digest alone) and
// seen is a single manifest is the old top-level digest that manifest's
// old digest. The first check of a reference is a baseline: every
// platform is recorded (unless a run's resolution already recorded the
// same digest with its platforms), and none counts as a change. An
// identical top-level digest after that records nothing (record is nil
// and baseline false: only the check is saved).
func Sightings(old, seen store.BaseRef, source string, at time.Time) (record []store.Observation, baseline bool) {
	baseline = old.Digest == "" || old.CheckedAt.IsZero() && old.Digest == seen.Digest
	if old.Digest == seen.Digest && (!baseline || len(old.Platforms) > 0) {
		return nil, baseline
	}
	before := map[string]string{}
	for _, pd := range old.Platforms {
		before[pd.Platform] = pd.Digest
	}
	single := len(seen.Platforms) == 1 && !isIndex(seen.MediaType)
	for _, pd := range seen.Platforms {
		prev := before[pd.Platform]
		if !baseline && prev == pd.Digest {
			continue
		}
		switch {
		case baseline:
			prev = ""
		case prev == "" && len(old.Platforms) == 0 && single:
			prev = old.Digest
		}
		record = append(record, store.Observation{Ref: seen.Ref, Platform: pd.Platform, Digest: pd.Digest, OldDigest: prev,
			TopDigest: seen.Digest, Source: source, SeenAt: at})
	}
	return record, baseline
}

// isIndex reports whether mt is an image index or manifest list.
func isIndex(mt string) bool {
	return mt == "application/vnd.oci.image.index.v1+json" || mt == "application/vnd.docker.distribution.manifest.list.v2+json"
}

// Task returns the graph's task of that name.
func (g *Graph) Task(name string) (store.Task, bool) {
	t, ok := g.byName[name]
	return t, ok
}

// Graph is the task dependency graph: which tasks build on which base
// references, and which tasks' outputs are other tasks' bases.
type Graph struct {
	Tasks    []store.Task
	byName   map[string]store.Task
	outputs  map[string][]string // task → references it pushes (static tags)
	watchers map[string][]string // reference → tasks that rebuild when it changes
	registry string

	reposOnce sync.Once
	repos     map[string][]string // repository key → tasks whose git source it is
}

// NewGraph indexes tasks; registry is the embedded registry's host:port.
func NewGraph(tasks []store.Task, registry string) *Graph {
	g := &Graph{byName: map[string]store.Task{}, outputs: map[string][]string{}, watchers: map[string][]string{}, registry: registry}
	for _, t := range tasks {
		t.Spec = t.Spec.Defaults()
		g.Tasks = append(g.Tasks, t)
		g.byName[t.Spec.Name] = t
		g.outputs[t.Spec.Name] = Outputs(t.Spec, registry)
		for _, ref := range watched(t) {
			g.watchers[ref] = append(g.watchers[ref], t.Spec.Name)
		}
	}
	return g
}

// Outputs returns the references a task's runs push that another task
// can build FROM: its repository with each tag that is not a template,
// and with each promote tag (moved when a run is promoted: a run's
// cascade waits for its promotion).
func Outputs(s task.Spec, registry string) []string {
	s = s.Defaults()
	repo := s.Repository(registry)
	var out []string
	for _, tag := range s.Tags {
		if !strings.Contains(tag, "{{") {
			out = append(out, normalize(repo+":"+tag))
		}
	}
	if s.Promote != nil {
		for _, tag := range s.Promote.Tags {
			out = append(out, normalize(repo+":"+tag))
		}
	}
	return out
}

func normalize(ref string) string {
	r, err := dockerfile.Normalize(ref)
	if err != nil {
		return ref
	}
	return r
}

// watched returns the references t rebuilds on: with its base trigger
// on, its runtime base, or every base with scope "all".
func watched(t store.Task) []string {
	if t.Spec.Triggers == nil || !t.Spec.Triggers.Base {
		return nil
	}
	var out []string
	for _, b := range t.Bases {
		if (b.Role == dockerfile.RoleRuntime || t.Spec.Triggers.BaseScope == "all") && !slices.Contains(out, b.Ref) {
			out = append(out, b.Ref)
		}
	}
	return out
}

func watches(t store.Task, ref string) bool { return slices.Contains(watched(t), ref) }

// Watches reports whether a change of ref rebuilds the named task.
func (g *Graph) Watches(taskName, ref string) bool {
	return slices.Contains(g.watchers[ref], taskName)
}

// triggeredBy returns the observation that triggers t, if any: t watches
// ref and one of t's platforms changed (an unknown platform matches all).
func (g *Graph) triggeredBy(t store.Task, ref string, changed []store.Observation) (store.Observation, bool) {
	if !watches(t, ref) {
		return store.Observation{}, false
	}
	for _, o := range changed {
		if o.Platform == "" {
			return o, true
		}
		for _, p := range t.Spec.Platforms {
			if samePlatform(p, o.Platform) {
				return o, true
			}
		}
	}
	return store.Observation{}, false
}

// samePlatform compares os/arch[/variant], treating arm64 and arm64/v8 alike.
func samePlatform(a, b string) bool {
	norm := func(s string) string { return strings.TrimSuffix(s, "/v8") }
	return norm(a) == norm(b)
}

// dependents returns the tasks that watch one of t's outputs.
func (g *Graph) dependents(t store.Task) []store.Task {
	var out []store.Task
	seen := map[string]bool{t.Spec.Name: true}
	for _, o := range g.outputs[t.Spec.Name] {
		for _, name := range g.watchers[o] {
			if !seen[name] {
				seen[name] = true
				out = append(out, g.byName[name])
			}
		}
	}
	return out
}

// Wave returns the tasks to run for the triggered ones, in build order
// (every task after all the wave's tasks it builds on), and for each task
// the wave tasks it waits for.
func (g *Graph) Wave(direct []Trigger) (order []string, upstream map[string][]string) {
	upstream = map[string][]string{}
	in := map[string]bool{}
	var queue []string
	for _, d := range direct {
		if !in[d.Task] {
			in[d.Task] = true
			queue = append(queue, d.Task)
		}
	}
	// Collect the closure.
	for i := 0; i < len(queue); i++ {
		for _, d := range g.dependents(g.byName[queue[i]]) {
			n := d.Spec.Name
			if !slices.Contains(upstream[n], queue[i]) {
				upstream[n] = append(upstream[n], queue[i])
			}
			if !in[n] {
				in[n] = true
				queue = append(queue, n)
			}
		}
	}
	// Order: Kahn's algorithm over the closure; a cycle (rejected at task
	// creation) is broken by appending what is left.
	down := map[string][]string{}
	indeg := map[string]int{}
	for _, n := range queue {
		indeg[n] = len(upstream[n])
		for _, u := range upstream[n] {
			down[u] = append(down[u], n)
		}
	}
	var ready []string
	for _, n := range queue {
		if indeg[n] == 0 {
			ready = append(ready, n)
		}
	}
	done := map[string]bool{}
	for len(ready) > 0 {
		n := ready[0]
		ready = ready[1:]
		order = append(order, n)
		done[n] = true
		for _, m := range down[n] {
			if indeg[m]--; indeg[m] == 0 {
				ready = append(ready, m)
			}
		}
	}
	for _, n := range queue {
		if !done[n] {
			order = append(order, n)
			upstream[n] = slices.DeleteFunc(upstream[n], func(u string) bool { return !done[u] })
		}
	}
	return order, upstream
}

// Cycle returns the names along a dependency cycle through the graph, or
// nil when there is none.
func (g *Graph) Cycle() []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(n string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range g.dependents(g.byName[n]) {
			m := d.Spec.Name
			switch color[m] {
			case grey:
				i := slices.Index(stack, m)
				found = append(slices.Clone(stack[i:]), m)
				return true
			case white:
				if visit(m) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	for _, t := range g.Tasks {
		if color[t.Spec.Name] == white && visit(t.Spec.Name) {
			return found
		}
	}
	return nil
}

// CheckCycle returns an error naming the tasks of the dependency cycle
// that t (new, or replacing the task of the same name) would close: a
// cycle would rebuild its tasks forever.
func CheckCycle(tasks []store.Task, t store.Task, registry string) error {
	return CheckCycles(tasks, []store.Task{t}, registry)
}

// CheckCycles is CheckCycle for tasks stored together: each of changed is
// new or replaces the task of its name in tasks. It returns a *CycleError
// when they would close a cycle.
func CheckCycles(tasks, changed []store.Task, registry string) error {
	return NewGraph(tasks, registry).CheckCycles(changed)
}

// CheckCycles returns a *CycleError when storing changed (each new, or
// replacing the graph's task of its name) would close a dependency cycle.
// It walks only what the changed tasks lead to, and leaves g as it is:
// a graph cached for the stored tasks serves every check until they
// change.
func (g *Graph) CheckCycles(changed []store.Task) error {
	names := make(map[string]bool, len(changed))
	outputs := make(map[string][]string, len(changed))  // of the changed tasks
	watchers := make(map[string][]string, len(changed)) // changed tasks by reference
	for _, t := range changed {
		t.Spec = t.Spec.Defaults()
		names[t.Spec.Name] = true
		outputs[t.Spec.Name] = Outputs(t.Spec, g.registry)
		for _, ref := range watched(t) {
			watchers[ref] = append(watchers[ref], t.Spec.Name)
		}
	}
	// dependents are the tasks that watch one of n's outputs, once the
	// changed tasks replace theirs.
	dependents := func(n string) []string {
		outs := g.outputs[n]
		if names[n] {
			outs = outputs[n]
		}
		var out []string
		for _, o := range outs {
			for _, w := range g.watchers[o] {
				if !names[w] {
					out = append(out, w)
				}
			}
			out = append(out, watchers[o]...)
		}
		return out
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack, found []string
	var visit func(n string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, m := range dependents(n) {
			switch color[m] {
			case grey:
				if m == n {
					continue // a task on its own output is not a cycle
				}
				i := slices.Index(stack, m)
				found = append(slices.Clone(stack[i:]), m)
				return true
			case white:
				if visit(m) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	for _, t := range changed {
		if color[t.Spec.Name] == white && visit(t.Spec.Name) {
			break
		}
	}
	if found == nil {
		return nil
	}
	e := &CycleError{Task: found[0], Cycle: found}
	for _, n := range found {
		if names[n] {
			e.Task = n
			break
		}
	}
	return e
}

// CycleError says that storing Task would close a dependency cycle.
type CycleError struct {
	Task  string   // the changed task on the cycle
	Cycle []string // the cycle's tasks, the first repeated at the end
}

func (e *CycleError) Error() string {
	return fmt.Sprintf("task %s would close a dependency cycle: %s (each builds on the image the previous one pushes)", e.Task, strings.Join(e.Cycle, " → "))
}
