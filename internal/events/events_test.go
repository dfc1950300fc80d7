package events

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/store"
)

// ---- helpers ----

func openStore(t testing.TB) *store.Store {
	t.Helper()
	cfg := store.Config{Path: filepath.Join(t.TempDir(), "refit.db")}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(t)}
	}
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// emit writes one event per (type, subject) pair, each in its own
// transaction, and returns them as stored.
func emit(t testing.TB, s *store.Store, evs ...[2]string) []store.Event {
	t.Helper()
	ctx := context.Background()
	before, err := s.LastEventSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		data := map[string]any{"task": e[1], "n": i, "note": "line1\nline2 <&>"}
		if err := s.InTx(ctx, func(tx *store.Tx) error { return tx.Emit(e[0], e[1], data) }); err != nil {
			t.Fatal(err)
		}
	}
	out, err := s.ListEvents(ctx, store.EventFilter{After: before, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(evs) {
		t.Fatalf("emitted %d events, stored %d", len(evs), len(out))
	}
	return out
}

// cloudEvent is a structured-mode CloudEvent as a receiver parses it.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Source          string          `json:"source"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	DataSchema      string          `json:"dataschema"`
	Data            json.RawMessage `json:"data"`
}

// attempt is one request a receiver saw.
type attempt struct {
	at       time.Time
	delivery string // X-Refit-Delivery
	status   int
	ev       cloudEvent
}

