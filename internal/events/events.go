// Package events owns turning outbox rows into CloudEvents 1.0
// (structured JSON) and delivering them, at least once and in order per
// subject, to each matching subscription over signed HTTP; publishing
// the outbox, in order, to broker sinks (NATS JetStream); and the
// Server-Sent Events stream of the outbox. It does not decide what
// happens: the store's writers emit events in the transactions of the
// changes they describe.
//
// A Dispatcher loops: for each subscription it reads the events after the
// subscription's cursor, queues deliveries of those that Match and moves
// the cursor (store.FanOut); then it sends the deliveries that are due
// and first in line for their (subscription, subject), at most one in
// flight per line. A failed attempt is retried with exponential backoff
// (or the receiver's Retry-After) until the event is older than
// Config.RetryFor, when the delivery is dead-lettered. Receivers must
// tolerate duplicates (deduplicate on the CloudEvents id): a crash
// between a receiver's 2xx and its recording resends the event.
//
// Run one Dispatcher per store: two would not lose or double-queue
// events (FanOut is guarded by the cursor) but could send one delivery
// twice at once.
package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/refit-dev/refit/internal/backoff"
	"github.com/refit-dev/refit/internal/store"
)

// deliveryStore is what the dispatcher needs of *store.Store.
type deliveryStore interface {
	ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error)
	LastEventSeq(ctx context.Context) (int64, error)
	ListSubscriptions(ctx context.Context) ([]store.Subscription, error)
	FanOut(ctx context.Context, sub store.Subscription, matched []store.Event, cursor int64) (bool, error)
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]store.Delivery, error)
	RecordAttempt(ctx context.Context, subID string, seq int64, r store.DeliveryResult) error
	PruneEvents(ctx context.Context, before time.Time) (int, error)
	OldestPending(ctx context.Context) (map[string]time.Time, error)
	SinkCursor(ctx context.Context, name string) (int64, error)
	AdvanceSink(ctx context.Context, name string, cursor int64) error
}

var _ deliveryStore = (*store.Store)(nil)

// Config configures a Dispatcher. Zero durations and counts take their
// defaults.
type Config struct {
	// Store holds the outbox (required); a *store.Store.
	Store deliveryStore
	// Source is the CloudEvents source attribute, e.g. "/refit" or the
	// server's URL. Default "/refit".
	Source string
	// Timeout bounds each delivery request, response included. Default 10s.
	Timeout time.Duration
	// RetryFor is how long an event is retried: a delivery fails for good
	// (is dead-lettered) once its event is older than this. Default 24h.
	RetryFor time.Duration
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// attempts (MinBackoff·2^attempts, ±20% jitter). A larger Retry-After
	// from the receiver wins; no retry is put off past RetryFor. Defaults
	// 2s and 1h.
	MinBackoff, MaxBackoff time.Duration
	// Workers bounds concurrent deliveries overall. Default 8.
	Workers int
	// PerSubscription bounds concurrent deliveries to one subscription, so
	// a hanging receiver holds at most this many workers. Default 2.
	PerSubscription int
	// Poll is how often to look for new events and due deliveries when
	// nothing woke the dispatcher: Committed (or Notify) wakes it for the
	// events it has to deliver, and it keeps its own timers for retries,
	// pruning and, while deliveries are pending, lag; so polling only
	// finds what another process wrote. Streams and sinks poll as often.
	// Default 1 min.
	Poll time.Duration
	// Retention is how long events are kept once delivered to every
	// subscription that wanted them; Run prunes hourly. Default 30 days.
	Retention time.Duration
	// AllowHosts, when set, limits subscription URLs to these hosts (see
	// ValidateTarget), so that refit is no request forwarder in
	// multi-tenant installs. Deliveries to other hosts are dead-lettered.
	AllowHosts []string
	// HTTPClient sends deliveries. Nil means a client with Timeout that
	// follows no redirects (a 3xx is a failed attempt).
	HTTPClient *http.Client
	// Metrics, when set, receives delivery counts and lag.
	Metrics *Metrics
	// Logger logs failed deliveries. Nil discards.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultSource          = "/refit"
	DefaultTimeout         = 10 * time.Second
	DefaultRetryFor        = 24 * time.Hour
	DefaultMinBackoff      = 2 * time.Second
	DefaultMaxBackoff      = time.Hour
	DefaultWorkers         = 8
	DefaultPerSubscription = 2
	DefaultPoll            = time.Minute
	DefaultRetention       = 30 * 24 * time.Hour
)

