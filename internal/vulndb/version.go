package vulndb

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	apkversion "github.com/knqyf263/go-apk-version"
	debversion "github.com/knqyf263/go-deb-version"
	rpmversion "github.com/knqyf263/go-rpm-version"
)

// ordering compares two versions of one packaging system; it returns an
// error for a version that system cannot read.
type ordering interface {
	// Name is the packaging system, for errors: "Debian", "Alpine", "RPM".
	Name() string
	// Check reports whether v is a version of this system.
	Check(v string) error
	// Compare returns -1, 0 or +1 as a is older than, the same as or
	// newer than b. Both must have passed Check.
	Compare(a, b string) int
}

// dpkg is Debian's ordering (epoch:upstream-revision, ~ before
// anything), from go-deb-version.
type dpkg struct{}

func (dpkg) Name() string { return "Debian (dpkg)" }
func (dpkg) Check(v string) error {
	_, err := debversion.NewVersion(v)
	return err
}
func (dpkg) Compare(a, b string) int {
	va, _ := debversion.NewVersion(a)
	vb, _ := debversion.NewVersion(b)
	return cmp.Compare(va.Compare(vb), 0)
}

// apk is Alpine's ordering (1.2.3_rc1 < 1.2.3 < 1.2.3_p1, -rN
// revisions), from go-apk-version.
type apk struct{}

func (apk) Name() string { return "Alpine (apk)" }
func (apk) Check(v string) error {
	if !apkversion.Valid(v) {
		return fmt.Errorf("invalid apk version")
	}
	return nil
}
func (apk) Compare(a, b string) int {
	return cmp.Compare(apkversion.Version(a).Compare(apkversion.Version(b)), 0)
}

// rpm is RPM's ordering (epoch:version-release, rpmvercmp), from
// go-rpm-version. Every string is an RPM version.
type rpm struct{}

func (rpm) Name() string { return "RPM" }
func (rpm) Check(v string) error {
	if v == "" {
		return fmt.Errorf("empty version")
	}
	return nil
}
func (rpm) Compare(a, b string) int {
	return cmp.Compare(rpmversion.NewVersion(a).Compare(rpmversion.NewVersion(b)), 0)
}

// orderings maps an OSV ecosystem's name (before its first ':') to the
// ordering of its packages' versions. Ecosystems not here are not
// imported: refit could not compare their versions.
var orderings = map[string]ordering{
	"Debian":      dpkg{},
	"Ubuntu":      dpkg{},
	"Alpine":      apk{},
	"Wolfi":       apk{},
	"Chainguard":  apk{},
	"AlmaLinux":   rpm{},
	"Rocky Linux": rpm{},
	"Red Hat":     rpm{},
	"openSUSE":    rpm{},
	"SUSE":        rpm{},
	"Mageia":      rpm{},
}

// orderingOf returns the ordering of ecosystem ("Debian:12" → dpkg), or
// nil when refit has none.
func orderingOf(ecosystem string) ordering {
	name, _, _ := strings.Cut(ecosystem, ":")
	return orderings[name]
}

// event is one event of an OSV range: exactly one field is set.
type event struct {
	Introduced   string `json:"i,omitempty"`
	Fixed        string `json:"f,omitempty"`
	LastAffected string `json:"l,omitempty"`
}

// match is what an affected entry says about versions, as stored (the
// store's VulnAffected.Match, JSON): ECOSYSTEM ranges and the explicit
// list of affected versions.
type match struct {
	Ranges   [][]event `json:"r,omitempty"`
	Versions []string  `json:"v,omitempty"`
}

// affects reports whether version v is affected, by OSV's rules: v is in
// Versions (for rpm, the same version by rpm's ordering: an epoch of 0
// may be written or not), or some range's events, sorted by version (introduced "0"
// first), leave v affected — introduced at or below v turns it on, fixed
// at or below v turns it off, last_affected below v turns it off.
// Versions in the ranges were checked at import.
func (m match) affects(o ordering, v string) bool {
	if slices.Contains(m.Versions, v) {
		return true
	}
	if _, ok := o.(rpm); ok && slices.ContainsFunc(m.Versions, func(x string) bool { return x != "" && o.Compare(x, v) == 0 }) {
		return true // rpm spells epoch 0 both ways: 0:3.0.7-27.el9 is 3.0.7-27.el9
	}
	for _, r := range m.Ranges {
		if affectedIn(o, r, v) {
			return true
		}
	}
	return false
}

func affectedIn(o ordering, events []event, v string) bool {
	sorted := slices.Clone(events)
	slices.SortStableFunc(sorted, func(a, b event) int { return compareEvent(o, a.version(), b.version()) })
	affected := false
	for _, e := range sorted {
		switch {
		case e.Introduced != "":
			if e.Introduced == "0" || o.Compare(v, e.Introduced) >= 0 {
				affected = true
			}
		case e.Fixed != "":
			if o.Compare(v, e.Fixed) >= 0 {
				affected = false
			}
		case e.LastAffected != "":
			if o.Compare(v, e.LastAffected) > 0 {
				affected = false
			}
		}
	}
	return affected
}

func (e event) version() string { return e.Introduced + e.Fixed + e.LastAffected }

// compareEvent orders event versions, "0" (introduced at the start)
// before everything.
func compareEvent(o ordering, a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "0":
		return -1
	case b == "0":
		return 1
	}
	return o.Compare(a, b)
}
