package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// VulnAdvisory is one advisory of the offline vulnerability database, as
// internal/vulndb imports it.
type VulnAdvisory struct {
	ID       string
	Summary  string
	Aliases  []string
	Modified time.Time // zero = not given
	Affected []VulnAffected
}

// VulnAffected is one package an advisory affects. Match says which
// versions, in a form internal/vulndb writes and reads (the store keeps
// it as text and never interprets it).
type VulnAffected struct {
	Ecosystem string // OSV ecosystem: "Debian:12", "Alpine:v3.19"
	Package   string
	Severity  string // low, medium, high, critical or unknown
	Match     string
}

// VulnMatch is an affected package read back for matching, with its
// advisory's ID, summary and aliases.
type VulnMatch struct {
	VulnAffected
	AdvisoryID string
	Summary    string
	Aliases    []string
}

// VulnImport is what an import wrote, for `refit vulndb status`.
type VulnImport struct {
	ImportedAt     time.Time
	SHA256         string // of the imported file
	Size           int64  // bytes of the imported file
	Advisories     int
	Skipped        int       // advisories or affected entries not imported (withdrawn, other ecosystems)
	NewestModified time.Time // the newest advisory's modified time
	Ecosystems     []VulnEcosystem
}

// VulnEcosystem counts one ecosystem's share of an import.
type VulnEcosystem struct {
	Ecosystem      string
	Advisories     int // advisories with at least one package in the ecosystem
	Packages       int // distinct package names
	NewestModified time.Time
}

