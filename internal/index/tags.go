package index

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// tagStore is what listing followed repositories needs of the store; the
// watcher lists tags only when its Store has it.
type tagStore interface {
	DueTagRepos(ctx context.Context, now time.Time, limit int) ([]store.TagRepo, error)
	RecordTagListError(ctx context.Context, repository, msg string, next time.Time) error
	SyncTagRepos(ctx context.Context, follow map[string][]string) (int, error)
	ListWatches(ctx context.Context) ([]store.Watch, error)
}

// tagLister lists a repository's tags (a *regclient.Client).
type tagLister interface {
	Tags(ctx context.Context, repository string, fn func(tag string)) (regclient.TagList, error)
}

var _ tagLister = (*regclient.Client)(nil)

// TagFound is the newest tag of a repository matching one followed
// constraint, and what it pointed to when found.
type TagFound struct {
	Tag    string
	Result regclient.Result // the tag's check: digest and platforms
}

// TagObservation is what one listing of a followed repository saw: per
// constraint (task.RuleKey) the newest matching tag, for the constraints
// whose newest differs from the one stored (and is newer).
type TagObservation struct {
	Repository string
	Tags       int                 // how many tags the repository has
	Newest     map[string]TagFound // by rule key
	// Next is when to list the repository again; zero = the observer's
	// default interval from now.
	Next time.Time
}

// TagObserver commits a listing: the newest tags, the events and the
// runs they cause, in one transaction. It returns how many constraints
// gained a newer tag (a first sighting is not one).
type TagObserver interface {
	ObserveTags(ctx context.Context, o TagObservation) (newer int, err error)
}

// tags returns the watcher's tag store, or false when tag listing is
// not configured (no Tags, no TagObserver, or a Store without the tag
// methods).
func (w *Watcher) tags() (tagStore, bool) {
	ts, ok := w.cfg.Store.(tagStore)
	return ts, ok && w.cfg.Tags != nil && w.cfg.TagObserver != nil
}

// dispatchTags starts listings of the due followed repositories, within
// the watcher's concurrency, and reports how many it started.
func (w *Watcher) dispatchTags(ctx context.Context, sem chan struct{}, start func(func())) int {
	ts, ok := w.tags()
	if !ok {
		return 0
	}
	listed := time.Now()
	due, err := ts.DueTagRepos(ctx, listed, w.cfg.Concurrency)
	if err != nil {
		w.storeFailed(ctx, err)
		return 0
	}
	n := 0
	for _, r := range due {
		key := "tags " + r.Repository
		if !w.claim(key, listed) {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return n
		}
		n++
		start(func() {
			defer func() { <-sem }()
			w.listTags(ctx, ts, r)
			w.release(key)
		})
	}
	return n
}

// listTags lists one followed repository, finds per followed constraint
// the newest matching tag, resolves those newer than the stored newest
// (recording them in the index like any reference), and hands the
// listing to the TagObserver.
func (w *Watcher) listTags(ctx context.Context, ts tagStore, r store.TagRepo) {
	host, _, _ := strings.Cut(r.Repository, "/")
	fail := func(msg string, next time.Time) {
		if err := ts.RecordTagListError(ctx, r.Repository, msg, next); err != nil {
			w.storeFailed(ctx, err)
		}
	}
	if msg := w.disallowed(host); msg != "" {
		fail(msg, time.Now().Add(w.cfg.Interval))
		return
	}
	var rules []*task.TagRule
	for _, k := range r.Rules {
		if rule, err := task.ParseRuleKey(k); err == nil {
			rules = append(rules, rule)
		}
	}
	best := map[string]string{}
	res, err := w.cfg.Tags.Tags(ctx, r.Repository, func(tag string) {
		v, ok := task.TagVersion(tag)
		if !ok {
			return
		}
		for _, rule := range rules {
			if rule.Allows(v) && task.Newer(tag, best[rule.Key()]) {
				best[rule.Key()] = tag
			}
		}
	})
	if ctx.Err() != nil {
		return
	}
	w.count(host, res.Requests, err)
	if err != nil {
		next := time.Now().Add(regclient.Backoff(r.Failures+1, err))
		w.cfg.Logger.Warn("listing tags", "repository", r.Repository, "err", err, "failures", r.Failures+1, "next", next.Format(time.RFC3339))
		fail(err.Error(), next)
		return
	}
	o := TagObservation{Repository: r.Repository, Tags: res.Tags, Newest: map[string]TagFound{},
		Next: w.due(r.Repository, false, r.ListedAt, r.NextListAt, r.Failures)}
	for _, key := range slices.Sorted(maps.Keys(best)) {
		tag := best[key]
		if old := r.Newest[key].Tag; old != "" && !task.Newer(tag, old) {
			continue
		}
		ref := r.Repository + ":" + tag
		cr, err := w.cfg.Checker.Check(ctx, ref, regclient.Result{})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			next := time.Now().Add(regclient.Backoff(r.Failures+1, err))
			fail(fmt.Sprintf("resolving new tag %s: %v", ref, err), next)
			return
		}
		o.Newest[key] = TagFound{Tag: tag, Result: cr}
	}
	if _, err := w.cfg.TagObserver.ObserveTags(ctx, o); err != nil {
		if ctx.Err() != nil {
			return
		}
		w.cfg.Logger.Error("recording tag listing", "repository", r.Repository, "err", err)
		fail(err.Error(), time.Now().Add(regclient.Backoff(r.Failures+1, err)))
		return
	}
	w.storeErr.Succeed()
}

// syncTags makes the followed repositories those the tasks' baseTags
// and the watches name, and returns the watched references whose digest
// is polled.
func (w *Watcher) syncTags(ctx context.Context, tasks []store.Task) ([]string, error) {
	ts, ok := w.cfg.Store.(tagStore)
	if !ok {
		return nil, nil
	}
	watches, err := ts.ListWatches(ctx)
	if err != nil {
		return nil, err
	}
	follow := map[string][]string{}
	for _, t := range tasks {
		if t.Spec.Triggers == nil {
			continue
		}
		for _, bt := range t.Spec.Triggers.BaseTags {
			if repo, err := task.Repository(bt.Ref); err == nil {
				follow[repo] = append(follow[repo], task.RuleKey(bt.Semver, bt.Prerelease))
			}
		}
	}
	var refs []string
	for _, wt := range watches {
		if wt.ByDigest {
			refs = append(refs, wt.Ref)
		}
		if rule := wt.Rule(); rule != "" {
			follow[wt.Repository] = append(follow[wt.Repository], rule)
		}
	}
	n, err := ts.SyncTagRepos(ctx, follow)
	if n > 0 {
		w.cfg.Logger.Info("stopped following tags of repositories nothing follows", "count", n)
	}
	return refs, err
}