// receiver is an HTTP endpoint that checks every request like a careful
// subscriber would (signature first) and records it.
type receiver struct {
	t      testing.TB
	secret string
	// respond picks the status for the n-th request (from 0); nil = 200.
	respond func(n int, w http.ResponseWriter, r *http.Request) int

	mu       sync.Mutex
	attempts []attempt
	got      []cloudEvent // 2xx'd events, in arrival order
	onGot    func(cloudEvent)
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.t.Errorf("reading body: %v", err)
		return
	}
	sig := r.Header.Get(HeaderSignature)
	if rc.secret != "" {
		if !hmac.Equal([]byte(sig), []byte(Sign(rc.secret, body))) {
			rc.t.Errorf("bad signature %q", sig)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
	} else if sig != "" {
		rc.t.Errorf("signature %q on an unsigned subscription", sig)
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != ContentType || r.Header.Get("User-Agent") != "refit" {
		rc.t.Errorf("request %s Content-Type %q User-Agent %q", r.Method, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"))
	}
	ts, err := strconv.ParseInt(r.Header.Get(HeaderTimestamp), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Second {
		rc.t.Errorf("timestamp header %q", r.Header.Get(HeaderTimestamp))
	}
	var ev cloudEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		rc.t.Errorf("body is not JSON: %v\n%s", err, body)
	}
	if !strings.HasPrefix(r.Header.Get(HeaderDelivery), "s-") || !strings.Contains(r.Header.Get(HeaderDelivery), "/") {
		rc.t.Errorf("delivery header %q", r.Header.Get(HeaderDelivery))
	}
	rc.mu.Lock()
	n := len(rc.attempts)
	rc.attempts = append(rc.attempts, attempt{at: at, delivery: r.Header.Get(HeaderDelivery), ev: ev})
	rc.mu.Unlock()
	status := http.StatusOK
	if rc.respond != nil {
		status = rc.respond(n, w, r)
	}
	rc.mu.Lock()
	rc.attempts[n].status = status
	if status/100 == 2 {
		rc.got = append(rc.got, ev)
		if rc.onGot != nil {
			rc.onGot(ev)
		}
	}
	rc.mu.Unlock()
	w.WriteHeader(status)
	fmt.Fprintf(w, "status %d\n", status)
}

func (rc *receiver) received() []cloudEvent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func (rc *receiver) tries() []attempt {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.attempts)
}

func serve(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func subscribe(t testing.TB, s *store.Store, sub store.Subscription) store.Subscription {
	t.Helper()
	sub, err := s.CreateSubscription(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// testConfig is a fast configuration for tests.
func testConfig(s *store.Store) Config {
	return Config{Store: s, Source: "/refit-test", Timeout: 2 * time.Second, MinBackoff: 100 * time.Millisecond,
		MaxBackoff: 400 * time.Millisecond, Poll: 20 * time.Millisecond}
}

// start runs a dispatcher until the test ends; stop ends it early and
// waits for Run to return.
func start(t testing.TB, cfg Config) (d *Dispatcher, stop func()) {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ids(evs []cloudEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

// bySubject groups event ids per subject, keeping order.
func bySubject[E any](evs []E, subject func(E) string, id func(E) string) map[string][]string {
	out := map[string][]string{}
	for _, e := range evs {
		out[subject(e)] = append(out[subject(e)], id(e))
	}
	return out
}

func storedBySubject(evs []store.Event) map[string][]string {
	return bySubject(evs, func(e store.Event) string { return e.Subject }, func(e store.Event) string { return e.ID })
}

func gotBySubject(evs []cloudEvent) map[string][]string {
	return bySubject(evs, func(e cloudEvent) string { return e.Subject }, func(e cloudEvent) string { return e.ID })
}

func compactJSON(t testing.TB, b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compacting %s: %v", b, err)
	}
	return buf.String()
}

// ---- delivery ----

func TestDeliveryScenario(t *testing.T) {
	s := openStore(t)
	const secret = "s3cret-hmac-key"
	rcv := &receiver{t: t, secret: secret}
	srv := serve(t, rcv)
	sub := subscribe(t, s, store.Subscription{URL: srv.URL + "/hook", Secret: secret, TaskGlob: "app*",
		Types: []string{"run.queued", store.EventRunStarted, "image.pushed", store.EventRunSucceed}})
	baseRcv := &receiver{t: t}
	baseSrv := serve(t, baseRcv)
	baseSub := subscribe(t, s, store.Subscription{URL: baseSrv.URL, RefGlob: "docker.io/library/*"})

	reg := prometheus.NewRegistry()
	cfg := testConfig(s)
	cfg.Metrics = NewMetrics(reg)
	d, _ := start(t, cfg)

	const ref = "docker.io/library/alpine:3.20"
	all := emit(t, s,
		[2]string{store.EventBaseUpdated, ref},
		[2]string{store.EventRunQueued, "app"},
		[2]string{store.EventRunQueued, "other"},
		[2]string{store.EventRunStarted, "app"},
		[2]string{store.EventRunQueued, "app-2"},
		[2]string{store.EventRunStarted, "other"},
		[2]string{store.EventTaskChanged, "app"}, // type not wanted
		[2]string{store.EventImagePushed, "app"},
		[2]string{store.EventRunStarted, "app-2"},
		[2]string{store.EventRunSucceed, "app"},
		[2]string{store.EventRunFailed, "other"},
		[2]string{store.EventRunFailed, "app-2"},                 // type not wanted
		[2]string{store.EventBaseUpdated, "ghcr.io/acme/base:1"}, // ref not wanted
	)
	d.Notify()

	var want []store.Event
	for _, e := range all {
		if e.Subject == "app" || e.Subject == "app-2" {
			if e.Type != store.EventTaskChanged && e.Type != store.EventRunFailed {
				want = append(want, e)
			}
		}
	}
	waitFor(t, 5*time.Second, "deliveries", func() bool { return len(rcv.received()) >= len(want) })
	waitFor(t, 5*time.Second, "base delivery", func() bool { return len(baseRcv.received()) >= 1 })
	time.Sleep(200 * time.Millisecond) // room for duplicates to show

	got := rcv.received()
	if diff := cmp.Diff(storedBySubject(want), gotBySubject(got)); diff != "" {
		t.Errorf("events per subject (-want +got):\n%s", diff)
	}
	if len(got) != len(want) {
		t.Errorf("received %d events, want %d exactly once each", len(got), len(want))
	}
	byID := map[string]store.Event{}
	for _, e := range all {
		byID[e.ID] = e
	}
	for _, ce := range got {
		e := byID[ce.ID]
		if ce.SpecVersion != "1.0" || ce.Type != e.Type || ce.Subject != e.Subject || ce.Source != "/refit-test" ||
			!ce.Time.Equal(e.Time) || ce.DataContentType != "application/json" ||
			ce.DataSchema != "https://refit.dev/schemas/"+strings.TrimPrefix(e.Type, "dev.refit.")+"/v1" {
			t.Errorf("event %s rendered as %+v", ce.ID, ce)
		}
		if compactJSON(t, ce.Data) != compactJSON(t, e.Data) {
			t.Errorf("event %s data %s, want %s", ce.ID, ce.Data, e.Data)
		}
	}
	if b := baseRcv.received(); len(b) != 1 || b[0].ID != all[0].ID || b[0].Subject != ref {
		t.Errorf("base subscription got %v, want only %s", ids(b), all[0].ID)
	}

	ds, err := s.ListDeliveries(context.Background(), store.DeliveryFilter{Subscription: sub.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, dl := range ds {
		if dl.State != "delivered" || dl.Attempts != 1 {
			t.Errorf("delivery of %d: state %s after %d attempts", dl.Event.Seq, dl.State, dl.Attempts)
		}
	}
	if n := testutil.ToFloat64(cfg.Metrics.Deliveries.WithLabelValues(sub.ID, ResultDelivered)); int(n) != len(want) {
		t.Errorf("deliveries_total{delivered} = %v, want %d", n, len(want))
	}
	if n := testutil.ToFloat64(cfg.Metrics.Deliveries.WithLabelValues(baseSub.ID, ResultDelivered)); n != 1 {
		t.Errorf("base deliveries_total{delivered} = %v, want 1", n)
	}
	waitFor(t, 3*time.Second, "lag gauge", func() bool {
		return testutil.ToFloat64(cfg.Metrics.Lag.WithLabelValues(sub.ID)) == 0
	})
}

func TestDeliveryReceiverDown(t *testing.T) {
	s := openStore(t)
	// A port with nothing listening: connections are refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	const secret = "k"
	var calls atomic.Int32
	rcv := &receiver{t: t, secret: secret, respond: func(n int, w http.ResponseWriter, r *http.Request) int {
		switch calls.Add(1) {
		case 1, 2, 3:
			return http.StatusInternalServerError
		case 4:
			w.Header().Set("Retry-After", "1")
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	}}
	sub := subscribe(t, s, store.Subscription{URL: "http://" + addr + "/hook", Secret: secret})
	cfg := testConfig(s)
	d, _ := start(t, cfg)

	var pairs [][2]string
	for i := range 4 {
		pairs = append(pairs, [2]string{store.EventRunQueued, "a"}, [2]string{store.EventRunStarted, "b"})
		if i == 1 {
			pairs = append(pairs, [2]string{store.EventRunSucceed, "c"})
		}
	}
	want := emit(t, s, pairs...)
	d.Notify()

	waitFor(t, 5*time.Second, "refused attempts", func() bool {
		ds, err := s.ListDeliveries(context.Background(), store.DeliveryFilter{Subscription: sub.ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, dl := range ds {
			if dl.Attempts >= 2 && strings.Contains(dl.LastError, "refused") {
				return true
			}
		}
		return false
	})
	var l2 net.Listener
	waitFor(t, 5*time.Second, "relisten on "+addr, func() bool {
		l2, err = net.Listen("tcp", addr)
		return err == nil
	})
	srv := httptest.NewUnstartedServer(rcv)
	srv.Listener.Close()
	srv.Listener = l2
	srv.Start()
	t.Cleanup(srv.Close)

	waitFor(t, 15*time.Second, "all events", func() bool { return len(rcv.received()) >= len(want) })
	time.Sleep(200 * time.Millisecond)
	got := rcv.received()
	if diff := cmp.Diff(storedBySubject(want), gotBySubject(got)); diff != "" {
		t.Errorf("events per subject (-want +got):\n%s", diff)
	}

	// Backoff: consecutive attempts of one delivery are ≥ MinBackoff-20%
	// apart, and ≥ 1s after a 429 with Retry-After: 1.
	last := map[string]attempt{}
	saw429 := false
	for _, a := range rcv.tries() {
		if prev, ok := last[a.delivery]; ok {
			gap := a.at.Sub(prev.at)
			min := cfg.MinBackoff * 8 / 10
			if prev.status == http.StatusTooManyRequests {
				min, saw429 = time.Second, true
			}
			if gap < min {
				t.Errorf("delivery %s: retry %v after a %d, want ≥ %v", a.delivery, gap, prev.status, min)
			}
		}
		last[a.delivery] = a
	}
	if !saw429 {
		t.Errorf("no retry after the 429 seen: %+v", rcv.tries())
	}
}

func TestDeadLetterAndRedeliver(t *testing.T) {
	s := openStore(t)
	const secret = "dead-secret"
	var fixed atomic.Bool
	rcv := &receiver{t: t, secret: secret, respond: func(int, http.ResponseWriter, *http.Request) int {
		if fixed.Load() {
			return http.StatusNoContent
		}
		return http.StatusInternalServerError
	}}
	srv := serve(t, rcv)
	sub := subscribe(t, s, store.Subscription{URL: srv.URL, Secret: secret})
	cfg := testConfig(s)
	cfg.RetryFor = 300 * time.Millisecond
	cfg.MinBackoff, cfg.MaxBackoff = 50*time.Millisecond, 100*time.Millisecond
	cfg.Metrics = NewMetrics(prometheus.NewRegistry())
	d, _ := start(t, cfg)
	ev := emit(t, s, [2]string{store.EventRunFailed, "app"})[0]
	d.Notify()

	var dead store.Delivery
	waitFor(t, 3*time.Second, "dead letter", func() bool {
		ds, err := s.ListDeliveries(context.Background(), store.DeliveryFilter{Subscription: sub.ID, State: "dead"})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 {
			dead = ds[0]
		}
		return len(ds) == 1
	})
	if dead.Event.ID != ev.ID || dead.Attempts < 2 || !strings.Contains(dead.LastError, "500") ||
		strings.Contains(dead.LastError, secret) {
		t.Errorf("dead delivery %+v", dead)
	}
	if n := testutil.ToFloat64(cfg.Metrics.Deliveries.WithLabelValues(sub.ID, ResultDead)); n != 1 {
		t.Errorf("deliveries_total{dead} = %v, want 1", n)
	}
	if len(rcv.received()) != 0 {
		t.Fatal("a 500 counted as received")
	}

	// Redelivered while the receiver still fails, long after the event's
	// own window ended: it gets a fresh window, so it is tried again
	// with backoff before it is dead-lettered again.
	time.Sleep(cfg.RetryFor)
	if n, err := s.Redeliver(context.Background(), store.RedeliverFilter{Dead: true}); err != nil || n != 1 {
		t.Fatalf("Redeliver = %d, %v", n, err)
	}
	d.Notify()
	waitFor(t, 3*time.Second, "dead letter again", func() bool {
		ds, _ := s.ListDeliveries(context.Background(), store.DeliveryFilter{Subscription: sub.ID, State: "dead"})
		if len(ds) == 1 {
			dead = ds[0]
		}
		return len(ds) == 1
	})
	if dead.Attempts < 2 {
		t.Errorf("redelivery dead-lettered after %d attempt(s), want retries in a fresh window", dead.Attempts)
	}

	fixed.Store(true)
	n, err := s.Redeliver(context.Background(), store.RedeliverFilter{Dead: true})
	if err != nil || n != 1 {
		t.Fatalf("Redeliver = %d, %v", n, err)
	}
	d.Notify()
	waitFor(t, 3*time.Second, "redelivery", func() bool { return len(rcv.received()) == 1 })
	if got := rcv.received()[0].ID; got != ev.ID {
		t.Errorf("redelivered id %s, want %s", got, ev.ID)
	}
	waitFor(t, 3*time.Second, "delivered state", func() bool {
		ds, _ := s.ListDeliveries(context.Background(), store.DeliveryFilter{Subscription: sub.ID, State: "delivered"})
		return len(ds) == 1
	})
}

func TestHangingReceiverDoesNotBlockOthers(t *testing.T) {
	s := openStore(t)
	release := make(chan struct{})
	var hung atomic.Int32
	hang := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		io.Copy(io.Discard, r.Body) // so the server notices the client giving up
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) }) // before hang's Close (cleanups run last-in first-out)
	fast := &receiver{t: t}
	fastSrv := serve(t, fast)
	subscribe(t, s, store.Subscription{URL: hang.URL})
	subscribe(t, s, store.Subscription{URL: fastSrv.URL, TaskGlob: "t*"})

	cfg := testConfig(s)
	cfg.Timeout = 300 * time.Millisecond
	cfg.MinBackoff, cfg.MaxBackoff = 50*time.Millisecond, 100*time.Millisecond
	cfg.Workers, cfg.PerSubscription = 3, 2
	d, _ := start(t, cfg)

	// The hanging receiver gets its workers busy first.
	emit(t, s, [2]string{store.EventRunQueued, "h1"}, [2]string{store.EventRunQueued, "h2"}, [2]string{store.EventRunQueued, "h3"})
	d.Notify()
	waitFor(t, 2*time.Second, "hanging requests", func() bool { return hung.Load() >= 2 })

	var pairs [][2]string
	for i := range 12 {
		pairs = append(pairs, [2]string{store.EventRunQueued, fmt.Sprintf("t%d", i%4)})
	}
	began := time.Now()
	want := emit(t, s, pairs...)
	d.Notify()
	waitFor(t, time.Second, "the other subscription's events", func() bool { return len(fast.received()) >= len(want) })
	t.Logf("12 events to the healthy subscription in %v while the other hangs", time.Since(began))
	if diff := cmp.Diff(storedBySubject(want), gotBySubject(fast.received())); diff != "" {
		t.Errorf("events per subject (-want +got):\n%s", diff)
	}
	before := hung.Load()
	waitFor(t, 3*time.Second, "retries to the hanging receiver", func() bool { return hung.Load() > before })
}

// crashStore loses RecordAttempt once crashed, as if the process died
// between a receiver's response and its recording.
type crashStore struct {
	*store.Store
	crashed atomic.Bool
}

func (c *crashStore) RecordAttempt(ctx context.Context, subID string, seq int64, r store.DeliveryResult) error {
	if c.crashed.Load() {
		return errors.New("simulated crash")
	}
	return c.Store.RecordAttempt(ctx, subID, seq, r)
}

func TestRestart(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			s := openStore(t)
			var started atomic.Int32
			rcv := &receiver{t: t, respond: func(int, http.ResponseWriter, *http.Request) int {
				started.Add(1)
				time.Sleep(150 * time.Millisecond) // slow ack
				return http.StatusOK
			}}
			srv := serve(t, rcv)
			subscribe(t, s, store.Subscription{URL: srv.URL})
			cs := &crashStore{Store: s}
			cfg := testConfig(s)
			cfg.Store = cs
			cfg.Workers, cfg.PerSubscription = 4, 4
			d1, stop := start(t, cfg)
			var pairs [][2]string
			for i := range 12 {
				pairs = append(pairs, [2]string{store.EventRunStarted, fmt.Sprintf("task%d", i%3)})
			}
			want := emit(t, s, pairs...)
			d1.Notify()
			waitFor(t, 3*time.Second, "deliveries in flight", func() bool { return started.Load() >= 3 })
			cs.crashed.Store(crash)
			began := time.Now()
			stop()
			if took := time.Since(began); took > cfg.Timeout+time.Second {
				t.Errorf("Run took %v to return after cancel", took)
			}
			cs.crashed.Store(false)
			inFirst := len(rcv.received())
			if inFirst >= len(want) {
				t.Fatalf("all %d delivered before the restart; slow the receiver", inFirst)
			}

			cfg.Store = s
			d2, _ := start(t, cfg)
			d2.Notify()
			waitFor(t, 10*time.Second, "delivery after restart", func() bool {
				seen := map[string]bool{}
				for _, e := range rcv.received() {
					seen[e.ID] = true
				}
				return len(seen) == len(want)
			})
			got := rcv.received()
			// Each subject's events arrive in order, possibly with the
			// crash's duplicates repeated in place.
			for subject, wantIDs := range storedBySubject(want) {
				gotIDs := slices.Compact(gotBySubject(got)[subject])
				if diff := cmp.Diff(wantIDs, gotIDs); diff != "" {
					t.Errorf("subject %s (-want +got):\n%s", subject, diff)
				}
			}
			dups := len(got) - len(want)
			t.Logf("%d delivered before the restart, %d duplicates", inFirst, dups)
			if crash && dups == 0 {
				t.Error("a crash with deliveries in flight should cause duplicates")
			}
			if !crash && dups != 0 {
				t.Errorf("a clean shutdown caused %d duplicates", dups)
			}
		})
	}
}

func TestPrune(t *testing.T) {
	s := openStore(t)
	ok := serve(t, &receiver{t: t})
	failing := serve(t, &receiver{t: t, respond: func(int, http.ResponseWriter, *http.Request) int { return 503 }})
	okSub := subscribe(t, s, store.Subscription{URL: ok.URL, TaskGlob: "ok"})
	subscribe(t, s, store.Subscription{URL: failing.URL, TaskGlob: "pending"})
	deadSub := subscribe(t, s, store.Subscription{URL: failing.URL, TaskGlob: "dead"})

	cfg := testConfig(s)
	cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour
	d, stop := start(t, cfg)
	evs := emit(t, s, [2]string{store.EventRunQueued, "ok"}, [2]string{store.EventRunQueued, "pending"},
		[2]string{store.EventRunQueued, "dead"}, [2]string{store.EventRunQueued, "nobody"}, [2]string{store.EventRunSucceed, "ok"})
	d.Notify()
	ctx := context.Background()
	waitFor(t, 3*time.Second, "first attempts", func() bool {
		ds, err := s.ListDeliveries(ctx, store.DeliveryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, dl := range ds {
			if dl.Attempts > 0 {
				n++
			}
		}
		return n == 4
	})
	stop()
	if err := s.RecordAttempt(ctx, deadSub.ID, evs[2].Seq, store.DeliveryResult{Dead: true, Error: "gave up"}); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.ListDeliveries(ctx, store.DeliveryFilter{Subscription: okSub.ID, State: "delivered"}); len(ds) != 2 {
		t.Fatalf("ok subscription: %d delivered, want 2", len(ds))
	}

	// With the default retention nothing is old enough.
	if n, err := d.Prune(ctx); err != nil || n != 0 {
		t.Errorf("Prune with 30 days retention = %d, %v; want 0", n, err)
	}
	cfg.Retention = time.Millisecond
	d2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	n, err := d2.Prune(ctx)
	if err != nil || n != 3 {
		t.Errorf("Prune = %d, %v; want 3 (two delivered, one wanted by nobody)", n, err)
	}
	left, err := s.ListEvents(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var leftSubjects []string
	for _, e := range left {
		leftSubjects = append(leftSubjects, e.Subject)
	}
	if diff := cmp.Diff([]string{"pending", "dead"}, leftSubjects); diff != "" {
		t.Errorf("events left (-want +got):\n%s", diff)
	}
}

func TestAllowHostsAtDelivery(t *testing.T) {
	s := openStore(t)
	rcv := &receiver{t: t}
	srv := serve(t, rcv)
	sub := subscribe(t, s, store.Subscription{URL: srv.URL}) // 127.0.0.1, not allowed
	cfg := testConfig(s)
	cfg.AllowHosts = []string{"hooks.example.com"}
	d, _ := start(t, cfg)
	emit(t, s, [2]string{store.EventRunQueued, "app"})
	d.Notify()
	waitFor(t, 3*time.Second, "dead letter", func() bool {
		ds, _ := s.ListDeliveries(context.Background(), store.DeliveryFilter{Subscription: sub.ID, State: "dead"})
		return len(ds) == 1 && strings.Contains(ds[0].LastError, "not in the allowed hosts")
	})
	if n := len(rcv.tries()); n != 0 {
		t.Errorf("a disallowed host got %d requests", n)
	}
}

// ---- stream ----

type sseEvent struct {
	id, typ, data string
}

// sseClient reads a stream; events arrive on a channel until the
// response ends.
func sseClient(t *testing.T, ctx context.Context, url, lastID string) (<-chan sseEvent, <-chan string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	evs, comments := make(chan sseEvent, 100), make(chan string, 100)
	go func() {
		defer resp.Body.Close()
		defer close(evs)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e != (sseEvent{}) {
					evs <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, ":"):
				select {
				case comments <- line:
				default:
				}
			case strings.HasPrefix(line, "id: "):
				e.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				e.data = line[6:]
			default:
				t.Errorf("unexpected stream line %q", line)
			}
		}
	}()
	return evs, comments
}

func next(t *testing.T, evs <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case e, ok := <-evs:
		if !ok {
			t.Fatal("stream ended")
		}
		return e
	case <-time.After(3 * time.Second):
		t.Fatal("no event within 3s")
	}
	panic("unreachable")
}

func TestStream(t *testing.T) {
	s := openStore(t)
	cfg := testConfig(s)
	cfg.Poll = time.Hour // live events can only come from Notify
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.heartbeat = 50 * time.Millisecond
	srv := serve(t, d.Stream())

	var pairs [][2]string
	for i := range 10 {
		pairs = append(pairs, [2]string{store.EventRunQueued, fmt.Sprintf("task%d", i%3)})
	}
	stored := emit(t, s, pairs...)
	check := func(e sseEvent, want store.Event) {
		t.Helper()
		var ce cloudEvent
		if err := json.Unmarshal([]byte(e.data), &ce); err != nil {
			t.Fatalf("data %q: %v", e.data, err)
		}
		if e.id != strconv.FormatInt(want.Seq, 10) || e.typ != want.Type || ce.ID != want.ID || ce.SpecVersion != "1.0" ||
			compactJSON(t, ce.Data) != compactJSON(t, want.Data) {
			t.Errorf("got id %s event %s data %s, want seq %d %s %s", e.id, e.typ, e.data, want.Seq, want.Type, want.ID)
		}
	}

	// Read four, disconnect.
	ctx1, cancel1 := context.WithCancel(context.Background())
	evs, _ := sseClient(t, ctx1, srv.URL+"?after=0", "")
	var last string
	for i := range 4 {
		e := next(t, evs)
		check(e, stored[i])
		last = e.id
	}
	cancel1()
	for range evs { // drain until the reader stops
	}

	// Resume from the last id seen: the rest, then live ones.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	evs, comments := sseClient(t, ctx2, srv.URL+"?after=1", last) // the header wins
	for i := 4; i < len(stored); i++ {
		check(next(t, evs), stored[i])
	}
	live := emit(t, s, [2]string{store.EventRunStarted, "task1"}, [2]string{store.EventRunSucceed, "task1"})
	d.Notify()
	for _, want := range live {
		check(next(t, evs), want)
	}
	select {
	case e := <-evs:
		t.Errorf("unexpected event %+v", e)
	case c := <-comments:
		if c != ": heartbeat" {
			t.Errorf("comment %q", c)
		}
	case <-time.After(2 * time.Second):
		t.Error("no heartbeat")
	}

	// Filters, and the default start (new events only).
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	filtered, _ := sseClient(t, ctx3, srv.URL+"?after=0&type=run.queued&subject=task2", "")
	for _, want := range stored {
		if want.Subject == "task2" {
			check(next(t, filtered), want)
		}
	}
	fresh, _ := sseClient(t, ctx3, srv.URL, "")
	time.Sleep(50 * time.Millisecond) // let it read the newest seq
	more := emit(t, s, [2]string{store.EventRunQueued, "task2"})
	d.Notify()
	check(next(t, fresh), more[0])
	check(next(t, filtered), more[0])

	for _, bad := range []string{"?after=x", "?after=-1"} {
		resp, err := http.Get(srv.URL + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %s, want 400", bad, resp.Status)
		}
	}
}

// ---- pure functions ----

func TestValidateTarget(t *testing.T) {
	allow := []string{"hooks.example.com", "10.0.0.5:8080", "*.acme.io", "[::1]"}
	for _, tc := range []struct {
		url   string
		allow []string
		err   string // substring; "" = valid
	}{
		{"https://hooks.example.com/x", nil, ""},
		{"http://127.0.0.1:9000/hook?token=abc", nil, ""},
		{"ftp://hooks.example.com/x", nil, `scheme "ftp"`},
		{"/relative/path", nil, "not absolute"},
		{"hooks.example.com/x", nil, "not absolute"},
		{"https:///nohost", nil, "no host"},
		{"https://:443/x", nil, "no host"},
		{"mailto:a@example.com", nil, `scheme "mailto"`},
		{"https://user:hunter2@hooks.example.com/x", nil, "credentials"},
		{"https://hooks.example.com\x7f/x", nil, "invalid"},
		{"https://HOOKS.example.com/x", allow, ""},
		{"https://hooks.example.com:8443/x", allow, ""},
		{"https://evil.com/x", allow, "host evil.com is not in the allowed hosts"},
		{"https://hooks.example.com.evil.com/x", allow, "not in the allowed"},
		{"http://10.0.0.5:8080/x", allow, ""},
		{"http://10.0.0.5/x", allow, "not in the allowed"},
		{"https://ci.acme.io/x", allow, ""},
		{"https://acme.io/x", allow, "not in the allowed"},
		{"https://evilacme.io/x", allow, "not in the allowed"},
		{"http://[::1]:9000/x", allow, ""},
		{"http://169.254.169.254/latest/meta-data", allow, "not in the allowed"},
	} {
		err := ValidateTarget(tc.url, tc.allow)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ValidateTarget(%q) = %v, want ok", tc.url, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ValidateTarget(%q) = %v, want error containing %q", tc.url, err, tc.err)
		case err != nil && !errors.Is(err, ErrInvalidTarget):
			t.Errorf("ValidateTarget(%q) = %v, not ErrInvalidTarget", tc.url, err)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("ValidateTarget(%q) leaks the password: %v", tc.url, err)
		}
	}
	if err := ValidateTarget("ftp://u:pw@h/x", nil); err == nil || strings.Contains(err.Error(), "pw") || !strings.Contains(err.Error(), "ftp://h/x") {
		t.Errorf("error %v should name the URL without its userinfo", err)
	}
}

func TestMatch(t *testing.T) {
	base := func(ref string) store.Event { return store.Event{Type: store.EventBaseUpdated, Subject: ref} }
	run := func(typ, task string) store.Event { return store.Event{Type: typ, Subject: task} }
	for _, tc := range []struct {
		name string
		sub  store.Subscription
		e    store.Event
		want bool
	}{
		{"empty matches a run", store.Subscription{}, run(store.EventRunQueued, "app"), true},
		{"empty matches a base", store.Subscription{}, base("docker.io/library/alpine:3"), true},
		{"full type", store.Subscription{Types: []string{store.EventRunFailed}}, run(store.EventRunFailed, "app"), true},
		{"short type", store.Subscription{Types: []string{"run.failed"}}, run(store.EventRunFailed, "app"), true},
		{"other type", store.Subscription{Types: []string{"run.failed", "image.pushed"}}, run(store.EventRunSucceed, "app"), false},
		{"type prefix is not a match", store.Subscription{Types: []string{"run"}}, run(store.EventRunSucceed, "app"), false},
		{"task glob", store.Subscription{TaskGlob: "app*"}, run(store.EventRunQueued, "app-2"), true},
		{"task glob miss", store.Subscription{TaskGlob: "app*"}, run(store.EventRunQueued, "other"), false},
		{"task glob exact", store.Subscription{TaskGlob: "app"}, run(store.EventRunQueued, "app"), true},
		{"task glob class", store.Subscription{TaskGlob: "svc-[ab]"}, run(store.EventRunQueued, "svc-b"), true},
		{"task glob excludes bases", store.Subscription{TaskGlob: "*"}, base("alpine"), false},
		{"ref glob excludes runs", store.Subscription{RefGlob: "*"}, run(store.EventRunQueued, "app"), false},
		{"ref glob crosses slashes", store.Subscription{RefGlob: "docker.io/*"}, base("docker.io/library/alpine:3.20"), true},
		{"ref glob contains", store.Subscription{RefGlob: "*alpine*"}, base("docker.io/library/alpine:3.20"), true},
		{"ref glob miss", store.Subscription{RefGlob: "ghcr.io/*"}, base("docker.io/library/alpine:3.20"), false},
		{"ref glob exact", store.Subscription{RefGlob: "docker.io/library/alpine:3.20"}, base("docker.io/library/alpine:3.20"), true},
		{"ref glob ?", store.Subscription{RefGlob: "alpine:3.2?"}, base("alpine:3.20"), true},
		{"ref glob and type", store.Subscription{Types: []string{"base.updated"}, RefGlob: "*/alpine:*"}, base("docker.io/library/alpine:3"), true},
		{"type excludes base", store.Subscription{Types: []string{"run.queued"}}, base("alpine"), false},
		{"bad pattern", store.Subscription{TaskGlob: "[app"}, run(store.EventRunQueued, "app"), false},
		{"bad ref pattern", store.Subscription{RefGlob: "[x"}, base("x"), false},
	} {
		if got := Match(tc.sub, tc.e); got != tc.want {
			t.Errorf("%s: Match(%+v, %s %s) = %v, want %v", tc.name, tc.sub, tc.e.Type, tc.e.Subject, got, tc.want)
		}
	}
}

func TestCloudEvent(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)
	e := store.Event{Seq: 7, ID: "0b7e-id", Type: store.EventImagePushed, Subject: "app", Time: at,
		Data: json.RawMessage(`{"image": "r/app@sha256:abc",
		"tags": ["1"]}`)}
	b, err := CloudEvent(e, "https://refit.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(b, "\n\r") {
		t.Errorf("CloudEvent has a line break: %s", b)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"specversion": "1.0", "id": "0b7e-id", "type": "dev.refit.image.pushed",
		"source": "https://refit.example.com", "subject": "app", "time": "2025-03-04T05:06:07.123456789Z",
		"datacontenttype": "application/json", "dataschema": "https://refit.dev/schemas/image.pushed/v1",
		"data": map[string]any{"image": "r/app@sha256:abc", "tags": []any{"1"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CloudEvent (-want +got):\n%s", diff)
	}
	if _, err := CloudEvent(store.Event{ID: "x", Type: store.EventRunQueued, Data: json.RawMessage(`{bad`)}, "/refit"); err == nil {
		t.Error("CloudEvent accepted invalid data")
	}
	if _, err := CloudEvent(store.Event{Type: store.EventRunQueued}, "/refit"); err == nil {
		t.Error("CloudEvent accepted an event without id")
	}
}

func TestSign(t *testing.T) {
	// RFC 4231-style known answer (HMAC-SHA256 of the pangram with "key").
	got := Sign("key", []byte("The quick brown fox jumps over the lazy dog"))
	if want := "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestRetryTiming(t *testing.T) {
	d, err := New(Config{Store: openStore(t), MinBackoff: time.Second, MaxBackoff: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for n, base := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, time.Minute, time.Minute} {
		for range 20 {
			if b := d.backoff(n); b < base*8/10 || b > base*12/10 {
				t.Errorf("backoff(%d) = %v, want %v ±20%%", n, b, base)
			}
		}
	}
	if b := d.backoff(5000); b > time.Minute*12/10 || b <= 0 {
		t.Errorf("backoff(5000) = %v", b)
	}
}

func TestAttemptErrors(t *testing.T) {
	s := openStore(t)
	d, err := New(Config{Store: s, Timeout: 200 * time.Millisecond, MinBackoff: time.Second, MaxBackoff: time.Minute, RetryFor: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 10000)
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/ok":
			w.WriteHeader(http.StatusOK)
		case "/big":
			w.Header().Set("Retry-After", "7200")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "busy\r\n\x00\t"+big)
		case "/slow":
			io.Copy(io.Discard, r.Body) // the server notices a closed connection only once the body is read
			<-r.Context().Done()
		}
	}))
	ev := store.Event{Seq: 1, ID: "id-1", Type: store.EventRunQueued, Subject: "app", Time: time.Now(), Data: json.RawMessage(`{}`)}
	dl := store.Delivery{Event: ev, Attempts: 2}
	sub := store.Subscription{ID: "s-1", Secret: "do-not-leak"}
	try := func(path string) store.DeliveryResult {
		sub.URL = srv.URL + path + "?token=also-secret"
		return d.attempt(context.Background(), sub, dl)
	}
	if r := try("/ok"); !r.Delivered {
		t.Errorf("/ok: %+v", r)
	}
	if r := try("/redirect"); r.Delivered || !strings.Contains(r.Error, "302") {
		t.Errorf("redirects must not be followed: %+v", r)
	}
	r := try("/big")
	if r.Delivered || r.Dead || !strings.HasPrefix(r.Error, "HTTP 503 Service Unavailable: busy x") || len(r.Error) > 300 {
		t.Errorf("/big: %+v", r)
	}
	if wait := time.Until(r.Next); wait < 7199*time.Second || wait > 7200*time.Second {
		t.Errorf("Retry-After 7200 gave next attempt in %v", wait)
	}
	began := time.Now()
	r = try("/slow")
	if took := time.Since(began); took > time.Second || r.Delivered || !strings.Contains(r.Error, "no response within 200ms") {
		t.Errorf("/slow after %v: %+v", took, r)
	}
	// Backoff after 2 failures: 4s ±20%.
	if wait := time.Until(r.Next); wait < 3*time.Second || wait > 5*time.Second {
		t.Errorf("/slow: next attempt in %v, want about 4s", wait)
	}
	for _, r := range []store.DeliveryResult{try("/big"), try("/slow")} {
		if strings.Contains(r.Error, "do-not-leak") || strings.Contains(r.Error, "also-secret") {
			t.Errorf("error leaks a secret: %q", r.Error)
		}
	}
	// Retries stop at RetryFor: the last one is put off no further.
	dl.Event.Time = time.Now().Add(-3*time.Hour + 2*time.Second)
	if r := try("/big"); r.Dead || time.Until(r.Next) > 2*time.Second {
		t.Errorf("retry past RetryFor: %+v", r)
	}
	dl.Event.Time = time.Now().Add(-3 * time.Hour)
	if r := try("/big"); !r.Dead || !strings.Contains(r.Error, "gave up") {
		t.Errorf("old event not dead-lettered: %+v", r)
	}
	// Connection refused.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	l.Close()
	sub.URL = "http://" + l.Addr().String() + "/x?token=also-secret"
	dl.Event.Time = time.Now()
	if r := d.attempt(context.Background(), sub, dl); !strings.Contains(r.Error, "refused") || strings.Contains(r.Error, "also-secret") {
		t.Errorf("refused: %+v", r)
	}
}

