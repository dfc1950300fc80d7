package events

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/refit-dev/refit/internal/natstest"
	"github.com/refit-dev/refit/internal/store"
)

// runSink runs d.RunSink until the test ends; stop ends it early.
func runSink(t testing.TB, d *Dispatcher, sink Sink) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.RunSink(ctx, sink) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("RunSink: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// checkStream asserts the stream holds exactly want, in order, each as
// its CloudEvent on its type's subject with the event id as message id.
func checkStream(t testing.TB, msgs []*jetstream.RawStreamMsg, want []store.Event) {
	t.Helper()
	if len(msgs) != len(want) {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		e := want[i]
		var ce cloudEvent
		if err := json.Unmarshal(m.Data, &ce); err != nil {
			t.Fatalf("message %d is no CloudEvent: %v", m.Sequence, err)
		}
		wantSubject := "refit." + strings.TrimPrefix(e.Type, store.EventPrefix)
		if ce.ID != e.ID || ce.Type != e.Type || ce.Subject != e.Subject || m.Subject != wantSubject ||
			m.Header.Get("Nats-Msg-Id") != e.ID || m.Header.Get("Content-Type") != ContentType {
			t.Errorf("message %d: subject %s, id %s (msg id %s), type %s, about %s, content type %q; want %s, id %s, type %s, about %s",
				m.Sequence, m.Subject, ce.ID, m.Header.Get("Nats-Msg-Id"), ce.Type, ce.Subject, m.Header.Get("Content-Type"),
				wantSubject, e.ID, e.Type, e.Subject)
		}
	}
}

// TestNATSSinkSurvivesBrokerOutage publishes a scenario's events to a
// real JetStream, kills the server (SIGKILL) while events keep coming,
// restarts it, and finds every event in the stream exactly once, in
// outbox order. A sink restarted from an old cursor (a crash before its
// progress was saved) republishes, and the stream drops the duplicates.
func TestNATSSinkSurvivesBrokerOutage(t *testing.T) {
	srv := natstest.Start(t)
	s := openStore(t)
	cfg := testConfig(s)
	cfg.Metrics = NewMetrics(prometheus.NewRegistry())
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := NewNATSSink(NATSConfig{URL: srv.URL(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	before := emit(t, s, [2]string{store.EventTaskChanged, "old"}) // before the sink existed: not published
	stop := runSink(t, d, sink)
	waitFor(t, 5*time.Second, "the sink's cursor", func() bool {
		var n int
		s.DB().QueryRow(`SELECT COUNT(*) FROM sinks WHERE name = 'nats'`).Scan(&n)
		return n == 1
	})

	scenario := func(n int) [][2]string {
		return [][2]string{
			{store.EventBaseUpdated, fmt.Sprintf("registry.local/base:%d", n)},
			{store.EventRunQueued, "app"}, {store.EventRunStarted, "app"},
			{store.EventImagePushed, "app"}, {store.EventRunSucceed, "app"},
		}
	}
	var want []store.Event
	want = append(want, emit(t, s, scenario(1)...)...)
	d.Notify()
	waitFor(t, 10*time.Second, "the first events in the stream", func() bool {
		return len(srv.Messages(DefaultNATSStream)) == len(want)
	})

	srv.Kill()
	for i := 2; i <= 4; i++ {
		want = append(want, emit(t, s, scenario(i)...)...)
		d.Notify()
	}
	// The broker stays down until the sink has failed to publish (and so
	// backs off): a fixed pause raced the client's reconnect buffer, which
	// could carry a publish across a short outage.
	waitFor(t, 15*time.Second, "a failed publish while the broker is down", func() bool {
		return testutil.ToFloat64(cfg.Metrics.Published.WithLabelValues("nats", ResultFailed)) > 0
	})
	srv.Restart()
	waitFor(t, 20*time.Second, "every event after the outage", func() bool {
		return len(srv.Messages(DefaultNATSStream)) >= len(want)
	})
	checkStream(t, srv.Messages(DefaultNATSStream), want)
	for _, m := range srv.Messages(DefaultNATSStream) {
		if strings.Contains(string(m.Data), before[0].ID) {
			t.Errorf("event %s from before the sink was configured was published", before[0].ID)
		}
	}

	// A crash after publishing but before saving progress: the cursor is
	// back where it was; everything is published again and deduplicated.
	stop()
	if _, err := s.DB().Exec(`UPDATE sinks SET cursor = $1 WHERE name = 'nats'`, before[0].Seq); err != nil {
		t.Fatal(err)
	}
	restarted, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink2, _ := NewNATSSink(NATSConfig{URL: srv.URL(), Timeout: time.Second})
	t.Cleanup(sink2.Close)
	runSink(t, restarted, sink2)
	want = append(want, emit(t, s, [2]string{store.EventTaskChanged, "after"})...)
	restarted.Notify()
	waitFor(t, 10*time.Second, "the event after the restart", func() bool {
		return len(srv.Messages(DefaultNATSStream)) >= len(want)
	})
	var cursor int64
	s.DB().QueryRow(`SELECT cursor FROM sinks WHERE name = 'nats'`).Scan(&cursor)
	if cursor != want[len(want)-1].Seq {
		t.Fatalf("sink cursor %d after the restart, want %d", cursor, want[len(want)-1].Seq)
	}
	checkStream(t, srv.Messages(DefaultNATSStream), want)
}

// TestNATSSinkUsesExistingStream: an operator's stream is used as it is;
// with no stream for the subjects the publish fails with a clear error.
func TestNATSSinkUsesExistingStream(t *testing.T) {
	srv := natstest.Start(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OPS", Subjects: []string{"ops.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	ev := store.Event{Seq: 1, ID: "e-1", Type: store.EventRunFailed, Subject: "app", Time: time.Now(), Data: json.RawMessage(`{}`)}
	body, err := CloudEvent(ev, "/refit")
	if err != nil {
		t.Fatal(err)
	}

	good, _ := NewNATSSink(NATSConfig{URL: srv.URL(), Stream: "OPS", Prefix: "ops"})
	t.Cleanup(good.Close)
	if err := good.Publish(ctx, ev, body); err != nil {
		t.Fatalf("publishing to the operator's stream: %v", err)
	}
	if msgs := srv.Messages("OPS"); len(msgs) != 1 || msgs[0].Subject != "ops.run.failed" {
		t.Fatalf("OPS stream holds %d messages (%v), want 1 on ops.run.failed", len(msgs), msgs)
	}

	wrong, _ := NewNATSSink(NATSConfig{URL: srv.URL(), Stream: "OPS", Prefix: "elsewhere"})
	t.Cleanup(wrong.Close)
	err = wrong.Publish(ctx, ev, body)
	if err == nil || !strings.Contains(err.Error(), "OPS") {
		t.Fatalf("publishing on a subject no stream holds = %v, want an error naming stream OPS", err)
	}
}

func TestNewNATSSinkRejectsBadConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  NATSConfig
		want string
	}{
		{NATSConfig{}, "no server URL"},
		{NATSConfig{URL: "http://127.0.0.1:4222"}, "scheme"},
		{NATSConfig{URL: "nats://"}, "no host"},
		{NATSConfig{URL: "nats://user:hunter2@:4222"}, "no host"},
		{NATSConfig{URL: "nats://127.0.0.1", Stream: "a.b"}, "stream name"},
		{NATSConfig{URL: "nats://127.0.0.1", Prefix: "refit.>"}, "prefix"},
		{NATSConfig{URL: "nats://127.0.0.1", Prefix: "a..b"}, "prefix"},
	} {
		_, err := NewNATSSink(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewNATSSink(%+v) = %v, want an error about %s", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// TestNATSSinkDownAtStart: a broker that is not there yet delays events
// and loses none.
func TestNATSSinkDownAtStart(t *testing.T) {
	srv := natstest.Start(t)
	srv.Kill()
	s := openStore(t)
	d, err := New(testConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	sink, _ := NewNATSSink(NATSConfig{URL: srv.URL(), Timeout: 500 * time.Millisecond})
	t.Cleanup(sink.Close)
	runSink(t, d, sink)
	waitFor(t, 5*time.Second, "the sink's cursor", func() bool {
		var n int
		s.DB().QueryRow(`SELECT COUNT(*) FROM sinks`).Scan(&n)
		return n == 1
	})
	want := emit(t, s, [2]string{store.EventRunQueued, "a"}, [2]string{store.EventRunQueued, "b"})
	d.Notify()
	time.Sleep(300 * time.Millisecond)
	srv.Restart()
	waitFor(t, 20*time.Second, "events once the server is up", func() bool {
		return len(srv.Messages(DefaultNATSStream)) >= len(want)
	})
	checkStream(t, srv.Messages(DefaultNATSStream), want)
}

// BenchmarkNATSSink measures the sink against a real nats-server: burst
// throughput (2,000 events committed 100 per transaction, until the last
// is in the stream) and the lag from commit to a subscriber's receipt
// with one event per commit every 2 ms.
func BenchmarkNATSSink(b *testing.B) {
	srv := natstest.Start(b)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	b.Run("burst", func(b *testing.B) {
		const n = 2000
		var total time.Duration
		for i := range b.N {
			s := openStore(b)
			d, err := New(Config{Store: s})
			if err != nil {
				b.Fatal(err)
			}
			prefix := fmt.Sprintf("burst%d", i)
			sink, _ := NewNATSSink(NATSConfig{URL: srv.URL(), Stream: strings.ToUpper(prefix), Prefix: prefix})
			var got atomic.Int64
			all := make(chan struct{})
			sub, err := nc.Subscribe(prefix+".>", func(*nats.Msg) {
				if got.Add(1) == n {
					close(all)
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			stop := runSink(b, d, sink)
			waitFor(b, 5*time.Second, "the sink's cursor", func() bool {
				var c int
				s.DB().QueryRow(`SELECT COUNT(*) FROM sinks`).Scan(&c)
				return c == 1
			})
			began := time.Now()
			for j := 0; j < n; j += 100 {
				err := s.InTx(context.Background(), func(tx *store.Tx) error {
					for k := j; k < j+100; k++ {
						if err := tx.Emit(store.EventRunQueued, fmt.Sprintf("task%d", k%50), map[string]int{"n": k}); err != nil {
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
			case <-time.After(time.Minute):
				b.Fatalf("%d of %d events arrived", got.Load(), n)
			}
			total += time.Since(began)
			stop()
			sub.Unsubscribe()
			sink.Close()
		}
		rate := float64(n*b.N) / total.Seconds()
		b.ReportMetric(rate, "events/s")
		b.Logf("%d events published to JetStream: %.0f events/s", n, rate)
	})
	b.Run("lag", func(b *testing.B) {
		const n = 500
		var lags []time.Duration
		for i := range b.N {
			s := openStore(b)
			d, _ := New(Config{Store: s})
			prefix := fmt.Sprintf("lag%d", i)
			sink, _ := NewNATSSink(NATSConfig{URL: srv.URL(), Stream: strings.ToUpper(prefix), Prefix: prefix})
			var mu sync.Mutex
			committed := map[string]time.Time{}
			all := make(chan struct{})
			sub, err := nc.Subscribe(prefix+".>", func(m *nats.Msg) {
				at := time.Now()
				var ce cloudEvent
				json.Unmarshal(m.Data, &ce)
				mu.Lock()
				defer mu.Unlock()
				lags = append(lags, at.Sub(committed[ce.Subject]))
				if len(lags)%n == 0 {
					close(all)
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			stop := runSink(b, d, sink)
			waitFor(b, 5*time.Second, "the sink's cursor", func() bool {
				var c int
				s.DB().QueryRow(`SELECT COUNT(*) FROM sinks`).Scan(&c)
				return c == 1
			})
			for j := range n {
				subject := fmt.Sprintf("task%d", j)
				mu.Lock() // the receipt must not beat the commit time's recording
				err := s.InTx(context.Background(), func(tx *store.Tx) error {
					return tx.Emit(store.EventRunStarted, subject, map[string]int{"n": j})
				})
				committed[subject] = time.Now()
				mu.Unlock()
				if err != nil {
					b.Fatal(err)
				}
				d.Notify()
				time.Sleep(2 * time.Millisecond)
			}
			select {
			case <-all:
			case <-time.After(time.Minute):
				b.Fatal("not all events arrived")
			}
			stop()
			sub.Unsubscribe()
			sink.Close()
		}
		slices.Sort(lags)
		median, p99 := lags[len(lags)/2], lags[len(lags)*99/100]
		b.ReportMetric(float64(median.Microseconds())/1000, "ms-median-lag")
		b.ReportMetric(float64(p99.Microseconds())/1000, "ms-p99-lag")
		b.Logf("%d events, one per commit every 2ms: commit to subscriber median %v, p99 %v", len(lags), median, p99)
	})
}

// refusingSink accepts every event but those of one subject, and records
// what it accepted, in order.
type refusingSink struct {
	refuse string
	mu     sync.Mutex
	got    []string
}

func (r *refusingSink) Name() string { return "refusing" }

func (r *refusingSink) Publish(_ context.Context, e store.Event, _ []byte) error {
	if e.Subject == r.refuse {
		return fmt.Errorf("maximum payload exceeded")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, e.Subject)
	return nil
}

func (r *refusingSink) accepted() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// TestSinkGivesUpOnARefusedEvent: an event the broker keeps refusing is
// retried for RetryFor, then given up (counted dead), and the events after
// it are published in order; it does not stop the sink for good.
func TestSinkGivesUpOnARefusedEvent(t *testing.T) {
	s := openStore(t)
	cfg := testConfig(s)
	cfg.RetryFor = 400 * time.Millisecond
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 50*time.Millisecond
	cfg.Metrics = NewMetrics(prometheus.NewRegistry())
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink := &refusingSink{refuse: "poison"}
	runSink(t, d, sink)
	waitFor(t, 5*time.Second, "the sink's cursor", func() bool {
		var n int
		s.DB().QueryRow(`SELECT COUNT(*) FROM sinks`).Scan(&n)
		return n == 1
	})
	began := time.Now()
	emit(t, s, [2]string{store.EventRunQueued, "a"}, [2]string{store.EventRunQueued, "poison"},
		[2]string{store.EventRunQueued, "b"}, [2]string{store.EventRunQueued, "c"})
	d.Notify()
	waitFor(t, 5*time.Second, "the events after the refused one", func() bool { return len(sink.accepted()) == 3 })
	if got := sink.accepted(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("published %v, want a b c in order", got)
	}
	if waited := time.Since(began); waited < cfg.RetryFor {
		t.Errorf("gave up after %v, before RetryFor %v", waited, cfg.RetryFor)
	}
	if dead := testutil.ToFloat64(cfg.Metrics.Published.WithLabelValues("refusing", ResultDead)); dead != 1 {
		t.Errorf("publishes{dead} = %v, want 1", dead)
	}
	if failed := testutil.ToFloat64(cfg.Metrics.Published.WithLabelValues("refusing", ResultFailed)); failed < 2 {
		t.Errorf("publishes{failed} = %v, want the refused event retried", failed)
	}
}
