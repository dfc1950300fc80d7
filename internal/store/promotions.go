package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Decisions an approver takes on a run.
const (
	DecisionApproved = "approved"
	DecisionRejected = "rejected"
)

// Approval is one user's decision on one run's digest.
type Approval struct {
	RunID     int64     `json:"-"`
	User      string    `json:"user"`
	Decision  string    `json:"decision"` // approved or rejected
	Comment   string    `json:"comment,omitempty"`
	Digest    string    `json:"digest"`
	CreatedAt time.Time `json:"createdAt"`
}

// Promotion is one tag moved to a digest. DoneAt is zero while it is
// planned: the old digest is read and recorded before the registry
// write, so a retried promotion reports the digest the tag had before.
type Promotion struct {
	ID         int64     `json:"-"`
	Key        string    `json:"-"` // "run:7", "rollback:3": one promotion's tags
	Task       string    `json:"task"`
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	OldDigest  string    `json:"oldDigest,omitempty"` // "" when the tag did not exist
	NewDigest  string    `json:"newDigest"`
	RunID      int64     `json:"-"`  // the run that built NewDigest
	By         string    `json:"by"` // the approver(s) or the user of a rollback; "system" for auto
	CreatedAt  time.Time `json:"createdAt"`
	DoneAt     time.Time `json:"doneAt,omitzero"`
}

// ErrDuplicate is returned when a user decides on a run twice.
var ErrDuplicate = errors.New("a user decides on a run once: another user's approval is needed")

// GetRun returns the run as the transaction sees it, or ErrNotFound.
func (t *Tx) GetRun(id int64) (Run, error) {
	r, err := scanRun(t.tx.QueryRowContext(t.ctx, `SELECT `+runColumns+` FROM runs WHERE id = $1`, id))
	if err != nil {
		return Run{}, fmt.Errorf("run %s: %w", FormatRunID(id), err)
	}
	return r, nil
}

// AddApproval records a decision; a user's second decision on the same
// run is ErrDuplicate.
func (t *Tx) AddApproval(a Approval) error {
	var n int
	if err := t.tx.QueryRowContext(t.ctx, `SELECT COUNT(*) FROM approvals WHERE run_id = $1 AND user_name = $2`,
		a.RunID, a.User).Scan(&n); err != nil {
		return fmt.Errorf("recording the decision on run %s: %w", FormatRunID(a.RunID), translate(err))
	}
	if n > 0 {
		return fmt.Errorf("%s already decided on run %s (%w)", a.User, FormatRunID(a.RunID), ErrDuplicate)
	}
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO approvals (run_id, user_name, decision, comment, digest, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, a.RunID, a.User, a.Decision, a.Comment, a.Digest, formatTime(time.Now()))
	if err != nil {
		return fmt.Errorf("recording the decision on run %s: %w", FormatRunID(a.RunID), translate(err))
	}
	return nil
}

// Approvals returns the decisions on a run, oldest first.
func (t *Tx) Approvals(runID int64) ([]Approval, error) { return approvals(t.ctx, t.tx, runID) }