func TestNew(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without a store")
	}
	if _, err := New(Config{Store: openStore(t), Timeout: -1}); err == nil {
		t.Error("New with a negative timeout")
	}
	d, err := New(Config{Store: openStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	if d.cfg.Source != "/refit" || d.cfg.Workers != 8 || d.cfg.PerSubscription != 2 || d.cfg.Timeout != 10*time.Second ||
		d.cfg.RetryFor != 24*time.Hour || d.cfg.Poll != time.Minute {
		t.Errorf("defaults: %+v", d.cfg)
	}
	d.Notify()
	d.Notify() // never blocks, even with nobody running
}

// ---- benchmark ----

// BenchmarkDelivery measures, against a signed local receiver with the
// default Workers and PerSubscription:
//
//   - burst: throughput of 2,000 events emitted at once (100 per
//     transaction) over the given number of subjects; with one subject
//     every delivery waits for the previous one (ordering).
//   - lag: time from an Emit's commit (followed by Notify) to receipt, for
//     events emitted one per transaction every 2ms, median and p99.
func BenchmarkDelivery(b *testing.B) {
	for _, subjects := range []int{1, 50} {
		b.Run(fmt.Sprintf("burst/subjects=%d", subjects), func(b *testing.B) {
			const n = 2000
			var total time.Duration
			for range b.N {
				s := openStore(b)
				var got atomic.Int64
				all := make(chan struct{})
				rcv := &receiver{t: b, secret: "bench"}
				rcv.onGot = func(cloudEvent) {
					if got.Add(1) == n {
						close(all)
					}
				}
				srv := serve(b, rcv)
				subscribe(b, s, store.Subscription{URL: srv.URL, Secret: "bench"})
				cfg := Config{Store: s}
				d, stop := start(b, cfg)
				began := time.Now()
				for i := 0; i < n; i += 100 {
					err := s.InTx(context.Background(), func(tx *store.Tx) error {
						for j := i; j < i+100; j++ {
							if err := tx.Emit(store.EventRunQueued, fmt.Sprintf("task%d", j%subjects), map[string]int{"n": j}); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
					d.Notify()
				}
				select {
				case <-all:
				case <-time.After(2 * time.Minute):
					b.Fatalf("only %d of %d events arrived", got.Load(), n)
				}
				total += time.Since(began)
				stop()
			}
			rate := float64(n*b.N) / total.Seconds()
			b.ReportMetric(rate, "events/s")
			b.Logf("%d events over %d subjects: %.0f events/s", n, subjects, rate)
		})
	}
	b.Run("lag", func(b *testing.B) {
		const n = 500
		var lags []time.Duration
		for range b.N {
			s := openStore(b)
			var mu sync.Mutex
			committed := map[string]time.Time{}
			all := make(chan struct{})
			rcv := &receiver{t: b, secret: "bench"}
			rcv.onGot = func(ev cloudEvent) {
				at := time.Now()
				mu.Lock()
				defer mu.Unlock()
				lags = append(lags, at.Sub(committed[ev.Subject]))
				if len(committed) == n && len(lags)%n == 0 {
					close(all)
				}
			}
			srv := serve(b, rcv)
			subscribe(b, s, store.Subscription{URL: srv.URL, Secret: "bench"})
			d, stop := start(b, Config{Store: s})
			for i := range n {
				subject := fmt.Sprintf("task%d", i) // one event per subject: lag is keyed by it
				err := s.InTx(context.Background(), func(tx *store.Tx) error {
					return tx.Emit(store.EventRunStarted, subject, map[string]int{"n": i})
				})
				if err != nil {
					b.Fatal(err)
				}
				mu.Lock()
				committed[subject] = time.Now()
				mu.Unlock()
				d.Notify()
				time.Sleep(2 * time.Millisecond)
			}
			select {
			case <-all:
			case <-time.After(time.Minute):
				b.Fatal("not all events arrived")
			}
			stop()
		}
		slices.Sort(lags)
		median, p99 := lags[len(lags)/2], lags[len(lags)*99/100]
		b.ReportMetric(float64(median.Microseconds())/1000, "ms-median-lag")
		b.ReportMetric(float64(p99.Microseconds())/1000, "ms-p99-lag")
		b.Logf("%d events, one per commit every 2ms: lag median %v, p99 %v, max %v", len(lags), median, p99, lags[len(lags)-1])
	})
}
