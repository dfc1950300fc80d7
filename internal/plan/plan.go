// Package plan owns deciding what to build when something changes: the
// dependency graph of tasks (which task builds on which base reference,
// and whose output is another task's base), turning an observed base
// update into one wave of runs ordered top-down, and coalescing bursts of
// updates into the runs already waiting. It commits an observation and the
// runs it causes in one transaction. It does not poll registries or build.
package plan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// txStore runs planner transactions.
type txStore interface {
	InTx(ctx context.Context, fn func(*store.Tx) error) error
}

// Config configures a Planner.
type Config struct {
	// Store commits observations and runs (required).
	Store txStore
	// Enqueue returns the job inserter for a run that may start after
	// delay (required; the runner provides it).
	Enqueue func(delay time.Duration) store.Enqueuer
	// Registry is the embedded registry's host:port: tasks whose image
	// names no registry push there, which is how their outputs are
	// matched to other tasks' bases (required).
	Registry string
	// Debounce delays the start of runs caused by a base update, so a
	// burst of updates (a flapping tag) yields one run built on the newest
	// digest. Default 30 s; negative means none.
	Debounce time.Duration
	// Interval is when a reference is next checked after a check. Default
	// 5 min.
	Interval time.Duration
	// Logger gets one line per observed change. nil = discard.
	Logger *slog.Logger
}

// Planner turns observations into runs. It is safe for concurrent use (the
// store serializes its transactions).
type Planner struct {
	cfg Config

	mu      sync.Mutex
	graph   *Graph // the task graph at graphAt, read-only once built
	graphAt int64  // store.Tx.TasksVersion the graph was built at
}

// New returns a Planner.
func New(cfg Config) (*Planner, error) {
	if cfg.Store == nil || cfg.Enqueue == nil || cfg.Registry == "" {
		return nil, errors.New("plan: Store, Enqueue and Registry are required")
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = 30 * time.Second
	}
	if cfg.Debounce < 0 {
		cfg.Debounce = 0
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Planner{cfg: cfg}, nil
}

// Change is what one check or notification saw a reference point to.
type Change struct {
	Ref       string
	Digest    string                 // top-level digest
	MediaType string                 // of the top-level manifest
	Platforms []store.PlatformDigest // per-platform manifests ("" platform when unknown)
	Source    string                 // poll, webhook, push
	EventID   string                 // webhook event ID for idempotency; "" = none
	// Next is when to check the reference again; zero = now + Interval.
	Next time.Time
}

// Result says what an observation did.
type Result struct {
	// Replay is true when the event ID had been taken before: nothing done.
	Replay bool
	// Untracked is true when no task builds on the reference.
	Untracked bool
	// Changed lists the observations of platforms whose digest changed.
	Changed []store.Observation
	// Own is true when the new digest was pushed by one of refit's runs
	// (its dependents are handled by that run's wave).
	Own bool
	// Runs are the runs of the wave, created or coalesced, in build order.
	Runs []store.Run
	// Coalesced counts runs that already waited and absorbed this update.
	Coalesced int
}

// Observe commits what was seen of c.Ref: the reference's new state, an
// observation per changed platform, and the wave of runs the change
// causes — all in one transaction, so a change is never recorded without
// its runs. An identical digest records only the check; the first check
// of a reference records its baseline and triggers nothing.
func (p *Planner) Observe(ctx context.Context, c Change) (Result, error) {
	var res Result
	err := p.cfg.Store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		res, err = p.observe(tx, c)
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("observing %s: %w", c.Ref, err)
	}
	if len(res.Changed) > 0 {
		p.cfg.Logger.Info("base updated", "ref", c.Ref, "digest", c.Digest, "source", c.Source,
			"platforms", len(res.Changed), "runs", len(res.Runs), "coalesced", res.Coalesced, "own", res.Own)
	}
	return res, nil
}

// BaseUpdated is the data of a base.updated event: the observation and
// the tasks of the wave it caused (in build order).
type BaseUpdated struct {
	store.Observation
	Tasks []string `json:"tasks"`
}

