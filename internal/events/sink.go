package events

import (
	"context"
	"fmt"
	"time"

	"github.com/refit-dev/refit/internal/backoff"
	"github.com/refit-dev/refit/internal/store"
)

// Sink is a message broker that gets every event, in outbox order, as a
// CloudEvent. Publish returns nil only once the broker has durably
// accepted the event; it may be called again with an event it already
// accepted (after a crash, say), with the same id.
type Sink interface {
	// Name identifies the sink's cursor in the store, e.g. "nats".
	Name() string
	// Publish sends one event; body is its structured-mode CloudEvent.
	Publish(ctx context.Context, e store.Event, body []byte) error
}

// sinkBatch is how many events a sink reads per query; its cursor is
// saved after each batch and after each failure.
const sinkBatch = 256

// RunSink publishes every event to sink, in order, from where the sink
// last left off (a sink seen for the first time starts with the events
// after now), until ctx ends; then it returns nil. A failed publish is
// retried, with the dispatcher's backoff: a broker that is down delays
// events but loses none, since events are not pruned before every sink
// has them. An event the sink keeps refusing for Config.RetryFor (too
// large for the broker, say) is given up — logged and counted as dead —
// so that it does not stop every later event. Run it beside Run, one
// goroutine per sink.
//
// Store errors (reading events, saving the cursor) back off, from 100 ms
// to 30 s, and are logged once per episode, not once per attempt.
func (d *Dispatcher) RunSink(ctx context.Context, sink Sink) error {
	name := sink.Name()
	storeErr := &backoff.Tracker{Logger: d.log.With("sink", name), What: "event sink " + name + ": store"}
	// storeFailed backs off after a store error; it reports whether to
	// go on (ctx has not ended).
	storeFailed := func(err error) bool {
		if ctx.Err() != nil {
			return false
		}
		return sleep(ctx, storeErr.Fail(err))
	}
	var cursor int64
	for {
		c, err := d.cfg.Store.SinkCursor(ctx, name)
		if err == nil {
			cursor = c
			storeErr.Succeed()
			break
		}
		if !storeFailed(fmt.Errorf("reading the cursor of sink %s: %w", name, err)) {
			return nil
		}
	}
	failures := 0
	var failingSince time.Time // when the event at the cursor first failed
	for {
		changed := d.changes() // before reading, so no Notify is missed
		evs, err := d.cfg.Store.ListEvents(ctx, store.EventFilter{After: cursor, Limit: sinkBatch})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if !storeFailed(fmt.Errorf("reading events for sink %s: %w", name, err)) {
				return nil
			}
			continue
		}
		d.sinkLag(name, evs)
		if len(evs) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
			case <-time.After(d.cfg.Poll):
			}
			continue
		}
		published, err := d.publish(ctx, sink, evs)
		if published > 0 {
			cursor = evs[published-1].Seq
			if err := d.cfg.Store.AdvanceSink(context.WithoutCancel(ctx), name, cursor); err != nil {
				// The broker has them (a restart republishes them, with
				// the same ids, for the broker to drop); back off.
				if !storeFailed(fmt.Errorf("saving the cursor of sink %s: %w", name, err)) {
					return nil
				}
			} else {
				storeErr.Succeed()
			}
		}
		if err == nil {
			failures, failingSince = 0, time.Time{}
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if published > 0 || failingSince.IsZero() {
			failures, failingSince = 0, time.Now() // a new event is failing
		}
		if bad := evs[published]; time.Since(failingSince) >= d.cfg.RetryFor {
			d.log.Error("event sink gave up on an event", "sink", name, "seq", bad.Seq, "event", bad.ID,
				"type", bad.Type, "attempts", failures+1, "retried_for", d.cfg.RetryFor, "err", err)
			if d.cfg.Metrics != nil {
				d.cfg.Metrics.Published.WithLabelValues(name, ResultDead).Inc()
			}
			cursor = bad.Seq
			if err := d.cfg.Store.AdvanceSink(context.WithoutCancel(ctx), name, cursor); err != nil {
				if !storeFailed(fmt.Errorf("saving the cursor of sink %s: %w", name, err)) {
					return nil
				}
			} else {
				storeErr.Succeed()
			}
			failures, failingSince = 0, time.Time{}
			continue
		}
		wait := min(d.backoff(failures), time.Until(failingSince.Add(d.cfg.RetryFor)))
		failures++
		d.log.Warn("event sink publish failed", "sink", name, "seq", evs[published].Seq, "event", evs[published].ID,
			"type", evs[published].Type, "attempt", failures, "next", wait.Round(time.Millisecond), "err", err)
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// publish sends evs in order until one fails; it returns how many went.
func (d *Dispatcher) publish(ctx context.Context, sink Sink, evs []store.Event) (int, error) {
	for i, e := range evs {
		body, err := CloudEvent(e, d.cfg.Source)
		if err != nil {
			return i, err
		}
		err = sink.Publish(ctx, e, body)
		if d.cfg.Metrics != nil {
			result := ResultDelivered
			if err != nil {
				result = ResultFailed
			}
			d.cfg.Metrics.Published.WithLabelValues(sink.Name(), result).Inc()
		}
		if err != nil {
			return i, fmt.Errorf("publishing event %d (%s) to %s: %w", e.Seq, e.Type, sink.Name(), err)
		}
	}
	return len(evs), nil
}

// sinkLag sets the sink's lag metric from the events it has yet to
// publish.
func (d *Dispatcher) sinkLag(name string, pending []store.Event) {
	if d.cfg.Metrics == nil {
		return
	}
	age := 0.0
	if len(pending) > 0 {
		age = max(time.Since(pending[0].Time).Seconds(), 0)
	}
	d.cfg.Metrics.SinkLag.WithLabelValues(name).Set(age)
}

// sleep waits for d or ctx; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
