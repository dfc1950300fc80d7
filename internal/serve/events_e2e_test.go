package serve_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/events"
	"github.com/refit-dev/refit/internal/natstest"
	"github.com/refit-dev/refit/internal/serve"
	"github.com/refit-dev/refit/internal/store"
)

// receiver is a subscriber that checks signatures and keeps what came.
type receiver struct {
	mu     sync.Mutex
	got    []map[string]any
	badSig int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	ts, _ := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
	if r.Header.Get("X-Refit-Signature-256") != events.Sign("s3cret", body) || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute ||
		r.Header.Get("webhook-signature") != events.SignStandard("s3cret", r.Header.Get("webhook-id"), ts, body) {
		rc.badSig++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ce map[string]any
	if err := json.Unmarshal(body, &ce); err != nil || r.Header.Get("Content-Type") != "application/cloudevents+json" || ce["id"] != r.Header.Get("webhook-id") {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.got = append(rc.got, ce)
	w.WriteHeader(http.StatusNoContent)
}

// types returns the types received for subject, in arrival order.
func (rc *receiver) types(subject string) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, ce := range rc.got {
		if ce["subject"] == subject {
			out = append(out, strings.TrimPrefix(ce["type"].(string), api.EventPrefix))
		}
	}
	return out
}

// TestBaseUpdateEventsDelivered: a base update → run → push scenario
// reaches a subscriber as signed CloudEvents, each once, in order per
// subject; the SSE stream and a NATS JetStream stream carry the same
// events.
func TestBaseUpdateEventsDelivered(t *testing.T) {
	broker := natstest.Start(t)
	r := startRefitWith(t, serve.Config{Debounce: -1, PollInterval: time.Hour, NATS: events.NATSConfig{URL: broker.URL()}})
	ctx := context.Background()
	rc := &receiver{}
	hook := httptest.NewServer(rc)
	defer hook.Close()

	sub, err := r.c.CreateSubscription(ctx, api.SubscriptionRequest{URL: hook.URL, Secret: "s3cret", Task: "app*",
		Types: []string{"base.updated", "run.queued", "run.started", "image.pushed", "run.succeeded"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.CreateSubscription(ctx, api.SubscriptionRequest{URL: "ftp://example/x"}); err == nil {
		t.Error("a subscription to an ftp URL was accepted")
	}

	baseRef := r.RegistryAddr + "/base/busybox:1"
	_, first := pushBase(t, baseRef, "")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + baseRef + "\nRUN echo app > /app\n"})
	for _, name := range []string{"app", "other"} {
		if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: name, Source: api.TaskSource{Dir: dir}}); err != nil {
			t.Fatal(err)
		}
	}
	waitChecked(t, r.c, baseRef, first)
	_, patched := pushBase(t, baseRef, "p1")
	runs := settle(t, r.c, 2)
	for _, run := range runs {
		if run.State != api.StateSucceeded {
			t.Fatalf("run %s of %s: %s %s", run.ID, run.Task, run.State, run.Error)
		}
	}

	want := []string{"run.queued", "run.started", "image.pushed", "run.succeeded"}
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Equal(rc.types("app"), want) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := rc.types("app"); !slices.Equal(got, want) {
		t.Errorf("events for app = %v, want %v once each in order", got, want)
	}
	// base.updated (subject: the reference) reaches it because the update
	// rebuilds a task matching app*.
	if got := rc.types(baseRef); !slices.Equal(got, []string{"base.updated"}) {
		t.Errorf("events for %s = %v, want one base.updated", baseRef, got)
	}
	if got := rc.types("other"); len(got) != 0 {
		t.Errorf("events of task other reached a subscription for app*: %v", got)
	}
	if rc.badSig != 0 {
		t.Errorf("%d deliveries had a bad signature", rc.badSig)
	}
	rc.mu.Lock()
	for _, ce := range rc.got {
		if ce["specversion"] != "1.0" || ce["id"] == "" || ce["time"] == nil || ce["dataschema"] == nil {
			t.Errorf("not a complete CloudEvent: %v", ce)
		}
		if ce["type"] == store.EventImagePushed {
			data, _ := ce["data"].(map[string]any)
			if data == nil || !strings.HasPrefix(data["image"].(string), r.RegistryAddr+"/app@sha256:") {
				t.Errorf("image.pushed data = %v", ce["data"])
			}
		}
	}
	rc.mu.Unlock()

	// The outbox has the base update with both digests.
	evs, err := r.c.ListEvents(ctx, api.EventFilter{Type: "base.updated", Subject: baseRef, Limit: 10})
	if err != nil || len(evs) != 1 {
		t.Fatalf("base.updated events: %v %v, want 1", evs, err)
	}
	var obs struct {
		api.Observation
		Tasks []string `json:"tasks"`
	}
	json.Unmarshal(evs[0].Data, &obs)
	if obs.OldDigest != first || obs.Digest != patched || obs.Source != "push" || !slices.Equal(obs.Tasks, []string{"app", "other"}) {
		t.Errorf("base.updated data = %+v, want %s → %s from a push rebuilding app and other", obs, first, patched)
	}

	// JetStream has every event of the outbox, in order, each once, on
	// subject refit.<type>.
	all, err := r.c.ListEvents(ctx, api.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// Read in order, the outbox has the cause before its effects: the
	// base.updated before the run.queued of each run it caused.
	if i, j := slices.IndexFunc(all, func(e api.Event) bool { return e.Type == store.EventBaseUpdated }),
		slices.IndexFunc(all, func(e api.Event) bool { return e.Type == store.EventRunQueued }); i < 0 || j < 0 || i > j {
		t.Errorf("outbox order: base.updated at %d, first run.queued at %d; want the update first", i, j)
	}
	// /metrics counts both runs the update queued.
	resp, err := http.Get(r.APIURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `refit_runs_queued_total{kind="base"} 2`) {
		t.Errorf("/metrics lacks refit_runs_queued_total{kind=\"base\"} 2:\n%s", grepLines(string(body), "refit_runs_queued"))
	}
	var msgs []*jetstream.RawStreamMsg
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if msgs = broker.Messages(events.DefaultNATSStream); len(msgs) >= len(all) {
			break
		}
	}
	if len(msgs) != len(all) {
		t.Fatalf("JetStream holds %d events, the outbox %d", len(msgs), len(all))
	}
	for i, m := range msgs {
		var ce map[string]any
		json.Unmarshal(m.Data, &ce)
		want := "refit." + strings.TrimPrefix(all[i].Type, api.EventPrefix)
		if ce["id"] != all[i].ID || m.Subject != want {
			t.Errorf("JetStream message %d: %s on %s, want %s on %s", i+1, ce["id"], m.Subject, all[i].ID, want)
		}
	}

	// Nothing was dead-lettered: discarding dead deliveries finds none.
	if n, err := r.c.DiscardDead(ctx, sub.ID, ""); err != nil || n != 0 {
		t.Errorf("DiscardDead = %d, %v; want 0 (nothing dead)", n, err)
	}

	// The SSE stream replays the same events from the start, in order.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var streamed []string
	err = r.c.Stream(sctx, 0, func(id, typ string, data []byte) error {
		streamed = append(streamed, strings.TrimPrefix(typ, api.EventPrefix))
		if typ == store.EventRunSucceed && strings.Contains(string(data), `"subject":"app"`) {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(streamed, "base.updated") || !slices.Contains(streamed, "task.changed") || !slices.Contains(streamed, "run.succeeded") {
		t.Errorf("stream carried %v", streamed)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
