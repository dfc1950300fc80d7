// Package backoff owns how refit's loops wait after a failure:
// exponential delays with jitter (Policy), and, for a loop whose steps
// all fail the same way while something they share is broken (a store
// that cannot write because the disk is full, say), a Tracker of the
// failing episode that spaces the attempts and logs the episode once —
// when it starts, now and then while it lasts, and when it ends — rather
// than once per attempt. It also reads what a server asks for in a
// Retry-After header (RetryAfter). It does not retry anything itself.
package backoff

import (
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Policy defaults.
const (
	DefaultMin    = 100 * time.Millisecond
	DefaultMax    = 30 * time.Second
	DefaultJitter = 0.2
	// DefaultEvery is how often a Tracker logs that an episode goes on.
	DefaultEvery = time.Minute
)

// Policy is exponential backoff: Min doubling with each consecutive
// failure, capped at Max, randomized by ±Jitter so that loops failing
// together do not retry in step. The zero Policy is 100 ms → 30 s, ±20%.
type Policy struct {
	// Min is the wait after the first failure. Default 100 ms.
	Min time.Duration
	// Max caps the wait. Default 30 s (or Min, when Min is larger).
	Max time.Duration
	// Jitter is the random spread, as a fraction of the wait: 0.2 is
	// ±20%. Default 0.2; negative means none.
	Jitter float64
}

// Delay returns the wait after n consecutive failures (n < 1 counts as
// 1): Min·2^(n-1), capped at Max, ±Jitter, never above Max.
func (p Policy) Delay(n int) time.Duration {
	lo, hi, jitter := p.Min, p.Max, p.Jitter
	if lo <= 0 {
		lo = DefaultMin
	}
	if hi <= 0 {
		hi = max(DefaultMax, lo)
	}
	hi = max(hi, lo)
	if jitter == 0 {
		jitter = DefaultJitter
	}
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if jitter > 0 {
		d += time.Duration(float64(d) * jitter * (rand.Float64()*2 - 1))
	}
	return max(min(d, hi), 0)
}

// Tracker follows one loop's consecutive failures of one kind (store
// errors, say). Fail records a failure and returns how long to wait
// before trying again; Succeed ends the episode. Between the two, Wait
// says how much of the wait is left, so that a loop woken early (by a
// notification, a tick) still does not try again before its time.
//
// It logs an episode, not its attempts: the first failure (at error
// level, with the error), then at most once per Every a "still failing"
// line with the number of attempts, and a "recovered" line when it
// ends. Messages start with What, e.g. "event dispatcher: store".
//
// Set the exported fields before first use. A Tracker is safe for
// concurrent use.
type Tracker struct {
	// Policy spaces the attempts.
	Policy Policy
	// Logger gets the episode's lines; nil discards.
	Logger *slog.Logger
	// What names the loop and what fails, e.g. "index watcher: store".
	What string
	// Every is the least time between two "still failing" lines.
	// Default 1 min.
	Every time.Duration

	mu       sync.Mutex
	failures int
	since    time.Time // first failure of the episode
	logged   time.Time // last line logged
	until    time.Time // no attempt before this
}

// Fail records a failure and returns the wait before the next attempt.
func (t *Tracker) Fail(err error) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.failures++
	wait := t.Policy.Delay(t.failures)
	t.until = now.Add(wait)
	every := t.Every
	if every <= 0 {
		every = DefaultEvery
	}
	switch {
	case t.failures == 1:
		t.since, t.logged = now, now
		t.log().Error(t.What+": failing; backing off", "err", err, "retry_in", wait.Round(time.Millisecond))
	case now.Sub(t.logged) >= every:
		t.logged = now
		t.log().Warn(t.What+": still failing", "attempts", t.failures, "for", now.Sub(t.since).Round(time.Second),
			"err", err, "retry_in", wait.Round(time.Millisecond))
	}
	return wait
}

// Succeed ends the failing episode, if any, logging that it recovered.
func (t *Tracker) Succeed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failures == 0 {
		return
	}
	t.log().Info(t.What+": recovered", "attempts", t.failures, "after", time.Since(t.since).Round(time.Millisecond))
	t.failures, t.since, t.logged, t.until = 0, time.Time{}, time.Time{}, time.Time{}
}

// Failing reports whether an episode is under way (a failure not yet
// followed by Succeed).
func (t *Tracker) Failing() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failures > 0
}

// Wait returns how long is left before the next attempt: 0 when not
// failing or when the wait has passed.
func (t *Tracker) Wait() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failures == 0 {
		return 0
	}
	return max(time.Until(t.until), 0)
}

func (t *Tracker) log() *slog.Logger {
	if t.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.Logger
}

// RetryAfter reads a Retry-After header value (RFC 9110): delay seconds
// ("120") or an HTTP date, the latter relative to now and rounded to the
// second. It returns 0 when the value is absent, unreadable, zero,
// negative or in the past, and never more than limit, so that a garbage
// header cannot park a caller for months (limit ≤ 0: no limit).
func RetryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		d = time.Duration(min(s, int64(maxDuration/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now).Round(time.Second), 0)
	}
	if limit > 0 {
		d = min(d, limit)
	}
	return d
}

// maxDuration is the longest time.Duration.
const maxDuration = time.Duration(1<<63 - 1)
