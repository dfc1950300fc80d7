package vulndb_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/vulndb"
	"github.com/refit-dev/refit/internal/vulndb/osvtest"
)

// openStore opens a real store: SQLite in a temporary directory, or
// PostgreSQL with REFIT_TEST_POSTGRES=1.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	cfg := store.Config{Path: filepath.Join(t.TempDir(), "refit.db")}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(t)}
	}
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func importZip(t testing.TB, db *vulndb.DB, b []byte) (store.VulnImport, error) {
	t.Helper()
	return db.Import(context.Background(), bytes.NewReader(b), int64(len(b)))
}

var now = time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)

// TestImportAndChanges: the fixture export imported into a real store;
// status counts it per ecosystem; openssl 3.0.11-1~deb12u2 →
// 3.0.13-1~deb12u1 fixes CVE-2024-0727 (high) and nothing else, and
// introduces CVE-2024-9143; the other ecosystems and packages answer
// their own advisories.
func TestImportAndChanges(t *testing.T) {
	ctx := context.Background()
	db := vulndb.New(vulndb.Config{Store: openStore(t), Now: func() time.Time { return now }})
	if _, err := db.Status(ctx); !errors.Is(err, vulndb.ErrNotImported) {
		t.Fatalf("status of an empty database: %v, want ErrNotImported", err)
	}
	fixes, introduces, err := db.Changes(ctx, "Debian:12", "openssl", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1")
	if err != nil || len(fixes)+len(introduces) != 0 {
		t.Fatalf("changes on an empty database = %v %v %v, want none", fixes, introduces, err)
	}

	imp, err := importZip(t, db, osvtest.Zip(osvtest.Fixture()))
	if err != nil {
		t.Fatal(err)
	}
	want := []store.VulnEcosystem{
		{Ecosystem: "Alpine:v3.19", Advisories: 1, Packages: 1, NewestModified: time.Date(2026, 10, 1, 10, 0, 0, 0, time.UTC)},
		{Ecosystem: "Debian:12", Advisories: 5, Packages: 2, NewestModified: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)},
		{Ecosystem: "Debian:13", Advisories: 1, Packages: 1, NewestModified: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)},
	}
	if diff := cmp.Diff(want, imp.Ecosystems); diff != "" {
		t.Errorf("ecosystems (-want +got):\n%s", diff)
	}
	// Skipped: the withdrawn advisory and the npm one.
	if imp.Advisories != 6 || imp.Skipped != 2 || !imp.ImportedAt.Equal(now) || len(imp.SHA256) != 64 ||
		!imp.NewestModified.Equal(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("import = %+v, want 6 advisories, 2 skipped, imported now, newest modified 2026-11-21", imp)
	}
	if st, err := db.Status(ctx); err != nil || !cmp.Equal(st, imp) {
		t.Errorf("status = %+v, %v; want what the import answered, %+v", st, err, imp)
	}

	for _, c := range []struct {
		ecosystem, name, from, to string
		fixes, introduces         []vulndb.Vuln
	}{
		{"Debian:12", "openssl", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1",
			[]vulndb.Vuln{{ID: "CVE-2024-0727", Severity: "high", Package: "openssl", Summary: "Processing a maliciously formatted PKCS12 file may lead OpenSSL to crash"}},
			[]vulndb.Vuln{{ID: "CVE-2024-9143", Severity: "unknown", Package: "openssl", Summary: "Out-of-bounds memory access in GF(2^m) APIs"}}},
		// Moving back swaps the lists.
		{"Debian:12", "openssl", "3.0.13-1~deb12u1", "3.0.11-1~deb12u2",
			[]vulndb.Vuln{{ID: "CVE-2024-9143", Severity: "unknown", Package: "openssl", Summary: "Out-of-bounds memory access in GF(2^m) APIs"}},
			[]vulndb.Vuln{{ID: "CVE-2024-0727", Severity: "high", Package: "openssl", Summary: "Processing a maliciously formatted PKCS12 file may lead OpenSSL to crash"}}},
		// Removing the package fixes everything that affected it, worst first.
		{"Debian:12", "openssl", "3.0.10-1", "",
			[]vulndb.Vuln{
				{ID: "CVE-2024-0727", Severity: "high", Package: "openssl", Summary: "Processing a maliciously formatted PKCS12 file may lead OpenSSL to crash"},
				{ID: "CVE-2024-2511", Severity: "medium", Package: "openssl", Summary: "Unbounded memory growth with session handling in TLSv1.3"},
				{ID: "CVE-2023-5678", Severity: "unknown", Package: "openssl", Summary: "Excessive time spent in DH check"},
			}, nil},
		{"Debian:12", "curl", "7.88.1-10+deb12u5", "7.88.1-10+deb12u6",
			[]vulndb.Vuln{{ID: "CVE-2024-2398", Severity: "critical", Package: "curl", Summary: "HTTP/2 push headers memory-leak"}}, nil},
		{"Debian:12", "curl", "", "7.88.1-10+deb12u5", // added
			nil, []vulndb.Vuln{{ID: "CVE-2024-2398", Severity: "critical", Package: "curl", Summary: "HTTP/2 push headers memory-leak"}}},
		{"Debian:12", "curl", "7.88.1-10+deb12u6", "7.88.1-10+deb12u7", nil, nil},
		// Debian 13's advisory is not Debian 12's.
		{"Debian:13", "openssl", "3.1.4-1", "3.1.5-1",
			[]vulndb.Vuln{{ID: "CVE-2024-0727", Severity: "high", Package: "openssl", Summary: "Processing a maliciously formatted PKCS12 file may lead OpenSSL to crash"}}, nil},
		{"Alpine:v3.19", "busybox", "1.36.1-r15", "1.36.1-r16",
			[]vulndb.Vuln{{ID: "CVE-2023-42363", Severity: "medium", Package: "busybox", Summary: "use-after-free in xasprintf in busybox awk"}}, nil},
		{"Alpine:v3.19", "busybox", "1.36.1-r2", "1.36.1-r3", // r2 is listed in versions, r3 in no range
			[]vulndb.Vuln{{ID: "CVE-2023-42363", Severity: "medium", Package: "busybox", Summary: "use-after-free in xasprintf in busybox awk"}}, nil},
		{"Alpine:v3.19", "busybox", "1.36.1-r3", "1.36.1-r4", nil, nil},
		{"Alpine:v3.20", "busybox", "1.36.1-r15", "1.36.1-r16", nil, nil},
		{"Debian:12", "zlib", "1:1.2.13.dfsg-1", "1:1.2.13.dfsg-2", nil, nil},
	} {
		fixes, introduces, err := db.Changes(ctx, c.ecosystem, c.name, c.from, c.to)
		if err != nil {
			t.Errorf("%s %s %s → %s: %v", c.ecosystem, c.name, c.from, c.to, err)
			continue
		}
		if diff := cmp.Diff(c.fixes, fixes); diff != "" {
			t.Errorf("%s %s %s → %s fixes (-want +got):\n%s", c.ecosystem, c.name, c.from, c.to, diff)
		}
		if diff := cmp.Diff(c.introduces, introduces); diff != "" {
			t.Errorf("%s %s %s → %s introduces (-want +got):\n%s", c.ecosystem, c.name, c.from, c.to, diff)
		}
	}

	if _, _, err := db.Changes(ctx, "Debian:12", "openssl", "not a version!", "3.0.13-1"); err == nil || !strings.Contains(err.Error(), `"not a version!"`) {
		t.Errorf("a bad version: %v, want an error naming it", err)
	}
	if _, _, err := db.Changes(ctx, "npm", "left-pad", "1.0.0", "1.1.0"); !errors.Is(err, vulndb.ErrUnknownEcosystem) {
		t.Errorf("npm: %v, want ErrUnknownEcosystem", err)
	}
}

