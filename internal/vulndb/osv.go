package vulndb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	cvss30 "github.com/pandatix/go-cvss/30"
	cvss31 "github.com/pandatix/go-cvss/31"
	cvss40 "github.com/pandatix/go-cvss/40"

	"github.com/refit-dev/refit/internal/store"
)

// Limits of one advisory; a file beyond them is refused, not trimmed.
const (
	maxIDBytes       = 256
	maxNameBytes     = 1024
	maxAffected      = 10_000  // affected entries of one advisory
	maxEvents        = 10_000  // events of all ranges of one affected entry
	maxVersions      = 100_000 // explicit versions of one affected entry
	maxVersionBytes  = 256
	maxAliases       = 1_000
	maxSummaryRunes  = 512 // longer summaries are cut, not refused
	maxSeverityBytes = 256
)

// The severities, worst last; "unknown" when the advisory says nothing
// refit can read.
const (
	SeverityUnknown  = "unknown"
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// SeverityRank orders severities: unknown 0, low 1, medium 2, high 3,
// critical 4; anything else is -1.
func SeverityRank(s string) int {
	switch s {
	case SeverityUnknown:
		return 0
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	case SeverityCritical:
		return 4
	}
	return -1
}

// osvEntry is the part of an OSV record (schema 1.x) refit reads.
type osvEntry struct {
	ID        string          `json:"id"`
	Modified  string          `json:"modified"`
	Withdrawn string          `json:"withdrawn"`
	Aliases   []string        `json:"aliases"`
	Upstream  []string        `json:"upstream"`
	Summary   string          `json:"summary"`
	Details   string          `json:"details"`
	Severity  []osvSeverity   `json:"severity"`
	Affected  []osvAffected   `json:"affected"`
	DBSpec    json.RawMessage `json:"database_specific"`
}

type osvSeverity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

type osvAffected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
	} `json:"package"`
	Severity []osvSeverity `json:"severity"`
	Ranges   []struct {
		Type   string `json:"type"`
		Events []struct {
			Introduced   *string `json:"introduced"`
			Fixed        *string `json:"fixed"`
			LastAffected *string `json:"last_affected"`
			Limit        *string `json:"limit"`
		} `json:"events"`
	} `json:"ranges"`
	Versions []string        `json:"versions"`
	EcoSpec  json.RawMessage `json:"ecosystem_specific"`
	DBSpec   json.RawMessage `json:"database_specific"`
}

// specific is what refit reads of ecosystem_specific and
// database_specific: a severity word (GitHub, SUSE, AlmaLinux) or
// Debian's urgency.
type specific struct {
	Severity any `json:"severity"`
	Urgency  any `json:"urgency"`
}

// parsed is one advisory as parsed from its file: what is stored, and
// how many affected entries were left out.
type parsed struct {
	advisory  store.VulnAdvisory
	skipped   int  // affected entries refit cannot match (other ecosystems, no ECOSYSTEM range)
	withdrawn bool // the whole advisory is withdrawn: not imported
}

// parseEntry parses one OSV record. It returns an error for a record
// that is not OSV JSON or is beyond the limits; affected entries of
// ecosystems refit has no version ordering for are counted in skipped,
// and their ranges are not checked.
func parseEntry(data []byte) (parsed, error) {
	var e osvEntry
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&e); err != nil {
		return parsed{}, fmt.Errorf("not an OSV record: %w", err)
	}
	if dec.More() {
		return parsed{}, errors.New("not an OSV record: data after the JSON object")
	}
	switch {
	case e.ID == "":
		return parsed{}, errors.New("OSV record without an id")
	case len(e.ID) > maxIDBytes || !utf8.ValidString(e.ID) || strings.ContainsAny(e.ID, " \t\r\n"):
		return parsed{}, fmt.Errorf("OSV id %.40q… is not an identifier", e.ID)
	case len(e.Affected) > maxAffected:
		return parsed{}, fmt.Errorf("advisory %s: %d affected entries, more than %d", e.ID, len(e.Affected), maxAffected)
	case len(e.Aliases)+len(e.Upstream) > maxAliases:
		return parsed{}, fmt.Errorf("advisory %s: more than %d aliases", e.ID, maxAliases)
	}
	var p parsed
	if e.Withdrawn != "" {
		p.withdrawn = true
		return p, nil
	}
	a := store.VulnAdvisory{ID: e.ID, Summary: summary(e.Summary, e.Details)}
	if e.Modified != "" {
		t, err := time.Parse(time.RFC3339Nano, e.Modified)
		if err != nil {
			return parsed{}, fmt.Errorf("advisory %s: modified %.40q is not an RFC 3339 time", e.ID, e.Modified)
		}
		a.Modified = t.UTC()
	}
	for _, al := range append(e.Aliases, e.Upstream...) {
		if al == "" || len(al) > maxIDBytes || strings.ContainsAny(al, " \t\r\n") {
			return parsed{}, fmt.Errorf("advisory %s: alias %.40q is not an identifier", e.ID, al)
		}
		if al != e.ID && !slices.Contains(a.Aliases, al) {
			a.Aliases = append(a.Aliases, al)
		}
	}
