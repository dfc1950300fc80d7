package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// EventPrefix starts every event type (CloudEvents reverse-DNS style).
const EventPrefix = "dev.refit."

// Event types refit emits (EventPrefix + these).
const (
	EventBaseUpdated = EventPrefix + "base.updated"
	EventRunQueued   = EventPrefix + "run.queued"
	EventRunStarted  = EventPrefix + "run.started"
	EventRunSucceed  = EventPrefix + "run.succeeded"
	EventRunFailed   = EventPrefix + "run.failed"
	EventRunCanceled = EventPrefix + "run.canceled"
	EventImagePushed = EventPrefix + "image.pushed"
	EventTaskChanged = EventPrefix + "task.changed"

	EventRunTesting          = EventPrefix + "run.testing"
	EventRunAwaitingApproval = EventPrefix + "run.awaiting_approval"
	EventRunApproved         = EventPrefix + "run.approved"
	EventRunRejected         = EventPrefix + "run.rejected"
	EventImagePromoted       = EventPrefix + "image.promoted"
	// EventBaseDiff follows a base.updated event once the update's diff
	// (packages, OS release, config, layers) is ready; subject = the base.
	EventBaseDiff = EventPrefix + "base.diff"
	// EventRunSkipped: a base update did not rebuild a task, by its
	// triggers.baseChange policy (the run ends skipped, saying why).
	EventRunSkipped = EventPrefix + "run.skipped"
)

// Event is one row of the outbox. Seq orders events; ID is the
// CloudEvents id, stable across redeliveries.
type Event struct {
	Seq     int64           `json:"seq"`
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Subject string          `json:"subject"` // task name or base reference
	Time    time.Time       `json:"time"`
	Data    json.RawMessage `json:"data"`
}

// newEventID returns a random UUID (version 4).
func newEventID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// emit writes an event in the caller's transaction: it commits, or not,
// with the change it describes.
func emit(ctx context.Context, db execer, typ, subject string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encoding %s event: %w", typ, err)
	}
	_, err = execPrepared(ctx, db, insertEvtSQL,
		newEventID(), typ, subject, formatTime(time.Now()), string(b))
	if err != nil {
		return fmt.Errorf("writing %s event: %w", typ, translate(err))
	}
	if c := record(db); c != nil {
		c.Events = append(c.Events, Event{Type: typ, Subject: subject, Data: b})
	}
	return nil
}

// Emit writes an event in the transaction.
func (t *Tx) Emit(typ, subject string, data any) error { return emit(t.ctx, t.tx, typ, subject, data) }

// RunEvent is the data of run.* events: the run without its task spec
// (which may hold credentials in a source URL).
type RunEvent struct {
	ID        string            `json:"id"`
	Task      string            `json:"task"`
	State     State             `json:"state"`
	Cause     Cause             `json:"cause"`
	Attempt   int               `json:"attempt,omitempty"`
	Commit    string            `json:"commit,omitempty"`
	Image     string            `json:"image,omitempty"`
	Digest    string            `json:"digest,omitempty"`
	Tags      []string          `json:"tags,omitempty"`
	Bases     []UsedBase        `json:"bases,omitempty"`
	Step      string            `json:"step,omitempty"`
	Error     string            `json:"error,omitempty"`
	BlockedBy []string          `json:"blockedBy,omitempty"`
	Timings   map[string]string `json:"timings,omitempty"`
}

func runEvent(r Run) RunEvent {
	e := RunEvent{ID: FormatRunID(r.ID), Task: r.Task, State: r.State, Cause: r.Cause, Attempt: r.Attempts,
		Commit: r.Commit, Image: r.Image, Digest: r.Digest, Tags: r.Tags, Bases: r.Bases, Step: r.Step,
		Error: r.Error, Timings: r.Timings}
	for _, b := range r.BlockedBy {
		e.BlockedBy = append(e.BlockedBy, FormatRunID(b))
	}
	return e
}