// TestReimportReplaces: a second import replaces the first whole —
// advisories gone from the new export no longer match.
func TestReimportReplaces(t *testing.T) {
	ctx := context.Background()
	db := vulndb.New(vulndb.Config{Store: openStore(t)})
	if _, err := importZip(t, db, osvtest.Zip(osvtest.Fixture())); err != nil {
		t.Fatal(err)
	}
	second := map[string]string{"DEBIAN-CVE-2025-1111.json": `{"id":"DEBIAN-CVE-2025-1111","modified":"2026-11-29T00:00:00Z","summary":"new",
		"affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.15-1~deb12u1"}]}]}]}`}
	imp, err := importZip(t, db, osvtest.Zip(second))
	if err != nil {
		t.Fatal(err)
	}
	if imp.Advisories != 1 || len(imp.Ecosystems) != 1 || imp.Ecosystems[0].Ecosystem != "Debian:12" {
		t.Errorf("after the second import: %+v, want its one advisory only", imp)
	}
	fixes, _, err := db.Changes(ctx, "Debian:12", "openssl", "3.0.11-1~deb12u2", "3.0.15-1~deb12u1")
	if err != nil || len(fixes) != 1 || fixes[0].ID != "CVE-2025-1111" || fixes[0].Severity != "unknown" {
		t.Errorf("fixes after re-import = %+v, %v; want only CVE-2025-1111", fixes, err)
	}
	if fixes, _, _ := db.Changes(ctx, "Debian:12", "curl", "7.88.1-10+deb12u5", "7.88.1-10+deb12u6"); len(fixes) != 0 {
		t.Errorf("curl's advisory of the first import still matches: %+v", fixes)
	}
}

