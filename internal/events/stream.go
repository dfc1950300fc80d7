package events

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/refit-dev/refit/internal/store"
)

// streamBatch is how many events a stream reads per query.
const streamBatch = 500

// Stream returns the Server-Sent Events handler for
// GET /api/v1/events/stream. Each event is written as
//
//	id: <seq>
//	event: <type>
//	data: <CloudEvent JSON, as CloudEvent renders it>
//
// followed by a blank line. The stream starts after the event named by
// the Last-Event-ID header or, failing that, the after=N query
// parameter; with neither it starts at the newest event (only new events
// are sent; after=0 replays the whole retained outbox). Optional type=
// (full or without "dev.refit.") and subject= parameters filter it. A
// comment line is sent every 15s to keep proxies from closing an idle
// stream. It wakes on Notify, and polls every Config.Poll for events
// committed by other processes; it ends when the request's context
// does.
func (d *Dispatcher) Stream() http.Handler {
	return http.HandlerFunc(d.serveStream)
}

func (d *Dispatcher) serveStream(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	f := store.EventFilter{Type: q.Get("type"), Subject: q.Get("subject"), Limit: streamBatch}
	from, name := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if from == "" {
		from, name = q.Get("after"), "after"
	}
	if from != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(from), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("%s %q is not an event sequence number", name, from), http.StatusBadRequest)
			return
		}
		f.After = n
	} else {
		last, err := d.cfg.Store.LastEventSeq(ctx)
		if err != nil {
			d.log.Error("event stream", "err", err)
			http.Error(w, "reading events failed", http.StatusInternalServerError)
			return
		}
		f.After = last
	}

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's WriteTimeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := flush(); err != nil {
		return
	}

	beat := time.NewTicker(d.heartbeat)
	defer beat.Stop()
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		changed := d.changes() // before reading: a Notify during the read is not lost
		n, err := d.sendEvents(ctx, bw, &f)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Info("event stream ended", "err", err)
			}
			return
		}
		if err := flush(); err != nil {
			return
		}
		if n == streamBatch {
			continue // more waiting
		}
		poll.Reset(d.cfg.Poll)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-poll.C:
		case <-beat.C:
			if _, err := bw.WriteString(": heartbeat\n\n"); err != nil {
				return
			}
			if err := flush(); err != nil {
				return
			}
		}
	}
}

// sendEvents writes the events after f.After, advances f.After and
// returns how many events it read.
func (d *Dispatcher) sendEvents(ctx context.Context, bw *bufio.Writer, f *store.EventFilter) (int, error) {
	evs, err := d.cfg.Store.ListEvents(ctx, *f)
	if err != nil {
		return 0, err
	}
	for _, e := range evs {
		f.After = e.Seq
		body, err := CloudEvent(e, d.cfg.Source)
		if err != nil {
			d.log.Error("event stream: skipping event", "seq", e.Seq, "err", err)
			continue
		}
		if _, err := fmt.Fprintf(bw, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, body); err != nil {
			return 0, err
		}
	}
	return len(evs), nil
}
