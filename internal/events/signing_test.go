package events

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/store"
)

func TestSignStandard(t *testing.T) {
	// The Standard Webhooks reference vector: its secret
	// "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" is the base64 of the key
	// bytes; refit's key is the secret's bytes as given, so the vector's
	// decoded key is passed as the secret.
	key, err := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := SignStandard(string(key), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("SignStandard = %s, want %s", got, want)
	}
}

// tolerance is the README's window for webhook-timestamp.
const tolerance = 5 * time.Minute

// verifyStandard is the README's verification, as a subscriber writes it:
// HMAC-SHA256 keyed with the subscription secret as given over
// "{webhook-id}.{webhook-timestamp}.{body}", base64, compared with each
// "v1,<sig>" in webhook-signature; and the timestamp within 5 minutes of
// now.
func verifyStandard(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("bad webhook-timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("stale webhook-timestamp")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("bad webhook-signature")
}

// verifyingReceiver is a subscriber that verifies Standard Webhooks
// signatures with a clock the test sets, answers the first fail requests
// with 503, and records every request it took.
type verifyingReceiver struct {
	t      *testing.T
	secret string
	fail   int

	mu       sync.Mutex
	now      func() time.Time
	requests []recorded
	refused  []error
}

type recorded struct {
	header http.Header
	body   []byte
}

func (rc *verifyingReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.t.Errorf("reading body: %v", err)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err := verifyStandard(rc.secret, r.Header, body, rc.now()); err != nil {
		rc.refused = append(rc.refused, err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	rc.requests = append(rc.requests, recorded{r.Header.Clone(), body})
	if len(rc.requests) <= rc.fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *verifyingReceiver) took() ([]recorded, []error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.requests...), append([]error(nil), rc.refused...)
}

// TestStandardWebhooksSignature: deliveries carry webhook-id (the event
// id, the same on a retry), webhook-timestamp (the attempt's time) and a
// webhook-signature a subscriber verifies with the README's check, beside
// the GitHub-style X-Refit-Signature-256; a captured delivery replayed
// after the 5-minute window is refused, and so is one whose timestamp the
// replayer moved to the present.
func TestStandardWebhooksSignature(t *testing.T) {
	s := openStore(t)
	const secret = "plain-secret, not whsec_ base64"
	rcv := &verifyingReceiver{t: t, secret: secret, fail: 1, now: time.Now}
	srv := serve(t, rcv)
	subscribe(t, s, store.Subscription{URL: srv.URL, Secret: secret})
	unsignedRcv := &receiver{t: t}
	unsigned := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("webhook-id") == "" || r.Header.Get("webhook-timestamp") == "" || r.Header.Get("webhook-signature") != "" {
			t.Errorf("unsigned subscription: webhook-id %q, webhook-timestamp %q, webhook-signature %q",
				r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"))
		}
		unsignedRcv.ServeHTTP(w, r)
	}))
	subscribe(t, s, store.Subscription{URL: unsigned.URL})
	start(t, testConfig(s))
	evs := emit(t, s, [2]string{store.EventRunQueued, "app"})

	var reqs []recorded
	waitFor(t, 10*time.Second, "a delivery and its retry", func() bool {
		reqs, _ = rcv.took()
		return len(reqs) >= 2
	})
	waitFor(t, 5*time.Second, "the unsigned delivery", func() bool { return len(unsignedRcv.received()) == 1 })
	if _, refused := rcv.took(); len(refused) != 0 {
		t.Fatalf("the receiver refused refit's own deliveries: %v", refused)
	}
	for i, r := range reqs[:2] {
		if got := r.header.Get("webhook-id"); got != evs[0].ID {
			t.Errorf("attempt %d: webhook-id %q, want the event id %q", i+1, got, evs[0].ID)
		}
		if got, want := r.header.Get("webhook-timestamp"), r.header.Get(HeaderTimestamp); got != want {
			t.Errorf("attempt %d: webhook-timestamp %q, X-Refit-Timestamp %q", i+1, got, want)
		}
		if got := r.header.Get(HeaderSignature); !hmac.Equal([]byte(got), []byte(Sign(secret, r.body))) {
			t.Errorf("attempt %d: X-Refit-Signature-256 %q no longer signs the body", i+1, got)
		}
	}

	// An attacker who captured the first delivery replays it later: past
	// the window as it was, or with webhook-timestamp set to the present.
	// The body-only signature would take both.
	captured := reqs[0]
	rcv.mu.Lock()
	rcv.now = func() time.Time { return time.Now().Add(tolerance + time.Minute) }
	rcv.mu.Unlock()
	replay := func(h http.Header) int {
		req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(captured.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status := replay(captured.header.Clone()); status != http.StatusUnauthorized {
		t.Errorf("replay 6 minutes later: %d, want 401", status)
	}
	moved := captured.header.Clone()
	moved.Set("webhook-timestamp", strconv.FormatInt(time.Now().Add(tolerance+time.Minute).Unix(), 10))
	if status := replay(moved); status != http.StatusUnauthorized {
		t.Errorf("replay with a fresh webhook-timestamp: %d, want 401", status)
	}
	if _, refused := rcv.took(); len(refused) != 2 || refused[0].Error() != "stale webhook-timestamp" ||
		refused[1].Error() != "bad webhook-signature" {
		t.Errorf("replays refused for %v, want [stale webhook-timestamp, bad webhook-signature]", refused)
	}
	if got := captured.header.Get(HeaderSignature); got != Sign(secret, captured.body) {
		t.Errorf("X-Refit-Signature-256 %q", got)
	}
}