// ImagePushed is the data of image.pushed.
type ImagePushed struct {
	Run    string     `json:"run"`
	Task   string     `json:"task"`
	Image  string     `json:"image"` // repository@digest
	Digest string     `json:"digest"`
	Tags   []string   `json:"tags"`
	Bases  []UsedBase `json:"bases,omitempty"`
	Commit string     `json:"commit,omitempty"`
}

// TaskChanged is the data of task.changed.
type TaskChanged struct {
	Task   string `json:"task"`
	Action string `json:"action"` // created, updated, deleted
	Image  string `json:"image,omitempty"`
}

// emitRunEnd writes image.pushed (for a success) and the run's end event.
func emitRunEnd(ctx context.Context, db execer, r Run) error {
	typ := ""
	switch r.State {
	case StateSucceeded:
		if r.Image != "" {
			err := emit(ctx, db, EventImagePushed, r.Task, ImagePushed{Run: FormatRunID(r.ID), Task: r.Task,
				Image: r.Image, Digest: r.Digest, Tags: r.Tags, Bases: r.Bases, Commit: r.Commit})
			if err != nil {
				return err
			}
		}
		typ = EventRunSucceed
	case StateFailed:
		typ = EventRunFailed
	case StateCanceled, StateSuperseded:
		typ = EventRunCanceled
	case StateRejected:
		typ = EventRunRejected
	case StateTesting:
		typ = EventRunTesting
	case StateAwaitingApproval:
		typ = EventRunAwaitingApproval
	case StateSkipped:
		typ = EventRunSkipped
	default:
		return nil
	}
	return emit(ctx, db, typ, r.Task, runEvent(r))
}

// EventFilter selects events for ListEvents.
type EventFilter struct {
	After   int64  // only events with Seq > After
	Type    string // "" = any; a full type or one without EventPrefix
	Subject string // "" = any
	Limit   int    // 0 = 100
}

// ListEvents returns events in order of Seq.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) ([]Event, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	typ := f.Type
	if typ != "" && !strings.HasPrefix(typ, EventPrefix) {
		typ = EventPrefix + typ
	}
	rows, err := s.read.QueryContext(ctx, `SELECT seq, id, type, subject, time, data FROM events
		WHERE seq > $1 AND ($2 = '' OR type = $2) AND ($3 = '' OR subject = $3) ORDER BY seq LIMIT $4`,
		f.After, typ, f.Subject, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("listing events: %w", translate(err))
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// GetEvent returns the event with the CloudEvents id, or ErrNotFound (it
// never existed, or was pruned).
func (s *Store) GetEvent(ctx context.Context, id string) (Event, error) {
	e, err := scanEvent(s.read.QueryRowContext(ctx, `SELECT seq, id, type, subject, time, data FROM events WHERE id = $1`, id))
	if err != nil {
		return Event{}, fmt.Errorf("event %s: %w", id, err)
	}
	return e, nil
}

// LastEventSeq returns the newest event's Seq (0 when there is none).
func (s *Store) LastEventSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("reading the last event: %w", translate(err))
	}
	return seq, nil
}

func scanEvent(row scanner) (Event, error) {
	var e Event
	var t, data string
	if err := row.Scan(&e.Seq, &e.ID, &e.Type, &e.Subject, &t, &data); err != nil {
		return Event{}, fmt.Errorf("reading event: %w", translate(err))
	}
	e.Time, e.Data = parseTime(t), json.RawMessage(data)
	return e, nil
}

// Subscription sends matching events to a URL.
type Subscription struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Types     []string  `json:"types,omitempty"`   // full types; empty = all
	TaskGlob  string    `json:"task,omitempty"`    // path.Match pattern on task names; "" = all
	RefGlob   string    `json:"baseRef,omitempty"` // pattern on base references; "" = all
	Secret    string    `json:"-"`                 // HMAC key; never returned
	HasSecret bool      `json:"signed"`
	CreatedAt time.Time `json:"createdAt"`
	Cursor    int64     `json:"cursor"` // last event Seq fanned out to it
}