// Approvals returns the decisions on a run, oldest first.
func (s *Store) Approvals(ctx context.Context, runID int64) ([]Approval, error) {
	return approvals(ctx, s.read, runID)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func approvals(ctx context.Context, db querier, runID int64) ([]Approval, error) {
	rows, err := db.QueryContext(ctx, `SELECT run_id, user_name, decision, comment, digest, created_at
		FROM approvals WHERE run_id = $1 ORDER BY id`, runID)
	if err != nil {
		return nil, fmt.Errorf("listing decisions on run %s: %w", FormatRunID(runID), translate(err))
	}
	defer rows.Close()
	var out []Approval
	for rows.Next() {
		var a Approval
		var at string
		if err := rows.Scan(&a.RunID, &a.User, &a.Decision, &a.Comment, &a.Digest, &at); err != nil {
			return nil, translate(err)
		}
		a.CreatedAt = parseTime(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// RunsInState returns the task's runs in the state, oldest first.
func (t *Tx) RunsInState(task string, state State) ([]Run, error) {
	rows, err := t.tx.QueryContext(t.ctx, `SELECT `+runColumns+` FROM runs WHERE task_name = $1 AND state = $2 ORDER BY id`,
		task, string(state))
	if err != nil {
		return nil, fmt.Errorf("listing %s runs of task %s: %w", state, task, translate(err))
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

const promotionColumns = `id, promo_key, task_name, repository, tag, old_digest, new_digest, run_id, by_user, created_at, done_at`

func scanPromotion(row scanner) (Promotion, error) {
	var p Promotion
	var created, done string
	if err := row.Scan(&p.ID, &p.Key, &p.Task, &p.Repository, &p.Tag, &p.OldDigest, &p.NewDigest, &p.RunID, &p.By,
		&created, &done); err != nil {
		return Promotion{}, translate(err)
	}
	p.CreatedAt, p.DoneAt = parseTime(created), parseTime(done)
	return p, nil
}

// PlannedPromotions returns the promotion's rows (one per tag), planned or
// done, in tag order of planning.
func (s *Store) PlannedPromotions(ctx context.Context, key string) ([]Promotion, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+promotionColumns+` FROM promotions WHERE promo_key = $1 ORDER BY id`, key)
	if err != nil {
		return nil, fmt.Errorf("reading promotion %s: %w", key, translate(err))
	}
	return scanPromotions(rows)
}

func scanPromotions(rows *sql.Rows) ([]Promotion, error) {
	defer rows.Close()
	var out []Promotion
	for rows.Next() {
		p, err := scanPromotion(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PlanPromotions records the promotion's rows before the registry is
// written (each tag's old digest as read now). Rows already planned under
// the same key and tag are kept as they are: a retry keeps the first old
// digest.
func (s *Store) PlanPromotions(ctx context.Context, ps []Promotion) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, p := range ps {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM promotions WHERE promo_key = $1 AND tag = $2`,
				p.Key, p.Tag).Scan(&n); err != nil {
				return fmt.Errorf("planning promotion %s: %w", p.Key, translate(err))
			}
			if n > 0 {
				continue
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO promotions (promo_key, task_name, repository, tag, old_digest, new_digest,
				run_id, by_user, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				p.Key, p.Task, p.Repository, p.Tag, p.OldDigest, p.NewDigest, p.RunID, p.By, formatTime(time.Now()))
			if err != nil {
				return fmt.Errorf("planning promotion %s of tag %s: %w", p.Key, p.Tag, translate(err))
			}
		}
		return nil
	})
}

// ImagePromoted is the data of image.promoted: the tags one promotion
// moved, each with the digest it had and the digest it has now.
type ImagePromoted struct {
	Run        string        `json:"run"` // the run that built Digest
	Task       string        `json:"task"`
	Repository string        `json:"repository"`
	Digest     string        `json:"digest"`
	By         string        `json:"by"`
	Rollback   bool          `json:"rollback,omitempty"`
	Tags       []PromotedTag `json:"tags"`
}

// PromotedTag is one tag of an image.promoted event.
type PromotedTag struct {
	Tag       string `json:"tag"`
	OldDigest string `json:"oldDigest,omitempty"`
	NewDigest string `json:"newDigest"`
}

// CompletePromotions marks the promotion's planned rows done and emits
// image.promoted, once: it returns false (and writes nothing) when the
// promotion was already complete.
func (t *Tx) CompletePromotions(key string, rollback bool) (bool, error) {
	rows, err := t.tx.QueryContext(t.ctx, `SELECT `+promotionColumns+` FROM promotions WHERE promo_key = $1 ORDER BY id`, key)
	if err != nil {
		return false, fmt.Errorf("completing promotion %s: %w", key, translate(err))
	}
	ps, err := scanPromotions(rows)
	if err != nil {
		return false, fmt.Errorf("completing promotion %s: %w", key, err)
	}
	if len(ps) == 0 {
		return false, fmt.Errorf("completing promotion %s: %w", key, ErrNotFound)
	}
	if !ps[0].DoneAt.IsZero() {
		return false, nil
	}
	if _, err := t.tx.ExecContext(t.ctx, `UPDATE promotions SET done_at = $1 WHERE promo_key = $2`, formatTime(time.Now()), key); err != nil {
		return false, fmt.Errorf("completing promotion %s: %w", key, translate(err))
	}
	ev := ImagePromoted{Run: FormatRunID(ps[0].RunID), Task: ps[0].Task, Repository: ps[0].Repository,
		Digest: ps[0].NewDigest, By: ps[0].By, Rollback: rollback}
	for _, p := range ps {
		ev.Tags = append(ev.Tags, PromotedTag{Tag: p.Tag, OldDigest: p.OldDigest, NewDigest: p.NewDigest})
	}
	return true, emit(t.ctx, t.tx, EventImagePromoted, ps[0].Task, ev)
}

// Promotions returns the task's promotions, newest first (planned ones
// included, with a zero DoneAt).
func (s *Store) Promotions(ctx context.Context, task string) ([]Promotion, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+promotionColumns+` FROM promotions WHERE task_name = $1 ORDER BY id DESC`, task)
	if err != nil {
		return nil, fmt.Errorf("listing promotions of task %s: %w", task, translate(err))
	}
	return scanPromotions(rows)
}

// LastPromoted returns the task's newest completed promotion, or
// ErrNotFound.
func (t *Tx) LastPromoted(task string) (Promotion, error) {
	p, err := scanPromotion(t.tx.QueryRowContext(t.ctx, `SELECT `+promotionColumns+` FROM promotions
		WHERE task_name = $1 AND done_at <> '' ORDER BY done_at DESC, id DESC LIMIT 1`, task))
	if err != nil {
		return Promotion{}, fmt.Errorf("last promotion of task %s: %w", task, err)
	}
	return p, nil
}

// PromotedDigest returns a completed promotion of the task to digest, or
// ErrNotFound when the task never promoted it.
func (t *Tx) PromotedDigest(task, digest string) (Promotion, error) {
	p, err := scanPromotion(t.tx.QueryRowContext(t.ctx, `SELECT `+promotionColumns+` FROM promotions
		WHERE task_name = $1 AND new_digest = $2 AND done_at <> '' ORDER BY id LIMIT 1`, task, digest))
	if err != nil {
		return Promotion{}, fmt.Errorf("promotion of task %s to %s: %w", task, digest, err)
	}
	return p, nil
}

// NextRollbackKey returns a new promotion key for a rollback.
func (t *Tx) NextRollbackKey() (string, error) {
	var n int64
	if err := t.tx.QueryRowContext(t.ctx, `SELECT COUNT(DISTINCT promo_key) FROM promotions`).Scan(&n); err != nil {
		return "", fmt.Errorf("numbering a rollback: %w", translate(err))
	}
	return fmt.Sprintf("rollback:%d:%s", n+1, newEventID()[:8]), nil
}

// InsertJob calls insert with the transaction's connection, so a queue
// job (the lifecycle's promotion or diff job) commits, or not, with the
// rows the transaction writes.
func (t *Tx) InsertJob(insert func(ctx context.Context, tx *sql.Tx) error) error {
	markJobs(t.tx)
	return insert(t.ctx, t.tx)
}

// RunDecision is the data of run.approved: one approval, and how many of
// the approvals needed the run has now.
type RunDecision struct {
	Run       string `json:"run"`
	Task      string `json:"task"`
	Digest    string `json:"digest"`
	User      string `json:"user"`
	Comment   string `json:"comment,omitempty"`
	Approvals int    `json:"approvals"`
	Needed    int    `json:"needed"`
}

// LockRun holds the run's row until the transaction ends, so two
// processes deciding on one run (PostgreSQL with several nodes) take
// turns: the second sees the first's approval. (SQLite's write
// transactions exclude each other already.)
func (t *Tx) LockRun(id int64) error {
	if _, err := t.tx.ExecContext(t.ctx, `UPDATE runs SET state = state WHERE id = $1`, id); err != nil {
		return fmt.Errorf("locking run %s: %w", FormatRunID(id), translate(err))
	}
	return nil
}
