package catalog

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	rpmversion "github.com/knqyf263/go-rpm-version"
	debversion "pault.ag/go/debian/version"
)

// Diff is what changed from one image (Old) to another (New).
type Diff struct {
	Old string `json:"old"` // platform manifest digests
	New string `json:"new"`
	// NewPlatform is set when the platform is new to the reference (an
	// index gained it): Old is empty, every package is Added and OS
	// says the new image's release.
	NewPlatform bool `json:"newPlatform,omitempty"`
	// OS is set when the OS release changed.
	OS *OSChange `json:"os,omitempty"`
	// Packages changed, by name and architecture.
	Added   []Package       `json:"added,omitempty"`
	Removed []Package       `json:"removed,omitempty"`
	Changed []PackageChange `json:"changed,omitempty"`
	// Config lists the config fields that changed.
	Config []ConfigChange `json:"config,omitempty"`
	// Layers and size, old → new.
	Layers LayerChange `json:"layers"`
	// Vulns is set only when a vulnerability database was consulted.
	Vulns *VulnChanges `json:"vulns,omitempty"`
}

// OSChange is an OS release change.
type OSChange struct {
	Old OS `json:"old"`
	New OS `json:"new"`
}

// PackageChange is one package whose version changed.
type PackageChange struct {
	Name string `json:"name"`
	Arch string `json:"arch,omitempty"`
	Type string `json:"type"`
	Old  string `json:"old"`
	New  string `json:"new"`
	// Direction is "upgrade" or "downgrade" where the version ordering of
	// the package's type is known (dpkg's, from pault.ag/go/debian; rpm's
	// rpmvercmp, from knqyf263/go-rpm-version), else empty.
	Direction string `json:"direction,omitempty"`
	// Source is the source package, when the database names one
	// (Debian's advisories are about source packages: openssl, not
	// libssl3).
	Source string `json:"source,omitempty"`
}

// ConfigChange is one config field, old → new, as a user reads it.
type ConfigChange struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

// LayerChange is the layer count and compressed size, old → new.
type LayerChange struct {
	OldCount int   `json:"oldCount"`
	NewCount int   `json:"newCount"`
	OldSize  int64 `json:"oldSize"`
	NewSize  int64 `json:"newSize"`
}

// VulnChanges are the vulnerabilities a diff fixes and introduces.
type VulnChanges struct {
	Fixes      []Vuln `json:"fixes,omitempty"`
	Introduces []Vuln `json:"introduces,omitempty"`
	// Unchecked lists the changes the database could not judge (a
	// version its ordering cannot read), "name old → new: why".
	Unchecked []string `json:"unchecked,omitempty"`
}

// PackagesChanged reports whether any OS package was added, removed or
// changed (what rebuildWhen: packages asks).
func (d Diff) PackagesChanged() bool {
	return len(d.Added)+len(d.Removed)+len(d.Changed) > 0
}

// Summary is the diff in one line, for a run's cause: the OS release
// change, then up to three package changes and how many more, e.g.
// "debian 12.4 → 12.5; openssl 3.0.11-1 → 3.0.13-1; +curl; -gone";
// "no package changed" when none did.
func (d Diff) Summary() string {
	if d.NewPlatform {
		s := "new platform"
		if d.OS != nil && d.OS.New.String() != "" {
			s += ": " + d.OS.New.String()
		}
		return s + fmt.Sprintf(", %d packages", len(d.Added))
	}
	var parts []string
	if d.OS != nil {
		parts = append(parts, d.OS.Old.String()+" → "+d.OS.New.String())
	}
	var pkgs []string
	for _, c := range d.Changed {
		pkgs = append(pkgs, c.Name+" "+c.Old+" → "+c.New)
	}
	for _, p := range d.Added {
		pkgs = append(pkgs, "+"+p.Name)
	}
	for _, p := range d.Removed {
		pkgs = append(pkgs, "-"+p.Name)
	}
	switch {
	case len(pkgs) == 0:
		parts = append(parts, "no package changed")
	case len(pkgs) > 3:
		parts = append(parts, pkgs[:3]...)
		parts = append(parts, fmt.Sprintf("%d more", len(pkgs)-3))
	default:
		parts = append(parts, pkgs...)
	}
	return strings.Join(parts, "; ")
}

// Compare returns the diff from old to new.
func Compare(old, new Catalog) Diff {
	d := Diff{Old: old.Digest, New: new.Digest,
		Layers: LayerChange{OldCount: old.Layers, NewCount: new.Layers, OldSize: old.Size, NewSize: new.Size}}
	if old.OS != new.OS {
		d.OS = &OSChange{Old: old.OS, New: new.OS}
	}
	before := map[string]Package{}
	for _, p := range old.Packages {
		before[p.key()] = p
	}
	after := map[string]bool{}
	for _, p := range new.Packages {
		after[p.key()] = true
		o, ok := before[p.key()]
		switch {
		case !ok:
			d.Added = append(d.Added, p)
		case o.Version != p.Version:
			d.Changed = append(d.Changed, PackageChange{Name: p.Name, Arch: p.Arch, Type: p.Type, Old: o.Version, New: p.Version,
				Direction: direction(p.Type, o.Version, p.Version), Source: p.Source})
		}
	}
	for _, p := range old.Packages {
		if !after[p.key()] {
			d.Removed = append(d.Removed, p)
		}
	}
	d.Config = compareConfig(old.Config, new.Config)
	return d
}

// Added returns the diff of a platform new to a reference: nothing
// before, so every package of cur is added and its OS release is new.
func Added(cur Catalog) Diff {
	d := Compare(Catalog{}, cur)
	d.NewPlatform = true
	d.Config = nil // nothing changed: it is all new
	return d
}

// direction orders two versions of a package of type typ.
func direction(typ, old, new string) string {
	var c int
	switch typ {
	case "deb":
		a, err1 := debversion.Parse(old)
		b, err2 := debversion.Parse(new)
		if err1 != nil || err2 != nil {
			return ""
		}
		c = debversion.Compare(a, b)
	case "rpm":
		c = rpmversion.NewVersion(old).Compare(rpmversion.NewVersion(new))
	default:
		return ""
	}
	switch {
	case c < 0:
		return "upgrade"
	case c > 0:
		return "downgrade"
	}
	return ""
}

func compareConfig(a, b ImageConfig) []ConfigChange {
	var out []ConfigChange
	add := func(field, o, n string) {
		if o != n {
			out = append(out, ConfigChange{Field: field, Old: o, New: n})
		}
	}
	add("user", a.User, b.User)
	add("entrypoint", strings.Join(a.Entrypoint, " "), strings.Join(b.Entrypoint, " "))
	add("cmd", strings.Join(a.Cmd, " "), strings.Join(b.Cmd, " "))
	add("workdir", a.WorkingDir, b.WorkingDir)
	env := func(list []string) map[string]string {
		m := map[string]string{}
		for _, e := range list {
			k, v, _ := strings.Cut(e, "=")
			m[k] = v
		}
		return m
	}
	oldEnv, newEnv := env(a.Env), env(b.Env)
	for _, k := range union(oldEnv, newEnv) {
		add("env "+k, oldEnv[k], newEnv[k])
	}
	for _, k := range union(a.Labels, b.Labels) {
		add("label "+k, a.Labels[k], b.Labels[k])
	}
	return out
}

func union(a, b map[string]string) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return slices.Sorted(maps.Keys(keys))
}
