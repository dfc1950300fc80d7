// Package vulndb is refit's offline vulnerability database: it imports an
// OSV export (the zip of JSON records OSV publishes per ecosystem) into
// the store, and says which vulnerabilities moving a package from one
// version to another fixes and which it introduces, comparing versions
// as the distribution does (dpkg, apk and RPM ordering, from maintained
// libraries). It never reaches the network. It owns parsing and
// matching; the rows are the store's.
package vulndb

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/refit-dev/refit/internal/store"
)

// Vuln is a vulnerability a package change fixes or introduces.
type Vuln struct {
	// ID is the name users know it by: the CVE when the advisory is about
	// one CVE ("CVE-2024-1234" for DEBIAN-CVE-2024-1234), else the
	// advisory's ID ("DSA-5678-1").
	ID string
	// Severity is low, medium, high, critical or unknown (see severityOf
	// for how it is derived).
	Severity string
	// Package is the package's name.
	Package string
	// Summary is the advisory's one-line summary ("" when it has none).
	Summary string
}

// String says the vulnerability as a diff shows it: "CVE-2024-0727
// (high) in openssl".
func (v Vuln) String() string {
	return fmt.Sprintf("%s (%s) in %s", v.ID, v.Severity, v.Package)
}

// rows is what the database keeps in the store.
type rows interface {
	ReplaceVulns(ctx context.Context, imp store.VulnImport, fill func(put func(store.VulnAdvisory) error) (int, error)) (store.VulnImport, error)
	VulnStatus(ctx context.Context) (store.VulnImport, error)
	VulnMatchesIn(ctx context.Context, ecosystem string, prefixes []string, name string) ([]store.VulnMatch, error)
}

var _ rows = (*store.Store)(nil)

// Config configures New.
type Config struct {
	// Store keeps the advisories (required).
	Store rows
	// Limits bound an import; zero fields take their defaults.
	Limits Limits
	// Now is the clock for the import time. nil = time.Now.
	Now func() time.Time
}

// DB is the vulnerability database. It is safe for concurrent use.
type DB struct {
	cfg Config
}

// New returns the database over cfg.Store.
func New(cfg Config) *DB {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &DB{cfg: cfg}
}

// ErrNotImported is returned by Status when no export was ever imported.
var ErrNotImported = errors.New("no vulnerability database imported (refit vulndb import FILE)")

// ErrUnknownEcosystem is returned by Changes for an ecosystem refit has
// no version ordering for.
var ErrUnknownEcosystem = errors.New("no version ordering for this ecosystem")

// Import replaces the database with the OSV export in r (size bytes): a
// zip of OSV JSON records. It reads the zip within the Config's Limits,
// record after record, into a new generation of the database that the
// store writes in short transactions and switches to once every record
// is in (store.ReplaceVulns): other writes are not held up, lookups see
// the old database until the switch, and on any error (an *EntryError
// names the refused file) nothing changes. Withdrawn advisories, and affected packages of
// ecosystems refit cannot compare versions of, are counted as skipped.
func (db *DB) Import(ctx context.Context, r io.ReaderAt, size int64) (store.VulnImport, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return store.VulnImport{}, fmt.Errorf("reading the export: %w", err)
	}
	imp := store.VulnImport{ImportedAt: db.cfg.Now().UTC(), SHA256: hex.EncodeToString(h.Sum(nil)), Size: size}
	skipped := 0
	seen := map[string]bool{} // advisory IDs, to name the file that repeats one
	var refused error         // the export's own fault, said without the store's wrapping
	imp, err := db.cfg.Store.ReplaceVulns(ctx, imp, func(put func(store.VulnAdvisory) error) (int, error) {
		err := readExport(ctx, r, size, db.cfg.Limits, func(entry string, p parsed) error {
			if p.withdrawn {
				skipped++
				return nil
			}
			skipped += p.skipped
			if len(p.advisory.Affected) == 0 {
				if p.skipped == 0 {
					skipped++ // an advisory of no package refit can match
				}
				return nil
			}
			if seen[p.advisory.ID] {
				return refuse("advisory %s is in the export twice", p.advisory.ID)
			}
			seen[p.advisory.ID] = true
			return put(p.advisory)
		})
		if errors.Is(err, ErrRefused) {
			refused = err
		}
		return skipped, err
	})
	if refused != nil {
		return store.VulnImport{}, refused
	}
	return imp, err
}