// CreateSubscription stores a subscription; it starts with events from
// now on (its cursor is the newest event).
func (s *Store) CreateSubscription(ctx context.Context, sub Subscription) (Subscription, error) {
	sub.ID = "s-" + newEventID()[:8]
	sub.CreatedAt = time.Now().UTC()
	types, _ := json.Marshal(nonNilStrings(sub.Types))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&sub.Cursor); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO subscriptions (id, url, types, task_glob, ref_glob, secret, created_at, cursor)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, sub.ID, sub.URL, string(types), sub.TaskGlob, sub.RefGlob, sub.Secret,
			formatTime(sub.CreatedAt), sub.Cursor)
		markDeliveries(tx)
		if err != nil {
			return err
		}
		return appendAudit(ctx, tx, AuditRecord{Action: "subscription.create", Subject: sub.ID, Details: map[string]any{
			"url": sub.URL, "types": nonNilStrings(sub.Types), "task": sub.TaskGlob, "baseRef": sub.RefGlob, "signed": sub.Secret != ""}})
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("creating subscription to %s: %w", sub.URL, translate(err))
	}
	sub.HasSecret = sub.Secret != ""
	return sub, nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ListSubscriptions returns every subscription, with secrets (for the
// dispatcher; the API hides them).
func (s *Store) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, url, types, task_glob, ref_glob, secret, created_at, cursor FROM subscriptions ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("listing subscriptions: %w", translate(err))
	}
	defer rows.Close()
	var out []Subscription
	for rows.Next() {
		var sub Subscription
		var types, created string
		if err := rows.Scan(&sub.ID, &sub.URL, &types, &sub.TaskGlob, &sub.RefGlob, &sub.Secret, &created, &sub.Cursor); err != nil {
			return nil, fmt.Errorf("listing subscriptions: %w", err)
		}
		if err := json.Unmarshal([]byte(types), &sub.Types); err != nil {
			return nil, fmt.Errorf("decoding types of subscription %s: %w", sub.ID, err)
		}
		sub.CreatedAt, sub.HasSecret = parseTime(created), sub.Secret != ""
		out = append(out, sub)
	}
	return out, rows.Err()
}

// DeleteSubscription removes a subscription and its deliveries, or
// returns ErrNotFound.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM subscriptions WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM deliveries WHERE subscription_id = $1`, id)
		markDeliveries(tx)
		if err != nil {
			return err
		}
		return appendAudit(ctx, tx, AuditRecord{Action: "subscription.delete", Subject: id})
	})
	if err != nil {
		return fmt.Errorf("subscription %s: %w", id, translate(err))
	}
	return nil
}