// TestImportRefuses: a zip bomb (a header that lies about the size), an
// oversized advisory, too many files, hostile or malformed JSON and a
// file that is no zip are each refused with an error naming the file, and
// the database stays as the last good import left it.
func TestImportRefuses(t *testing.T) {
	ctx := context.Background()
	db := vulndb.New(vulndb.Config{Store: openStore(t), Limits: vulndb.Limits{MaxEntries: 30, MaxEntryBytes: 64 << 10, MaxTotalBytes: 1 << 20}})
	good, err := importZip(t, db, osvtest.Zip(osvtest.Fixture()))
	if err != nil {
		t.Fatal(err)
	}
	withFixture := func(name, body string) []byte {
		files := osvtest.Fixture()
		files[name] = body
		return osvtest.Zip(files)
	}
	many := osvtest.Fixture()
	for i := range 30 {
		many[fmt.Sprintf("extra-%d.json", i)] = "{}"
	}
	var total = osvtest.Fixture()
	for i := range 20 {
		total[fmt.Sprintf("big-%02d.json", i)] = `{"id":"BIG-` + fmt.Sprint(i) + `","details":"` + strings.Repeat("x", 60<<10) + `"}`
	}
	total["README.txt"] = ""
	for _, c := range []struct {
		name  string
		zip   []byte
		wants []string // in the error
	}{
		{"zip bomb", lyingZip(t, "DEBIAN-CVE-2099-0001.json", 100, 10<<20), []string{`"DEBIAN-CVE-2099-0001.json"`, "inflates to more than its header says"}},
		{"zip bomb, header within the limit", lyingZip(t, "DEBIAN-CVE-2099-0002.json", 60<<10, 10<<20), []string{`"DEBIAN-CVE-2099-0002.json"`, "inflates to more than its header says"}},
		{"zip bomb, header beyond the limit", lyingZip(t, "DEBIAN-CVE-2099-0003.json", 1<<40, 10<<20), []string{`"DEBIAN-CVE-2099-0003.json"`, "1099511627776 bytes uncompressed, more than the 65536 allowed"}},
		{"oversized advisory", withFixture("BIG.json", `{"id":"BIG","details":"`+strings.Repeat("x", 70<<10)+`"}`), []string{`"BIG.json"`, "71705 bytes uncompressed, more than the 65536 allowed"}},
		{"too many files", osvtest.Zip(many), []string{"holds 39 files, more than the 30 allowed"}},
		{"too much in all", osvtest.Zip(total), []string{"big-", "more than the 1048576 bytes allowed in all"}},
		{"not JSON", withFixture("junk.json", `{"id": "X", "affected": [`), []string{`"junk.json"`, "not an OSV record"}},
		{"wrong types", withFixture("types.json", `{"id": 7}`), []string{`"types.json"`, "not an OSV record"}},
		{"deep nesting", withFixture("deep.json", `{"id":"D","database_specific":`+strings.Repeat("[", 20000)+strings.Repeat("]", 20000)+`}`), []string{`"deep.json"`, "not an OSV record"}},
		{"no id", withFixture("noid.json", `{"summary":"who am I"}`), []string{`"noid.json"`, "without an id"}},
		{"an event of nothing", withFixture("ev.json", `{"id":"EV","affected":[{"package":{"ecosystem":"Debian:12","name":"x"},"ranges":[{"type":"ECOSYSTEM","events":[{}]}]}]}`),
			[]string{`"ev.json"`, "has no introduced, fixed or last_affected"}},
		{"duplicate id", withFixture("DUP.json", strings.Replace(osvtest.Fixture()["DEBIAN-CVE-2024-2398.json"], "modified", "published", 1)), []string{`"DUP.json"`, "DEBIAN-CVE-2024-2398 is in the export twice"}},
		{"no zip", []byte("PK but not a zip at all, just text that goes on for a while........"), []string{"not an OSV export"}},
		{"no records", osvtest.Zip(map[string]string{"README.txt": "hello"}), []string{"no .json file"}},
	} {
		_, err := importZip(t, db, c.zip)
		if err == nil {
			t.Errorf("%s: imported, want refused", c.name)
			continue
		}
		if !errors.Is(err, vulndb.ErrRefused) {
			t.Errorf("%s: %v is not ErrRefused (the API would answer 500, not 400)", c.name, err)
		}
		for _, w := range c.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
		st, err := db.Status(ctx)
		if err != nil || !cmp.Equal(st, good) {
			t.Errorf("%s: status after the refusal = %+v, %v; want the last good import, %+v", c.name, st, err, good)
		}
	}
	if fixes, _, _ := db.Changes(ctx, "Debian:12", "curl", "7.88.1-10+deb12u5", "7.88.1-10+deb12u6"); len(fixes) != 1 {
		t.Errorf("after the refusals, curl's fix = %+v, want the last good import's", fixes)
	}
}

