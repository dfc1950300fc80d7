package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// GitSecret is a repository's git webhook secret. Sealed is the secret
// encrypted by the caller (see package regauth); the store never sees it
// in the clear.
type GitSecret struct {
	// RepoKey is the repository as task.RepoKey normalizes its URL.
	RepoKey string `json:"repoKey"`
	// Repo is the URL as it was set.
	Repo      string    `json:"repo"`
	Sealed    []byte    `json:"-"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// PutGitSecret creates or replaces the secret of s.RepoKey.
func (s *Store) PutGitSecret(ctx context.Context, g GitSecret) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO git_secrets (repo_key, repo, sealed, updated_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (repo_key) DO UPDATE SET repo = excluded.repo,
			sealed = excluded.sealed, updated_at = excluded.updated_at`,
			g.RepoKey, g.Repo, g.Sealed, formatTime(g.UpdatedAt))
		if err != nil {
			return err
		}
		// The repository (its key: no credentials of a URL) is recorded;
		// the secret never.
		return appendAudit(ctx, tx, AuditRecord{Action: "gitsecret.set", Subject: g.RepoKey})
	})
	if err != nil {
		return fmt.Errorf("storing the webhook secret of %s: %w", g.Repo, translate(err))
	}
	return nil
}

// GitSecret returns the secret of the repository keyed key, or
// ErrNotFound.
func (s *Store) GitSecret(ctx context.Context, key string) (GitSecret, error) {
	g := GitSecret{RepoKey: key}
	var updated string
	err := s.read.QueryRowContext(ctx, `SELECT repo, sealed, updated_at FROM git_secrets WHERE repo_key = $1`, key).
		Scan(&g.Repo, &g.Sealed, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return GitSecret{}, fmt.Errorf("webhook secret of %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return GitSecret{}, fmt.Errorf("reading the webhook secret of %s: %w", key, translate(err))
	}
	g.UpdatedAt = parseTime(updated)
	return g, nil
}

// ListGitSecrets returns the repositories that have a secret, without
// the secrets.
func (s *Store) ListGitSecrets(ctx context.Context) ([]GitSecret, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT repo_key, repo, updated_at FROM git_secrets ORDER BY repo_key`)
	if err != nil {
		return nil, fmt.Errorf("listing webhook secrets: %w", translate(err))
	}
	defer rows.Close()
	var out []GitSecret
	for rows.Next() {
		var g GitSecret
		var updated string
		if err := rows.Scan(&g.RepoKey, &g.Repo, &updated); err != nil {
			return nil, fmt.Errorf("listing webhook secrets: %w", err)
		}
		g.UpdatedAt = parseTime(updated)
		out = append(out, g)
	}
	return out, rows.Err()
}

// DeleteGitSecret removes the secret of key, or returns ErrNotFound.
func (s *Store) DeleteGitSecret(ctx context.Context, key string) error {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM git_secrets WHERE repo_key = $1`, key)
		if err != nil {
			return err
		}
		if n, _ = res.RowsAffected(); n == 0 {
			return nil
		}
		return appendAudit(ctx, tx, AuditRecord{Action: "gitsecret.delete", Subject: key})
	})
	if err != nil {
		return fmt.Errorf("deleting the webhook secret of %s: %w", key, translate(err))
	}
	if n == 0 {
		return fmt.Errorf("webhook secret of %s: %w", key, ErrNotFound)
	}
	return nil
}

// GitHeads returns the heads last seen of the repository keyed key: ref
// name → commit SHA (empty when never polled).
func (s *Store) GitHeads(ctx context.Context, key string) (map[string]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT ref, sha FROM git_heads WHERE repo_key = $1`, key)
	if err != nil {
		return nil, fmt.Errorf("reading the heads of %s: %w", key, translate(err))
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var ref, sha string
		if err := rows.Scan(&ref, &sha); err != nil {
			return nil, fmt.Errorf("reading the heads of %s: %w", key, err)
		}
		out[ref] = sha
	}
	return out, rows.Err()
}

// SaveGitHead records that ref of the repository keyed key was seen at
// sha. It is part of the transaction that queues the runs the move
// causes, so a head is never recorded without them.
func (t *Tx) SaveGitHead(key, ref, sha string) error {
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO git_heads (repo_key, ref, sha, seen_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (repo_key, ref) DO UPDATE SET sha = excluded.sha, seen_at = excluded.seen_at`,
		key, ref, sha, formatTime(time.Now()))
	if err != nil {
		return fmt.Errorf("recording head %s of %s: %w", ref, key, translate(err))
	}
	return nil
}

// GitHead returns the SHA last seen of ref in the repository keyed key,
// or "" when none was.
func (t *Tx) GitHead(key, ref string) (string, error) {
	var sha string
	err := t.tx.QueryRowContext(t.ctx, `SELECT sha FROM git_heads WHERE repo_key = $1 AND ref = $2`, key, ref).Scan(&sha)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading head %s of %s: %w", ref, key, translate(err))
	}
	return sha, nil
}

// RecordGitHeads records heads (ref → SHA) of the repository keyed key in
// one transaction, without queuing anything: polling's first sight of a
// repository.
func (s *Store) RecordGitHeads(ctx context.Context, key string, heads map[string]string) error {
	return s.InTx(ctx, func(tx *Tx) error {
		for ref, sha := range heads {
			if err := tx.SaveGitHead(key, ref, sha); err != nil {
				return err
			}
		}
		return nil
	})
}