// FanOut queues deliveries to sub of the given events (those that match,
// chosen by the caller) and moves its cursor to cursor, in one
// transaction. A cursor that moved meanwhile (another dispatcher) makes
// it a no-op returning false.
func (s *Store) FanOut(ctx context.Context, sub Subscription, matched []Event, cursor int64) (bool, error) {
	moved := false
	err := s.quietTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE subscriptions SET cursor = $1 WHERE id = $2 AND cursor = $3`, cursor, sub.ID, sub.Cursor)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		moved = true
		now := formatTime(time.Now())
		for _, e := range matched {
			// The first pending delivery of its line is the line's head.
			if _, err := tx.ExecContext(ctx, `INSERT INTO deliveries (subscription_id, event_seq, subject, state, next_attempt_at, head)
				SELECT CAST($1 AS TEXT), CAST($2 AS BIGINT), CAST($3 AS TEXT), 'pending', CAST($4 AS TEXT),
					CASE WHEN EXISTS (SELECT 1 FROM deliveries p
						WHERE p.subscription_id = $1 AND p.subject = $3 AND p.state = 'pending') THEN 0 ELSE 1 END
				WHERE true ON CONFLICT DO NOTHING`, sub.ID, e.Seq, e.Subject, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("fanning out events to subscription %s: %w", sub.ID, translate(err))
	}
	return moved, nil
}

// Delivery is one event owed to one subscription.
type Delivery struct {
	SubscriptionID string    `json:"subscription"`
	Event          Event     `json:"event"`
	State          string    `json:"state"` // pending, delivered, dead
	Attempts       int       `json:"attempts"`
	NextAttemptAt  time.Time `json:"nextAttemptAt,omitzero"`
	LastError      string    `json:"lastError,omitempty"`
	DeliveredAt    time.Time `json:"deliveredAt,omitzero"`
	// RetrySince starts the retry window when the delivery was redelivered
	// (zero: it starts at the event's time).
	RetrySince time.Time `json:"retrySince,omitzero"`
}

// RetryStart is when the delivery's retry window began: the event's time,
// or its last redelivery.
func (d Delivery) RetryStart() time.Time {
	if d.RetrySince.After(d.Event.Time) {
		return d.RetrySince
	}
	return d.Event.Time
}

const deliveryColumns = `d.subscription_id, d.state, d.attempts, d.next_attempt_at, d.last_error, d.delivered_at,
	d.retry_since, e.seq, e.id, e.type, e.subject, e.time, e.data`

func scanDelivery(row scanner) (Delivery, error) {
	var d Delivery
	var next, delivered, since, t, data string
	err := row.Scan(&d.SubscriptionID, &d.State, &d.Attempts, &next, &d.LastError, &delivered, &since,
		&d.Event.Seq, &d.Event.ID, &d.Event.Type, &d.Event.Subject, &t, &data)
	if err != nil {
		return Delivery{}, fmt.Errorf("reading delivery: %w", translate(err))
	}
	d.NextAttemptAt, d.DeliveredAt, d.RetrySince = parseTime(next), parseTime(delivered), parseTime(since)
	d.Event.Time, d.Event.Data = parseTime(t), json.RawMessage(data)
	return d, nil
}

// DueDeliveries returns up to limit pending deliveries that are due and
// first in line for their (subscription, subject): events of one subject
// go out in order, and one subject waiting on a retry holds up no other.
// It reads only line heads, so a long backlog does not slow it.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error) {
	return s.queryDeliveries(ctx, `SELECT `+deliveryColumns+` FROM deliveries d JOIN events e ON e.seq = d.event_seq
		WHERE d.head = 1 AND d.next_attempt_at <= $1 ORDER BY d.event_seq LIMIT $2`, formatTime(now), limit)
}

// DeliveryFilter selects deliveries for ListDeliveries.
type DeliveryFilter struct {
	Subscription string // "" = all
	State        string // "" = all
	Limit        int    // 0 = 100
}

// ListDeliveries returns deliveries, newest event first.
func (s *Store) ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	return s.queryDeliveries(ctx, `SELECT `+deliveryColumns+` FROM deliveries d JOIN events e ON e.seq = d.event_seq
		WHERE ($1 = '' OR d.subscription_id = $1) AND ($2 = '' OR d.state = $2) ORDER BY d.event_seq DESC LIMIT $3`,
		f.Subscription, f.State, f.Limit)
}

func (s *Store) queryDeliveries(ctx context.Context, q string, args ...any) ([]Delivery, error) {
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing deliveries: %w", translate(err))
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeliveryResult records one attempt: delivered, or failed with the next
// attempt's time, or dead (given up).
type DeliveryResult struct {
	Delivered bool
	Dead      bool
	Next      time.Time
	Error     string
}

// RecordAttempt records the outcome of one delivery attempt. A delivery
// that is done (delivered or dead) hands its line's head to the next
// pending delivery of the line, in the same statement.
func (s *Store) RecordAttempt(ctx context.Context, subID string, seq int64, r DeliveryResult) error {
	state, delivered := "pending", ""
	switch {
	case r.Delivered:
		state, delivered = "delivered", formatTime(time.Now())
	case r.Dead:
		state = "dead"
	}
	var err error
	if state == "pending" {
		_, err = s.write.ExecContext(ctx, `UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1,
			last_error = $2 WHERE subscription_id = $3 AND event_seq = $4`, formatTime(r.Next), r.Error, subID, seq)
	} else {
		// One statement updates the finished delivery and makes the first
		// other pending delivery of its line the head (the subquery sees
		// the rows as they were before the statement).
		_, err = s.write.ExecContext(ctx, `UPDATE deliveries SET
			state = CASE WHEN event_seq = $5 THEN $1 ELSE state END,
			attempts = CASE WHEN event_seq = $5 THEN attempts + 1 ELSE attempts END,
			last_error = CASE WHEN event_seq = $5 THEN $2 ELSE last_error END,
			delivered_at = CASE WHEN event_seq = $5 THEN $3 ELSE delivered_at END,
			head = CASE WHEN event_seq = $5 THEN 0 ELSE 1 END
			WHERE subscription_id = $4 AND (event_seq = $5 OR event_seq = (
				SELECT MIN(p.event_seq) FROM deliveries p WHERE p.subscription_id = $4 AND p.state = 'pending'
				AND p.event_seq <> $5
				AND p.subject = (SELECT f.subject FROM deliveries f WHERE f.subscription_id = $4 AND f.event_seq = $5)))`,
			state, r.Error, delivered, subID, seq)
	}
	if err != nil {
		return fmt.Errorf("recording delivery of event %d to %s: %w", seq, subID, translate(err))
	}
	return nil
}

// RedeliverFilter selects deliveries to send again.
type RedeliverFilter struct {
	EventID      string    // one event (by CloudEvents id)
	Since        time.Time // events at or after
	Dead         bool      // only dead-lettered deliveries
	Subscription string    // "" = all subscriptions
}

// Redeliver makes matching deliveries pending and due now, with a fresh
// retry window and backoff; it returns how many. The event keeps its id,
// so receivers can deduplicate. A redelivered event goes out before later
// pending events of its subject, keeping their order.
func (s *Store) Redeliver(ctx context.Context, f RedeliverFilter) (int, error) {
	state := ""
	if f.Dead {
		state = "dead"
	}
	since := ""
	if !f.Since.IsZero() {
		since = formatTime(f.Since)
	}
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		markDeliveries(tx)
		now := formatTime(time.Now())
		res, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'pending', next_attempt_at = $1, last_error = '',
			attempts = 0, retry_since = $1
			WHERE ($2 = '' OR subscription_id = $2) AND ($3 = '' OR state = $3)
			AND event_seq IN (SELECT seq FROM events WHERE ($4 = '' OR id = $4) AND ($5 = '' OR time >= $5))`,
			now, f.Subscription, state, f.EventID, since)
		if err != nil {
			return err
		}
		if n, _ = res.RowsAffected(); n == 0 {
			return nil
		}
		if err := appendAudit(ctx, tx, AuditRecord{Action: "event.redeliver", Subject: cmp.Or(f.Subscription, "*"), Details: map[string]any{
			"event": f.EventID, "since": since, "dead": f.Dead, "subscription": f.Subscription, "deliveries": n}}); err != nil {
			return err
		}
		// Lines may have a new first pending delivery: find heads again.
		_, err = tx.ExecContext(ctx, `UPDATE deliveries SET head = CASE WHEN state = 'pending' AND NOT EXISTS (
				SELECT 1 FROM deliveries p WHERE p.subscription_id = deliveries.subscription_id
				AND p.subject = deliveries.subject AND p.state = 'pending' AND p.event_seq < deliveries.event_seq)
			THEN 1 ELSE 0 END
			WHERE (head = 1 OR state = 'pending') AND ($1 = '' OR subscription_id = $1)`, f.Subscription)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("redelivering: %w", translate(err))
	}
	return int(n), nil
}