const (
	fanOutBatch   = 500              // events read per subscription per query
	maxBodyRead   = 4 << 10          // response bytes read
	maxErrExcerpt = 200              // response bytes kept in last_error
	pruneEvery    = time.Hour        // how often Run prunes
	lagEvery      = time.Second      // how often Run measures lag
	recordTimeout = 10 * time.Second // for recording an attempt after Run's ctx ended
	heartbeat     = 15 * time.Second // SSE comment interval
)

// Dispatcher delivers the outbox to subscriptions and serves the event
// stream. Its methods are safe for concurrent use; Run must be called
// once.
type Dispatcher struct {
	cfg       Config
	client    *http.Client
	ownClient bool
	log       *slog.Logger
	heartbeat time.Duration

	wake chan struct{} // Notify → Run; buffered, one pending wake-up

	mu      sync.Mutex
	changed chan struct{} // closed and replaced by Notify, for streams

	subsMu    sync.Mutex
	subs      []store.Subscription // as Run last listed them
	subsKnown bool                 // Run has listed them
}

// New checks cfg, fills in defaults and returns a Dispatcher.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Store == nil {
		return nil, errors.New("events: configuring dispatcher: no store")
	}
	for name, v := range map[string]time.Duration{"Timeout": cfg.Timeout, "RetryFor": cfg.RetryFor,
		"MinBackoff": cfg.MinBackoff, "MaxBackoff": cfg.MaxBackoff, "Poll": cfg.Poll, "Retention": cfg.Retention} {
		if v < 0 {
			return nil, fmt.Errorf("events: configuring dispatcher: negative %s %v", name, v)
		}
	}
	if cfg.Workers < 0 || cfg.PerSubscription < 0 {
		return nil, fmt.Errorf("events: configuring dispatcher: negative Workers (%d) or PerSubscription (%d)", cfg.Workers, cfg.PerSubscription)
	}
	setDefault(&cfg.Source, DefaultSource)
	setDefault(&cfg.Timeout, DefaultTimeout)
	setDefault(&cfg.RetryFor, DefaultRetryFor)
	setDefault(&cfg.MinBackoff, DefaultMinBackoff)
	setDefault(&cfg.MaxBackoff, DefaultMaxBackoff)
	setDefault(&cfg.Workers, DefaultWorkers)
	setDefault(&cfg.PerSubscription, DefaultPerSubscription)
	setDefault(&cfg.Poll, DefaultPoll)
	setDefault(&cfg.Retention, DefaultRetention)
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("events: configuring dispatcher: MaxBackoff %v is below MinBackoff %v", cfg.MaxBackoff, cfg.MinBackoff)
	}
	d := &Dispatcher{cfg: cfg, client: cfg.HTTPClient, log: cfg.Logger, heartbeat: heartbeat,
		wake: make(chan struct{}, 1), changed: make(chan struct{})}
	if d.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.Workers
		d.client = &http.Client{Transport: t, Timeout: cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		d.ownClient = true
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	return d, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Notify wakes Run and every open stream and sink to look for new events
// now. It never blocks.
func (d *Dispatcher) Notify() {
	d.wakeRun()
	d.wakeStreams()
}

// Committed is the store's OnCommit hook: a transaction that wrote events
// wakes the streams and sinks, and wakes Run only when one of its events
// matches a subscription or it changed subscriptions or deliveries
// (everything else Run waits for — retries, pruning — is its own timer).
// It never blocks.
func (d *Dispatcher) Committed(c store.Commit) {
	if c.Deliveries || d.wanted(c.Events) {
		d.wakeRun()
	}
	if len(c.Events) > 0 {
		d.wakeStreams()
	}
}

// wanted reports whether a subscription wants one of evs; before Run has
// listed the subscriptions, any event may be wanted.
func (d *Dispatcher) wanted(evs []store.Event) bool {
	if len(evs) == 0 {
		return false
	}
	d.subsMu.Lock()
	defer d.subsMu.Unlock()
	if !d.subsKnown {
		return true
	}
	for _, sub := range d.subs {
		for _, e := range evs {
			if Match(sub, e) {
				return true
			}
		}
	}
	return false
}

func (d *Dispatcher) wakeRun() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) wakeStreams() {
	d.mu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

// changes returns a channel closed by the next Notify.
func (d *Dispatcher) changes() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

// Prune deletes events older than Retention that were delivered to every
// subscription that wanted them (pending and dead-lettered deliveries
// keep their events) and returns how many went. Run calls it hourly.
func (d *Dispatcher) Prune(ctx context.Context) (int, error) {
	n, err := d.cfg.Store.PruneEvents(ctx, time.Now().Add(-d.cfg.Retention))
	if err != nil {
		return 0, fmt.Errorf("events: pruning delivered events: %w", err)
	}
	return n, nil
}

// line is one ordered queue of deliveries: a subscription's events about
// one subject.
type line struct{ sub, subject string }

// outcome is a finished delivery, reported to Run's loop.
type outcome struct {
	line      line
	next      time.Time // when to retry; zero when delivered or dead
	recordErr error     // the attempt could not be recorded
}

// loop is Run's state; only Run's goroutine touches it.
type loop struct {
	d        *Dispatcher
	subs     map[string]store.Subscription
	inflight map[line]bool
	heads    []store.Delivery // due heads not yet started; see dispatch
	perSub   map[string]int
	busy     int
	done     chan outcome
	wg       sync.WaitGroup
	retryAt  time.Time // earliest retry this dispatcher scheduled
	lagged   map[string]bool
	prune    time.Time
	lag      time.Time
	behind   bool // the last lag measured found pending deliveries

	// The store failing: reading or fanning out (storeErr), or
	// recording attempts (recordErr). Either backs the loop off instead
	// of retrying at once: an attempt that could not be recorded is
	// still due, and resending it as fast as the receiver answers is a
	// storm (a full disk once made 11,788 requests in 10 s).
	storeErr  *backoff.Tracker
	recordErr *backoff.Tracker
}

// Run delivers events until ctx ends, then waits for the deliveries in
// flight (each bounded by Timeout) and returns nil.
//
// Store errors back off, exponentially from 100 ms to 30 s, and are
// logged once per episode (when it starts, then at most once a minute,
// and when it ends). While the store cannot be read, nothing is done
// until the backoff passes; while attempts cannot be recorded, no
// delivery starts before the backoff passes and then only one at a
// time, so that an unrecorded delivery is resent a few times, not
// thousands. Every event is still delivered, in order, once the store
// recovers.
func (d *Dispatcher) Run(ctx context.Context) error {
	l := &loop{d: d, inflight: map[line]bool{}, perSub: map[string]int{},
		done: make(chan outcome, d.cfg.Workers), lagged: map[string]bool{}, prune: time.Now(),
		storeErr:  &backoff.Tracker{Logger: d.log, What: "event dispatcher: store"},
		recordErr: &backoff.Tracker{Logger: d.log, What: "event dispatcher: recording deliveries"}}
	defer func() {
		l.wg.Wait()
		if d.ownClient {
			d.client.CloseIdleConnections()
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	full := true
	for {
		if l.storeErr.Wait() > 0 {
			// Backing off: woken early (a Notify, a finished delivery),
			// do nothing yet.
		} else if full {
			l.step(ctx)
		} else if err := l.dispatch(ctx, false); err != nil {
			l.storeError(ctx, err)
		}
		wait := d.cfg.Poll
		if !l.retryAt.IsZero() {
			if until := time.Until(l.retryAt); until <= 0 {
				l.retryAt = time.Time{} // due now: step just looked
			} else if until < wait {
				wait = until
			}
		}
		if w := l.recordErr.Wait(); w > 0 {
			wait = min(wait, w) // then start the probe
		}
		if l.behind && d.cfg.Metrics != nil {
			wait = min(wait, max(time.Until(l.lag), 0)) // the lag grows: measure it again
		}
		wait = min(wait, max(time.Until(l.prune), 0))
		if w := l.storeErr.Wait(); w > 0 {
			wait = w
		}
		timer.Reset(wait)
		full = true
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case o := <-l.done:
			// A finished delivery frees a worker: fill it, without the
			// fan-out that only new events (Notify, Poll) call for.
			full = false
			l.finish(ctx, o)
			for drained := false; !drained; {
				select {
				case o := <-l.done:
					l.finish(ctx, o)
				default:
					drained = true
				}
			}
			// A pending wake-up (a redelivery, a subscription deleted) may
			// have changed which deliveries head their lines: query
			// afresh rather than start the kept heads.
			select {
			case <-d.wake:
				full = true
			default:
			}
		case <-timer.C:
		}
	}
}

func (l *loop) finish(ctx context.Context, o outcome) {
	if o.recordErr != nil {
		if ctx.Err() == nil {
			l.recordErr.Fail(o.recordErr)
		}
	} else {
		l.recordErr.Succeed()
	}
	delete(l.inflight, o.line)
	l.perSub[o.line.sub]--
	if l.perSub[o.line.sub] <= 0 {
		delete(l.perSub, o.line.sub)
	}
	l.busy--
	if !o.next.IsZero() && (l.retryAt.IsZero() || o.next.Before(l.retryAt)) {
		l.retryAt = o.next
	}
}

// step does one round: fan out, send what is due, and the periodic work.
// A round without a store error ends a store backoff.
func (l *loop) step(ctx context.Context) {
	d := l.d
	failed := false
	fail := func(err error) {
		failed = true
		l.storeError(ctx, err)
	}
	defer func() {
		if !failed && ctx.Err() == nil {
			l.storeErr.Succeed()
		}
	}()
	subs, err := d.cfg.Store.ListSubscriptions(ctx)
	if err != nil {
		fail(err)
		return
	}
	l.subs = make(map[string]store.Subscription, len(subs))
	for _, s := range subs {
		l.subs[s.ID] = s
	}
	d.subsMu.Lock()
	d.subs, d.subsKnown = subs, true
	d.subsMu.Unlock()
	if err := l.fanOut(ctx, subs); err != nil {
		fail(err)
	}
	if err := l.dispatch(ctx, true); err != nil {
		fail(err)
	}
	now := time.Now()
	if !now.Before(l.prune) {
		l.prune = now.Add(pruneEvery)
		if n, err := d.Prune(ctx); err != nil {
			fail(err)
		} else if n > 0 {
			d.log.Info("pruned delivered events", "count", n, "retention", d.cfg.Retention)
		}
	}
	if d.cfg.Metrics != nil && !now.Before(l.lag) {
		l.lag = now.Add(lagEvery)
		if err := l.measureLag(ctx, subs); err != nil {
			fail(err)
		}
	}
}

// storeError backs the loop off after a store error.
func (l *loop) storeError(ctx context.Context, err error) {
	if ctx.Err() == nil {
		l.storeErr.Fail(err)
	}
}

// fanOut queues deliveries of the events after each subscription's
// cursor that it wants, and advances the cursor past them all.
func (l *loop) fanOut(ctx context.Context, subs []store.Subscription) error {
	last, err := l.d.cfg.Store.LastEventSeq(ctx)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		for sub.Cursor < last {
			evs, err := l.d.cfg.Store.ListEvents(ctx, store.EventFilter{After: sub.Cursor, Limit: fanOutBatch})
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				break
			}
			var matched []store.Event
			for _, e := range evs {
				if Match(sub, e) {
					matched = append(matched, e)
				}
			}
			cursor := evs[len(evs)-1].Seq
			moved, err := l.d.cfg.Store.FanOut(ctx, sub, matched, cursor)
			if err != nil {
				return err
			}
			if !moved { // another dispatcher got there first; reread next round
				break
			}
			sub.Cursor = cursor
		}
	}
	return nil
}

