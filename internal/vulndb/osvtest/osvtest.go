// Package osvtest makes small OSV exports for tests: zips of JSON
// records as OSV publishes them per ecosystem.
package osvtest

import (
	"archive/zip"
	"bytes"
	"fmt"
	"sort"
)

// Zip returns a zip holding files (name → content), in name order,
// deflated as OSV's exports are.
func Zip(files map[string]string) []byte {
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			panic(err) // writing to memory
		}
		fmt.Fprint(w, files[n])
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Vectors of CVSS 3.1 base scores: 7.5 (high), 9.8 (critical), 5.3
// (medium).
const (
	High     = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"
	Critical = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
	Medium   = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"
)

// Fixture is a small export of Debian 12 and Alpine 3.19 advisories:
//
//   - DEBIAN-CVE-2024-0727, openssl, fixed in 3.0.13-1~deb12u1, high (CVSS)
//   - DEBIAN-CVE-2024-2511, openssl, fixed in 3.0.14-1~deb12u1, medium (urgency)
//   - DEBIAN-CVE-2023-5678, openssl, fixed in 3.0.11-1~deb12u1, unknown
//   - DEBIAN-CVE-2024-9143, openssl, only 3.0.13-1~deb12u1 (last_affected), unknown
//   - DEBIAN-CVE-2024-2398, curl, fixed in 7.88.1-10+deb12u6, critical (CVSS)
//   - ALPINE-CVE-2023-42363, busybox on Alpine 3.19, fixed in 1.36.1-r16, medium,
//     and 1.36.1-r2 listed in versions
//   - a withdrawn advisory and an npm advisory, which are skipped
//
// So openssl 3.0.11-1~deb12u2 → 3.0.13-1~deb12u1 fixes CVE-2024-0727
// (high) and introduces CVE-2024-9143 (unknown).
func Fixture() map[string]string {
	return map[string]string{
		"DEBIAN-CVE-2024-0727.json": `{"schema_version":"1.6.0","id":"DEBIAN-CVE-2024-0727","modified":"2026-11-20T10:00:00Z",
  "upstream":["CVE-2024-0727"],"details":"Processing a maliciously formatted PKCS12 file may lead OpenSSL to crash",
  "severity":[{"type":"CVSS_V3","score":"` + High + `"}],
  "affected":[{"package":{"ecosystem":"Debian:12","name":"openssl","purl":"pkg:deb/debian/openssl?arch=source"},
    "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.13-1~deb12u1"}]}],
    "ecosystem_specific":{"urgency":"low"}},
   {"package":{"ecosystem":"Debian:13","name":"openssl"},
    "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.1.5-1"}]}]}]}`,
		"DEBIAN-CVE-2024-2511.json": `{"id":"DEBIAN-CVE-2024-2511","modified":"2026-11-18T10:00:00Z","summary":"Unbounded memory growth with session handling in TLSv1.3",
  "affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},
    "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.14-1~deb12u1"}]}],
    "ecosystem_specific":{"urgency":"medium**"}}]}`,
		"DEBIAN-CVE-2023-5678.json": `{"id":"DEBIAN-CVE-2023-5678","modified":"2026-01-02T10:00:00Z","summary":"Excessive time spent in DH check",
  "affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},
    "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.11-1~deb12u1"}]}],
    "ecosystem_specific":{"urgency":"not yet assigned"}}]}`,
		"DEBIAN-CVE-2024-9143.json": `{"id":"DEBIAN-CVE-2024-9143","modified":"2026-11-19T10:00:00Z","summary":"Out-of-bounds memory access in GF(2^m) APIs",
  "affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},
    "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"3.0.13-1~deb12u1"},{"last_affected":"3.0.13-1~deb12u1"}]}]}]}`,
		"DEBIAN-CVE-2024-2398.json": `{"id":"DEBIAN-CVE-2024-2398","modified":"2026-11-21T10:00:00Z","summary":"HTTP/2 push headers memory-leak",
  "severity":[{"type":"CVSS_V3","score":"` + Critical + `"}],
  "affected":[{"package":{"ecosystem":"Debian:12","name":"curl"},
    "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"7.88.1-10+deb12u6"}]}]}]}`,
		"ALPINE-CVE-2023-42363.json": `{"id":"ALPINE-CVE-2023-42363","modified":"2026-10-01T10:00:00Z","summary":"use-after-free in xasprintf in busybox awk",
  "severity":[{"type":"CVSS_V3","score":"` + Medium + `"}],
  "affected":[{"package":{"ecosystem":"Alpine:v3.19","name":"busybox"},
    "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.36.1-r5"},{"fixed":"1.36.1-r16"}]}],
    "versions":["1.36.1-r2"]}]}`,
		"DEBIAN-CVE-2020-0001.json": `{"id":"DEBIAN-CVE-2020-0001","withdrawn":"2026-01-01T00:00:00Z","affected":[]}`,
		"GHSA-xxxx-yyyy-zzzz.json": `{"id":"GHSA-xxxx-yyyy-zzzz","modified":"2026-11-29T10:00:00Z","summary":"npm, not a distribution",
  "affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.1.0"}]}]}]}`,
		"README.txt": "not a record: passed over",
	}
}

