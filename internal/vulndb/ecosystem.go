package vulndb

import (
	"strings"
)

// Ecosystem returns the OSV ecosystem of an operating system release,
// from /etc/os-release's ID and VERSION_ID:
//
//	debian 12          → "Debian:12"
//	ubuntu 22.04       → "Ubuntu:22.04:LTS" (April releases of even years are LTS)
//	ubuntu 23.10       → "Ubuntu:23.10"
//	alpine 3.19.1      → "Alpine:v3.19"
//	rocky 9.3          → "Rocky Linux:9"
//	almalinux 8.9      → "AlmaLinux:8"
//	rhel 9.4           → "Red Hat:enterprise_linux:9" (UBI images too: a family, see below)
//	opensuse-leap 15.5 → "openSUSE:Leap 15.5"
//	opensuse-tumbleweed (any) → "openSUSE:Tumbleweed"
//	sles 15.5          → "SUSE:Linux Enterprise Server 15 SP5" (SLE BCI images too)
//	wolfi (any)        → "Wolfi"
//	chainguard (any)   → "Chainguard"
//
// Red Hat's is a family of ecosystems, not one: OSV's Red Hat ecosystem
// is "Red Hat:" and a Red Hat CPE without its "cpe:/[oa]:redhat:"
// prefix (ossf/osv-schema ecosystems.json, "Red Hat"), so RHEL 9's
// advisories come per repository — "Red Hat:enterprise_linux:9::baseos",
// "…:9::appstream", "…:9::crb" — and, as Red Hat's CPEs name minor
// releases and no repository from RHEL 10 on (Red Hat's "Identifying Red
// Hat components using CPEs"), RHEL 10's per minor release —
// "Red Hat:enterprise_linux:10.0". An installed rpm does not record its
// repository, so Changes matches a RHEL release against every stream of
// its major release (Streams). The extended-support products of one
// minor release (rhel_eus, rhel_aus, rhel_e4s) are other products, not
// matched: a UBI or RHEL image is updated from the main stream.
//
// It returns false for a release OSV has no ecosystem for, or whose
// advisories refit cannot match: other distributions — OSV's schema
// names none for CentOS Stream, Oracle Linux, Amazon Linux or Fedora —
// and a missing VERSION_ID (Debian testing and sid).
func Ecosystem(osID, versionID string) (string, bool) {
	osID, versionID = strings.ToLower(strings.TrimSpace(osID)), strings.TrimSpace(versionID)
	major, rest, _ := strings.Cut(versionID, ".")
	minor, _, _ := strings.Cut(rest, ".")
	switch osID {
	case "wolfi":
		return "Wolfi", true
	case "chainguard":
		return "Chainguard", true
	case "opensuse-tumbleweed":
		return "openSUSE:Tumbleweed", true
	}
	if !digits(major) {
		return "", false
	}
	switch osID {
	case "debian":
		return "Debian:" + major, true
	case "ubuntu":
		if !digits(minor) {
			return "", false
		}
		eco := "Ubuntu:" + major + "." + minor
		if minor == "04" && len(major) == 2 && (major[1]-'0')%2 == 0 {
			eco += ":LTS"
		}
		return eco, true
	case "alpine":
		if !digits(minor) {
			return "", false
		}
		return "Alpine:v" + major + "." + minor, true
	case "rocky":
		return "Rocky Linux:" + major, true
	case "almalinux":
		return "AlmaLinux:" + major, true
	case "rhel":
		return redHatEL + major, true
	case "opensuse-leap":
		if !digits(minor) {
			return "", false
		}
		return "openSUSE:Leap " + major + "." + minor, true
	case "sles":
		eco := "SUSE:Linux Enterprise Server " + major
		switch {
		case minor == "" || minor == "0":
		case digits(minor):
			eco += " SP" + minor
		default:
			return "", false
		}
		return eco, true
	}
	return "", false
}

// redHatEL starts the OSV ecosystems of Red Hat Enterprise Linux's main
// streams.
const redHatEL = "Red Hat:enterprise_linux:"

// Streams returns the prefixes of the ecosystems that ecosystem stands
// for besides itself: for a Red Hat Enterprise Linux major release
// ("Red Hat:enterprise_linux:9"), its repositories ("…:9:", as in
// "…:9::appstream") and minor releases ("…:9.", as in "…:10.0"). Every
// other ecosystem is one ecosystem: nil.
func Streams(ecosystem string) []string {
	if major, ok := strings.CutPrefix(ecosystem, redHatEL); ok && digits(major) {
		return []string{ecosystem + ":", ecosystem + "."}
	}
	return nil
}

// digits reports whether s is a non-empty run of ASCII digits.
func digits(s string) bool {
	if s == "" || len(s) > 8 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