// DiscardFilter selects dead-lettered deliveries to delete.
type DiscardFilter struct {
	EventID      string // "" = any event
	Subscription string // "" = all subscriptions
}

// DiscardDead deletes dead-lettered deliveries (only those: a pending one
// is never dropped) and returns how many; their events are then pruned
// like delivered ones.
func (s *Store) DiscardDead(ctx context.Context, f DiscardFilter) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM deliveries WHERE state = 'dead'
			AND ($1 = '' OR subscription_id = $1)
			AND ($2 = '' OR event_seq IN (SELECT seq FROM events WHERE id = $2))`, f.Subscription, f.EventID)
		if err != nil {
			return err
		}
		if n, _ = res.RowsAffected(); n == 0 {
			return nil
		}
		return appendAudit(ctx, tx, AuditRecord{Action: "delivery.discard", Subject: cmp.Or(f.Subscription, "*"), Details: map[string]any{
			"event": f.EventID, "subscription": f.Subscription, "deliveries": n}})
	})
	if err != nil {
		return 0, fmt.Errorf("discarding dead-lettered deliveries: %w", translate(err))
	}
	return int(n), nil
}

// PruneEvents deletes events older than before whose deliveries all
// succeeded (dead-lettered and pending ones are kept), with those
// deliveries; it returns how many events went.
func (s *Store) PruneEvents(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		b := formatTime(before)
		if _, err := tx.ExecContext(ctx, `DELETE FROM deliveries WHERE state = 'delivered'
			AND event_seq IN (SELECT seq FROM events WHERE time < $1)`, b); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE time < $1
			AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq)
			AND seq <= COALESCE((SELECT MIN(cursor) FROM subscriptions), seq)
			AND seq <= COALESCE((SELECT MIN(cursor) FROM sinks), seq)`, b)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", translate(err))
	}
	return int(n), nil
}