// ReplaceVulns replaces the whole vulnerability database in one write
// transaction: it deletes every advisory, then fill calls put for each
// new one, then the import's summary is stored and a vulndb.import audit
// entry (the file's hash and size, the counts per ecosystem) appended. When fill or a put
// fails, the transaction rolls back and the previous database stays as
// it was. fill returns how many advisories or entries it passed over
// (imp.Skipped). An advisory ID given twice is ErrExists. The writer is
// held for the whole fill, so fill should only parse.
func (s *Store) ReplaceVulns(ctx context.Context, imp VulnImport, fill func(put func(VulnAdvisory) error) (skipped int, err error)) (VulnImport, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, table := range []string{"vuln_affected", "vuln_advisories", "vuln_ecosystems", "vuln_import"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table); err != nil {
				return fmt.Errorf("clearing %s: %w", table, err)
			}
		}
		// Rows go in batches of vulnBatch, a multi-row INSERT each: one
		// statement per row costs a round trip per row on PostgreSQL.
		var advs, affs []any
		flush := func() error {
			if len(advs) > 0 {
				if _, err := tx.ExecContext(ctx, `INSERT INTO vuln_advisories (id, summary, aliases, modified) VALUES `+placeholders(len(advs)/4, 4), advs...); err != nil {
					return fmt.Errorf("storing advisories %s…: %w", advs[0], translate(err))
				}
				advs = advs[:0]
			}
			if len(affs) > 0 {
				if _, err := tx.ExecContext(ctx, `INSERT INTO vuln_affected (advisory_id, ecosystem, package, severity, match) VALUES `+placeholders(len(affs)/5, 5), affs...); err != nil {
					return fmt.Errorf("storing affected packages of advisories %s…: %w", affs[0], translate(err))
				}
				affs = affs[:0]
			}
			return nil
		}
		type eco struct {
			advisories int
			packages   map[string]bool
			newest     time.Time
		}
		ecos := map[string]*eco{}
		imp.Advisories, imp.NewestModified = 0, time.Time{}
		put := func(a VulnAdvisory) error {
			advs = append(advs, a.ID, a.Summary, strings.Join(a.Aliases, " "), formatTime(a.Modified))
			imp.Advisories++
			if a.Modified.After(imp.NewestModified) {
				imp.NewestModified = a.Modified
			}
			seen := map[string]bool{}
			for _, af := range a.Affected {
				affs = append(affs, a.ID, af.Ecosystem, af.Package, af.Severity, af.Match)
				e := ecos[af.Ecosystem]
				if e == nil {
					e = &eco{packages: map[string]bool{}}
					ecos[af.Ecosystem] = e
				}
				e.packages[af.Package] = true
				if !seen[af.Ecosystem] {
					seen[af.Ecosystem] = true
					e.advisories++
					if a.Modified.After(e.newest) {
						e.newest = a.Modified
					}
				}
			}
			if len(advs) >= 4*vulnBatch || len(affs) >= 5*vulnBatch {
				return flush()
			}
			return nil
		}
		var err error
		if imp.Skipped, err = fill(put); err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
		for name, e := range ecos {
			if _, err := tx.ExecContext(ctx, `INSERT INTO vuln_ecosystems (ecosystem, advisories, packages, newest_modified) VALUES ($1, $2, $3, $4)`,
				name, e.advisories, len(e.packages), formatTime(e.newest)); err != nil {
				return fmt.Errorf("storing ecosystem %s: %w", name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO vuln_import (id, imported_at, sha256, size, advisories, skipped, newest_modified) VALUES (1, $1, $2, $3, $4, $5, $6)`,
			formatTime(imp.ImportedAt), imp.SHA256, imp.Size, imp.Advisories, imp.Skipped, formatTime(imp.NewestModified)); err != nil {
			return err
		}
		perEcosystem := map[string]int{}
		for name, e := range ecos {
			perEcosystem[name] = e.advisories
		}
		return appendAudit(ctx, tx, AuditRecord{Action: "vulndb.import", Subject: "vulndb", Details: map[string]any{
			"sha256": imp.SHA256, "size": imp.Size, "advisories": imp.Advisories, "skipped": imp.Skipped,
			"ecosystems": perEcosystem, "newestModified": formatTime(imp.NewestModified)}})
	})
	if err != nil {
		return VulnImport{}, fmt.Errorf("replacing the vulnerability database: %w", err)
	}
	return s.VulnStatus(ctx)
}

// vulnBatch is how many rows one INSERT of an import writes (5 columns
// each: far below SQLite's and PostgreSQL's parameter limits).
const vulnBatch = 500

// placeholders returns "($1, $2), ($3, $4)" for rows of cols columns.
func placeholders(rows, cols int) string {
	var b strings.Builder
	n := 1
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", n)
			n++
		}
		b.WriteByte(')')
	}
	return b.String()
}

// VulnStatus returns what the last import stored, or ErrNotFound when
// nothing was ever imported. Ecosystems are sorted by name.
func (s *Store) VulnStatus(ctx context.Context) (VulnImport, error) {
	var imp VulnImport
	var at, newest string
	err := s.read.QueryRowContext(ctx, `SELECT imported_at, sha256, size, advisories, skipped, newest_modified FROM vuln_import WHERE id = 1`).
		Scan(&at, &imp.SHA256, &imp.Size, &imp.Advisories, &imp.Skipped, &newest)
	if err != nil {
		return VulnImport{}, fmt.Errorf("reading the vulnerability database's status: %w", translate(err))
	}
	imp.ImportedAt, imp.NewestModified = parseTime(at), parseTime(newest)
	rows, err := s.read.QueryContext(ctx, `SELECT ecosystem, advisories, packages, newest_modified FROM vuln_ecosystems ORDER BY ecosystem`)
	if err != nil {
		return VulnImport{}, fmt.Errorf("reading the vulnerability database's ecosystems: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e VulnEcosystem
		if err := rows.Scan(&e.Ecosystem, &e.Advisories, &e.Packages, &newest); err != nil {
			return VulnImport{}, err
		}
		e.NewestModified = parseTime(newest)
		imp.Ecosystems = append(imp.Ecosystems, e)
	}
	return imp, rows.Err()
}

// VulnMatches returns every affected entry of package name in
// ecosystem, with its advisory (an indexed look-up), ordered by
// advisory ID. None is an empty slice, not an error.
func (s *Store) VulnMatches(ctx context.Context, ecosystem, name string) ([]VulnMatch, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT f.advisory_id, f.ecosystem, f.package, f.severity, f.match, a.summary, a.aliases
		FROM vuln_affected f JOIN vuln_advisories a ON a.id = f.advisory_id
		WHERE f.ecosystem = $1 AND f.package = $2 ORDER BY f.advisory_id`, ecosystem, name)
	if err != nil {
		return nil, fmt.Errorf("looking up vulnerabilities of %s %s: %w", ecosystem, name, err)
	}
	defer rows.Close()
	var out []VulnMatch
	for rows.Next() {
		var m VulnMatch
		var aliases string
		if err := rows.Scan(&m.AdvisoryID, &m.Ecosystem, &m.Package, &m.Severity, &m.Match, &m.Summary, &aliases); err != nil {
			return nil, fmt.Errorf("looking up vulnerabilities of %s %s: %w", ecosystem, name, err)
		}
		m.Aliases = strings.Fields(aliases)
		out = append(out, m)
	}
	return out, rows.Err()
}
