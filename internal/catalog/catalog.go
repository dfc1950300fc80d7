// Package catalog says what is installed in an image: its OS release
// (os-release) and its OS packages (dpkg, apk, rpm), read by streaming the
// image's layers from the top down and stopping as soon as the package
// database and os-release are known; and what changed between two
// images (Diff). It never extracts an image to disk, reads each layer's
// stream at most once, and bounds the bytes, the time and the size of
// every file it keeps (Limits). It does not fetch (a caller hands it a
// v1.Image, through internal/regclient), store or decide anything: the
// cache per digest is Service's, the rebuild policy internal/lifecycle's.
package catalog

import (
	"cmp"
	"slices"
	"time"
)

// Catalog is what one platform's image holds.
type Catalog struct {
	// Digest is the platform manifest's digest.
	Digest string `json:"digest"`
	// Platform is e.g. "linux/amd64" (empty when unknown).
	Platform string `json:"platform,omitempty"`
	// OS is the image's os-release; zero when it has none.
	OS OS `json:"os,omitzero"`
	// DB names the package databases found ("dpkg", "apk", "rpm"); empty
	// for an image without one (scratch, busybox).
	DB []string `json:"db,omitempty"`
	// Packages are sorted by name, then architecture.
	Packages []Package `json:"packages"`
	// Config is the part of the image config a user sees change.
	Config ImageConfig `json:"config"`
	// Layers is the number of layers; Size their compressed total.
	Layers int   `json:"layers"`
	Size   int64 `json:"size"`
	// Read says what reading it cost.
	Read Stats `json:"read"`
}

// OS is the os-release of an image (os-release(5)).
type OS struct {
	ID         string `json:"id,omitempty"`
	VersionID  string `json:"versionId,omitempty"`
	PrettyName string `json:"prettyName,omitempty"`
	Codename   string `json:"codename,omitempty"`
}

// String is the release a user reads, e.g. "debian 12".
func (o OS) String() string {
	if o.ID == "" {
		return ""
	}
	if o.VersionID == "" {
		return o.ID
	}
	return o.ID + " " + o.VersionID
}

// Package is one installed OS package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
	// Type is the database it came from: "deb", "apk" or "rpm".
	Type string `json:"type"`
	// Source is the source package, when the database names one (rpm:
	// the name of its source rpm, "openssl" for openssl-libs).
	Source string `json:"source,omitempty"`
}

// key identifies a package across two catalogs: name and architecture.
func (p Package) key() string { return p.Name + "\x00" + p.Arch }

// ImageConfig is the part of an image's config a diff shows.
type ImageConfig struct {
	Env        []string          `json:"env,omitempty"`
	User       string            `json:"user,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	WorkingDir string            `json:"workingDir,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// Stats is what reading a catalog cost.
type Stats struct {
	// LayersRead counts the layers whose stream was opened.
	LayersRead int `json:"layersRead"`
	// Bytes counts compressed bytes read from the registry.
	Bytes int64 `json:"bytes"`
	// TookMS is the wall time in milliseconds.
	TookMS int64 `json:"tookMs"`
}

// Limits bound reading one image.
type Limits struct {
	// Bytes bounds the compressed bytes read from all layers. Default
	// 1 GiB.
	Bytes int64
	// File bounds one package database or os-release file, uncompressed.
	// Default 64 MiB. An rpm database is copied to a temporary file (under
	// os.TempDir) rather than held in memory; its child parser may use
	// 256 MiB + 4 × File (see rpmChildMemory).
	File int64
	// Time bounds the whole read. Default 2 min.
	Time time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.Bytes <= 0 {
		l.Bytes = 1 << 30
	}
	if l.File <= 0 {
		l.File = 64 << 20
	}
	if l.Time <= 0 {
		l.Time = 2 * time.Minute
	}
	return l
}

// sortPackages orders packages by name, then architecture, then version.
func sortPackages(ps []Package) {
	slices.SortFunc(ps, func(a, b Package) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Arch, b.Arch), cmp.Compare(a.Version, b.Version))
	})
}