affected:
	for i, af := range e.Affected {
		eco, name := af.Package.Ecosystem, af.Package.Name
		if len(eco) > maxNameBytes || len(name) > maxNameBytes {
			return parsed{}, fmt.Errorf("advisory %s: affected[%d]: package name or ecosystem longer than %d bytes", e.ID, i, maxNameBytes)
		}
		o := orderingOf(eco)
		if o == nil || name == "" {
			p.skipped++
			continue
		}
		var m match
		events := 0
		for j, r := range af.Ranges {
			if r.Type != "ECOSYSTEM" {
				continue // SEMVER and GIT ranges do not describe distribution packages
			}
			events += len(r.Events)
			if events > maxEvents {
				return parsed{}, fmt.Errorf("advisory %s: affected[%d]: more than %d range events", e.ID, i, maxEvents)
			}
			var rng []event
			for k, ev := range r.Events {
				var out event
				var v string
				switch {
				case ev.Introduced != nil:
					v, out.Introduced = *ev.Introduced, *ev.Introduced
				case ev.Fixed != nil:
					v, out.Fixed = *ev.Fixed, *ev.Fixed
				case ev.LastAffected != nil:
					v, out.LastAffected = *ev.LastAffected, *ev.LastAffected
				case ev.Limit != nil:
					continue // limits bound git history walks, not package versions
				default:
					return parsed{}, fmt.Errorf("advisory %s: affected[%d].ranges[%d].events[%d] has no introduced, fixed or last_affected", e.ID, i, j, k)
				}
				if len(v) > maxVersionBytes {
					return parsed{}, fmt.Errorf("advisory %s: affected[%d]: version longer than %d bytes", e.ID, i, maxVersionBytes)
				}
				if v == "0" && out.Introduced != "" {
					rng = append(rng, out)
					continue
				}
				if o.Check(v) != nil {
					// Not a version of the ecosystem (a data error upstream):
					// this entry cannot be matched, the rest of the file can.
					p.skipped++
					continue affected
				}
				rng = append(rng, out)
			}
			if len(rng) > 0 {
				m.Ranges = append(m.Ranges, rng)
			}
		}
		if len(af.Versions) > maxVersions {
			return parsed{}, fmt.Errorf("advisory %s: affected[%d]: %d versions, more than %d", e.ID, i, len(af.Versions), maxVersions)
		}
		for _, v := range af.Versions {
			if len(v) > maxVersionBytes {
				return parsed{}, fmt.Errorf("advisory %s: affected[%d]: version longer than %d bytes", e.ID, i, maxVersionBytes)
			}
		}
		m.Versions = af.Versions
		if len(m.Ranges) == 0 && len(m.Versions) == 0 {
			p.skipped++
			continue
		}
		b, err := json.Marshal(m)
		if err != nil {
			return parsed{}, fmt.Errorf("advisory %s: %w", e.ID, err)
		}
		sev := severityOf(append(slices.Clip(af.Severity), e.Severity...), af.EcoSpec, af.DBSpec, e.DBSpec)
		a.Affected = append(a.Affected, store.VulnAffected{Ecosystem: eco, Package: name, Severity: sev, Match: string(b)})
	}
	p.advisory = a
	return p, nil
}

