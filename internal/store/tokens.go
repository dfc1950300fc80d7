package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/refit-dev/refit/internal/identity"
)

// TokenPrefix starts every API token, so a leaked one is easy to spot.
const TokenPrefix = "refit_"

// Token is a stored API token: who it authenticates, with which roles.
// Its secret is never stored, only its SHA-256.
type Token struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
}

// ErrLastAdmin is returned when revoking would leave no active admin
// token: nobody could manage tokens any more.
var ErrLastAdmin = errors.New("it is the last active admin token; create another admin token first")

// NewToken creates an admin token for the user name and returns its
// secret (the first start's token, "admin"). See CreateToken.
func (s *Store) NewToken(ctx context.Context, name string) (string, error) {
	_, secret, err := s.CreateToken(ctx, name, []string{"admin"})
	return secret, err
}

// CreateToken creates a token for user with roles (validated by the
// caller) and returns it with its secret, which cannot be read back. The
// creator (the identity in ctx, or "system") is recorded, and the
// creation is audited (token.create) in the same transaction.
func (s *Store) CreateToken(ctx context.Context, user string, roles []string) (Token, string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return Token{}, "", fmt.Errorf("generating token: %w", err)
	}
	secret := TokenPrefix + hex.EncodeToString(b)
	hash := hashToken(secret)
	t := Token{ID: "t-" + hash[:12], User: user, Roles: slices.Clone(roles), CreatedAt: time.Now().UTC(), CreatedBy: identity.Actor(ctx)}
	if t.Roles == nil {
		t.Roles = []string{}
	}
	rj, _ := json.Marshal(t.Roles)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tokens (hash, name, created_at, id, user_name, roles, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, hash, user, formatTime(t.CreatedAt), t.ID, user, string(rj), t.CreatedBy); err != nil {
			return translate(err)
		}
		return appendAudit(ctx, tx, AuditRecord{Action: "token.create", Subject: user,
			Details: map[string]any{"id": t.ID, "roles": t.Roles}})
	})
	if err != nil {
		return Token{}, "", fmt.Errorf("storing token for %s: %w", user, err)
	}
	return t, secret, nil
}

const tokenColumns = `id, user_name, roles, created_at, created_by, revoked_at`

func scanToken(row scanner) (Token, error) {
	var t Token
	var roles, created, revoked string
	if err := row.Scan(&t.ID, &t.User, &roles, &created, &t.CreatedBy, &revoked); err != nil {
		return Token{}, translate(err)
	}
	if err := json.Unmarshal([]byte(roles), &t.Roles); err != nil {
		return Token{}, fmt.Errorf("decoding roles of token %s: %w", t.ID, err)
	}
	t.CreatedAt, t.RevokedAt = parseTime(created), parseTime(revoked)
	return t, nil
}

// LookupToken returns the active (not revoked) token with this secret,
// or ErrNotFound.
func (s *Store) LookupToken(ctx context.Context, secret string) (Token, error) {
	t, err := scanToken(s.read.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = $1 AND revoked_at = ''`, hashToken(secret)))
	if err != nil {
		return Token{}, fmt.Errorf("looking up token: %w", err)
	}
	return t, nil
}

// TokenName returns the user of the active token with this secret, or
// ErrNotFound.
func (s *Store) TokenName(ctx context.Context, secret string) (string, error) {
	t, err := s.LookupToken(ctx, secret)
	return t.User, err
}

// ListTokens returns every token, revoked ones too, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", translate(err))
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("listing tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeTokens revokes the active token with ID idOrUser, or else every
// active token of the user idOrUser, and returns them; each revocation is
// audited (token.revoke) in the same transaction. It returns ErrNotFound
// when nothing active matches, and ErrLastAdmin (revoking nothing) when
// no active admin token would be left.
func (s *Store) RevokeTokens(ctx context.Context, idOrUser string) ([]Token, error) {
	var out []Token
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE revoked_at = ''`)
		if err != nil {
			return err
		}
		var active []Token
		for rows.Next() {
			t, err := scanToken(rows)
			if err != nil {
				rows.Close()
				return err
			}
			active = append(active, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, t := range active {
			if t.ID == idOrUser {
				out = []Token{t}
				break
			}
			if t.User == idOrUser {
				out = append(out, t)
			}
		}
		if len(out) == 0 {
			return ErrNotFound
		}
		admins := 0
		for _, t := range active {
			if slices.Contains(t.Roles, "admin") && !slices.ContainsFunc(out, func(r Token) bool { return r.ID == t.ID }) {
				admins++
			}
		}
		if admins == 0 && slices.ContainsFunc(out, func(t Token) bool { return slices.Contains(t.Roles, "admin") }) {
			return ErrLastAdmin
		}
		now := time.Now().UTC()
		for i := range out {
			out[i].RevokedAt = now
			if _, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = $1 WHERE id = $2`, formatTime(now), out[i].ID); err != nil {
				return err
			}
			if err := appendAudit(ctx, tx, AuditRecord{Action: "token.revoke", Subject: out[i].User,
				Details: map[string]any{"id": out[i].ID, "roles": out[i].Roles}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("revoking token %s: %w", idOrUser, translate(err))
	}
	return out, nil
}

// CountTokens returns how many tokens exist, revoked ones included.
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
