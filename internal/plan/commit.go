package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/refit-dev/refit/internal/redact"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// Push is a git push as the planner sees it, from a webhook or polling.
type Push struct {
	// Repos are the repository's URLs as reported (a webhook names the
	// clone, ssh and web URLs); the first that a task uses counts.
	Repos []string
	// Ref is the full ref ("refs/heads/main"); SHA its new commit ("" when
	// Deleted).
	Ref, SHA string
	Deleted  bool
	// DefaultBranch is the repository's default branch when known: what
	// a source ref of HEAD follows.
	DefaultBranch string
	// Author and Message describe the head commit.
	Author, Message string
	// Files are the changed paths; FilesKnown false means unknown (every
	// path counts as changed).
	Files      []string
	FilesKnown bool
	// Source is webhook or poll.
	Source string
}

// Skip is a task that uses a pushed repository but does not build the
// push, and why.
type Skip struct {
	Task   string
	Reason string
}

// CommitTriggers returns the tasks a push builds directly (their
// dependents are Wave's) and, for every other task whose source is the
// repository, why not. used is false when no task's source is the
// repository.
func (g *Graph) CommitTriggers(p Push) (direct []Trigger, skipped []Skip, used bool) {
	var repo string
	var names []string
	for _, r := range p.Repos {
		if names = g.repoTasks()[task.RepoKey(r)]; len(names) > 0 {
			repo = r
			break
		}
	}
	for _, name := range names {
		t := g.byName[name]
		used = true
		if reason := commitSkip(t.Spec, p); reason != "" {
			skipped = append(skipped, Skip{name, reason})
			continue
		}
		c := store.Cause{Kind: "commit", Repo: redact.URL(repo), Ref: p.Ref, SHA: p.SHA, Author: p.Author, Message: p.Message, Source: p.Source}
		direct = append(direct, Trigger{Task: name, Cause: c})
	}
	return direct, skipped, used
}

// repoTasks maps repository keys to the tasks whose git source they are,
// built on first use (the graph is read-only after).
func (g *Graph) repoTasks() map[string][]string {
	g.reposOnce.Do(func() {
		g.repos = map[string][]string{}
		for _, t := range g.Tasks {
			if t.Spec.Source.Git != "" {
				k := task.RepoKey(t.Spec.Source.Git)
				g.repos[k] = append(g.repos[k], t.Spec.Name)
			}
		}
	})
	return g.repos
}

// RepoInfo is a git repository that tasks build from with the commit
// trigger on.
type RepoInfo struct {
	// URL is the repository as one of the tasks names it.
	URL string
	// Paths is true when one of the tasks filters pushes by paths.
	Paths bool
}

// Repos returns the distinct git repositories of the tasks whose commit
// trigger is on, by task.RepoKey: what polling lists.
func (g *Graph) Repos() map[string]RepoInfo {
	out := map[string]RepoInfo{}
	for k, names := range g.repoTasks() {
		for _, n := range names {
			t := g.byName[n]
			if t.Spec.Triggers == nil || !t.Spec.Triggers.Commit.Enabled {
				continue
			}
			info, ok := out[k]
			if !ok {
				info.URL = t.Spec.Source.Git
			}
			info.Paths = info.Paths || len(t.Spec.Triggers.Commit.Paths) > 0
			out[k] = info
		}
	}
	return out
}

// commitSkip says why spec does not build push p, or "" when it does.
func commitSkip(spec task.Spec, p Push) string {
	tr := spec.Triggers
	if tr == nil || !tr.Commit.Enabled {
		return "commit trigger is off"
	}
	c := tr.Commit
	isTag := strings.HasPrefix(p.Ref, "refs/tags/")
	switch {
	case p.Deleted && !c.Deletions:
		return fmt.Sprintf("%s was deleted (set triggers.commit.deletions to build deletions)", p.Ref)
	case isTag && !c.Tags:
		return fmt.Sprintf("%s is a tag (set triggers.commit.tags to build tags)", p.Ref)
	case !isTag && !strings.HasPrefix(p.Ref, "refs/heads/"):
		return fmt.Sprintf("%s is no branch or tag", p.Ref)
	}
	if !isTag {
		branch := strings.TrimPrefix(p.Ref, "refs/heads/")
		if len(c.Branches) > 0 {
			if !slices.ContainsFunc(c.Branches, func(b string) bool { return task.MatchGlob(strings.TrimPrefix(b, "refs/heads/"), branch) }) {
				return fmt.Sprintf("branch %s matches none of triggers.commit.branches %v", branch, c.Branches)
			}
		} else if follows := followedBranch(spec.Source.Ref, p.DefaultBranch); follows != branch {
			if follows == "" {
				return fmt.Sprintf("the task follows HEAD and the push does not name the default branch (set source.ref or triggers.commit.branches)")
			}
			return fmt.Sprintf("the task follows branch %s, not %s", follows, branch)
		}
	}
	if len(c.Paths) > 0 && p.FilesKnown && !p.Deleted {
		for _, f := range p.Files {
			for _, g := range c.Paths {
				if task.MatchGlob(g, f) {
					return ""
				}
			}
		}
		return fmt.Sprintf("no changed file is under triggers.commit.paths %v", c.Paths)
	}
	return ""
}

// followedBranch is the branch a source ref follows: the default branch
// for HEAD ("" when unknown), the name of refs/heads/X or X.
func followedBranch(ref, defaultBranch string) string {
	switch {
	case ref == "" || ref == "HEAD":
		return defaultBranch
	case strings.HasPrefix(ref, "refs/heads/"):
		return strings.TrimPrefix(ref, "refs/heads/")
	}
	return ref
}

// coalesceCommit merges cause into the waiting run's cause c: a newer
// commit of the same ref replaces the older one; any other cause is kept
// in Also (a commit becomes the primary cause, since it decides what is
// built), so the run builds once for all of them.
func coalesceCommit(c, cause store.Cause) store.Cause {
	switch {
	case c.Kind == "commit" && cause.Kind == "commit" && task.RepoKey(c.Repo) == task.RepoKey(cause.Repo) && c.Ref == cause.Ref:
		also := c.Also
		c = cause
		c.Also = also
		return c
	case cause.Kind == "commit":
		prev := c
		prev.Also = nil
		cause.Also = append(slices.Clone(c.Also), prev)
		return cause
	}
	for i, a := range c.Also {
		if a.Kind == cause.Kind && a.Base == cause.Base && a.Platform == cause.Platform {
			c.Also = slices.Clone(c.Also)
			c.Also[i] = cause
			return c
		}
	}
	c.Also = append(slices.Clone(c.Also), cause)
	return c
}
