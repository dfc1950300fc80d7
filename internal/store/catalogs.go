package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// JobOwns reports whether job jobID still owns run runID (a requeue
// gives a run a new job, and the old one must then do nothing).
func (t *Tx) JobOwns(runID, jobID int64) (bool, error) {
	var owner int64
	if err := t.tx.QueryRowContext(t.ctx, `SELECT job_id FROM runs WHERE id = $1`, runID).Scan(&owner); err != nil {
		return false, fmt.Errorf("reading run %s: %w", FormatRunID(runID), translate(err))
	}
	return owner == jobID, nil
}

// PutCatalog stores the catalog (internal/catalog's JSON) of the image
// whose platform manifest is digest. A catalog already stored for the
// digest is kept: an image's content never changes under its digest.
func (s *Store) PutCatalog(ctx context.Context, digest string, data []byte) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO catalogs (digest, data, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (digest) DO NOTHING`, digest, string(data), formatTime(time.Now()))
	if err != nil {
		return fmt.Errorf("storing catalog of %s: %w", digest, translate(err))
	}
	return nil
}

// Catalog returns the stored catalog of digest, or ErrNotFound.
func (s *Store) Catalog(ctx context.Context, digest string) ([]byte, error) {
	var data string
	if err := s.read.QueryRowContext(ctx, `SELECT data FROM catalogs WHERE digest = $1`, digest).Scan(&data); err != nil {
		return nil, fmt.Errorf("reading catalog of %s: %w", digest, translate(err))
	}
	return []byte(data), nil
}

// PutImageDiff stores the diff (internal/catalog's JSON) from the image
// oldDigest to newDigest; one already stored is kept.
func (s *Store) PutImageDiff(ctx context.Context, oldDigest, newDigest string, data []byte) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO image_diffs (old_digest, new_digest, data, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (old_digest, new_digest) DO NOTHING`, oldDigest, newDigest, string(data), formatTime(time.Now()))
	if err != nil {
		return fmt.Errorf("storing diff %s → %s: %w", oldDigest, newDigest, translate(err))
	}
	return nil
}

// ImageDiff returns the stored diff from oldDigest to newDigest, or
// ErrNotFound.
func (s *Store) ImageDiff(ctx context.Context, oldDigest, newDigest string) ([]byte, error) {
	var data string
	err := s.read.QueryRowContext(ctx, `SELECT data FROM image_diffs WHERE old_digest = $1 AND new_digest = $2`,
		oldDigest, newDigest).Scan(&data)
	if err != nil {
		return nil, fmt.Errorf("reading diff %s → %s: %w", oldDigest, newDigest, translate(err))
	}
	return []byte(data), nil
}

// NoteChanges records on a queued run's cause the summary of its base
// update's diff (Cause.Changes).
func (t *Tx) NoteChanges(runID int64, changes string) error {
	return noteCause(t.ctx, t.tx, runID, func(c *Cause) { c.Changes = changes })
}

// NoteDecision records on a run's cause what its task's rebuild policy
// decided (Cause.Decision).
func (s *Store) NoteDecision(ctx context.Context, runID int64, decision string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		return noteCause(ctx, tx, runID, func(c *Cause) { c.Decision = decision })
	})
}

// noteCause rewrites a run's stored cause with edit.
func noteCause(ctx context.Context, tx *sql.Tx, runID int64, edit func(*Cause)) error {
	var raw string
	if err := tx.QueryRowContext(ctx, `SELECT cause FROM runs WHERE id = $1`, runID).Scan(&raw); err != nil {
		return fmt.Errorf("recording on run %s: %w", FormatRunID(runID), translate(err))
	}
	var c Cause
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return fmt.Errorf("decoding the stored cause of run %s: %w", FormatRunID(runID), err)
	}
	edit(&c)
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET cause = $1 WHERE id = $2`, string(b), runID); err != nil {
		return fmt.Errorf("recording on run %s: %w", FormatRunID(runID), translate(err))
	}
	return nil
}
