package backoff

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPolicyDelay(t *testing.T) {
	for _, tc := range []struct {
		p        Policy
		n        int
		min, max time.Duration
	}{
		{Policy{}, 0, 80 * time.Millisecond, 120 * time.Millisecond},
		{Policy{}, 1, 80 * time.Millisecond, 120 * time.Millisecond},
		{Policy{}, 4, 640 * time.Millisecond, 960 * time.Millisecond},
		{Policy{}, 100, 24 * time.Second, 30 * time.Second}, // capped, never above Max
		{Policy{}, 1 << 30, 24 * time.Second, 30 * time.Second},
		{Policy{Min: time.Second, Max: time.Minute, Jitter: -1}, 3, 4 * time.Second, 4 * time.Second},
		{Policy{Min: time.Minute}, 1, 48 * time.Second, time.Minute}, // Max below Min is Min
	} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := tc.p.Delay(tc.n)
			if d < tc.min || d > tc.max {
				t.Fatalf("%+v.Delay(%d) = %v, want in [%v, %v]", tc.p, tc.n, d, tc.min, tc.max)
			}
			seen[d] = true
		}
		if tc.min != tc.max && len(seen) < 10 {
			t.Errorf("%+v.Delay(%d): %d distinct values in 200 calls: no jitter?", tc.p, tc.n, len(seen))
		}
	}
}

// TestTrackerLogsEpisodes: a thousand failures in a row log one line,
// plus one "still failing" per Every, and the end of the episode one
// "recovered"; the waits grow and Wait holds the loop back.
func TestTrackerLogsEpisodes(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	tr := &Tracker{Logger: log, What: "test loop: store", Every: 50 * time.Millisecond,
		Policy: Policy{Min: time.Millisecond, Max: 10 * time.Millisecond, Jitter: -1}}
	if tr.Failing() || tr.Wait() != 0 {
		t.Fatal("a new tracker is failing")
	}
	err := errors.New("disk full")
	var waits []time.Duration
	for i := range 1000 {
		waits = append(waits, tr.Fail(err))
		if i == 0 && tr.Wait() <= 0 {
			t.Error("Wait after a failure is 0")
		}
	}
	if want := []time.Duration{1, 2, 4, 8, 10, 10}; !equalMs(waits[:6], want) {
		t.Errorf("waits = %v, want %v ms", waits[:6], want)
	}
	time.Sleep(60 * time.Millisecond)
	tr.Fail(err) // more than Every later: one "still failing"
	tr.Fail(err)
	tr.Succeed()
	tr.Succeed() // not failing: nothing
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "failing; backing off") || !strings.Contains(lines[0], "disk full") ||
		!strings.Contains(lines[1], "still failing") || !strings.Contains(lines[1], "attempts=1001") ||
		!strings.Contains(lines[2], "recovered") || !strings.Contains(lines[2], "attempts=1002") {
		t.Errorf("log of 1002 failures and a recovery:\n%s\nwant 3 lines: failing, still failing (attempts=1001), recovered (attempts=1002)", out)
	}
	if tr.Failing() || tr.Wait() != 0 {
		t.Error("still failing after Succeed")
	}
	if w := tr.Fail(err); w != time.Millisecond {
		t.Errorf("first wait of a new episode = %v, want Min", w)
	}
}

func equalMs(got, want []time.Duration) bool {
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			return false
		}
	}
	return true
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	const day = 24 * time.Hour
	for _, tc := range []struct {
		v     string
		limit time.Duration
		want  time.Duration
	}{
		{"", day, 0},
		{"7", day, 7 * time.Second},
		{" 30 ", day, 30 * time.Second},
		{"1", 0, time.Second},
		{" 120 ", 0, 2 * time.Minute},
		{"0", day, 0},
		{"-5", day, 0},
		{"-5", 0, 0},
		{"soon", day, 0},
		{"1.5", day, 0},
		{"9999999999999", day, day},     // huge: capped
		{"9999999999999999999", day, 0}, // overflows int64: unreadable
		{"9223372036854775807", 0, maxDuration / time.Second * time.Second}, // no limit, no overflow
		{now.Add(2 * time.Minute).Format(http.TimeFormat), day, 2 * time.Minute},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 0, 30 * time.Second},
		{now.Add(-2 * time.Minute).Format(http.TimeFormat), day, 0},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, 0},
		{now.Add(400 * day).Format(http.TimeFormat), day, day},
		{now.Add(2 * time.Minute).Format(time.RFC850), day, 2 * time.Minute}, // obsolete date forms too
		{"Mon, 99 Jan 2025 00:00:00 GMT", day, 0},
	} {
		if got := RetryAfter(tc.v, now, tc.limit); got != tc.want {
			t.Errorf("RetryAfter(%q, limit %s) = %s, want %s", tc.v, tc.limit, got, tc.want)
		}
	}
}
