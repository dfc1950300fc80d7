package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/store"
)

// eventStore is what the event endpoints read and write.
type eventStore interface {
	ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error)
	GetEvent(ctx context.Context, id string) (store.Event, error)
	LastEventSeq(ctx context.Context) (int64, error)
	CreateSubscription(ctx context.Context, sub store.Subscription) (store.Subscription, error)
	ListSubscriptions(ctx context.Context) ([]store.Subscription, error)
	DeleteSubscription(ctx context.Context, id string) error
	ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, error)
	Redeliver(ctx context.Context, f store.RedeliverFilter) (int, error)
	DiscardDead(ctx context.Context, f store.DiscardFilter) (int, error)
}

// eventTypes are the event types a subscription may ask for (read only).
var eventTypes = []string{
	store.EventBaseUpdated, store.EventRunQueued, store.EventRunStarted, store.EventRunSucceed,
	store.EventRunFailed, store.EventRunCanceled, store.EventImagePushed, store.EventTaskChanged,
	store.EventBaseTagged,
	store.EventBaseDiff, store.EventRunSkipped,
}

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request) error {
	var req api.SubscriptionRequest
	if err := decodeJSON(w, r, 64<<10, "subscription", &req); err != nil {
		return err
	}
	if err := checkURL(req.URL); err != nil {
		return &invalidError{fmt.Errorf("url: %w", err)}
	}
	if err := s.cfg.ValidateTarget(req.URL); err != nil {
		return &invalidError{fmt.Errorf("url: %w", err)}
	}
	sub := store.Subscription{URL: req.URL, TaskGlob: req.Task, RefGlob: req.BaseRef, Secret: req.Secret}
	for _, t := range req.Types {
		full := t
		if !strings.HasPrefix(full, store.EventPrefix) {
			full = store.EventPrefix + t
		}
		if !slices.Contains(eventTypes, full) {
			return &invalidError{fmt.Errorf("types: unknown event type %q (known: %s)", t, strings.Join(eventTypes, ", "))}
		}
		sub.Types = append(sub.Types, full)
	}
	for field, g := range map[string]string{"task": req.Task, "baseRef": req.BaseRef} {
		if _, err := path.Match(g, ""); err != nil {
			return &invalidError{fmt.Errorf("%s: bad pattern %q: %w", field, g, err)}
		}
	}
	sub, err := s.cfg.Events.CreateSubscription(r.Context(), sub)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, apiSubscription(sub))
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request) error {
	subs, err := s.cfg.Events.ListSubscriptions(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiList(subs, apiSubscription))
}

func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Events.DeleteSubscription(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.EventFilter{Type: q.Get("type"), Subject: q.Get("subject")}
	var err error
	if a := q.Get("after"); a != "" {
		if f.After, err = strconv.ParseInt(a, 10, 64); err != nil {
			return &httpError{http.StatusBadRequest, fmt.Sprintf("after %q is not a number", a)}
		}
	}
	if l := q.Get("limit"); l != "" {
		if f.Limit, err = strconv.Atoi(l); err != nil || f.Limit < 1 || f.Limit > 1000 {
			return &httpError{http.StatusBadRequest, fmt.Sprintf("limit %q must be a number from 1 to 1000", l)}
		}
	}
	evs, err := s.cfg.Events.ListEvents(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiList(evs, apiEvent))
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	ds, err := s.cfg.Events.ListDeliveries(r.Context(), store.DeliveryFilter{Subscription: q.Get("subscription"), State: q.Get("state")})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiList(ds, apiDelivery))
}

// checkURL checks what every subscription URL must be, whatever the
// server's allow-list: absolute http or https, with a host, and a port,
// if any, from 1 to 65535. Its errors do not repeat the URL (it may hold
// credentials).
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL
		}
		return fmt.Errorf("not a URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	case u.Hostname() == "":
		return errors.New("no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %s is not from 1 to 65535", p)
		}
	}
	return nil
}

// eventIDRE is the shape of an event id (a UUID).
var eventIDRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// parseSince reads a point in time given as RFC 3339 or as a duration
// before now ("2h").
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("since: %q is neither a duration ago (90m, 2h, 1h30m) nor an RFC 3339 time (2026-05-03T10:00:00Z)", v)
}

func (s *Server) redeliver(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req api.RedeliverRequest
	if err := decodeJSON(w, r, 64<<10, "redelivery", &req); err != nil {
		return err
	}
	if req.ID == "" && req.Since == "" && !req.Dead {
		return &invalidError{fmt.Errorf("say what to redeliver: an event id, since, or dead")}
	}
	f := store.RedeliverFilter{Dead: req.Dead, Subscription: req.Subscription}
	if req.ID != "" {
		if !eventIDRE.MatchString(req.ID) {
			return &invalidError{fmt.Errorf("id: %q is not an event id (a UUID, as refit events list shows)", req.ID)}
		}
		f.EventID = strings.ToLower(req.ID)
		if _, err := s.cfg.Events.GetEvent(ctx, f.EventID); errors.Is(err, store.ErrNotFound) {
			return &httpError{http.StatusNotFound, fmt.Sprintf("id: no event %s (never written, or pruned)", f.EventID)}
		} else if err != nil {
			return err
		}
	}
	if req.Since != "" {
		t, err := parseSince(req.Since, time.Now())
		if err != nil {
			return &invalidError{err}
		}
		f.Since = t
	}
	if req.Subscription != "" {
		subs, err := s.cfg.Events.ListSubscriptions(ctx)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(subs, func(sub store.Subscription) bool { return sub.ID == req.Subscription }) {
			return &httpError{http.StatusNotFound, fmt.Sprintf("subscription: no subscription %s", req.Subscription)}
		}
	}
	n, err := s.cfg.Events.Redeliver(ctx, f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.RedeliverResult{Redelivered: n})
}

// discardDead deletes dead-lettered deliveries:
// DELETE /api/v1/deliveries?state=dead[&subscription=ID][&event=ID].
// Only dead ones may be deleted; state=dead must be said.
func (s *Server) discardDead(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("state") != "dead" {
		return &invalidError{fmt.Errorf("only dead-lettered deliveries can be deleted: add state=dead")}
	}
	n, err := s.cfg.Events.DiscardDead(r.Context(), store.DiscardFilter{Subscription: q.Get("subscription"), EventID: q.Get("event")})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.DiscardResult{Discarded: n})
}