// severityOf derives a severity band from what an OSV record (or one of
// its affected entries) says, in this order:
//
//  1. a CVSS vector (v3.0, v3.1 or v4.0) in severity[]: its base score's
//     band (0.1–3.9 low, 4–6.9 medium, 7–8.9 high, 9–10 critical; the
//     highest when there are several);
//  2. a severity word in severity[] (Ubuntu's "type": "Ubuntu"), or in
//     ecosystem_specific or database_specific ("severity": "HIGH",
//     GitHub's MODERATE read as medium, "important" as high);
//  3. Debian's urgency in ecosystem_specific ("low", "medium", "high",
//     with or without Debian's "**" marks; "unimportant" is low);
//  4. otherwise "unknown" (Debian's "not yet assigned" and
//     "end-of-life", and every record that says nothing).
//
// The affected entry's own and the record's severity[] are read
// together, and its ecosystem_specific, database_specific and the
// record's database_specific (specs).
func severityOf(sevs []osvSeverity, specs ...json.RawMessage) string {
	best := -1
	for _, s := range sevs {
		if len(s.Score) > maxSeverityBytes {
			continue
		}
		if band, ok := cvssBand(s.Score); ok {
			best = max(best, SeverityRank(band))
		}
	}
	if best > 0 {
		return rankName(best)
	}
	for _, s := range sevs {
		if band, ok := word(s.Score); ok && !strings.HasPrefix(s.Type, "CVSS") {
			best = max(best, SeverityRank(band))
		}
	}
	var sps []specific
	for _, raw := range specs {
		var sp specific
		if len(raw) > 0 && json.Unmarshal(raw, &sp) == nil {
			sps = append(sps, sp)
		}
	}
	for _, sp := range sps {
		if s, ok := sp.Severity.(string); ok {
			if band, ok := word(s); ok {
				best = max(best, SeverityRank(band))
			}
		}
	}
	if best > 0 {
		return rankName(best)
	}
	for _, sp := range sps {
		if s, ok := sp.Urgency.(string); ok {
			if band, ok := word(strings.TrimRight(s, "*")); ok {
				best = max(best, SeverityRank(band))
			}
		}
	}
	if best > 0 {
		return rankName(best)
	}
	return SeverityUnknown
}

func rankName(r int) string {
	return [...]string{SeverityUnknown, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}[r]
}

// cvssBand reads a CVSS vector and returns its base score's band.
func cvssBand(vector string) (string, bool) {
	var score float64
	switch {
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		v, err := cvss31.ParseVector(vector)
		if err != nil {
			return "", false
		}
		score = v.BaseScore()
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		v, err := cvss30.ParseVector(vector)
		if err != nil {
			return "", false
		}
		score = v.BaseScore()
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		v, err := cvss40.ParseVector(vector)
		if err != nil {
			return "", false
		}
		score = v.Score()
	default:
		return "", false
	}
	switch {
	case score >= 9:
		return SeverityCritical, true
	case score >= 7:
		return SeverityHigh, true
	case score >= 4:
		return SeverityMedium, true
	case score > 0:
		return SeverityLow, true
	}
	return "", false
}

// word reads a severity word.
func word(s string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "low", "negligible", "unimportant":
		return SeverityLow, true
	case "medium", "moderate":
		return SeverityMedium, true
	case "high", "important":
		return SeverityHigh, true
	case "critical":
		return SeverityCritical, true
	}
	return "", false
}

// summary is the record's summary, or the first line of its details,
// cut to maxSummaryRunes.
func summary(s, details string) string {
	if s == "" {
		s, _, _ = strings.Cut(strings.TrimSpace(details), "\n")
	}
	s = strings.ToValidUTF8(strings.Join(strings.Fields(s), " "), "")
	if utf8.RuneCountInString(s) > maxSummaryRunes {
		s = string([]rune(s)[:maxSummaryRunes-1]) + "…"
	}
	return s
}

// cveID matches a CVE identifier at the end of an advisory ID
// ("DEBIAN-CVE-2024-1234", "ALPINE-CVE-2024-1234", "CVE-2024-1234").
var cveID = regexp.MustCompile(`(?:^|-)(CVE-\d{4}-\d{4,})$`)

// displayID is the name a user knows a vulnerability by: the CVE an
// advisory is about — its own ID's CVE, or its only CVE alias — else the
// advisory's ID (a DSA that fixes several CVEs stays DSA-…).
func displayID(id string, aliases []string) string {
	if m := cveID.FindStringSubmatch(id); m != nil {
		return m[1]
	}
	var cve string
	for _, al := range aliases {
		if strings.HasPrefix(al, "CVE-") {
			if cve != "" && cve != al {
				return id
			}
			cve = al
		}
	}
	if cve != "" {
		return cve
	}
	return id
}
