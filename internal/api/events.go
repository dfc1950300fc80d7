package api

import (
	"encoding/json"
	"time"
)

// EventPrefix starts every event type ("dev.refit.run.succeeded"); where
// the API takes a type, it takes it with or without the prefix.
const EventPrefix = "dev.refit."

// Event is one entry of GET /api/v1/events: an event of the outbox.
type Event struct {
	Seq     int64           `json:"seq"`
	ID      string          `json:"id"` // a UUID, the CloudEvent id
	Type    string          `json:"type"`
	Subject string          `json:"subject"` // task name or base reference
	Time    time.Time       `json:"time"`
	Data    json.RawMessage `json:"data"` // per type: see README's events section
}

// EventFilter is the query of GET /api/v1/events.
type EventFilter struct {
	After   int64  // only events with Seq > After
	Type    string // "" = any
	Subject string // "" = any
	Limit   int    // 1 to 1000; 0 = 100
}

// SubscriptionRequest is the body of POST /api/v1/subscriptions.
type SubscriptionRequest struct {
	URL     string   `json:"url"`
	Types   []string `json:"types,omitempty"`   // full or without EventPrefix; empty = all
	Task    string   `json:"task,omitempty"`    // glob on task names
	BaseRef string   `json:"baseRef,omitempty"` // glob on base references
	Secret  string   `json:"secret,omitempty"`  // HMAC key; stored, never returned
}

// Subscription is a stored subscription (without its secret).
type Subscription struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Types     []string  `json:"types,omitempty"`   // full types; empty = all
	Task      string    `json:"task,omitempty"`    // glob on task names; "" = all
	BaseRef   string    `json:"baseRef,omitempty"` // glob on base references; "" = all
	Signed    bool      `json:"signed"`            // it has a secret
	CreatedAt time.Time `json:"createdAt"`
	Cursor    int64     `json:"cursor"` // last event Seq fanned out to it
}

// Delivery is one entry of GET /api/v1/deliveries: an event on its way
// to one subscription.
type Delivery struct {
	Subscription  string    `json:"subscription"`
	Event         Event     `json:"event"`
	State         string    `json:"state"` // pending, delivered, dead
	Attempts      int       `json:"attempts"`
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
	LastError     string    `json:"lastError,omitempty"`
	DeliveredAt   time.Time `json:"deliveredAt,omitzero"`
	// RetrySince is when the current series of attempts began (set by a
	// redelivery); zero = when the event was written.
	RetrySince time.Time `json:"retrySince,omitzero"`
}

// RedeliverRequest is the body of POST /api/v1/events/redeliver: at
// least one of ID, Since or Dead.
type RedeliverRequest struct {
	ID string `json:"id,omitempty"` // an event's id (a UUID)
	// Since selects events at or after a time: RFC 3339
	// ("2026-05-03T10:00:00Z") or a duration ago ("2h", "90m").
	Since        string `json:"since,omitempty"`
	Dead         bool   `json:"dead,omitempty"`
	Subscription string `json:"subscription,omitempty"`
}

// RedeliverResult answers POST /api/v1/events/redeliver.
type RedeliverResult struct {
	Redelivered int `json:"redelivered"`
}

// DiscardResult answers DELETE /api/v1/deliveries?state=dead.
type DiscardResult struct {
	Discarded int `json:"discarded"`
}

// CredentialRequest is the body of PUT /api/v1/registries/{host}.
type CredentialRequest struct {
	Username string `json:"username"`
	Password string `json:"password"` // or token; stored encrypted, never returned
}

// RegistryCredential is a stored registry login, without its password.
type RegistryCredential struct {
	Host      string    `json:"host"`
	Username  string    `json:"username"`
	UpdatedAt time.Time `json:"updatedAt"`
}