func (p *Planner) observe(tx *store.Tx, c Change) (res Result, err error) {
	if c.EventID != "" {
		fresh, err := tx.TakeEvent(c.EventID)
		if err != nil {
			return res, err
		}
		if !fresh {
			res.Replay = true
			return res, nil
		}
	}
	old, err := tx.BaseRef(c.Ref)
	if errors.Is(err, store.ErrNotFound) {
		res.Untracked = true
		return res, nil
	}
	if err != nil {
		return res, err
	}
	next := c.Next
	if next.IsZero() {
		next = time.Now().Add(p.cfg.Interval)
	}
	cur := store.BaseRef{Ref: c.Ref, Digest: c.Digest, MediaType: c.MediaType, Platforms: c.Platforms}
	// The first check records a baseline (even when a run's resolution
	// seeded the same digest); after that, only changes are recorded.
	baseline := old.Digest == "" || old.CheckedAt.IsZero() && old.Digest == c.Digest
	if old.Digest == c.Digest && !baseline {
		return res, tx.SaveCheck(cur, false, next)
	}
	before := map[string]string{}
	for _, pd := range old.Platforms {
		before[pd.Platform] = pd.Digest
	}
	for _, pd := range c.Platforms {
		if !baseline && before[pd.Platform] == pd.Digest {
			continue
		}
		prev := before[pd.Platform]
		if prev == "" && len(old.Platforms) == 0 {
			// Seeded by a run's resolution: only the top digest is known.
			prev = old.Digest
		}
		o := store.Observation{Ref: c.Ref, Platform: pd.Platform, Digest: pd.Digest, OldDigest: prev,
			TopDigest: c.Digest, Source: c.Source, SeenAt: time.Now().UTC()}
		if o.ID, err = tx.AddObservation(o); err != nil {
			return res, err
		}
		if !baseline {
			res.Changed = append(res.Changed, o)
		}
	}
	if err := tx.SaveCheck(cur, len(res.Changed) > 0, next); err != nil {
		return res, err
	}
	if len(res.Changed) == 0 {
		return res, nil
	}
	if res.Own, err = tx.PushedBySucceededRun(c.Digest); err != nil {
		return res, err
	}
	var g *Graph
	var direct []Trigger
	if !res.Own {
		if g, err = p.taskGraph(tx); err != nil {
			return res, err
		}
		for _, name := range g.watchers[c.Ref] {
			t := g.byName[name]
			if obs, ok := g.triggeredBy(t, c.Ref, res.Changed); ok {
				direct = append(direct, Trigger{Task: t.Spec.Name, Cause: store.Cause{
					Kind: "base", Base: c.Ref, Platform: obs.Platform, OldDigest: obs.OldDigest, NewDigest: obs.Digest,
					Observation: obs.ID, Source: c.Source,
				}})
			}
		}
	}
	// The cause before its effects: one base.updated event per changed
	// platform, naming the tasks of the wave, is written before the
	// wave's run.queued events, so that a consumer reading the outbox in
	// order sees the update before the runs it caused.
	var order []string
	var upstream map[string][]string
	if g != nil {
		order, upstream = g.Wave(direct)
	}
	for _, o := range res.Changed {
		if err := tx.Emit(store.EventBaseUpdated, c.Ref, BaseUpdated{Observation: o, Tasks: order}); err != nil {
			return res, err
		}
	}
	res.Runs, res.Coalesced, err = p.queueWave(tx, g, direct, order, upstream)
	return res, err
}

// taskGraph returns the graph of the tasks as tx sees them, built anew
// only when the task set changed since the last one: reading and decoding
// every task in each write transaction would cost ~150 ms at 10,000
// tasks.
func (p *Planner) taskGraph(tx *store.Tx) (*Graph, error) {
	v, err := tx.TasksVersion()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	g, at := p.graph, p.graphAt
	p.mu.Unlock()
	if g != nil && at == v {
		return g, nil
	}
	tasks, err := tx.Tasks()
	if err != nil {
		return nil, err
	}
	g = NewGraph(tasks, p.cfg.Registry)
	p.mu.Lock()
	p.graph, p.graphAt = g, v
	p.mu.Unlock()
	return g, nil
}

// Trigger is a task to run and why.
type Trigger struct {
	Task  string
	Cause store.Cause
}

