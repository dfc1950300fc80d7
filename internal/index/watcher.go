package index

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/refit-dev/refit/internal/backoff"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/store"
)

// watchStore is what the watcher needs of the store.
type watchStore interface {
	DueRefs(ctx context.Context, now time.Time, limit int) ([]store.BaseRef, error)
	NextDue(ctx context.Context) (time.Time, error)
	RecordCheckError(ctx context.Context, ref, msg string, next time.Time) error
	ListTasks(ctx context.Context) ([]store.Task, error)
	TrackRefs(ctx context.Context, refs []string) error
	RetireRefs(ctx context.Context, keep map[string]bool) (int, error)
	HintRefs(ctx context.Context, refs []string, source, eventID string) (tracked int, fresh bool, err error)
}

// checker looks up what a reference points to (a *regclient.Client).
type checker interface {
	Check(ctx context.Context, ref string, known regclient.Result) (regclient.Result, error)
}

// Observation is what one successful check of a reference saw. The
// observer commits it; the store's history keeps one store.Observation
// per platform whose digest it changed.
type Observation struct {
	Ref       string
	Digest    string                 // top-level digest (index or manifest)
	MediaType string                 // of the top-level manifest
	Platforms []store.PlatformDigest // per-platform manifests ("" platform when unknown)
	Source    string                 // how it was seen: poll, webhook, push
	// Next is when to check the reference again; zero = the observer's
	// default interval from now.
	Next time.Time
}

// Observer commits an observation: it records the reference's new state
// and plans the runs a change causes, in one transaction. It returns how
// many platforms changed.
type Observer interface {
	Observe(ctx context.Context, o Observation) (changed int, err error)
}

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// Store holds the tracked references (required).
	Store watchStore
	// Checker checks references (required).
	Checker checker
	// Observer commits what checks see (required).
	Observer Observer
	// Interval between two checks of a reference. Default 5 min. Checks
	// are spread over the interval, not made in bursts.
	Interval time.Duration
	// Concurrency bounds checks in flight (each registry is further
	// bounded by the checker). Default 8.
	Concurrency int
	// Allow, when not empty, lists the only registry hosts checked; Deny
	// lists hosts never checked. A skipped reference records why.
	Allow, Deny []string
	// Tick is how often due references are looked for while some are
	// due but not checked yet (their checks are in flight), or when the
	// next due time cannot be read. Otherwise the watcher sleeps until
	// the next reference is due, or until it is woken (Wake: a hint, a
	// task's new base). Default 1 s.
	Tick time.Duration
	// Logger gets one line per failed check, and one per episode of store
	// errors (not one per attempt). nil = discard.
	Logger *slog.Logger
	// Metrics, when set, count checks, requests and changes.
	Metrics *Metrics
	// Tags lists followed repositories' tags (triggers.baseTags, watches
	// with a semver range), each once per Interval with the references'
	// due-time scheme, and TagObserver commits what a listing found. Both
	// nil (and a Store without the tag methods) = no tag listing.
	Tags        tagLister
	TagObserver TagObserver
}

// Watcher polls due references and checks at once those a push or a
// webhook hinted at. Run it in one goroutine.
//
// A store that cannot record a check (a full disk) leaves the reference
// due: checking it again at every tick would hammer the registry. So
// store errors back off the whole watcher, exponentially from 100 ms to
// 30 s, and while they last it makes one check at a time, after the
// backoff, until the store records one again; the episode is logged
// once, not per attempt.
type Watcher struct {
	cfg      WatcherConfig
	storeErr *backoff.Tracker
	wake     chan struct{}
	mu       sync.Mutex
	inFlight map[string]bool
	finished map[string]time.Time // when each recent check ended
}

