package catalog

import (
	"cmp"
	"context"
	"fmt"
)

// Vulns says which vulnerabilities a package change fixes and
// introduces. internal/vulndb implements it over an offline OSV
// database; with none, diffs have no vulnerability section.
type Vulns interface {
	// Changes says which vulnerabilities moving package name in ecosystem
	// (OSV ecosystem string, e.g. "Debian:12", "Alpine:v3.19") from oldVersion
	// to newVersion fixes and introduces. oldVersion "" = added, newVersion "" = removed.
	Changes(ctx context.Context, ecosystem, name, oldVersion, newVersion string) (fixes, introduces []Vuln, err error)
}

// Vuln is one vulnerability a change fixes or introduces.
type Vuln struct {
	ID       string `json:"id"`
	Severity string `json:"severity"` // low|medium|high|critical|unknown
	Package  string `json:"package"`
	Summary  string `json:"summary,omitempty"`
}

// Ecosystem maps an OS release to its OSV ecosystem ("Debian:12"), or
// to the name of a family of them that Vulns expands ("Red Hat:enterprise_linux:9",
// every repository of RHEL 9); vulndb.Ecosystem is one.
type Ecosystem func(osID, versionID string) (string, bool)

// AddVulns fills d.Vulns by asking v about every package change of d,
// in the ecosystem of the new image's OS (the old one's for removals
// when the new image has no OS release). Debian's and Alpine's advisories
// name source packages, so a deb or apk change is asked by its source
// package where the database names one, and each (source, old, new) once
// — libssl3 and openssl moving together are one question. The advisories
// of OSV's rpm ecosystems (AlmaLinux, Rocky Linux, Red Hat, SUSE) list
// every binary package (openssl and openssl-libs), so an rpm change is
// asked by its own name. A change v cannot judge (a
// version its ordering cannot read) is listed in Unchecked and the rest
// go on; only the context ending stops it. With v nil it does nothing.
func AddVulns(ctx context.Context, d *Diff, old, new OS, v Vulns, eco Ecosystem) error {
	if v == nil || eco == nil {
		return nil
	}
	os := new
	if os.ID == "" {
		os = old
	}
	ecosystem, ok := eco(os.ID, os.VersionID)
	if !ok {
		return nil
	}
	out := &VulnChanges{}
	asked := map[[3]string]bool{}
	ask := func(typ, name, source, o, n string) error {
		if typ != "rpm" {
			name = cmp.Or(source, name)
		}
		if k := [3]string{name, o, n}; asked[k] {
			return nil
		} else {
			asked[k] = true
		}
		fx, in, err := v.Changes(ctx, ecosystem, name, o, n)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("looking up vulnerabilities of %s %s → %s: %w", name, o, n, err)
			}
			out.Unchecked = append(out.Unchecked, fmt.Sprintf("%s %s → %s: %v", name, o, n, err))
			return nil
		}
		out.Fixes = append(out.Fixes, fx...)
		out.Introduces = append(out.Introduces, in...)
		return nil
	}
	for _, c := range d.Changed {
		if err := ask(c.Type, c.Name, c.Source, c.Old, c.New); err != nil {
			return err
		}
	}
	for _, p := range d.Added {
		if err := ask(p.Type, p.Name, p.Source, "", p.Version); err != nil {
			return err
		}
	}
	for _, p := range d.Removed {
		if err := ask(p.Type, p.Name, p.Source, p.Version, ""); err != nil {
			return err
		}
	}
	d.Vulns = out
	return nil
}

// severities orders Vuln.Severity values; unknown ranks lowest.
var severities = map[string]int{"unknown": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

// SeverityRank returns the rank of a severity (0 for unknown or empty).
func SeverityRank(s string) int { return severities[s] }

// MaxFixed returns the highest severity among the fixes of d ("" when
// it fixes nothing or names no vulnerabilities).
func (d Diff) MaxFixed() string {
	if d.Vulns == nil {
		return ""
	}
	best := ""
	for _, v := range d.Vulns.Fixes {
		if best == "" || SeverityRank(v.Severity) > SeverityRank(best) {
			best = v.Severity
		}
	}
	return best
}
