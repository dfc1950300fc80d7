package vulndb

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestOrdering: each ecosystem compares versions as its package manager
// does (the libraries' orderings, pinned here on the cases the matching
// depends on).
func TestOrdering(t *testing.T) {
	for _, c := range []struct {
		ecosystem string
		older     string
		newer     string
	}{
		{"Alpine:v3.19", "1.2.3-r0", "1.2.3-r1"},
		{"Alpine:v3.19", "1.2.3_rc1-r0", "1.2.3-r0"},    // a release candidate comes before the release
		{"Alpine:v3.19", "1.2.3_alpha1", "1.2.3_beta1"}, // pre-release suffixes in order
		{"Alpine:v3.19", "1.2.3-r9", "1.2.3_p1-r0"},     // a patch level comes after the release
		{"Alpine:v3.19", "1.2.3_p1-r0", "1.2.3_p2-r0"},
		{"Alpine:v3.19", "1.2.9-r3", "1.2.10-r0"},
		{"Alpine:v3.19", "1.36.1-r5", "1.36.1-r16"},
		{"Wolfi", "1.2.3-r0", "1.2.4-r0"},
		{"Debian:12", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1"},
		{"Debian:12", "3.0.13-1~deb12u1", "3.0.13-1"}, // ~ sorts before anything
		{"Debian:12", "7.88.1-10+deb12u5", "7.88.1-10+deb12u6"},
		{"Debian:12", "9.9-1", "1:1.0-1"}, // the epoch wins
		{"Ubuntu:22.04:LTS", "1.0-1ubuntu1", "1.0-1ubuntu2"},
		{"Rocky Linux:9", "3.0.7-24.el9", "3.0.7-25.el9"},
		{"AlmaLinux:8", "1:1.1.1k-9.el8_7", "1:1.1.1k-12.el8_9"},
		{"Rocky Linux:9", "9.0-1.el9", "1:1.0-1.el9"},
	} {
		o := orderingOf(c.ecosystem)
		if o == nil {
			t.Fatalf("no ordering for %s", c.ecosystem)
		}
		for _, v := range []string{c.older, c.newer} {
			if err := o.Check(v); err != nil {
				t.Errorf("%s: %q refused: %v", c.ecosystem, v, err)
			}
		}
		if got := o.Compare(c.older, c.newer); got != -1 {
			t.Errorf("%s: compare(%s, %s) = %d, want -1", c.ecosystem, c.older, c.newer, got)
		}
		if got := o.Compare(c.newer, c.older); got != 1 {
			t.Errorf("%s: compare(%s, %s) = %d, want 1", c.ecosystem, c.newer, c.older, got)
		}
		if got := o.Compare(c.older, c.older); got != 0 {
			t.Errorf("%s: compare(%s, itself) = %d, want 0", c.ecosystem, c.older, got)
		}
	}
	// Versions as installed images carry them are all readable.
	for eco, vs := range map[string][]string{
		"Alpine:v3.19": {"2024a-r0", "1.2.4_git20230717-r4", "20240226-r0", "6.4_p20231125-r0", "0.3.1_pre1-r0"},
		"Debian:12":    {"2.36-9+deb12u4", "1:2.38.1-5+deb12u1", "252.22-1~deb12u1", "0.0~git20230107.2b9b6cc-1", "2024a-0+deb12u1", "12.4+deb12u5", "5.2.15-2+b2"},
	} {
		for _, v := range vs {
			if err := orderingOf(eco).Check(v); err != nil {
				t.Errorf("%s: %q refused: %v", eco, v, err)
			}
		}
	}
	if orderingOf("npm") != nil || orderingOf("") != nil {
		t.Error("npm and \"\" have an ordering; want none (not imported)")
	}
	if err := orderingOf("Debian:12").Check("not a version!"); err == nil {
		t.Error("dpkg accepted \"not a version!\"")
	}
	if err := orderingOf("Alpine:v3.19").Check("1.2.3-rX"); err == nil {
		t.Error("apk accepted \"1.2.3-rX\"")
	}
}

// TestAffects: OSV's range rules — introduced "0", fixed, last_affected,
// several ranges, the explicit versions list.
func TestAffects(t *testing.T) {
	o := orderingOf("Debian:12")
	for _, c := range []struct {
		name    string
		match   string
		version string
		want    bool
	}{
		{"from the start to fixed: below", `{"r":[[{"i":"0"},{"f":"2.0-1"}]]}`, "1.0-1", true},
		{"from the start to fixed: at fixed", `{"r":[[{"i":"0"},{"f":"2.0-1"}]]}`, "2.0-1", false},
		{"from the start to fixed: above", `{"r":[[{"i":"0"},{"f":"2.0-1"}]]}`, "2.1-1", false},
		{"introduced later: below", `{"r":[[{"i":"1.5-1"},{"f":"2.0-1"}]]}`, "1.0-1", false},
		{"introduced later: at introduced", `{"r":[[{"i":"1.5-1"},{"f":"2.0-1"}]]}`, "1.5-1", true},
		{"never fixed", `{"r":[[{"i":"0"}]]}`, "99-1", true},
		{"last_affected: at it", `{"r":[[{"i":"0"},{"l":"2.0-1"}]]}`, "2.0-1", true},
		{"last_affected: above it", `{"r":[[{"i":"0"},{"l":"2.0-1"}]]}`, "2.0-2", false},
		{"events out of order", `{"r":[[{"f":"2.0-1"},{"i":"0"}]]}`, "1.0-1", true},
		{"two introductions in one range: between", `{"r":[[{"i":"0"},{"f":"1.0-1"},{"i":"2.0-1"},{"f":"2.5-1"}]]}`, "1.5-1", false},
		{"two introductions in one range: second", `{"r":[[{"i":"0"},{"f":"1.0-1"},{"i":"2.0-1"},{"f":"2.5-1"}]]}`, "2.1-1", true},
		{"two ranges: the second", `{"r":[[{"i":"0"},{"f":"1.0-1"}],[{"i":"3.0-1"},{"f":"3.2-1"}]]}`, "3.1-1", true},
		{"two ranges: neither", `{"r":[[{"i":"0"},{"f":"1.0-1"}],[{"i":"3.0-1"},{"f":"3.2-1"}]]}`, "2.0-1", false},
		{"versions list", `{"v":["1.0-1","1.0-2"]}`, "1.0-2", true},
		{"versions list: not in it", `{"v":["1.0-1","1.0-2"]}`, "1.0-3", false},
		{"tilde before the fix", `{"r":[[{"i":"0"},{"f":"3.0.13-1~deb12u1"}]]}`, "3.0.11-1~deb12u2", true},
	} {
		var m match
		if err := json.Unmarshal([]byte(c.match), &m); err != nil {
			t.Fatal(err)
		}
		if got := m.affects(o, c.version); got != c.want {
			t.Errorf("%s: %s affects %s = %v, want %v", c.name, c.match, c.version, got, c.want)
		}
	}
}

// TestAffectsRPMEpochs: Red Hat's advisories write every epoch
// ("0:5.1.8-9.el9"), rpm databases leave epoch 0 out ("5.1.8-9.el9");
// both spell one version, and an epoch above 0 outranks any version.
func TestAffectsRPMEpochs(t *testing.T) {
	o := orderingOf("Red Hat:enterprise_linux:9")
	for _, c := range []struct {
		match, version string
		want           bool
	}{
		{`{"r":[[{"i":"0"},{"f":"0:3.0.7-27.el9"}]]}`, "3.0.7-24.el9", true},
		{`{"r":[[{"i":"0"},{"f":"0:3.0.7-27.el9"}]]}`, "3.0.7-27.el9", false},
		{`{"r":[[{"i":"0"},{"f":"3.0.7-27.el9"}]]}`, "0:3.0.7-24.el9", true},
		{`{"r":[[{"i":"0"},{"f":"1:3.0.7-27.el9"}]]}`, "1:3.0.7-24.el9", true},
		{`{"r":[[{"i":"0"},{"f":"1:3.0.7-27.el9"}]]}`, "3.0.7-99.el9", true}, // epoch 0 < 1
		{`{"r":[[{"i":"0"},{"f":"0:3.0.7-27.el9"}]]}`, "1:3.0.7-24.el9", false},
		{`{"r":[[{"i":"0"},{"f":"1:3.0.7-27.el9"}]]}`, "1:3.0.7-27.el9_4.1", false},
		{`{"v":["0:3.0.7-20.el9"]}`, "3.0.7-20.el9", true},
		{`{"v":["3.0.7-20.el9"]}`, "0:3.0.7-20.el9", true},
		{`{"v":["0:3.0.7-20.el9"]}`, "1:3.0.7-20.el9", false},
	} {
		var m match
		if err := json.Unmarshal([]byte(c.match), &m); err != nil {
			t.Fatal(err)
		}
		if got := m.affects(o, c.version); got != c.want {
			t.Errorf("%s affects %s = %v, want %v", c.match, c.version, got, c.want)
		}
	}
}

// TestStreams: a RHEL major release stands for its repositories and
// minor releases; every other ecosystem for itself.
func TestStreams(t *testing.T) {
	for eco, want := range map[string][]string{
		"Red Hat:enterprise_linux:9":         {"Red Hat:enterprise_linux:9:", "Red Hat:enterprise_linux:9."},
		"Red Hat:enterprise_linux:10":        {"Red Hat:enterprise_linux:10:", "Red Hat:enterprise_linux:10."},
		"Red Hat:enterprise_linux:9::baseos": nil,
		"Red Hat:rhel_eus:9.2::baseos":       nil,
		"Debian:12":                          nil,
		"Rocky Linux:9":                      nil,
	} {
		if got := Streams(eco); !slices.Equal(got, want) {
			t.Errorf("Streams(%q) = %q, want %q", eco, got, want)
		}
	}
}

func TestEcosystem(t *testing.T) {
	for _, c := range []struct {
		id, version string
		want        string
	}{
		{"debian", "12", "Debian:12"},
		{"debian", "11", "Debian:11"},
		{"alpine", "3.19.1", "Alpine:v3.19"},
		{"alpine", "3.20.0_alpha20240329", "Alpine:v3.20"},
		{"ubuntu", "22.04", "Ubuntu:22.04:LTS"},
		{"ubuntu", "23.10", "Ubuntu:23.10"},
		{"ubuntu", "23.04", "Ubuntu:23.04"},
		{"rocky", "9.3", "Rocky Linux:9"},
		{"almalinux", "8.9", "AlmaLinux:8"},
		{"wolfi", "20230201", "Wolfi"},
		{"opensuse-leap", "15.5", "openSUSE:Leap 15.5"},
		{"opensuse-leap", "15", ""},
		{"opensuse-tumbleweed", "20240101", "openSUSE:Tumbleweed"},
		{"sles", "15.5", "SUSE:Linux Enterprise Server 15 SP5"},
		{"sles", "15", "SUSE:Linux Enterprise Server 15"},
		{"sles", "12.5", "SUSE:Linux Enterprise Server 12 SP5"},
		{"sles", "15.x", ""},
		{"debian", "", ""},                            // testing, sid
		{"alpine", "3", ""},                           // no minor
		{"fedora", "39", ""},                          // no OSV ecosystem
		{"rhel", "9.3", "Red Hat:enterprise_linux:9"}, // UBI too; a family of streams
		{"rhel", "10.0", "Red Hat:enterprise_linux:10"},
		{"rhel", "", ""},
		{"centos", "9", ""},     // no OSV ecosystem for CentOS Stream
		{"ol", "9.4", ""},       // nor Oracle Linux
		{"amzn", "2023", ""},    // nor Amazon Linux
		{"debian", "12; x", ""}, // not a version
		{"", "12", ""},
	} {
		got, ok := Ecosystem(c.id, c.version)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("Ecosystem(%q, %q) = %q, %v; want %q", c.id, c.version, got, ok, c.want)
		}
		if ok && orderingOf(got) == nil {
			t.Errorf("Ecosystem(%q, %q) = %q, which has no ordering", c.id, c.version, got)
		}
	}
}
