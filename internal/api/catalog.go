package api

import "time"

// ImageCatalog is what one platform's image holds: its OS release and
// OS packages (GET /api/v1/images/packages).
type ImageCatalog struct {
	Digest   string      `json:"digest"` // the platform manifest's
	Platform string      `json:"platform,omitempty"`
	OS       OSRelease   `json:"os,omitzero"`
	DB       []string    `json:"db,omitempty"` // package databases found: dpkg, apk, rpm
	Packages []Package   `json:"packages"`
	Config   ImageConfig `json:"config"`
	Layers   int         `json:"layers"`
	Size     int64       `json:"size"` // compressed bytes of all layers
	Read     ReadStats   `json:"read"`
}

// OSRelease is an image's /etc/os-release.
type OSRelease struct {
	ID         string `json:"id,omitempty"`
	VersionID  string `json:"versionId,omitempty"`
	PrettyName string `json:"prettyName,omitempty"`
	Codename   string `json:"codename,omitempty"`
}

// Package is one installed OS package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
	Type    string `json:"type"` // deb, apk or rpm
	Source  string `json:"source,omitempty"`
}

// ImageConfig is the part of an image's config a diff shows.
type ImageConfig struct {
	Env        []string          `json:"env,omitempty"`
	User       string            `json:"user,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	WorkingDir string            `json:"workingDir,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// ReadStats is what reading a catalog from the registry cost.
type ReadStats struct {
	LayersRead int   `json:"layersRead"`
	Bytes      int64 `json:"bytes"` // compressed bytes read
	TookMS     int64 `json:"tookMs"`
}

// ImageDiff is what changed from one image to another
// (GET /api/v1/images/diff, and the diff of a base update).
type ImageDiff struct {
	Old string `json:"old"` // platform manifest digests
	New string `json:"new"`
	// NewPlatform is set when the platform is new to the reference: Old
	// is empty and every package is in Added.
	NewPlatform bool            `json:"newPlatform,omitempty"`
	OS          *OSChange       `json:"os,omitempty"` // set when the OS release changed
	Added       []Package       `json:"added,omitempty"`
	Removed     []Package       `json:"removed,omitempty"`
	Changed     []PackageChange `json:"changed,omitempty"`
	Config      []ConfigChange  `json:"config,omitempty"`
	Layers      LayerChange     `json:"layers"`
	// Vulns is set only when a vulnerability database was consulted.
	Vulns *VulnChanges `json:"vulns,omitempty"`
}

// OSChange is an OS release change.
type OSChange struct {
	Old OSRelease `json:"old"`
	New OSRelease `json:"new"`
}

// PackageChange is a package whose version changed.
type PackageChange struct {
	Name      string `json:"name"`
	Arch      string `json:"arch,omitempty"`
	Type      string `json:"type"`
	Old       string `json:"old"`
	New       string `json:"new"`
	Direction string `json:"direction,omitempty"` // upgrade or downgrade, where known (deb)
	Source    string `json:"source,omitempty"`    // the source package, when the database names one
}

// ConfigChange is one config field, old → new.
type ConfigChange struct {
	Field string `json:"field"` // user, entrypoint, cmd, workdir, "env NAME", "label NAME"
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
	Fixes      []Vuln   `json:"fixes,omitempty"`
	Introduces []Vuln   `json:"introduces,omitempty"`
	Unchecked  []string `json:"unchecked,omitempty"` // changes the database could not judge: "name old → new: why"
}

// Vuln is one vulnerability.
type Vuln struct {
	ID       string `json:"id"`
	Severity string `json:"severity"` // low, medium, high, critical or unknown
	Package  string `json:"package"`
	Summary  string `json:"summary,omitempty"`
}

// BaseDiff is the diff of one base update (GET /api/v1/bases/diff).
type BaseDiff struct {
	Ref       string    `json:"ref"`
	Platform  string    `json:"platform,omitempty"`
	OldDigest string    `json:"oldDigest"`
	NewDigest string    `json:"newDigest"`
	SeenAt    time.Time `json:"seenAt,omitzero"` // when the update was observed; zero when asked by digests
	Diff      ImageDiff `json:"diff"`
}
