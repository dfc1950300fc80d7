package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/vulndb/osvtest"
)

// TestVulnDBCLI: `refit vulndb status` says there is no database, then
// `refit vulndb import FILE` streams the fixture export to `refit serve`
// and `status` shows it per ecosystem with its age, as a table and as
// JSON; a second import replaces the first; an export with a hostile
// record fails naming the file and changes nothing. (SQLite, or
// PostgreSQL with REFIT_TEST_POSTGRES=1.)
func TestVulnDBCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)
	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	startProcess(t, bin, data, apiAddr, reg)
	token := readToken(t, data)
	files := t.TempDir()
	write := func(name string, zip []byte) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, zip, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	out, stderr, err := cli(t, bin, apiAddr, token, "", "vulndb", "status")
	if err != nil || !strings.Contains(out, "no vulnerability database imported") || !strings.Contains(out, "refit vulndb import FILE") {
		t.Fatalf("status before an import: %v\n%s%s", err, out, stderr)
	}

	all := write("all.zip", osvtest.Zip(osvtest.Fixture()))
	out, stderr, err = cli(t, bin, apiAddr, token, "", "vulndb", "import", all)
	if err != nil || !strings.Contains(out, "imported 6 advisories from "+all+" (2 skipped") {
		t.Fatalf("import: %v\n%s%s", err, out, stderr)
	}
	out, stderr, err = cli(t, bin, apiAddr, token, "", "vulndb", "status")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, stderr)
	}
	for _, want := range []string{
		"ECOSYSTEM", "NEWEST ADVISORY",
		"Alpine:v3.19  1           1         2026-10-01 (",
		"Debian:12     5           2         2026-11-21 (",
		"Debian:13     1           1         2026-11-20 (",
		"(just now), 6 advisories, 2 skipped; newest advisory 2026-11-21 (",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not say %q:\n%s", want, out)
		}
	}
	t.Logf("refit vulndb status:\n%s", out)
	out, _, err = cli(t, bin, apiAddr, token, "", "vulndb", "status", "-o", "json")
	var st api.VulnDBStatus
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || !st.Imported || st.Advisories != 6 || len(st.Ecosystems) != 3 ||
		time.Since(st.ImportedAt) > time.Minute || st.NewestModified.Format(time.DateOnly) != "2026-11-21" {
		t.Errorf("status -o json = %v\n%s", err, out)
	}

	hostile := osvtest.Fixture()
	hostile["ALPINE-CVE-2099-0001.json"] = `{"id":"ALPINE-CVE-2099-0001","affected":[{"package":{"ecosystem":"Alpine:v3.19","name":"musl"},"ranges":[{"type":"ECOSYSTEM","events":[{"fixed":` + strings.Repeat("[", 100000) + `}]}]}]}`
	_, stderr, err = cli(t, bin, apiAddr, token, "", "vulndb", "import", write("hostile.zip", osvtest.Zip(hostile)))
	if err == nil || !strings.Contains(stderr, `"ALPINE-CVE-2099-0001.json"`) || !strings.Contains(stderr, "unchanged") {
		t.Errorf("hostile import: %v, stderr %q; want a failure naming the file", err, stderr)
	}
	_, stderr, err = cli(t, bin, apiAddr, token, "", "vulndb", "import", filepath.Join(files, "missing.zip"))
	if err == nil || !strings.Contains(stderr, "missing.zip") {
		t.Errorf("import of a missing file: %v, stderr %q", err, stderr)
	}
	if again, _, _ := cli(t, bin, apiAddr, token, "", "vulndb", "status", "-o", "json"); again != out {
		t.Errorf("status changed by the refused imports:\n%s\nwant\n%s", again, out)
	}

	second := write("second.zip", osvtest.Zip(map[string]string{"ALPINE-CVE-2025-0001.json": `{"id":"ALPINE-CVE-2025-0001","modified":"2026-11-28T00:00:00Z",
		"affected":[{"package":{"ecosystem":"Alpine:v3.20","name":"musl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.2.5-r1"}]}]}]}`}))
	// Two exports at once: merged by the CLI, imported together.
	if out, stderr, err := cli(t, bin, apiAddr, token, "", "vulndb", "import", all, second); err != nil || !strings.Contains(out, "imported 7 advisories from "+all+", "+second) {
		t.Fatalf("import of two exports: %v\n%s%s", err, out, stderr)
	}
	if out, _, _ := cli(t, bin, apiAddr, token, "", "vulndb", "status"); !strings.Contains(out, "Alpine:v3.20") || !strings.Contains(out, "Debian:12") {
		t.Errorf("after importing two exports, status lacks one:\n%s", out)
	}
	if out, stderr, err := cli(t, bin, apiAddr, token, "", "vulndb", "import", second); err != nil || !strings.Contains(out, "imported 1 advisories") {
		t.Fatalf("second import: %v\n%s%s", err, out, stderr)
	}
	out, _, _ = cli(t, bin, apiAddr, token, "", "vulndb", "status")
	if !strings.Contains(out, "Alpine:v3.20") || strings.Contains(out, "Debian:12") {
		t.Errorf("after the second import, status is not only its advisory:\n%s", out)
	}
}
