package vulndb

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/vulndb/osvtest"
)

// FuzzParseEntry: any bytes as an OSV record either parse into entries
// refit can match — known ecosystem, a severity band, a match that reads
// back and evaluates without panicking on its own versions — or are
// refused with an error; never a panic.
func FuzzParseEntry(f *testing.F) {
	for _, body := range osvtest.Fixture() {
		f.Add([]byte(body))
	}
	for _, body := range osvtest.RedHat() {
		f.Add([]byte(body))
	}
	f.Add([]byte(`{"id":"RHSA-1","upstream":["CVE-1"],"affected":[{"package":{"ecosystem":"Red Hat:enterprise_linux:9::crb","name":"x"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"0:1.0-1.el9"}]}],"versions":["0:0.9-1.el9","0.8-1.el9"]}]}`))
	f.Add([]byte(`{"id":"A","affected":[{"package":{"ecosystem":"Alpine:v3.19","name":"x"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.2_rc1-r0"},{"fixed":"1.2_p1-r3"}]}]}]}`))
	f.Add([]byte(`{"id":"R","affected":[{"package":{"ecosystem":"Rocky Linux:9","name":"x"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"last_affected":"1:2.0-1.el9"}]}],"versions":["1:1.0-1.el9"]}],"severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}]}`))
	f.Add([]byte(`{"id":"X","database_specific":{"severity":7},"affected":[{"package":{"ecosystem":"Debian:12","name":"y"},"ecosystem_specific":{"urgency":["high"]},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0:"}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseEntry(data)
		if err != nil {
			return
		}
		for _, af := range p.advisory.Affected {
			o := orderingOf(af.Ecosystem)
			if o == nil {
				t.Fatalf("stored an entry of %q, which has no ordering", af.Ecosystem)
			}
			if SeverityRank(af.Severity) < 0 {
				t.Fatalf("severity %q is no band", af.Severity)
			}
			var m match
			if err := json.Unmarshal([]byte(af.Match), &m); err != nil {
				t.Fatalf("stored match %q does not read back: %v", af.Match, err)
			}
			for _, r := range m.Ranges {
				for _, e := range r {
					if v := e.version(); v != "0" {
						m.affects(o, v)
					}
				}
			}
			for _, v := range m.Versions {
				if o.Check(v) == nil && !m.affects(o, v) {
					t.Fatalf("listed version %q is not affected", v)
				}
				if _, isRPM := o.(rpm); isRPM && v != "" && !strings.Contains(v, ":") && !m.affects(o, "0:"+v) {
					t.Fatalf("listed version %q is not affected written with epoch 0", v)
				}
			}
		}
		if p.advisory.ID == "" && !p.withdrawn {
			t.Fatal("parsed an advisory without an ID")
		}
	})
}

// FuzzReadExport: any bytes as an export are read within the limits —
// an error, or records — never a panic, and never more than the limits
// inflated.
func FuzzReadExport(f *testing.F) {
	f.Add(osvtest.Zip(osvtest.Fixture()))
	f.Add(osvtest.Zip(osvtest.RedHat()))
	f.Add(osvtest.Zip(map[string]string{"a.json": `{"id":"A"}`, "dir/": ""}))
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	f.Add([]byte{})
	lim := Limits{MaxEntries: 64, MaxEntryBytes: 64 << 10, MaxTotalBytes: 256 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		var inflated int
		readExport(context.Background(), bytes.NewReader(data), int64(len(data)), lim, func(entry string, p parsed) error {
			inflated++
			if inflated > lim.MaxEntries {
				t.Fatalf("more than %d records read", lim.MaxEntries)
			}
			return nil
		})
	})
}

// FuzzOrdering: the orderings never panic, and order consistently
// (antisymmetric, reflexive) every pair of versions their Check accepts.
func FuzzOrdering(f *testing.F) {
	f.Add("1.2.3-r0", "1.2.3_rc1-r1")
	f.Add("1:3.0.13-1~deb12u1", "3.0.13-1")
	f.Add("2.0-1.el9", "1:1.0-1.el9_2")
	f.Add("0", "0.0_p")
	f.Add("0:3.0.7-27.el9", "3.0.7-27.el9")
	f.Fuzz(func(t *testing.T, a, b string) {
		if len(a) > maxVersionBytes || len(b) > maxVersionBytes {
			return
		}
		for _, eco := range []string{"Debian:12", "Alpine:v3.19", "Rocky Linux:9"} {
			o := orderingOf(eco)
			if o.Check(a) != nil || o.Check(b) != nil {
				continue
			}
			ab, ba := o.Compare(a, b), o.Compare(b, a)
			if ab != -ba {
				t.Errorf("%s: compare(%q, %q) = %d but compare(%q, %q) = %d", eco, a, b, ab, b, a, ba)
			}
			if o.Compare(a, a) != 0 {
				t.Errorf("%s: compare(%q, itself) != 0", eco, a)
			}
			// rpm: no epoch is epoch 0 (Red Hat's advisories write it, rpm
			// databases do not).
			if _, isRPM := o.(rpm); isRPM && !strings.Contains(a, ":") && o.Compare("0:"+a, a) != 0 {
				t.Errorf("%s: %q and 0:%q differ", eco, a, a)
			}
		}
	})
}
