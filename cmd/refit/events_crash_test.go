package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/store"
)

// TestSIGKILLLosesNoDelivery kills the refit process (SIGKILL, no cleanup)
// while event deliveries to a slow subscriber are in flight and more wait
// behind them; after a restart on the same data directory every event
// reaches the subscriber (duplicates allowed, each an identical copy with
// the same id), in order per subject and correctly signed, and each
// delivery cut off by the kill is sent again.
func TestSIGKILLLosesNoDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)
	const secret = "events-secret-0123456789"
	rc := newSlowReceiver(secret, 300*time.Millisecond)
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	t.Cleanup(rc.thaw) // before hook.Close: no handler may stay frozen

	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	p := startProcess(t, bin, data, apiAddr, reg)
	ctx := context.Background()
	c := client.New("http://"+apiAddr, readToken(t, data))

	sub, err := c.CreateSubscription(ctx, api.SubscriptionRequest{URL: hook.URL + "/refit", Types: []string{"task.changed"},
		Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	if !sub.Signed {
		t.Fatalf("subscription %+v is not signed", sub)
	}

	// A burst of task.changed events (no builds): tasks created, updated
	// twice and (every third) deleted, one after the other, so that each
	// subject has several events back to back, waiting behind one another.
	baseRef := reg + "/base/busybox:1"
	pushImage(t, baseRef, "")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+baseRef+"\nRUN echo burst > /burst\n"), 0o644)
	const tasks = 16
	spec := func(i, version int) api.TaskSpec {
		n := fmt.Sprintf("burst-%02d", i)
		return api.TaskSpec{Name: n, Source: api.TaskSource{Dir: dir}, Image: fmt.Sprintf("%s-v%d", n, version)}
	}
	wantEvents := 0
	for i := range tasks {
		if _, err := c.CreateTask(ctx, spec(i, 0)); err != nil {
			t.Fatal(err)
		}
		for v := 1; v <= 2; v++ {
			r, err := c.PutTask(ctx, spec(i, v))
			if err != nil {
				t.Fatal(err)
			}
			if !r.Changed {
				t.Fatalf("updating %s to v%d changed nothing", spec(i, v).Name, v)
			}
		}
		wantEvents += 3
		if i%3 == 0 {
			if err := c.DeleteTask(ctx, spec(i, 0).Name); err != nil {
				t.Fatal(err)
			}
			wantEvents++
		}
	}

	// Kill refit while the receiver holds a request: once a few deliveries
	// were answered and one has arrived but is not answered yet.
	deadline := time.After(time.Minute)
	for {
		st := rc.status()
		if st.answered >= 3 && st.waiting >= 1 {
			break
		}
		select {
		case <-rc.arrived:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no delivery in flight a minute after the burst: %d received, %d answered", st.received, st.answered)
		}
	}
	// Frozen, the receiver answers nothing more: whatever arrived and is
	// not answered when refit is dead was cut off by the kill, and refit
	// cannot have recorded it as delivered.
	rc.freeze()
	p.Process.Signal(syscall.SIGKILL)
	p.Wait()
	killTick, cutOff, seenBefore := rc.markKill()
	rc.thaw()
	if len(cutOff) == 0 {
		t.Fatal("no delivery was in flight when refit was killed: the test proves nothing")
	}
	t.Logf("killed refit with %d deliveries in flight (%s) and %d of %d events received",
		len(cutOff), strings.Join(cutOff, ", "), len(seenBefore), wantEvents)
	if len(seenBefore) >= wantEvents {
		t.Fatalf("every event had reached the receiver before the kill: nothing was left to resume")
	}

	startProcess(t, bin, data, apiAddr, reg)

	// What refit owes the subscriber: the task.changed events after the
	// subscription's starting cursor.
	var evs []api.Event
	for after := sub.Cursor; ; {
		page, err := c.ListEvents(ctx, api.EventFilter{After: after, Type: store.EventTaskChanged, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		evs = append(evs, page...)
		after = page[len(page)-1].Seq
	}
	if len(evs) != wantEvents {
		t.Fatalf("refit lists %d task.changed events after the restart, want %d", len(evs), wantEvents)
	}
	byID := map[string]api.Event{}
	for _, e := range evs {
		byID[e.ID] = e
	}

	// Wait until every event arrived, and every cut-off delivery arrived
	// again after the kill.
	var missing []string
	for end := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		missing = missing[:0]
		got := rc.receipts()
		for _, e := range evs {
			if !slices.ContainsFunc(got, func(r receipt) bool { return r.id == e.ID }) {
				missing = append(missing, fmt.Sprintf("%s (seq %d, %s)", e.ID, e.Seq, e.Subject))
			}
		}
		for _, id := range cutOff {
			if !slices.ContainsFunc(got, func(r receipt) bool { return r.id == id && r.arrival > killTick }) {
				missing = append(missing, fmt.Sprintf("%s (cut off by the kill, never sent again)", id))
			}
		}
		if len(missing) == 0 || time.Now().After(end) {
			break
		}
	}
	if len(missing) > 0 {
		t.Fatalf("a minute after the restart %d deliveries are still missing:\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
	// The deliveries are recorded as done: none left pending, none dead.
	for end := time.Now().Add(30 * time.Second); ; {
		pending, err := c.ListDeliveries(ctx, sub.ID, "pending")
		if err == nil && len(pending) == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("deliveries still pending after every event arrived: %d (%v)", len(pending), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if dead, err := c.ListDeliveries(ctx, sub.ID, "dead"); err != nil || len(dead) > 0 {
		t.Errorf("dead-lettered deliveries: %+v (%v)", dead, err)
	}

	got := rc.receipts()
	for _, pr := range rc.problemList() {
		t.Errorf("receiver: %s", pr)
	}
	first := map[string]receipt{} // event id → its first receipt
	dups := 0
	for _, r := range got {
		e, ok := byID[r.id]
		if !ok {
			t.Errorf("received an event refit does not list: id %s, %s %s", r.id, r.typ, r.subject)
			continue
		}
		if r.typ != e.Type || r.subject != e.Subject || !sameJSON(r.data, e.Data) {
			t.Errorf("event %s arrived as %s %s %s, refit lists %s %s %s", e.ID, r.typ, r.subject, r.data, e.Type, e.Subject, e.Data)
		}
		if want := sub.ID + "/" + strconv.FormatInt(e.Seq, 10); r.delivery != want {
			t.Errorf("event %s arrived with delivery %q, want %q", e.ID, r.delivery, want)
		}
		f, seen := first[r.id]
		if !seen {
			first[r.id] = r
			continue
		}
		dups++
		if !bytes.Equal(r.body, f.body) {
			t.Errorf("event %s arrived twice with different bodies:\n  %s\n  %s", r.id, f.body, r.body)
		}
	}
	// Order per subject: each event first arrives after the one before it
	// about the same subject, and only once the receiver acknowledged that
	// one (refit keeps at most one delivery in flight per subject).
	bySubject := map[string][]api.Event{}
	for _, e := range evs {
		bySubject[e.Subject] = append(bySubject[e.Subject], e)
	}
	for _, subject := range slices.Sorted(maps.Keys(bySubject)) {
		es := bySubject[subject]
		for i := 1; i < len(es); i++ {
			prev, cur := es[i-1], es[i]
			fp, fc := first[prev.ID], first[cur.ID]
			if fc.arrival < fp.arrival {
				t.Errorf("%s: event seq %d (%s) first arrived before seq %d (%s)", subject, cur.Seq, cur.ID, prev.Seq, prev.ID)
				continue
			}
			acked := slices.ContainsFunc(got, func(r receipt) bool {
				return r.id == prev.ID && r.ackedAt > 0 && r.ackedAt < fc.arrival
			})
			if !acked {
				t.Errorf("%s: event seq %d (%s) arrived before seq %d (%s) was acknowledged", subject, cur.Seq, cur.ID, prev.Seq, prev.ID)
			}
		}
	}
	t.Logf("%d events about %d subjects: %d requests, %d duplicates; %d cut off by the kill, %d first sent after the restart",
		len(evs), len(bySubject), len(got), dups, len(cutOff), len(evs)-len(seenBefore))
}

// slowReceiver is a subscriber that holds each delivery before answering
// 200, checks its signature and keeps what came, in arrival order.
// Arrivals and acknowledgements are numbered on one clock (tick), so
// tests can tell what was answered before what arrived.
type slowReceiver struct {
	secret  string
	hold    time.Duration
	arrived chan struct{} // poked on each arrival

	mu       sync.Mutex
	tick     int
	got      []*receipt
	problems []string
	frozen   bool
	thawed   chan struct{} // closed by thaw
}

type receipt struct {
	arrival  int // tick of arrival
	ackedAt  int // tick of the 200 going out; 0 = not answered
	id       string
	typ      string
	subject  string
	delivery string // X-Refit-Delivery
	data     json.RawMessage
	body     []byte
}

func newSlowReceiver(secret string, hold time.Duration) *slowReceiver {
	return &slowReceiver{secret: secret, hold: hold, arrived: make(chan struct{}, 1)}
}

func (rc *slowReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the sender went away mid-body (killed)
	}
	problem := rc.check(r, body)
	var ce struct {
		SpecVersion string          `json:"specversion"`
		ID          string          `json:"id"`
		Type        string          `json:"type"`
		Subject     string          `json:"subject"`
		Data        json.RawMessage `json:"data"`
	}
	if problem == "" {
		if err := json.Unmarshal(body, &ce); err != nil {
			problem = fmt.Sprintf("malformed CloudEvent %q: %v", body, err)
		} else if ce.SpecVersion != "1.0" || ce.ID == "" || ce.Type == "" || ce.Subject == "" {
			problem = fmt.Sprintf("incomplete CloudEvent %s", body)
		}
	}
	rc.mu.Lock()
	rc.tick++
	if problem != "" {
		rc.problems = append(rc.problems, problem)
		rc.mu.Unlock()
		http.Error(w, problem, http.StatusBadRequest)
		return
	}
	rec := &receipt{arrival: rc.tick, id: ce.ID, typ: ce.Type, subject: ce.Subject,
		delivery: r.Header.Get("X-Refit-Delivery"), data: ce.Data, body: body}
	rc.got = append(rc.got, rec)
	rc.mu.Unlock()
	select {
	case rc.arrived <- struct{}{}:
	default:
	}

	select {
	case <-time.After(rc.hold):
	case <-r.Context().Done():
		return
	}
	for {
		rc.mu.Lock()
		if !rc.frozen {
			rc.tick++
			rec.ackedAt = rc.tick
			rc.mu.Unlock()
			break
		}
		thawed := rc.thawed
		rc.mu.Unlock()
		select {
		case <-thawed:
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

// check verifies a delivery's headers and signature; it returns the
// problem, or "".
func (rc *slowReceiver) check(r *http.Request, body []byte) string {
	if ct := r.Header.Get("Content-Type"); ct != "application/cloudevents+json" {
		return fmt.Sprintf("Content-Type %q", ct)
	}
	m := hmac.New(sha256.New, []byte(rc.secret))
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if got := r.Header.Get("X-Refit-Signature-256"); !hmac.Equal([]byte(got), []byte(want)) {
		return fmt.Sprintf("bad signature %q on %s", got, body)
	}
	ts, err := strconv.ParseInt(r.Header.Get("X-Refit-Timestamp"), 10, 64)
	if age := time.Since(time.Unix(ts, 0)); err != nil || age > time.Minute || age < -time.Minute {
		return fmt.Sprintf("stale or bad X-Refit-Timestamp %q", r.Header.Get("X-Refit-Timestamp"))
	}
	return ""
}

type receiverStatus struct{ received, answered, waiting int }

func (rc *slowReceiver) status() receiverStatus {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	s := receiverStatus{received: len(rc.got)}
	for _, r := range rc.got {
		if r.ackedAt > 0 {
			s.answered++
		} else {
			s.waiting++
		}
	}
	return s
}

// freeze stops answering until thaw.
func (rc *slowReceiver) freeze() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !rc.frozen {
		rc.frozen, rc.thawed = true, make(chan struct{})
	}
}

func (rc *slowReceiver) thaw() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.frozen {
		rc.frozen = false
		close(rc.thawed)
	}
}

// markKill, called while frozen once the sender is dead, returns the
// current tick, the ids of the deliveries that arrived but were never
// answered, and the set of event ids received so far.
func (rc *slowReceiver) markKill() (tick int, cutOff []string, seen map[string]bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	seen = map[string]bool{}
	for _, r := range rc.got {
		seen[r.id] = true
		if r.ackedAt == 0 && !slices.Contains(cutOff, r.id) {
			cutOff = append(cutOff, r.id)
		}
	}
	return rc.tick, cutOff, seen
}

// receipts returns a copy of what arrived, in arrival order.
func (rc *slowReceiver) receipts() []receipt {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]receipt, len(rc.got))
	for i, r := range rc.got {
		out[i] = *r
	}
	return out
}

func (rc *slowReceiver) problemList() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.problems)
}

// sameJSON reports whether a and b are the same JSON up to insignificant
// whitespace.
func sameJSON(a, b []byte) bool {
	var ca, cb bytes.Buffer
	return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}