// dispatch starts due deliveries while there are free workers: those
// first in line for their (subscription, subject), with no delivery in
// flight on their line and a free slot for their subscription.
//
// Heads the last query returned but no worker was free for are kept in
// l.heads: they stay first in line until something else delivers them,
// so after a completion (fresh false) they are started without asking
// the store again. A line whose delivery just finished gets its next
// head from the next query, made when the kept heads run out or on the
// next Notify or Poll (fresh true).
func (l *loop) dispatch(ctx context.Context, fresh bool) error {
	d := l.d
	if l.busy >= d.cfg.Workers || ctx.Err() != nil {
		return nil
	}
	if !fresh {
		l.heads = l.start(ctx, l.heads)
		if l.busy >= d.cfg.Workers {
			return nil
		}
	}
	// Heads of lines in flight, or of subscriptions at their limit, come
	// back too; ask for enough to get past them.
	limit := max(256, len(l.inflight)+4*d.cfg.Workers)
	due, err := d.cfg.Store.DueDeliveries(ctx, time.Now(), limit)
	if err != nil {
		l.heads = nil
		return err
	}
	l.heads = l.start(ctx, due)
	return nil
}

// start starts what it can of due, in order, and returns the rest that
// could be started later (not in flight, subscription still there).
func (l *loop) start(ctx context.Context, due []store.Delivery) []store.Delivery {
	d := l.d
	var rest []store.Delivery
	for _, dl := range due {
		ln := line{dl.SubscriptionID, dl.Event.Subject}
		sub, ok := l.subs[ln.sub]
		if !ok || l.inflight[ln] { // deleted, or created since we listed; or already going
			continue
		}
		if l.busy >= d.cfg.Workers || l.perSub[ln.sub] >= d.cfg.PerSubscription || !l.mayStart() {
			rest = append(rest, dl)
			continue
		}
		l.inflight[ln] = true
		l.perSub[ln.sub]++
		l.busy++
		l.wg.Go(func() {
			res, err := d.deliver(ctx, sub, dl)
			l.done <- outcome{line: ln, next: res.Next, recordErr: err}
		})
	}
	return rest
}

