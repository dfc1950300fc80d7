package store

import (
	"context"
	"fmt"
	"strings"
)

// Observation returns the index observation id, or ErrNotFound.
func (s *Store) Observation(ctx context.Context, id int64) (Observation, error) {
	var o Observation
	var seen string
	err := s.read.QueryRowContext(ctx, `SELECT id, ref, platform, digest, old_digest, top_digest, source, seen_at
		FROM observations WHERE id = $1`, id).Scan(&o.ID, &o.Ref, &o.Platform, &o.Digest, &o.OldDigest, &o.TopDigest, &o.Source, &seen)
	if err != nil {
		return Observation{}, fmt.Errorf("observation %d: %w", id, translate(err))
	}
	o.SeenAt = parseTime(seen)
	return o, nil
}

// RunsByDigest returns the runs that pushed digest — as the image's
// digest (an index's, or a single manifest's) or as one of its
// platforms' manifest digests — newest first, at most limit (0 = 20).
// A reproducible rebuild pushes the same platform digests again, so
// more than one run can match.
func (s *Store) RunsByDigest(ctx context.Context, digest string, limit int) ([]Run, error) {
	if limit <= 0 {
		limit = 20
	}
	if !validDigest(digest) {
		return nil, nil
	}
	// platforms is a JSON list of {"platform","digest"}; a digest is
	// never a substring of another one's quoted form.
	rows, err := s.read.QueryContext(ctx, `SELECT `+runColumns+` FROM runs
		WHERE digest = $1 OR platforms LIKE $2 ORDER BY id DESC LIMIT $3`, digest, `%"`+digest+`"%`, limit)
	if err != nil {
		return nil, fmt.Errorf("finding runs that pushed %s: %w", digest, translate(err))
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("finding runs that pushed %s: %w", digest, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// validDigest reports whether d is "sha256:" and 64 lowercase hex digits.
func validDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