// lyingZip is a zip of one file whose header says it holds claimed bytes
// but whose deflated data inflates to actual bytes of zeros (a zip bomb:
// a reader that trusts the header is fooled).
func lyingZip(t *testing.T, name string, claimed, actual int) []byte {
	t.Helper()
	var data bytes.Buffer
	fw, _ := flate.NewWriter(&data, flate.BestCompression)
	fw.Write(bytes.Repeat([]byte{'0'}, actual))
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, CRC32: crc32.ChecksumIEEE([]byte("x")),
		CompressedSize64: uint64(data.Len()), UncompressedSize64: uint64(claimed)})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestImportCountsZip64Entries: a zip of more than 65,535 files (whose
// count only its zip64 directory holds) is refused from that count,
// before archive/zip reads a header.
func TestImportCountsZip64Entries(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a zip of 70,000 files")
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := range 70_000 {
		if _, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("%d.json", i), Method: zip.Store}); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	db := vulndb.New(vulndb.Config{Store: openStore(t), Limits: vulndb.Limits{MaxEntries: 65_536}})
	_, err := importZip(t, db, buf.Bytes())
	if err == nil || !strings.Contains(err.Error(), "holds 70000 files, more than the 65536 allowed (an OSV export") || !errors.Is(err, vulndb.ErrRefused) {
		t.Errorf("import of 70,000 files: %v, want refused from the zip64 directory's count", err)
	}
}

