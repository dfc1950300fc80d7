package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// RegistryCredential is a registry login stored in refit. Sealed is the
// password encrypted by the caller (see package regauth); the store never
// sees it in the clear.
type RegistryCredential struct {
	Host      string    `json:"host"`
	Username  string    `json:"username"`
	Sealed    []byte    `json:"-"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// PutRegistryCredential creates or replaces the credential for c.Host.
func (s *Store) PutRegistryCredential(ctx context.Context, c RegistryCredential) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO registry_credentials (host, username, sealed, updated_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (host) DO UPDATE SET username = excluded.username,
			sealed = excluded.sealed, updated_at = excluded.updated_at`,
			c.Host, c.Username, c.Sealed, formatTime(c.UpdatedAt))
		if err != nil {
			return err
		}
		// The user name is shown by the API too; the password never.
		return appendAudit(ctx, tx, AuditRecord{Action: "login.set", Subject: c.Host, Details: map[string]any{"username": c.Username}})
	})
	if err != nil {
		return fmt.Errorf("storing credentials for %s: %w", c.Host, translate(err))
	}
	return nil
}

// RegistryCredential returns the credential for host, or ErrNotFound.
func (s *Store) RegistryCredential(ctx context.Context, host string) (RegistryCredential, error) {
	c := RegistryCredential{Host: host}
	var updated string
	err := s.read.QueryRowContext(ctx, `SELECT username, sealed, updated_at FROM registry_credentials WHERE host = $1`, host).
		Scan(&c.Username, &c.Sealed, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return RegistryCredential{}, fmt.Errorf("credentials for %s: %w", host, ErrNotFound)
	}
	if err != nil {
		return RegistryCredential{}, fmt.Errorf("reading credentials for %s: %w", host, translate(err))
	}
	c.UpdatedAt = parseTime(updated)
	return c, nil
}

// ListRegistryCredentials returns every stored credential by host,
// without the sealed passwords.
func (s *Store) ListRegistryCredentials(ctx context.Context) ([]RegistryCredential, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT host, username, updated_at FROM registry_credentials ORDER BY host`)
	if err != nil {
		return nil, fmt.Errorf("listing registry credentials: %w", translate(err))
	}
	defer rows.Close()
	var out []RegistryCredential
	for rows.Next() {
		var c RegistryCredential
		var updated string
		if err := rows.Scan(&c.Host, &c.Username, &updated); err != nil {
			return nil, fmt.Errorf("listing registry credentials: %w", err)
		}
		c.UpdatedAt = parseTime(updated)
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteRegistryCredential removes the credential for host, or returns
// ErrNotFound.
func (s *Store) DeleteRegistryCredential(ctx context.Context, host string) error {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM registry_credentials WHERE host = $1`, host)
		if err != nil {
			return err
		}
		if n, _ = res.RowsAffected(); n == 0 {
			return nil
		}
		return appendAudit(ctx, tx, AuditRecord{Action: "login.delete", Subject: host})
	})
	if err != nil {
		return fmt.Errorf("deleting credentials for %s: %w", host, translate(err))
	}
	if n == 0 {
		return fmt.Errorf("credentials for %s: %w", host, ErrNotFound)
	}
	return nil
}