// wave creates (or coalesces into waiting runs) one run per task of the
// wave: the triggered tasks and, transitively, every task built on their
// outputs, each blocked by the runs of the tasks it builds on.
func (p *Planner) wave(tx *store.Tx, g *Graph, direct []Trigger) ([]store.Run, int, error) {
	order, upstream := g.Wave(direct)
	return p.queueWave(tx, g, direct, order, upstream)
}

// queueWave creates (or coalesces) the runs of a wave Graph.Wave
// ordered.
func (p *Planner) queueWave(tx *store.Tx, g *Graph, direct []Trigger, order []string, upstream map[string][]string) ([]store.Run, int, error) {
	if len(order) == 0 {
		return nil, 0, nil
	}
	pending, err := tx.PendingRuns()
	if err != nil {
		return nil, 0, err
	}
	causes := map[string]store.Cause{}
	for _, d := range direct {
		causes[d.Task] = d.Cause
	}
	runOf := map[string]store.Run{}
	var out []store.Run
	coalesced := 0
	for _, name := range order {
		var blockers []int64
		for _, u := range upstream[name] {
			blockers = append(blockers, runOf[u].ID)
		}
		cause, isDirect := causes[name]
		if !isDirect {
			up := runOf[upstream[name][0]]
			c := up.Cause
			if c.Kind == "cascade" && c.Upstream != nil {
				c = *c.Upstream
			}
			cause = store.Cause{Kind: "cascade", UpstreamRun: up.ID, Upstream: &c}
		}
		if waiting := pending[name]; len(waiting) > 0 {
			r := waiting[len(waiting)-1]
			// A waiting run of the same base update takes the newest digest.
			if isDirect && r.Cause.Kind == "base" && r.Cause.Base == cause.Base && r.Cause.Platform == cause.Platform {
				r.Cause.NewDigest, r.Cause.Observation, r.Cause.Source = cause.NewDigest, cause.Observation, cause.Source
			}
			for _, b := range blockers {
				if !slices.Contains(r.BlockedBy, b) && b != r.ID {
					r.BlockedBy = append(r.BlockedBy, b)
				}
			}
			if err := tx.UpdatePending(r); err != nil {
				return nil, 0, err
			}
			runOf[name] = r
			out = append(out, r)
			coalesced++
			continue
		}
		t := g.byName[name]
		r, err := tx.CreateRun(store.Run{Task: name, Spec: t.Spec, Cause: cause, BlockedBy: blockers}, p.cfg.Enqueue(p.cfg.Debounce))
		if err != nil {
			return nil, 0, err
		}
		runOf[name] = r
		out = append(out, r)
	}
	return out, coalesced, nil
}

// Cascade runs, inside the transaction that finished run up, after it
// released the runs that waited for it: when up succeeded, every task
// built on up's output that did not already wait for it gets a cascade
// run (and its own downstream wave). A manual or commit run of a base
// image's task so rebuilds what sits on it, once.
func (p *Planner) Cascade(tx *store.Tx, up store.Run, released []int64) error {
	if up.State != store.StateSucceeded {
		return nil
	}
	g, err := p.taskGraph(tx)
	if err != nil {
		return err
	}
	src, ok := g.byName[up.Task]
	if !ok {
		return nil
	}
	pending, err := tx.PendingRuns()
	if err != nil {
		return err
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
	_, _, err = p.wave(tx, g, direct)
	return err
}

// Graph is the task dependency graph: which tasks build on which base
// references, and which tasks' outputs are other tasks' bases.
type Graph struct {
	Tasks    []store.Task
	byName   map[string]store.Task
	outputs  map[string][]string // task → references it pushes (static tags)
	watchers map[string][]string // reference → tasks that rebuild when it changes
	registry string
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
// can build FROM: its repository with each tag that is not a template.
func Outputs(s task.Spec, registry string) []string {
	s = s.Defaults()
	repo := s.Repository(registry)
	var out []string
	for _, tag := range s.Tags {
		if !strings.Contains(tag, "{{") {
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
	names := make(map[string]bool, len(changed))
	for _, t := range changed {
		names[t.Spec.Name] = true
	}
	all := slices.DeleteFunc(slices.Clone(tasks), func(x store.Task) bool { return names[x.Spec.Name] })
	g := NewGraph(append(all, changed...), registry)
	c := g.Cycle()
	if c == nil {
		return nil
	}
	e := &CycleError{Task: c[0], Cycle: c}
	for _, n := range c {
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
