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
//	opensuse-leap 15.5 → "openSUSE:Leap 15.5"
//	opensuse-tumbleweed (any) → "openSUSE:Tumbleweed"
//	sles 15.5          → "SUSE:Linux Enterprise Server 15 SP5" (SLE BCI images too)
//	wolfi (any)        → "Wolfi"
//	chainguard (any)   → "Chainguard"
//
// It returns false for a release OSV has no ecosystem for, or whose
// advisories refit cannot match: other distributions, a missing
// VERSION_ID (Debian testing and sid), and Red Hat, whose OSV ecosystems
// name a repository besides the release ("Red Hat:enterprise_linux:9::appstream",
// "…::baseos"), which an installed package does not record. Advisories of
// those are imported all the same.
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