// NewWatcher returns a Watcher; call Run to start it.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if cfg.Store == nil || cfg.Checker == nil || cfg.Observer == nil {
		return nil, errors.New("index: watcher needs Store, Checker and Observer")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Minute
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Watcher{cfg: cfg, wake: make(chan struct{}, 1), inFlight: map[string]bool{}, finished: map[string]time.Time{},
		storeErr: &backoff.Tracker{Logger: cfg.Logger, What: "index watcher: store"}}, nil
}

// Hint commits that refs (as a push or webhook named them) should be
// checked now: it marks the tracked ones among them (and the followed
// tag repositories of all of them) due, noting source
// ("push", "webhook"), and takes eventID (when not "") so that a replayed
// webhook hints nothing — all in one transaction, which outlives ctx's
// cancelation (an acknowledged hint is never lost). Then it wakes the
// watcher. A reference that does not parse is an error naming it.
func (w *Watcher) Hint(ctx context.Context, refs []string, source, eventID string) error {
	norm := make([]string, len(refs))
	for i, r := range refs {
		n, err := dockerfile.Normalize(r)
		if err != nil {
			return fmt.Errorf("%s names %q: %w", source, r, err)
		}
		norm[i] = n
	}
	n, _, err := w.cfg.Store.HintRefs(context.WithoutCancel(ctx), norm, source, eventID)
	if err != nil {
		w.cfg.Logger.Error("recording a "+source, "refs", norm, "err", err)
		return err
	}
	if n > 0 {
		w.Wake()
	}
	return nil
}

// Wake makes the watcher look for due references now (after a hint).
// It never blocks.
func (w *Watcher) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run checks due references (and, with Tags, lists due followed
// repositories) until ctx ends, then waits for the checks in flight. It
// first makes the index match the tasks and watches (tracking every base
// they use, retiring what none uses), and does so again every interval.
func (w *Watcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, w.cfg.Concurrency)
	var lastSync time.Time
	// Followed repositories are looked for less often than references
	// (an idle server should not pay a second query every tick), but at
	// once after a wake-up: a hint may have made one due.
	tagEvery := min(5*w.cfg.Tick, w.cfg.Interval/4)
	var lastTags time.Time
	woken := true
	for {
		if wait := w.storeErr.Wait(); wait > 0 {
			// Backing off store errors: ticks and wake-ups wait too.
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		if time.Since(lastSync) >= w.cfg.Interval {
			if err := w.sync(ctx); err != nil {
				w.storeFailed(ctx, fmt.Errorf("syncing the base index with tasks: %w", err))
			} else {
				w.storeErr.Succeed()
			}
			lastSync = time.Now()
		}
		limit := 4 * w.cfg.Concurrency
		// While the store fails, one check at a time probes it.
		probe := w.storeErr.Failing()
		if probe {
			limit = 1
		}
		listed := time.Now()
		var due []store.BaseRef
		var err error
		if !probe || w.idle() {
			due, err = w.cfg.Store.DueRefs(ctx, listed, limit)
			if err != nil {
				w.storeFailed(ctx, err)
			}
		}
		dispatched := 0
		for _, b := range due {
			if !w.claim(b.Ref, listed) {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			dispatched++
			wg.Add(1)
			go func(b store.BaseRef) {
				defer wg.Done()
				defer func() { <-sem }()
				w.check(ctx, b)
				w.release(b.Ref)
				// The loop may sleep on this check's old due time.
				w.Wake()
			}(b)
		}
		w.mu.Lock()
		for ref, t := range w.finished {
			if time.Since(t) > time.Minute {
				delete(w.finished, ref)
			}
		}
		w.mu.Unlock()
		if !probe && (woken || time.Since(lastTags) >= tagEvery) {
			dispatched += w.dispatchTags(ctx, sem, func(fn func()) { wg.Go(fn) })
			lastTags, woken = time.Now(), false
		}
		if dispatched > 0 && len(due) == limit && !probe {
			continue // more may be due: refill as slots free, not once a tick
		}
		sleep := time.NewTimer(w.sleep(ctx, lastSync))
		select {
		case <-ctx.Done():
			sleep.Stop()
			return nil
		case <-sleep.C:
		case <-w.wake:
			sleep.Stop()
			woken = true
		}
	}
}

// sleep returns how long the watcher may sleep: until the next reference
// is due or the next sync with the tasks, whichever is first — not a
// fixed tick, so that an idle watcher wakes only when there is work.
// While a reference is due already (its check is in flight: its end
// wakes the watcher), or the store cannot say, it looks again after
// Tick at the latest.
func (w *Watcher) sleep(ctx context.Context, lastSync time.Time) time.Duration {
	d := time.Until(lastSync.Add(w.cfg.Interval))
	next, err := w.cfg.Store.NextDue(ctx)
	switch {
	case err != nil:
		return w.cfg.Tick
	case next.IsZero():
	default:
		if until := time.Until(next); until <= 0 {
			return w.cfg.Tick
		} else {
			d = min(d, until)
		}
	}
	return max(d, time.Millisecond)
}

// claim marks key (a reference, or a followed repository's "tags "
// key) in flight and reports true, unless it is in flight already or
// finished after listed, when the list of due items was read (the list
// may predate that check's commit): then it is not due again.
func (w *Watcher) claim(key string, listed time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight[key] || w.finished[key].After(listed) {
		return false
	}
	w.inFlight[key] = true
	return true
}

// release records that key's check, claimed before, finished now.
func (w *Watcher) release(key string) {
	w.mu.Lock()
	delete(w.inFlight, key)
	w.finished[key] = time.Now()
	w.mu.Unlock()
}

// idle reports whether no check is in flight.
func (w *Watcher) idle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.inFlight) == 0
}

