package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// MaxApplyBytes bounds the body of POST /api/v1/tasks:apply.
const MaxApplyBytes = 32 << 20

// inspectParallel is how many task sources an apply inspects at once.
const inspectParallel = 4

// reviser names, for each spec, what an inspection would read besides the
// spec (see runner.Runner.Revisions), or "" when it cannot tell cheaply.
type reviser interface {
	Revisions(specs []task.Spec) []string
}

// applyTasks validates every task of the request, inspecting each source
// as a create does, and stores them all in one transaction, or none of
// them: any refusal answers 400 with every task's error. A task whose
// hash (its spec and its inspector's Revision) is the one stored is
// unchanged: it is neither inspected nor written, and an apply of only
// such tasks writes nothing and checks no cycle.
func (s *Server) applyTasks(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	// An api.ApplyRequest, each task kept raw to be decoded strictly and
	// refused alone.
	var req struct {
		Tasks   []json.RawMessage  `json:"tasks"`
		Watches []api.WatchRequest `json:"watches,omitempty"`
	}
	if err := decodeJSON(w, r, MaxApplyBytes, "tasks", &req); err != nil {
		return err
	}
	if len(req.Tasks) == 0 && len(req.Watches) == 0 {
		return &invalidError{errors.New("tasks: no tasks to apply")}
	}
	// Watches are checked before anything is stored: a bad one refuses
	// the apply, naming it.
	watches := make([]store.Watch, len(req.Watches))
	for i, wr := range req.Watches {
		var err error
		if watches[i], err = checkWatch(fmt.Sprintf("watches[%d].", i), wr); err != nil {
			return err
		}
	}
	n := len(req.Tasks)
	var refused []api.TaskError
	specs := make([]task.Spec, n)
	ok := make([]bool, n)
	index := map[string]int{}
	for i, raw := range req.Tasks {
		spec, err := task.DecodeJSON(bytes.NewReader(raw))
		if err != nil {
			var named struct{ Name string }
			json.Unmarshal(raw, &named)
			refused = append(refused, api.TaskError{Index: i, Task: named.Name, Error: err.Error()})
			continue
		}
		if j, dup := index[spec.Name]; dup && spec.Name != "" {
			refused = append(refused, api.TaskError{Index: i, Task: spec.Name, Error: fmt.Sprintf("name: task %s is also tasks[%d]", spec.Name, j)})
			continue
		}
		index[spec.Name] = i
		specs[i], ok[i] = spec, true
	}

	// A task stored with the hash it has now is unchanged: it is not
	// inspected again, and nothing of it is written.
	hashes := make([]string, n)
	same := make([]bool, n)
	if rev, can := s.cfg.Inspector.(reviser); can {
		stored, err := s.cfg.Store.TaskHashes(ctx)
		if err != nil {
			return err
		}
		for i, r := range rev.Revisions(specs) {
			if r == "" || !ok[i] {
				continue
			}
			hashes[i] = specs[i].Hash(r)
			h, found := stored[specs[i].Name]
			same[i] = found && h == hashes[i]
		}
	}

	// Validate and inspect the rest, a few sources at a time.
	tasks := make([]store.Task, n)
	errs := make([]error, n)
	sem := make(chan struct{}, inspectParallel)
	var wg sync.WaitGroup
	for i := range specs {
		if !ok[i] || same[i] {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			tasks[i], errs[i] = s.checkSpec(ctx, specs[i])
			tasks[i].Hash = hashes[i]
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	var changed []store.Task
	for i, err := range errs {
		switch {
		case !ok[i] || same[i]:
		case err == nil:
			changed = append(changed, tasks[i])
		case clientError(err):
			refused = append(refused, api.TaskError{Index: i, Task: specs[i].Name, Error: err.Error()})
		default:
			return fmt.Errorf("checking task %s: %w", specs[i].Name, err)
		}
	}
	// The unchanged tasks are in the store as they are: only the changed
	// ones can close a cycle.
	if len(refused) == 0 && len(changed) > 0 && s.cfg.CheckTasks != nil {
		if err := s.cfg.CheckTasks(ctx, changed); err != nil {
			var ce *plan.CycleError
			if !errors.As(err, &ce) {
				return err
			}
			refused = append(refused, api.TaskError{Index: index[ce.Task], Task: ce.Task, Error: err.Error()})
		}
	}
	if len(refused) > 0 {
		slices.SortFunc(refused, func(a, b api.TaskError) int { return cmp.Compare(a.Index, b.Index) })
		return writeJSON(w, http.StatusBadRequest, api.Error{
			Message: fmt.Sprintf("%d of %d tasks refused, nothing applied; first: tasks[%d]: %s", len(refused), n, refused[0].Index, refused[0].Error),
			Errors:  refused,
		})
	}

	out := api.ApplyResult{Tasks: make([]api.AppliedTask, n)}
	for _, wt := range watches {
		created, err := s.cfg.Store.PutWatch(ctx, wt)
		if err != nil {
			return err
		}
		action := "updated"
		if created {
			action = "created"
		}
		out.Watches = append(out.Watches, api.AppliedWatch{Ref: wt.Ref, Action: action})
	}
	// The bases of the changed tasks are looked up while they are
	// written; what cannot be resolved is a warning, not a refusal. With
	// none changed there is nothing to look up.
	var outputs []string
	for i := range specs {
		if ok[i] && len(changed) > 0 {
			outputs = append(outputs, plan.Outputs(specs[i], s.cfg.Registry)...)
		}
	}
	warnings := make(chan []string, 1)
	go func() { warnings <- s.applyWarnings(ctx, changed, outputs) }()

	var results []store.PutResult
	if len(changed) > 0 {
		var err error
		if results, err = s.cfg.Store.PutTasks(ctx, changed); err != nil {
			return err
		}
	}
	for i := range specs {
		action := "unchanged"
		if !same[i] {
			switch res := results[0]; {
			case res.Created:
				action = "created"
			case res.Changed:
				action = "updated"
			}
			results = results[1:]
		}
		out.Tasks[i] = api.AppliedTask{Name: specs[i].Name, Action: action}
	}
	warn(w, <-warnings)
	return writeJSON(w, http.StatusOK, out)
}

// Bounds of the base check of an apply: how many lookups run at once,
// how long they may take in all (a registry that does not answer holds
// up an apply by that much only), and how many warnings are sent.
const (
	applyCheckParallel = 16
	applyCheckBudget   = 2 * time.Second
	applyMaxWarnings   = 20
)

// applyWarnings looks up each distinct base of the changed tasks once
// (Config.Bases), applyCheckParallel at a time, for at most
// applyCheckBudget in all, and returns a warning for each that cannot be
// resolved, naming the tasks built on it ("tasks a, b: base image X not
// found in registry Y"), and one for the bases left unchecked when the
// budget ran out. Bases pinned by digest and bases that are outputs of
// the applied tasks (built by refit later) are not looked up.
func (s *Server) applyWarnings(ctx context.Context, changed []store.Task, outputs []string) []string {
	if s.cfg.Bases == nil || len(changed) == 0 {
		return nil
	}
	built := make(map[string]bool, len(outputs))
	for _, o := range outputs {
		built[o] = true
	}
	users := map[string][]string{} // base → tasks on it
	var refs []string
	for _, t := range changed {
		for _, b := range t.Bases {
			if built[b.Ref] || strings.Contains(b.Ref, "@") {
				continue
			}
			if _, seen := users[b.Ref]; !seen {
				refs = append(refs, b.Ref)
			}
			if u := users[b.Ref]; len(u) == 0 || u[len(u)-1] != t.Name() {
				users[b.Ref] = append(u, t.Name())
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, applyCheckBudget)
	defer cancel()
	found := make([]string, len(refs))
	checked := make([]bool, len(refs))
	sem := make(chan struct{}, applyCheckParallel)
	var wg sync.WaitGroup
	for i, ref := range refs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			ws := s.cfg.Bases.CheckBases(ctx, []dockerfile.Base{{Ref: ref}})
			if ctx.Err() != nil {
				return // cut by the budget: unchecked, not missing
			}
			checked[i] = true
			if len(ws) > 0 {
				found[i] = ws[0]
			}
		})
	}
	wg.Wait()
	var out []string
	unchecked, more := 0, 0
	for i, ref := range refs {
		switch {
		case !checked[i]:
			unchecked++
		case found[i] == "":
		case len(out) == applyMaxWarnings:
			more++
		default:
			out = append(out, taskList(users[ref])+": "+found[i])
		}
	}
	if more > 0 {
		out = append(out, fmt.Sprintf("%d more bases cannot be resolved now", more))
	}
	if unchecked > 0 {
		out = append(out, fmt.Sprintf("%d of %d bases not checked within %s (the tasks are applied; their runs say what is missing)", unchecked, len(refs), applyCheckBudget))
	}
	return out
}

// taskList names up to three tasks: "task a", "tasks a, b, c and 4 more".
func taskList(names []string) string {
	if len(names) == 1 {
		return "task " + names[0]
	}
	if len(names) <= 3 {
		return "tasks " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("tasks %s and %d more", strings.Join(names[:3], ", "), len(names)-3)
}

// clientError reports whether err is the client's fault (a 400).
func clientError(err error) bool {
	var fe *task.FieldError
	var de *dockerfile.Error
	var ie *invalidError
	return errors.As(err, &fe) || errors.As(err, &de) || errors.As(err, &ie)
}
