package store

import (
	"context"
	"database/sql"
	"errors"
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

// ReplaceVulns replaces the whole vulnerability database without holding
// the writer for the import: it starts a new generation (BeginVulns),
// fill calls put for each advisory, which writes them in short
// transactions of at most vulnTxRows rows, and a last small transaction
// makes the generation current — the import's summary stored and a
// vulndb.import audit entry (the file's hash and size, the counts per
// ecosystem) appended. Other writes go between the batches; readers see
// the old database until that last transaction, then the new one, never
// half of it. When fill or a put fails, the generation is dropped and the
// previous database stays as it was; rows a crashed import left are
// dropped by the next import or CleanVulns. fill returns how many
// advisories or entries it passed over (imp.Skipped). An advisory ID
// given twice is ErrExists.
func (s *Store) ReplaceVulns(ctx context.Context, imp VulnImport, fill func(put func(VulnAdvisory) error) (skipped int, err error)) (VulnImport, error) {
	g, err := s.BeginVulns(ctx)
	if err != nil {
		return VulnImport{}, err
	}
	if imp.Skipped, err = fill(g.Put); err == nil {
		err = g.Commit(ctx, imp)
	}
	if err != nil {
		g.Abort(context.WithoutCancel(ctx))
		return VulnImport{}, fmt.Errorf("replacing the vulnerability database: %w", err)
	}
	s.CleanVulns(context.WithoutCancel(ctx)) // the old generation; failures are left for the next time
	return s.VulnStatus(ctx)
}

// VulnGeneration is one import being written: a generation of the
// vulnerability database that readers do not see until Commit. It is not
// safe for concurrent use.
type VulnGeneration struct {
	s   *Store
	gen int64
	// ctx is BeginVulns' context: Put, whose signature is fill's put,
	// writes its batches within it.
	ctx context.Context

	advs, affs []any
	imp        VulnImport
	ecos       map[string]*vulnEco
}

type vulnEco struct {
	advisories int
	packages   map[string]bool
	newest     time.Time
}

// ErrVulnImportReplaced is returned by a VulnGeneration's Put and Commit
// when a newer import started meanwhile: the newest import wins.
var ErrVulnImportReplaced = errors.New("a newer vulnerability database import started and replaced this one")

// BeginVulns starts a new generation of the vulnerability database, in
// a short transaction. An import still being written (by this process or
// another) is abandoned — the newest import wins, and the older one's
// next batch fails with ErrVulnImportReplaced — and the rows of
// abandoned or replaced generations are deleted first (CleanVulns).
func (s *Store) BeginVulns(ctx context.Context) (*VulnGeneration, error) {
	var gen int64
	now := formatTime(time.Now())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE vuln_generations SET state = 'retired' WHERE state = 'staging'`); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(generation), 0) + 1 FROM vuln_generations`).Scan(&gen); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO vuln_generations (generation, state, started_at, heartbeat_at) VALUES ($1, 'staging', $2, $2)`, gen, now)
		return translate(err)
	})
	if errors.Is(err, ErrExists) {
		return nil, fmt.Errorf("starting a vulnerability database import: another one started at the same moment; try again")
	}
	if err != nil {
		return nil, fmt.Errorf("starting a vulnerability database import: %w", err)
	}
	s.vulnLive.Store(gen, true)
	if err := s.CleanVulns(ctx); err != nil {
		s.vulnLive.Delete(gen)
		return nil, err
	}
	return &VulnGeneration{s: s, gen: gen, ctx: ctx, ecos: map[string]*vulnEco{}}, nil
}

// Put adds advisory a to the generation; every vulnTxRows advisories (or
// affected packages) are written in a transaction of their own, within
// BeginVulns' context.
func (g *VulnGeneration) Put(a VulnAdvisory) error {
	g.advs = append(g.advs, g.gen, a.ID, a.Summary, strings.Join(a.Aliases, " "), formatTime(a.Modified))
	g.imp.Advisories++
	if a.Modified.After(g.imp.NewestModified) {
		g.imp.NewestModified = a.Modified
	}
	seen := map[string]bool{}
	for _, af := range a.Affected {
		g.affs = append(g.affs, g.gen, a.ID, af.Ecosystem, af.Package, af.Severity, af.Match)
		e := g.ecos[af.Ecosystem]
		if e == nil {
			e = &vulnEco{packages: map[string]bool{}}
			g.ecos[af.Ecosystem] = e
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
	if len(g.advs) >= 5*vulnTxRows || len(g.affs) >= 6*vulnTxRows {
		return g.flush(g.ctx)
	}
	return nil
}

// flush writes the rows put since the last one, in one transaction that
// first makes sure the generation is still being written.
func (g *VulnGeneration) flush(ctx context.Context) error {
	if len(g.advs) == 0 && len(g.affs) == 0 {
		return nil
	}
	err := g.s.tx(ctx, func(tx *sql.Tx) error {
		if err := g.stillStaging(ctx, tx); err != nil {
			return err
		}
		return g.insert(ctx, tx)
	})
	g.advs, g.affs = g.advs[:0], g.affs[:0]
	return err
}

// stillStaging marks the generation alive, or says a newer import
// replaced it.
func (g *VulnGeneration) stillStaging(ctx context.Context, tx *sql.Tx) error {
	res, err := tx.ExecContext(ctx, `UPDATE vuln_generations SET heartbeat_at = $1 WHERE generation = $2 AND state = 'staging'`,
		formatTime(time.Now()), g.gen)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrVulnImportReplaced
	}
	return nil
}

// insert writes the rows put since the last flush, vulnBatch rows per
// INSERT.
func (g *VulnGeneration) insert(ctx context.Context, tx *sql.Tx) error {
	for advs := g.advs; len(advs) > 0; {
		n := min(len(advs), 5*vulnBatch)
		if _, err := tx.ExecContext(ctx, `INSERT INTO vuln_advisories (generation, id, summary, aliases, modified) VALUES `+placeholders(n/5, 5), advs[:n]...); err != nil {
			return fmt.Errorf("storing advisories %s…: %w", advs[1], translate(err))
		}
		advs = advs[n:]
	}
	for affs := g.affs; len(affs) > 0; {
		n := min(len(affs), 6*vulnBatch)
		if _, err := tx.ExecContext(ctx, `INSERT INTO vuln_affected (generation, advisory_id, ecosystem, package, severity, match) VALUES `+placeholders(n/6, 6), affs[:n]...); err != nil {
			return fmt.Errorf("storing affected packages of advisories %s…: %w", affs[1], translate(err))
		}
		affs = affs[n:]
	}
	return nil
}

// Commit writes what is left and makes the generation the current
// database, in one small transaction: the summary of imp (with the
// counts Put made), the ecosystems, the audit entry. The generation it
// replaces is retired; CleanVulns deletes its rows.
func (g *VulnGeneration) Commit(ctx context.Context, imp VulnImport) error {
	if err := g.flush(ctx); err != nil {
		return err
	}
	imp.Advisories, imp.NewestModified = g.imp.Advisories, g.imp.NewestModified
	defer g.s.vulnLive.Delete(g.gen)
	return g.s.tx(ctx, func(tx *sql.Tx) error {
		if err := g.stillStaging(ctx, tx); err != nil {
			return err
		}
		for name, e := range g.ecos {
			if _, err := tx.ExecContext(ctx, `INSERT INTO vuln_ecosystems (generation, ecosystem, advisories, packages, newest_modified) VALUES ($1, $2, $3, $4, $5)`,
				g.gen, name, e.advisories, len(e.packages), formatTime(e.newest)); err != nil {
				return fmt.Errorf("storing ecosystem %s: %w", name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE vuln_generations SET state = 'retired' WHERE state = 'current'`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE vuln_generations SET state = 'current' WHERE generation = $1`, g.gen); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM vuln_import`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO vuln_import (id, imported_at, sha256, size, advisories, skipped, newest_modified, generation) VALUES (1, $1, $2, $3, $4, $5, $6, $7)`,
			formatTime(imp.ImportedAt), imp.SHA256, imp.Size, imp.Advisories, imp.Skipped, formatTime(imp.NewestModified), g.gen); err != nil {
			return err
		}
		perEcosystem := map[string]int{}
		for name, e := range g.ecos {
			perEcosystem[name] = e.advisories
		}
		return appendAudit(ctx, tx, AuditRecord{Action: "vulndb.import", Subject: "vulndb", Details: map[string]any{
			"sha256": imp.SHA256, "size": imp.Size, "advisories": imp.Advisories, "skipped": imp.Skipped,
			"ecosystems": perEcosystem, "newestModified": formatTime(imp.NewestModified)}})
	})
}

// Abort drops the generation: it is retired and its rows deleted
// (CleanVulns). The current database is untouched.
func (g *VulnGeneration) Abort(ctx context.Context) {
	g.s.vulnLive.Delete(g.gen)
	_ = g.s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE vuln_generations SET state = 'retired' WHERE generation = $1 AND state = 'staging'`, g.gen)
		return err
	})
	_ = g.s.CleanVulns(ctx)
}

