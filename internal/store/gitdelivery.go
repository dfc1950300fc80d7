package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// MaxDeliveryMessage bounds a recorded delivery's message, in bytes.
const MaxDeliveryMessage = 1024

// GitDelivery is the last delivery of a push for one repository and
// source: what a webhook answered or what polling decided.
type GitDelivery struct {
	// RepoKey is the repository as task.RepoKey normalizes its URL.
	RepoKey string `json:"-"`
	// Source is the webhook format (github, gitlab, gitea, generic) or
	// "poll".
	Source string `json:"source"`
	// At is when refit answered or decided.
	At time.Time `json:"at"`
	// Delivery is the delivery id ("" when the host sent none and the
	// push could not be read).
	Delivery string `json:"delivery,omitempty"`
	Ref      string `json:"ref,omitempty"`
	SHA      string `json:"sha,omitempty"`
	// Status is the HTTP status answered to a webhook; 0 for polling.
	Status int `json:"status,omitempty"`
	// Message is the verdict in words, at most MaxDeliveryMessage bytes.
	Message string `json:"message"`
	// Runs are the runs queued or joined ("r-7").
	Runs []string `json:"runs,omitempty"`
}

// clip cuts s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-len("…")]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// RecordGitDelivery replaces the last delivery of d.RepoKey and d.Source
// with d (fields cut to their bounds; at most 20 runs).
func (s *Store) RecordGitDelivery(ctx context.Context, d GitDelivery) error {
	if len(d.Runs) > 20 {
		d.Runs = d.Runs[:20]
	}
	runs, _ := json.Marshal(d.Runs)
	if d.At.IsZero() {
		d.At = time.Now()
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO git_deliveries (repo_key, source, at, delivery, ref, sha, status, message, runs)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (repo_key, source) DO UPDATE SET at = excluded.at,
		delivery = excluded.delivery, ref = excluded.ref, sha = excluded.sha, status = excluded.status,
		message = excluded.message, runs = excluded.runs`,
		d.RepoKey, clip(d.Source, 32), formatTime(d.At), clip(d.Delivery, 256), clip(d.Ref, 256), clip(d.SHA, 64),
		d.Status, clip(d.Message, MaxDeliveryMessage), string(runs))
	if err != nil {
		return fmt.Errorf("recording the last %s delivery of %s: %w", d.Source, d.RepoKey, translate(err))
	}
	return nil
}

// GitDeliveries returns the last delivery per source of the repository
// keyed key, by source.
func (s *Store) GitDeliveries(ctx context.Context, key string) ([]GitDelivery, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT source, at, delivery, ref, sha, status, message, runs
		FROM git_deliveries WHERE repo_key = $1 ORDER BY source`, key)
	if err != nil {
		return nil, fmt.Errorf("reading the last deliveries of %s: %w", key, translate(err))
	}
	defer rows.Close()
	var out []GitDelivery
	for rows.Next() {
		d := GitDelivery{RepoKey: key}
		var at, runs string
		if err := rows.Scan(&d.Source, &at, &d.Delivery, &d.Ref, &d.SHA, &d.Status, &d.Message, &runs); err != nil {
			return nil, fmt.Errorf("reading the last deliveries of %s: %w", key, err)
		}
		d.At = parseTime(at)
		if err := json.Unmarshal([]byte(runs), &d.Runs); err != nil {
			return nil, fmt.Errorf("reading the last deliveries of %s: runs: %w", key, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