func TestVulnString(t *testing.T) {
	v := vulndb.Vuln{ID: "CVE-2024-0727", Severity: "high", Package: "openssl", Summary: "PKCS12 crash"}
	if got := v.String(); got != "CVE-2024-0727 (high) in openssl" {
		t.Errorf("String() = %q", got)
	}
}

// TestRedHatStreams: a RHEL 9 release is matched against the advisories
// of every repository of RHEL 9 (baseos and appstream), not those of RHEL
// 8 nor of another product of 9 (EUS); RHEL 10's ecosystems, which name
// the minor release, are matched by major release; and epochs compare
// by rpm's rules whichever way epoch 0 is written.
func TestRedHatStreams(t *testing.T) {
	ctx := context.Background()
	db := vulndb.New(vulndb.Config{Store: openStore(t), Now: func() time.Time { return now }})
	if _, err := importZip(t, db, osvtest.Zip(osvtest.RedHat())); err != nil {
		t.Fatal(err)
	}
	rhel9, ok := vulndb.Ecosystem("rhel", "9.4")
	if !ok {
		t.Fatal(`Ecosystem("rhel", "9.4") is not matched`)
	}
	ids := func(vs []vulndb.Vuln) (out []string) {
		for _, v := range vs {
			out = append(out, v.ID+" "+v.Severity)
		}
		return out
	}
	for _, c := range []struct {
		eco, pkg, old, new string
		fixes, introduces  []string
	}{
		{rhel9, "openssl-libs", "1:3.0.7-24.el9", "1:3.0.7-27.el9", []string{"CVE-2024-0727 high", "CVE-2024-2511 medium"}, nil},
		{rhel9, "openssl-libs", "1:3.0.7-26.el9", "1:3.0.7-27.el9", []string{"CVE-2024-0727 high"}, nil},
		{rhel9, "openssl-libs", "1:3.0.7-27.el9", "1:3.0.7-24.el9", nil, []string{"CVE-2024-0727 high", "CVE-2024-2511 medium"}},
		// Without an epoch, epoch 0: 0:5.1.8-9.el9 is 5.1.8-9.el9.
		{rhel9, "bash", "5.1.8-6.el9", "5.1.8-9.el9", []string{"CVE-2024-9999 critical"}, nil},
		{rhel9, "bash", "5.1.8-9.el9", "0:5.1.8-10.el9", nil, nil},
		// An epoch of 1 outranks any version of epoch 0.
		{rhel9, "bash", "5.1.8-6.el9", "1:5.1.8-1.el9", []string{"CVE-2024-9999 critical"}, nil},
		{"Red Hat:enterprise_linux:8", "openssl-libs", "1:3.0.7-24.el8", "1:3.0.7-26.el8", []string{"CVE-2024-8888 critical"}, nil},
		{"Red Hat:enterprise_linux:10", "openssl-libs", "1:3.2.2-15.el10_0", "1:3.2.2-16.el10", []string{"CVE-2025-7000 high"}, nil},
		// One stream asked by its own name answers its own advisories.
		{"Red Hat:enterprise_linux:9::appstream", "openssl-libs", "1:3.0.7-24.el9", "1:3.0.7-27.el9", []string{"CVE-2024-2511 medium"}, nil},
		{"Red Hat:rhel_eus:9.2::baseos", "openssl-libs", "1:3.0.7-24.el9", "1:3.0.7-27.el9", []string{"CVE-2024-7777 high"}, nil},
	} {
		fixes, introduces, err := db.Changes(ctx, c.eco, c.pkg, c.old, c.new)
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(ids(fixes), c.fixes) || !cmp.Equal(ids(introduces), c.introduces) {
			t.Errorf("%s %s %s → %s: fixes %v introduces %v; want fixes %v introduces %v",
				c.eco, c.pkg, c.old, c.new, ids(fixes), ids(introduces), c.fixes, c.introduces)
		}
	}
}