// mayStart reports whether a delivery may start now: always, unless
// attempts could not be recorded lately; then one at a time (a probe of
// the store) once the backoff has passed.
func (l *loop) mayStart() bool {
	if !l.recordErr.Failing() {
		return true
	}
	return l.busy == 0 && l.recordErr.Wait() == 0
}

func (l *loop) measureLag(ctx context.Context, subs []store.Subscription) error {
	oldest, err := l.d.cfg.Store.OldestPending(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, s := range subs {
		age := 0.0
		if t, ok := oldest[s.ID]; ok {
			age = max(time.Since(t).Seconds(), 0)
		}
		l.d.cfg.Metrics.Lag.WithLabelValues(s.ID).Set(age)
		seen[s.ID] = true
	}
	for id := range l.lagged {
		if !seen[id] {
			l.d.cfg.Metrics.Lag.DeleteLabelValues(id)
		}
	}
	l.lagged = seen
	l.behind = len(oldest) > 0
	return nil
}

// deliver makes one attempt and records it; it returns the attempt's
// result and the error recording it, if any (the caller backs off). The
// request outlives ctx (up to Timeout) so that a shutdown does not cut
// off a receiver mid-ack.
func (d *Dispatcher) deliver(ctx context.Context, sub store.Subscription, dl store.Delivery) (store.DeliveryResult, error) {
	res := d.attempt(context.WithoutCancel(ctx), sub, dl)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	var recordErr error
	if err := d.cfg.Store.RecordAttempt(rctx, sub.ID, dl.Event.Seq, res); err != nil {
		recordErr = fmt.Errorf("recording delivery of event %d to subscription %s: %w", dl.Event.Seq, sub.ID, err)
	}
	result := ResultFailed
	switch {
	case res.Delivered:
		result = ResultDelivered
	case res.Dead:
		result = ResultDead
	}
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.Deliveries.WithLabelValues(sub.ID, result).Inc()
	}
	if !res.Delivered {
		level := slog.LevelInfo
		if res.Dead {
			level = slog.LevelWarn
		}
		d.log.Log(ctx, level, "event delivery "+result, "subscription", sub.ID, "host", hostOf(sub.URL),
			"seq", dl.Event.Seq, "event", dl.Event.ID, "type", dl.Event.Type, "attempt", dl.Attempts+1,
			"next", res.Next, "err", res.Error)
	}
	return res, recordErr
}