// storeFailed backs the watcher off after a store error.
func (w *Watcher) storeFailed(ctx context.Context, err error) {
	if ctx.Err() == nil {
		w.storeErr.Fail(err)
	}
}

// count records one check or tag listing of host in the metrics: its
// outcome and the requests it made.
func (w *Watcher) count(host string, requests int, err error) {
	m := w.cfg.Metrics
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.Checks.WithLabelValues(host, result).Inc()
	m.Requests.WithLabelValues(host).Add(float64(requests))
}

// check checks one reference and records the outcome.
func (w *Watcher) check(ctx context.Context, b store.BaseRef) {
	host, _, _ := strings.Cut(b.Ref, "/")
	if msg := w.disallowed(host); msg != "" {
		w.recordError(ctx, b.Ref, msg, time.Now().Add(w.cfg.Interval))
		return
	}
	known := regclient.Result{Digest: b.Digest, MediaType: b.MediaType, Platforms: b.Platforms}
	res, err := w.cfg.Checker.Check(ctx, b.Ref, known)
	if ctx.Err() != nil {
		return
	}
	w.count(host, res.Requests, err)
	if err != nil {
		next := time.Now().Add(regclient.Backoff(b.Failures+1, err))
		w.cfg.Logger.Warn("checking base reference", "ref", b.Ref, "err", err, "failures", b.Failures+1, "next", next.Format(time.RFC3339))
		w.recordError(ctx, b.Ref, err.Error(), next)
		return
	}
	source := b.HintSource
	if source == "" {
		source = "poll"
	}
	o := Observation{Ref: b.Ref, Digest: res.Digest, MediaType: res.MediaType, Platforms: res.Platforms, Source: source, Next: w.next(b)}
	changed, err := w.cfg.Observer.Observe(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		// Back the reference off; if even that cannot be recorded, the
		// store is failing, not this reference.
		if rerr := w.cfg.Store.RecordCheckError(ctx, b.Ref, err.Error(), time.Now().Add(regclient.Backoff(b.Failures+1, err))); rerr != nil {
			w.storeFailed(ctx, fmt.Errorf("recording the check of %s: %w", b.Ref, err))
			return
		}
		w.storeErr.Succeed()
		w.cfg.Logger.Error("recording check", "ref", b.Ref, "err", err)
		return
	}
	w.storeErr.Succeed()
	if m := w.cfg.Metrics; m != nil {
		m.Changes.Add(float64(changed))
		if b.HintSource != "" {
			// A hint set next_check_at to the moment it arrived.
			m.Detection.WithLabelValues(b.HintSource).Observe(time.Since(b.NextCheckAt).Seconds())
		}
	}
}