// Status returns what the last import holds, or ErrNotImported.
func (db *DB) Status(ctx context.Context) (store.VulnImport, error) {
	imp, err := db.cfg.Store.VulnStatus(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return store.VulnImport{}, ErrNotImported
	}
	return imp, err
}

// Changes says which vulnerabilities moving package name in ecosystem
// (an OSV ecosystem, as Ecosystem returns) from oldVersion to newVersion
// fixes — they affect oldVersion, not newVersion — and which it
// introduces — the other way round. oldVersion "" means the package was
// added, newVersion "" that it was removed. Both lists are sorted worst
// severity first, then by ID; an empty database answers none. It looks
// the package up by (ecosystem, name) in the store's index — in every
// stream of ecosystem when it stands for several (Streams: a Red Hat
// Enterprise Linux release), one advisory counting once. A version
// that is not one of the ecosystem's is an error naming it.
func (db *DB) Changes(ctx context.Context, ecosystem, name, oldVersion, newVersion string) (fixes, introduces []Vuln, err error) {
	o := orderingOf(ecosystem)
	if o == nil {
		return nil, nil, fmt.Errorf("vulnerabilities of %s in %q: %w", name, ecosystem, ErrUnknownEcosystem)
	}
	for _, v := range []string{oldVersion, newVersion} {
		if v != "" {
			if err := o.Check(v); err != nil {
				return nil, nil, fmt.Errorf("vulnerabilities of %s: %q is not a %s version: %v", name, v, o.Name(), err)
			}
		}
	}
	ms, err := db.cfg.Store.VulnMatchesIn(ctx, ecosystem, Streams(ecosystem), name)
	if err != nil {
		return nil, nil, err
	}
	type state struct {
		old, new bool
		v        Vuln
	}
	byID := map[string]*state{}
	var order []string
	for _, m := range ms {
		var mt match
		if err := json.Unmarshal([]byte(m.Match), &mt); err != nil {
			return nil, nil, fmt.Errorf("reading advisory %s for %s %s: %w", m.AdvisoryID, ecosystem, name, err)
		}
		oldHit := oldVersion != "" && mt.affects(o, oldVersion)
		newHit := newVersion != "" && mt.affects(o, newVersion)
		if !oldHit && !newHit {
			continue
		}
		id := displayID(m.AdvisoryID, m.Aliases)
		s := byID[id]
		if s == nil {
			s = &state{v: Vuln{ID: id, Severity: m.Severity, Package: name, Summary: m.Summary}}
			byID[id] = s
			order = append(order, id)
		}
		s.old = s.old || oldHit
		s.new = s.new || newHit
		if SeverityRank(m.Severity) > SeverityRank(s.v.Severity) {
			s.v.Severity = m.Severity
		}
		if s.v.Summary == "" {
			s.v.Summary = m.Summary
		}
	}
	for _, id := range order {
		switch s := byID[id]; {
		case s.old && !s.new:
			fixes = append(fixes, s.v)
		case s.new && !s.old:
			introduces = append(introduces, s.v)
		}
	}
	sortVulns(fixes)
	sortVulns(introduces)
	return fixes, introduces, nil
}

// sortVulns sorts worst severity first, then by ID.
func sortVulns(vs []Vuln) {
	slices.SortFunc(vs, func(a, b Vuln) int {
		if c := cmp.Compare(SeverityRank(b.Severity), SeverityRank(a.Severity)); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}