// attempt sends dl to sub once and decides what comes next.
func (d *Dispatcher) attempt(ctx context.Context, sub store.Subscription, dl store.Delivery) store.DeliveryResult {
	if err := ValidateTarget(sub.URL, d.cfg.AllowHosts); err != nil {
		return store.DeliveryResult{Dead: true, Error: err.Error()}
	}
	body, err := CloudEvent(dl.Event, d.cfg.Source)
	if err != nil {
		return store.DeliveryResult{Dead: true, Error: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err != nil {
		return store.DeliveryResult{Dead: true, Error: "building request: " + describe(err)}
	}
	start := time.Now()
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("User-Agent", "refit")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(start.Unix(), 10))
	req.Header.Set(HeaderDelivery, sub.ID+"/"+strconv.FormatInt(dl.Event.Seq, 10))
	req.Header.Set(HeaderWebhookID, dl.Event.ID)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(start.Unix(), 10))
	if sub.Secret != "" {
		req.Header.Set(HeaderSignature, Sign(sub.Secret, body))
		req.Header.Set(HeaderWebhookSignature, SignStandard(sub.Secret, dl.Event.ID, start.Unix(), body))
	}
	var msg string
	var retryAfter time.Duration
	resp, err := d.client.Do(req)
	if err != nil {
		msg = describe(err)
		if ctx.Err() != nil {
			msg = fmt.Sprintf("no response within %v", d.cfg.Timeout)
		}
	} else {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyRead))
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return store.DeliveryResult{Delivered: true}
		}
		msg = "HTTP " + resp.Status
		if x := excerpt(b); x != "" {
			msg += ": " + x
		}
		// Capped at RetryFor: a later retry would be put off to the
		// deadline anyway.
		retryAfter = backoff.RetryAfter(resp.Header.Get("Retry-After"), time.Now(), d.cfg.RetryFor)
	}
	now := time.Now()
	deadline := dl.RetryStart().Add(d.cfg.RetryFor)
	if !now.Before(deadline) {
		return store.DeliveryResult{Dead: true, Error: fmt.Sprintf("%s (gave up after %d attempts: event older than %v)",
			msg, dl.Attempts+1, d.cfg.RetryFor)}
	}
	next := now.Add(d.backoff(dl.Attempts))
	if ra := now.Add(retryAfter); ra.After(next) {
		next = ra
	}
	if next.After(deadline) {
		next = deadline // one last try when time is up
	}
	return store.DeliveryResult{Next: next, Error: msg}
}

// backoff returns the wait after the given number of earlier failed
// attempts: MinBackoff·2^attempts capped at MaxBackoff, ±20% (never
// above MaxBackoff).
func (d *Dispatcher) backoff(attempts int) time.Duration {
	return backoff.Policy{Min: d.cfg.MinBackoff, Max: d.cfg.MaxBackoff, Jitter: 0.2}.Delay(attempts + 1)
}

// describe renders a client error without the URL, which may hold
// tokens in its path or query.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// excerpt is the start of a response body, on one line of printable
// text.
func excerpt(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxErrExcerpt {
		cut := maxErrExcerpt
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// hostOf returns a URL's host, for logs that must not carry its path.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Host
}
