package plan

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/refit-dev/refit/internal/store"
)

// BaseStatus is one base of a task, as the index sees it.
type BaseStatus struct {
	Ref         string    `json:"ref"`
	Stage       string    `json:"stage"`
	Role        string    `json:"role"`
	Watched     bool      `json:"watched"` // a change rebuilds the task
	Tracked     bool      `json:"tracked"` // in the index
	Current     string    `json:"current,omitempty"`
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

// Explanation answers "why did (or didn't) this task rebuild?".
type Explanation struct {
	Task      string       `json:"task"`
	Trigger   string       `json:"trigger"` // the base trigger's setting, in words
	Bases     []BaseStatus `json:"bases"`
	Upstream  []string     `json:"upstream,omitempty"`   // tasks whose output this task builds on
	Dependent []string     `json:"dependents,omitempty"` // tasks built on this task's output
	LastRuns  []store.Run  `json:"lastRuns,omitempty"`
	Verdict   []string     `json:"verdict"`
}

// Explain reports how the index and the planner see task t: which of its
// bases are watched and tracked, when each was checked and changed,
// whether its last build is stale, and what the last runs were.
func Explain(g *Graph, t store.Task, refs map[string]store.BaseRef, runs []store.Run) Explanation {
	t.Spec = t.Spec.Defaults()
	tr := t.Spec.Triggers
	e := Explanation{Task: t.Spec.Name, LastRuns: runs}
	switch {
	case !tr.Base:
		e.Trigger = "off: base updates do not rebuild this task"
	case tr.BaseScope == "all":
		e.Trigger = "on, scope all: an update of any base (every stage, COPY --from, mounts) rebuilds it"
	default:
		e.Trigger = "on, scope runtime: only an update of the final stage's base rebuilds it"
	}
	for _, bt := range tr.BaseTags {
		if bt.Action == "notify" {
			e.Trigger += fmt.Sprintf("; new tags of %s matching %s are announced (base.tagged), not built", bt.Ref, bt.Semver)
			continue
		}
		e.Trigger += fmt.Sprintf("; a new tag of %s matching %s rebuilds it with %s set to that tag", bt.Ref, bt.Semver, bt.Arg)
	}
	if b := tr.BaseChange; tr.Base && b != nil {
		switch b.RebuildWhen {
		case "packages":
			e.Trigger += ", and only when an OS package changed (rebuildWhen: packages)"
		case "fixes":
			min := b.MinSeverity
			if min == "" {
				min = "high"
			}
			e.Trigger += ", and only when it fixes a vulnerability at or above " + min + " (rebuildWhen: fixes)"
		}
		if b.Urgent != nil {
			e.Trigger += "; a " + b.Urgent.Severity + " fix skips the debounce"
		}
	}
	var lastOK *store.Run
	for i := range runs {
		if runs[i].State == store.StateSucceeded {
			lastOK = &runs[i]
			break
		}
	}
	watchedRefs := watched(t)
	for _, b := range t.Bases {
		s := BaseStatus{Ref: b.Ref, Stage: b.Stage, Role: string(b.Role), Watched: slices.Contains(watchedRefs, b.Ref)}
		if ref, ok := refs[b.Ref]; ok {
			s.Tracked, s.Current, s.MediaType = true, ref.Digest, ref.MediaType
			s.CheckedAt, s.ChangedAt, s.NextCheckAt = ref.CheckedAt, ref.ChangedAt, ref.NextCheckAt
			s.LastError, s.ErrorSince = ref.LastError, ref.ErrorSince
		}
		s.Pinned = strings.Contains(b.Ref, "@")
		if lastOK != nil {
			for _, u := range lastOK.Bases {
				if u.Ref == b.Ref {
					s.Built = u.Digest
				}
			}
		}
		s.Stale = s.Built != "" && s.Current != "" && s.Built != s.Current
		e.Bases = append(e.Bases, s)
	}
	for _, u := range g.Tasks {
		if u.Spec.Name == t.Spec.Name {
			continue
		}
		for _, d := range g.dependents(u) {
			if d.Spec.Name == t.Spec.Name {
				e.Upstream = append(e.Upstream, u.Spec.Name)
			}
		}
	}
	for _, d := range g.dependents(t) {
		e.Dependent = append(e.Dependent, d.Spec.Name)
	}
	e.Verdict = verdict(e, lastOK)
	return e
}

func verdict(e Explanation, lastOK *store.Run) []string {
	var v []string
	if len(e.Bases) == 0 {
		return append(v, "no base images known yet: they are discovered when the task is created and at each run")
	}
	seen := map[string]bool{}
	for _, b := range e.Bases {
		if seen[b.Ref] {
			continue // the same image in another stage: one verdict per image
		}
		seen[b.Ref] = true
		switch {
		case b.Pinned:
			v = append(v, fmt.Sprintf("%s is pinned by digest in the Dockerfile: it never changes, so it never triggers", b.Ref))
		case !b.Watched:
			v = append(v, fmt.Sprintf("%s (%s, stage %s) is not watched: %s", b.Ref, b.Role, b.Stage, e.Trigger))
		case !b.Tracked:
			v = append(v, fmt.Sprintf("%s is watched but not yet in the index (it is added within one interval)", b.Ref))
		case b.LastError != "":
			v = append(v, fmt.Sprintf("%s cannot be checked since %s: %s", b.Ref, b.ErrorSince.Format(time.RFC3339), b.LastError))
		case b.CheckedAt.IsZero():
			v = append(v, fmt.Sprintf("%s is watched and waits for its first check", b.Ref))
		case b.Stale:
			v = append(v, fmt.Sprintf("%s moved to %.19s… but the last successful build used %.19s…: a rebuild is due (see the runs)", b.Ref, b.Current, b.Built))
		default:
			v = append(v, fmt.Sprintf("%s is watched; checked %s, unchanged since %s", b.Ref, ago(b.CheckedAt), changed(b)))
		}
	}
	if lastOK == nil {
		v = append(v, "the task has no successful run yet")
	}
	return v
}

func changed(b BaseStatus) string {
	if b.ChangedAt.IsZero() {
		return "refit started tracking it"
	}
	return b.ChangedAt.Format(time.RFC3339)
}

func ago(t time.Time) string {
	return time.Since(t).Round(time.Second).String() + " ago"
}