// vulnStale is how long an import may go without writing a batch before
// CleanVulns counts it as dead (it writes one every few milliseconds).
const vulnStale = 2 * time.Minute

// vulnDeleteBatch is how many rows one transaction of CleanVulns deletes.
const vulnDeleteBatch = 2000

// CleanVulns deletes, in transactions of at most vulnDeleteBatch rows, the
// rows of vulnerability database generations that are no longer needed:
// the ones a newer import replaced, and those of imports that died (a
// crash) — on SQLite, whose database one process owns, every unfinished
// import not running in this process; on PostgreSQL, where another process
// may be importing, those that wrote nothing for vulnStale. It runs at
// the start of each import and should run when refit starts. The current
// database is never touched.
func (s *Store) CleanVulns(ctx context.Context) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT generation, heartbeat_at FROM vuln_generations WHERE state = 'staging'`)
		if err != nil {
			return err
		}
		var dead []int64
		stale := time.Now().Add(-vulnStale)
		for rows.Next() {
			var g int64
			var beat string
			if err := rows.Scan(&g, &beat); err != nil {
				rows.Close()
				return err
			}
			if _, live := s.vulnLive.Load(g); !live && (!s.pg || parseTime(beat).Before(stale)) {
				dead = append(dead, g)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, g := range dead {
			if _, err := tx.ExecContext(ctx, `UPDATE vuln_generations SET state = 'retired' WHERE generation = $1 AND state = 'staging'`, g); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cleaning the vulnerability database: %w", err)
	}
	var gens []int64
	rows, err := s.read.QueryContext(ctx, `SELECT generation FROM vuln_generations WHERE state = 'retired' ORDER BY generation`)
	if err != nil {
		return fmt.Errorf("cleaning the vulnerability database: %w", err)
	}
	for rows.Next() {
		var g int64
		if err := rows.Scan(&g); err != nil {
			rows.Close()
			return fmt.Errorf("cleaning the vulnerability database: %w", err)
		}
		gens = append(gens, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cleaning the vulnerability database: %w", err)
	}
	row := "rowid"
	if s.pg {
		row = "ctid"
	}
	for _, g := range gens {
		for _, table := range []string{"vuln_affected", "vuln_advisories", "vuln_ecosystems"} {
			for {
				var n int64
				err := s.quietTx(ctx, func(tx *sql.Tx) error {
					res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+row+` IN (SELECT `+row+` FROM `+table+` WHERE generation = $1 LIMIT $2)`, g, vulnDeleteBatch)
					if err != nil {
						return err
					}
					n, err = res.RowsAffected()
					return err
				})
				if err != nil {
					return fmt.Errorf("deleting generation %d of the vulnerability database from %s: %w", g, table, err)
				}
				if n < vulnDeleteBatch {
					break
				}
			}
		}
		if err := s.quietTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE vuln_generations SET state = 'gone' WHERE generation = $1 AND state = 'retired'`, g)
			return err
		}); err != nil {
			return fmt.Errorf("cleaning the vulnerability database: %w", err)
		}
	}
	return nil
}