// RedHat is a small export of Red Hat advisories in the shape OSV
// publishes them: ecosystem "Red Hat:" and a product stream (a Red Hat
// CPE without "cpe:/[oa]:redhat:"), binary rpm names, fixed versions in
// epoch:version-release form with the epoch always written.
//
//   - RHSA-2024:0310 (CVE-2024-0727, high): openssl-libs in
//     Red Hat:enterprise_linux:9::baseos, fixed in 1:3.0.7-27.el9
//   - RHSA-2024:2447 (CVE-2024-2511, medium): openssl-libs in
//     Red Hat:enterprise_linux:9::appstream, fixed in 1:3.0.7-26.el9
//   - RHSA-2024:3000 (CVE-2024-9999, critical): bash in
//     Red Hat:enterprise_linux:9::baseos, fixed in 0:5.1.8-9.el9 (epoch 0
//     written; the rpm database leaves it out)
//   - RHSA-2024:0800 (CVE-2024-8888, critical): openssl-libs in
//     Red Hat:enterprise_linux:8::baseos, fixed in 1:3.0.7-26.el8 — RHEL 8
//   - RHSA-2024:0900 (CVE-2024-7777, high): openssl-libs in
//     Red Hat:rhel_eus:9.2::baseos, fixed in 1:3.0.7-26.el9_2 — another
//     product (extended update support of 9.2)
//   - RHSA-2025:7000 (CVE-2025-7000, high): openssl-libs in
//     Red Hat:enterprise_linux:10.0, fixed in 1:3.2.2-16.el10 — RHEL 10,
//     whose ecosystems name the minor release and no repository
//
// So on RHEL 9, openssl-libs 1:3.0.7-24.el9 → 1:3.0.7-27.el9 fixes
// CVE-2024-0727 and CVE-2024-2511 (one from each repository) and nothing
// else; the RHEL 8 and EUS advisories would call it a fix too were they
// matched.
func RedHat() map[string]string {
	adv := func(id, cve, vector, eco, pkg, fixed string) string {
		return `{"schema_version":"1.6.0","id":"` + id + `","modified":"2026-11-20T10:00:00Z",
  "summary":"Red Hat Security Advisory: ` + pkg + ` security update","upstream":["` + cve + `"],
  "severity":[{"type":"CVSS_V3","score":"` + vector + `"}],
  "affected":[{"package":{"ecosystem":"` + eco + `","name":"` + pkg + `","purl":"pkg:rpm/redhat/` + pkg + `"},
    "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"` + fixed + `"}]}]}]}`
	}
	return map[string]string{
		"RHSA-2024:0310.json": adv("RHSA-2024:0310", "CVE-2024-0727", High, "Red Hat:enterprise_linux:9::baseos", "openssl-libs", "1:3.0.7-27.el9"),
		"RHSA-2024:2447.json": adv("RHSA-2024:2447", "CVE-2024-2511", Medium, "Red Hat:enterprise_linux:9::appstream", "openssl-libs", "1:3.0.7-26.el9"),
		"RHSA-2024:3000.json": adv("RHSA-2024:3000", "CVE-2024-9999", Critical, "Red Hat:enterprise_linux:9::baseos", "bash", "0:5.1.8-9.el9"),
		"RHSA-2024:0800.json": adv("RHSA-2024:0800", "CVE-2024-8888", Critical, "Red Hat:enterprise_linux:8::baseos", "openssl-libs", "1:3.0.7-26.el8"),
		"RHSA-2024:0900.json": adv("RHSA-2024:0900", "CVE-2024-7777", High, "Red Hat:rhel_eus:9.2::baseos", "openssl-libs", "1:3.0.7-26.el9_2"),
		"RHSA-2025:7000.json": adv("RHSA-2025:7000", "CVE-2025-7000", High, "Red Hat:enterprise_linux:10.0", "openssl-libs", "1:3.2.2-16.el10"),
	}
}