// recordError records a failed check of ref; a store error backs the
// watcher off.
func (w *Watcher) recordError(ctx context.Context, ref, msg string, next time.Time) {
	if err := w.cfg.Store.RecordCheckError(ctx, ref, msg, next); err != nil {
		w.storeFailed(ctx, err)
		return
	}
	w.storeErr.Succeed()
}

// next is when to check b again after this check. A reference checked on
// schedule is due one interval after it was due this time — not after the
// check finished, which would let the tick and the check's own time push
// a short interval's check past the next slot, checking it only every
// other interval (a check that came a whole interval late stands for the
// next slot too). Otherwise (its first check, after a hint or a failure,
// or when it is more than an interval late, as after a restart) it takes
// a stable phase in the interval (a hash of its name) at least half an
// interval away, with a little jitter, so that references added together
// do not stay in step.
func (w *Watcher) next(b store.BaseRef) time.Time {
	return w.due(b.Ref, b.HintSource != "", b.CheckedAt, b.NextCheckAt, b.Failures)
}

// due is next for any watched item: name (its phase), whether a hint
// made it due, when it was last checked, when this check was due, and
// its failures before this check.
func (w *Watcher) due(name string, hinted bool, checkedAt, nextAt time.Time, failures int) time.Time {
	iv := w.cfg.Interval
	now := time.Now()
	if !hinted && !checkedAt.IsZero() && failures == 0 && !nextAt.IsZero() && now.Sub(nextAt) < 2*iv {
		at := nextAt.Add(iv)
		if !at.After(now) {
			at = at.Add(iv) // this check took the next slot's turn
		}
		return at
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	phase := time.Duration(h.Sum32()) % iv
	at := now.Truncate(iv).Add(phase)
	for !at.After(now.Add(iv / 2)) {
		at = at.Add(iv)
	}
	jitter := time.Duration(rand.Int64N(int64(iv/20) + 1))
	return at.Add(jitter)
}

func (w *Watcher) disallowed(host string) string {
	for _, d := range w.cfg.Deny {
		if d == host {
			return fmt.Sprintf("registry %s is on the watcher's deny list", host)
		}
	}
	if len(w.cfg.Allow) == 0 {
		return ""
	}
	for _, a := range w.cfg.Allow {
		if a == host {
			return ""
		}
	}
	return fmt.Sprintf("registry %s is not on the watcher's allow list", host)
}

// sync makes the tracked references those the tasks use and the
// watches name, and the followed tag repositories those the tasks'
// baseTags and the watches' ranges name.
func (w *Watcher) sync(ctx context.Context) error {
	tasks, err := w.cfg.Store.ListTasks(ctx)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	var refs []string
	for _, t := range tasks {
		for _, b := range t.Bases {
			if !strings.Contains(b.Ref, "@") && !keep[b.Ref] {
				keep[b.Ref] = true
				refs = append(refs, b.Ref)
			}
		}
	}
	watched, err := w.syncTags(ctx, tasks)
	if err != nil {
		return err
	}
	for _, r := range watched {
		if !keep[r] {
			keep[r] = true
			refs = append(refs, r)
		}
	}
	if err := w.cfg.Store.TrackRefs(ctx, refs); err != nil {
		return err
	}
	n, err := w.cfg.Store.RetireRefs(ctx, keep)
	if n > 0 {
		w.cfg.Logger.Info("retired base references no task uses", "count", n)
	}
	return err
}
