// Package gitpoll owns polling git repositories for new commits: one `git
// ls-remote` per repository per interval however many tasks build from
// it, the heads it saw remembered in the store (so a restart does not
// take every head for new), and a moved head handed on as a push exactly
// like a webhook's (internal/lifecycle decides what it builds).
//
// It does not decide which tasks a push builds, or build.
package gitpoll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/redact"
	"github.com/refit-dev/refit/internal/source"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// Store is what the poller needs of the store.
type Store interface {
	GitHeads(ctx context.Context, key string) (map[string]string, error)
	RecordGitHeads(ctx context.Context, key string, heads map[string]string) error
}

// Pusher commits a push (a *lifecycle.Runs).
type Pusher interface {
	Push(ctx context.Context, p plan.Push, delivery string, head bool) (lifecycle.CommitResult, error)
}

// Config configures a Poller.
type Config struct {
	// Repos returns the repositories to poll, by task.RepoKey (required);
	// one with Paths set has a moved head diffed against the one before.
	Repos func(ctx context.Context) (map[string]plan.RepoInfo, error)
	// Store remembers the heads seen (required).
	Store Store
	// Pusher commits moved heads (required).
	Pusher Pusher
	// Interval is how often each repository is listed, jittered by ±10%.
	// Default 1 min.
	Interval time.Duration
	// Concurrency bounds the listings in flight. Default 8 (a listing
	// mostly waits on the network).
	Concurrency int
	// ListRemote lists a repository's heads. Default source.ListRemote.
	ListRemote func(ctx context.Context, url string) (source.Remote, error)
	// ChangedFiles lists the paths two commits of a ref differ in.
	// Default source.ChangedFiles.
	ChangedFiles func(ctx context.Context, url, ref, old, new string) ([]string, error)
	// Record, when set, keeps what each committed move decided (source
	// "poll"), for `refit task triggers`: the last one per repository.
	// A move another process committed first (a replay) is not recorded:
	// that process recorded its verdict. Optional.
	Record func(ctx context.Context, d store.GitDelivery) error
	// Logger gets a line per moved head and per failing repository. Nil
	// discards.
	Logger *slog.Logger
}

// Poller polls git repositories. Run it once.
type Poller struct {
	cfg Config
}

// New returns a Poller, or an error naming a missing field.
func New(cfg Config) (*Poller, error) {
	if cfg.Repos == nil || cfg.Store == nil || cfg.Pusher == nil {
		return nil, errors.New("gitpoll: Repos, Store and Pusher are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.ListRemote == nil {
		cfg.ListRemote = source.ListRemote
	}
	if cfg.ChangedFiles == nil {
		cfg.ChangedFiles = source.ChangedFiles
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Poller{cfg: cfg}, nil
}

// Run polls every repository now and then once per (jittered) interval
// until ctx ends, waiting for the listings in flight before returning.
func (p *Poller) Run(ctx context.Context) {
	for {
		p.Poll(ctx)
		jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(p.cfg.Interval))
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.cfg.Interval + jitter):
		}
	}
}

// Poll lists every repository once (at most Concurrency at a time) and
// commits what moved; a failing repository is logged and does not stop
// the others.
func (p *Poller) Poll(ctx context.Context) {
	repos, err := p.cfg.Repos(ctx)
	if err != nil {
		p.cfg.Logger.Error("listing the repositories to poll", "err", err)
		return
	}
	keys := make([]string, 0, len(repos))
	for k := range repos {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, k := range keys {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case sem <- struct{}{}:
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := p.Check(ctx, k, repos[k]); err != nil && ctx.Err() == nil {
				p.cfg.Logger.Warn("polling a git repository", "repo", k, "err", err)
			}
		})
	}
	wg.Wait()
}

// Check lists one repository and commits each head that moved since the
// last listing as a push (a new branch or tag too; a vanished one as a
// deletion). The first listing of a repository records its heads and
// builds nothing.
func (p *Poller) Check(ctx context.Context, key string, repo plan.RepoInfo) error {
	remote, err := p.cfg.ListRemote(ctx, repo.URL)
	if err != nil {
		return err
	}
	seen, err := p.cfg.Store.GitHeads(ctx, key)
	if err != nil {
		return err
	}
	if len(seen) == 0 {
		if len(remote.Heads) == 0 {
			return nil
		}
		return p.cfg.Store.RecordGitHeads(ctx, key, remote.Heads)
	}
	refs := make([]string, 0, len(remote.Heads))
	for ref := range remote.Heads {
		refs = append(refs, ref)
	}
	for ref, sha := range seen {
		if _, ok := remote.Heads[ref]; !ok && sha != "" {
			refs = append(refs, ref) // deleted
		}
	}
	sort.Strings(refs)
	var errs []error
	for _, ref := range refs {
		old, sha := seen[ref], remote.Heads[ref]
		if old == sha {
			continue
		}
		push := plan.Push{Repos: []string{repo.URL}, Ref: ref, SHA: sha, Deleted: sha == "",
			DefaultBranch: remote.DefaultBranch, Source: "poll"}
		if repo.Paths && old != "" && sha != "" {
			files, err := p.cfg.ChangedFiles(ctx, repo.URL, ref, old, sha)
			switch {
			case err == nil:
				push.Files, push.FilesKnown = files, true
			case errors.Is(err, source.ErrHistoryUnknown):
			default:
				p.cfg.Logger.Warn("diffing a moved head; building as if every path changed", "repo", key, "ref", ref, "err", err)
			}
		}
		// The delivery id makes the same move seen by several refit
		// processes one push.
		delivery := fmt.Sprintf("git:poll:%s:%s:%s", task.RepoKey(repo.URL), ref, sha)
		res, err := p.cfg.Pusher.Push(ctx, push, delivery, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.cfg.Logger.Info("git head moved", "repo", key, "ref", ref, "old", old, "new", sha, "runs", len(res.Runs), "replay", res.Replay)
		if p.cfg.Record != nil && !res.Replay {
			d := store.GitDelivery{RepoKey: key, Source: "poll", Delivery: delivery, Ref: ref, SHA: sha,
				Message: res.Verdict(redact.URL(repo.URL), ref), Runs: res.RunIDs()}
			if err := p.cfg.Record(ctx, d); err != nil {
				p.cfg.Logger.Warn("recording a polled push", "repo", key, "ref", ref, "err", err)
			}
		}
	}
	return errors.Join(errs...)
}