// OldestPending returns, per subscription, the time of its oldest
// undelivered (pending) event: the delivery lag.
func (s *Store) OldestPending(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT d.subscription_id, MIN(e.time) FROM deliveries d JOIN events e ON e.seq = d.event_seq
		WHERE d.state = 'pending' GROUP BY d.subscription_id`)
	if err != nil {
		return nil, fmt.Errorf("measuring delivery lag: %w", translate(err))
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id, t string
		if err := rows.Scan(&id, &t); err != nil {
			return nil, err
		}
		out[id] = parseTime(t)
	}
	return out, rows.Err()
}

// SinkCursor returns the last event Seq the named sink acknowledged. A
// sink seen for the first time starts after the newest event: it gets
// events from now on.
func (s *Store) SinkCursor(ctx context.Context, name string) (int64, error) {
	var cursor int64
	err := s.quietTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sinks (name, cursor) SELECT CAST($1 AS TEXT), COALESCE(MAX(seq), 0) FROM events
			WHERE true ON CONFLICT (name) DO NOTHING`, name); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT cursor FROM sinks WHERE name = $1`, name).Scan(&cursor)
	})
	if err != nil {
		return 0, fmt.Errorf("reading the cursor of sink %s: %w", name, translate(err))
	}
	return cursor, nil
}

// AdvanceSink records that the named sink acknowledged every event up to
// cursor. It never moves a cursor back.
func (s *Store) AdvanceSink(ctx context.Context, name string, cursor int64) error {
	_, err := s.write.ExecContext(ctx, `UPDATE sinks SET cursor = $1 WHERE name = $2 AND cursor < $1`, cursor, name)
	if err != nil {
		return fmt.Errorf("advancing sink %s to event %d: %w", name, cursor, translate(err))
	}
	return nil
}

// KeepSinks forgets every sink but the named ones, so that a sink no
// longer configured holds back no pruning. A sink configured again later
// starts from then.
func (s *Store) KeepSinks(ctx context.Context, names ...string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT name FROM sinks`)
		if err != nil {
			return err
		}
		var drop []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			if !slices.Contains(names, n) {
				drop = append(drop, n)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, n := range drop {
			if _, err := tx.ExecContext(ctx, `DELETE FROM sinks WHERE name = $1`, n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("forgetting unconfigured sinks: %w", translate(err))
	}
	return nil
}
