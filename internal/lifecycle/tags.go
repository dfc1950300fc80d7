package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/refit-dev/refit/internal/index"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

var _ index.TagObserver = (*Runs)(nil)

// BaseTagged is the data of a base.tagged event: a followed repository
// gained a tag newer than any seen that matches a followed constraint.
type BaseTagged struct {
	// Ref is the repository ("docker.io/library/python").
	Ref string `json:"ref"`
	// Semver and Prerelease are the constraint the tag matches.
	Semver     string `json:"semver"`
	Prerelease bool   `json:"prerelease,omitempty"`
	// OldTag is the newest matching tag seen before; Tag the new one,
	// pointing to Digest.
	OldTag string `json:"oldTag"`
	Tag    string `json:"tag"`
	Digest string `json:"digest,omitempty"`
	// Tasks are the tasks rebuilt with the new tag (action rebuild);
	// Notified those following it with action notify.
	Tasks    []string `json:"tasks"`
	Notified []string `json:"notified,omitempty"`
}

// ObserveTags commits a listing of a followed repository (see
// CommitTags) and returns how many constraints gained a newer tag.
func (l *Runs) ObserveTags(ctx context.Context, o index.TagObservation) (int, error) {
	n, runs, err := l.CommitTags(ctx, o)
	if len(runs) > 0 {
		l.wake()
	}
	return n, err
}

// CommitTags commits what a listing of o.Repository found, in one
// transaction: per constraint whose newest matching tag is newer than
// the one stored, the new tag (its digest recorded in the base index
// like any reference, source "tag"), a base.tagged event, and for each
// task following it with action rebuild the build arg set to the tag
// (kept as the task's effective arg) and a run with cause baseTag. The
// first listing of a constraint records its newest tag and causes
// nothing. It returns how many constraints moved and the runs queued.
func (l *Runs) CommitTags(ctx context.Context, o index.TagObservation) (newer int, runs []store.Run, err error) {
	err = l.cfg.Store.InTx(ctx, func(tx *store.Tx) error {
		newer, runs = 0, nil
		repo, err := tx.TagRepo(o.Repository)
		if errors.Is(err, store.ErrNotFound) {
			return nil // no longer followed
		}
		if err != nil {
			return err
		}
		var tasks []store.Task
		for _, key := range slices.Sorted(maps.Keys(o.Newest)) {
			found := o.Newest[key]
			old := repo.Newest[key]
			if old.Tag != "" && !task.Newer(found.Tag, old.Tag) {
				continue
			}
			repo.Newest[key] = store.TagSeen{Tag: found.Tag, Digest: found.Result.Digest, SeenAt: time.Now().UTC()}
			ref := o.Repository + ":" + found.Tag
			if found.Result.Digest != "" {
				if err := tx.TrackRef(ref); err != nil {
					return err
				}
				if _, err := l.commit(tx, index.Observation{Ref: ref, Digest: found.Result.Digest, MediaType: found.Result.MediaType,
					Platforms: found.Result.Platforms, Source: "tag"}); err != nil {
					return err
				}
			}
			if old.Tag == "" {
				continue // first sight: the baseline
			}
			newer++
			if tasks == nil {
				if tasks, err = tx.Tasks(); err != nil {
					return err
				}
			}
			constraint, pre := task.SplitRuleKey(key)
			ev := BaseTagged{Ref: o.Repository, Semver: constraint, Prerelease: pre, OldTag: old.Tag, Tag: found.Tag,
				Digest: found.Result.Digest, Tasks: []string{}}
			type rebuild struct {
				t   store.Task
				arg string
			}
			var rebuilds []rebuild
			for _, t := range tasks {
				for _, bt := range followers(t, o.Repository, key) {
					if bt.Action == "notify" {
						ev.Notified = append(ev.Notified, t.Spec.Name)
						continue
					}
					ev.Tasks = append(ev.Tasks, t.Spec.Name)
					rebuilds = append(rebuilds, rebuild{t, bt.Arg})
				}
			}
			// The cause before its effects, as for base.updated.
			if err := tx.Emit(store.EventBaseTagged, o.Repository, ev); err != nil {
				return err
			}
			for _, rb := range rebuilds {
				if err := tx.SetTaskTagArg(rb.t.Spec.Name, rb.arg, found.Tag, o.Repository); err != nil {
					return err
				}
				cause := store.Cause{Kind: "baseTag", Base: o.Repository, OldTag: old.Tag, NewTag: found.Tag, NewDigest: found.Result.Digest}
				r, err := tx.CreateRun(store.Run{Task: rb.t.Spec.Name, Spec: rb.t.Spec, Cause: cause}, l.enqueuer(0))
				if err != nil {
					return err
				}
				runs = append(runs, r)
			}
		}
		repo.TagCount = o.Tags
		repo.NextListAt = o.Next
		if repo.NextListAt.IsZero() {
			repo.NextListAt = time.Now().Add(l.cfg.Interval)
		}
		return tx.SaveTagList(repo)
	})
	if err != nil {
		return 0, nil, fmt.Errorf("recording tags of %s: %w", o.Repository, err)
	}
	if newer > 0 {
		l.cfg.Logger.Info("new base tags", "repository", o.Repository, "constraints", newer, "runs", len(runs))
	}
	return newer, runs, nil
}

// followers returns t's baseTags entries following repository under the
// constraint key.
func followers(t store.Task, repository, key string) []task.BaseTag {
	if t.Spec.Triggers == nil {
		return nil
	}
	var out []task.BaseTag
	for _, bt := range t.Spec.Triggers.BaseTags {
		if r, err := task.Repository(bt.Ref); err == nil && r == repository && task.RuleKey(bt.Semver, bt.Prerelease) == key {
			out = append(out, bt)
		}
	}
	return out
}
