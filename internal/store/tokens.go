package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// TokenPrefix starts every API token, so a leaked one is easy to spot.
const TokenPrefix = "refit_"

// NewToken creates an API token called name and returns its secret. Only
// the token's SHA-256 is stored; the secret cannot be read back.
func (s *Store) NewToken(ctx context.Context, name string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating token: %w", err)
	}
	secret := TokenPrefix + hex.EncodeToString(b)
	_, err := s.write.ExecContext(ctx, `INSERT INTO tokens (hash, name, created_at) VALUES ($1, $2, $3)`,
		hashToken(secret), name, formatTime(time.Now()))
	if err != nil {
		return "", fmt.Errorf("storing token %s: %w", name, translate(err))
	}
	return secret, nil
}

// TokenName returns the name of the token with this secret, or ErrNotFound.
func (s *Store) TokenName(ctx context.Context, secret string) (string, error) {
	var name string
	err := s.read.QueryRowContext(ctx, `SELECT name FROM tokens WHERE hash = $1`, hashToken(secret)).Scan(&name)
	if err != nil {
		return "", fmt.Errorf("looking up token: %w", translate(err))
	}
	return name, nil
}

// CountTokens returns how many tokens exist.
func (s *Store) CountTokens(ctx context.Context) (int, error) {
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM tokens`).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting tokens: %w", translate(err))
	}
	return n, nil
}

func hashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}