// vulnBatch is how many rows one multi-row INSERT of an import writes.
// SQLite looks each $N parameter up in a list while it parses a
// statement, so preparing one costs the square of its parameters: 100
// rows of 6 made the import half again as fast as 500 rows did, and on
// PostgreSQL the extra round trips cost little.
const vulnBatch = 100

// vulnTxRows is how many rows of a table one transaction of an import
// writes at most. It bounds how long an import keeps other writes
// waiting: tens of milliseconds (BenchmarkVulnDB).
const vulnTxRows = 500

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
// nothing was ever imported. Ecosystems are sorted by name. It reads in
// one statement, so an import switching generations meanwhile gives
// either the old status or the new one.
func (s *Store) VulnStatus(ctx context.Context) (VulnImport, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT i.imported_at, i.sha256, i.size, i.advisories, i.skipped, i.newest_modified,
			e.ecosystem, e.advisories, e.packages, e.newest_modified
		FROM vuln_import i LEFT JOIN vuln_ecosystems e ON e.generation = i.generation
		WHERE i.id = 1 ORDER BY e.ecosystem`)
	if err != nil {
		return VulnImport{}, fmt.Errorf("reading the vulnerability database's status: %w", err)
	}
	defer rows.Close()
	var imp VulnImport
	found := false
	for rows.Next() {
		var at, newest string
		var eco, ecoNewest sql.NullString
		var ecoAdvs, ecoPkgs sql.NullInt64
		if err := rows.Scan(&at, &imp.SHA256, &imp.Size, &imp.Advisories, &imp.Skipped, &newest, &eco, &ecoAdvs, &ecoPkgs, &ecoNewest); err != nil {
			return VulnImport{}, fmt.Errorf("reading the vulnerability database's status: %w", err)
		}
		found = true
		imp.ImportedAt, imp.NewestModified = parseTime(at), parseTime(newest)
		if eco.Valid {
			imp.Ecosystems = append(imp.Ecosystems, VulnEcosystem{Ecosystem: eco.String, Advisories: int(ecoAdvs.Int64),
				Packages: int(ecoPkgs.Int64), NewestModified: parseTime(ecoNewest.String)})
		}
	}
	if err := rows.Err(); err != nil {
		return VulnImport{}, fmt.Errorf("reading the vulnerability database's status: %w", err)
	}
	if !found {
		return VulnImport{}, fmt.Errorf("reading the vulnerability database's status: %w", ErrNotFound)
	}
	return imp, nil
}

// VulnMatches returns every affected entry of package name in
// ecosystem, with its advisory (an indexed look-up), ordered by
// advisory ID, from the current generation (in one statement: never
// half an import). None is an empty slice, not an error.
func (s *Store) VulnMatches(ctx context.Context, ecosystem, name string) ([]VulnMatch, error) {
	return s.VulnMatchesIn(ctx, ecosystem, nil, name)
}

// VulnMatchesIn is VulnMatches over ecosystem and every ecosystem of the
// current generation whose name starts with one of prefixes: one OS
// release whose advisories OSV splits over several ecosystems (Red Hat's
// "Red Hat:enterprise_linux:9::baseos", "…::appstream"). The prefixes
// are matched against the generation's list of ecosystems (a few hundred
// to a few thousand rows), and the affected packages are then looked up
// by (generation, ecosystem, package) in the index, one seek per
// ecosystem found, in the same statement.
func (s *Store) VulnMatchesIn(ctx context.Context, ecosystem string, prefixes []string, name string) ([]VulnMatch, error) {
	query := `SELECT f.advisory_id, f.ecosystem, f.package, f.severity, f.match, a.summary, a.aliases
		FROM vuln_affected f JOIN vuln_advisories a ON a.generation = f.generation AND a.id = f.advisory_id
		WHERE f.generation = (SELECT generation FROM vuln_import WHERE id = 1)
			AND f.ecosystem = $1 AND f.package = $2 ORDER BY f.advisory_id`
	args := []any{ecosystem, name}
	if len(prefixes) > 0 {
		// substr, not LIKE (OSV names hold _ and %) nor a range
		// comparison (PostgreSQL orders text by its locale's collation).
		var or strings.Builder
		for _, p := range prefixes {
			fmt.Fprintf(&or, " OR substr(e.ecosystem, 1, $%d) = $%d", len(args)+1, len(args)+2)
			args = append(args, len(p), p)
		}
		query = `SELECT f.advisory_id, f.ecosystem, f.package, f.severity, f.match, a.summary, a.aliases
		FROM vuln_affected f JOIN vuln_advisories a ON a.generation = f.generation AND a.id = f.advisory_id
		WHERE f.generation = (SELECT generation FROM vuln_import WHERE id = 1)
			AND f.package = $2 AND f.ecosystem IN (SELECT e.ecosystem FROM vuln_ecosystems e
				WHERE e.generation = (SELECT generation FROM vuln_import WHERE id = 1) AND (e.ecosystem = $1` + or.String() + `))
		ORDER BY f.advisory_id, f.ecosystem`
	}
	rows, err := s.read.QueryContext(ctx, query, args...)
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
