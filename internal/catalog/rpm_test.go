package catalog_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/refit-dev/refit/internal/catalog"
	ct "github.com/refit-dev/refit/internal/catalog/catalogtest"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/vulndb"
	"github.com/refit-dev/refit/internal/vulndb/osvtest"
)

// rpmDB builds an rpm database (sqlite) holding pkgs with rpmbuild and
// rpm, or skips the test when they are not installed.
func rpmDB(t testing.TB, pkgs ...ct.Pkg) []byte {
	t.Helper()
	b, err := ct.RPMDB(t.TempDir(), pkgs...)
	if errors.Is(err, ct.ErrNoRPM) {
		t.Skip("skipped: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// src returns a package of source package source.
func src(name, version, source string) ct.Pkg {
	return ct.Pkg{Name: name, Version: version, Arch: "noarch", Source: source}
}

// noTempLeft points os.TempDir at a directory of the test's and checks,
// when the test ends, that the catalog left no copy of a database there.
func noTempLeft(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Cleanup(func() {
		if left, _ := filepath.Glob(filepath.Join(tmp, "refit-rpmdb-*")); len(left) > 0 {
			t.Errorf("copies of rpm databases left behind: %v", left)
		}
	})
}

// An rpm database written by rpm itself (sqlite, as RHEL 9 and Fedora
// have it): every package with rpm's epoch:version-release, its
// architecture and its source rpm's name, through the registry-free
// catalog reader (and its child parser). gpg-pubkey entries are not
// packages.
func TestReadRPMSqlite(t *testing.T) {
	noTempLeft(t)
	db := rpmDB(t, src("openssl-libs", "1:3.0.7-24.el9", "openssl"), src("bash", "5.1.8-6.el9", ""), src("tzdata", "2024a-1.el9", ""))
	c := read(t, ct.RedHat("rocky", "9.3", db, "", ct.Layer(map[string]string{"app/readme": "hi"})))
	want := []catalog.Package{
		{Name: "bash", Version: "5.1.8-6.el9", Arch: "noarch", Type: "rpm", Source: "bash"},
		{Name: "openssl-libs", Version: "1:3.0.7-24.el9", Arch: "noarch", Type: "rpm", Source: "openssl"},
		{Name: "tzdata", Version: "2024a-1.el9", Arch: "noarch", Type: "rpm", Source: "tzdata"},
	}
	if diff := cmp.Diff(want, c.Packages); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if cmp.Diff([]string{"rpm"}, c.DB) != "" || c.OS.ID != "rocky" {
		t.Errorf("db %v os %+v, want rpm on rocky", c.DB, c.OS)
	}
}

// ndb (SUSE) and BerkeleyDB (RHEL 8 and older) databases, which rpm 4.18
// cannot write: go-rpmdb's own test databases, read from the module
// cache at test time (nothing of them is in this repository).
func TestReadRPMNdbAndBerkeleyDB(t *testing.T) {
	noTempLeft(t)
	for _, tc := range []struct {
		file, at string
		want     catalog.Package
	}{
		{"sle15-bci/Packages.db", "usr/lib/sysimage/rpm/Packages.db", catalog.Package{Name: "glibc", Version: "2.31-9.3.2", Arch: "x86_64", Type: "rpm", Source: "glibc"}},
		{"centos7-plain/Packages", "var/lib/rpm/Packages", catalog.Package{Name: "nss-softokn-freebl", Version: "3.36.0-5.el7_5", Arch: "x86_64", Type: "rpm", Source: "nss-softokn"}},
	} {
		db, err := ct.GoRPMDBTestdata(tc.file)
		if err != nil {
			t.Skipf("skipped: go-rpmdb's test database %s: %v", tc.file, err)
		}
		c := read(t, ct.RedHat("sles", "15.2", db, tc.at))
		if !slices.Contains(c.Packages, tc.want) || len(c.Packages) < 10 || cmp.Diff([]string{"rpm"}, c.DB) != "" {
			t.Errorf("%s: db %v, %d packages, want %+v among them", tc.file, c.DB, len(c.Packages), tc.want)
		}
	}
}

// bdb returns a BerkeleyDB hash database go-rpmdb opens (a metadata page
// and one hash page of 512 bytes) whose one entry points at offset
// value of the hash page.
func bdb(value uint16, offPage func(page []byte)) []byte {
	b := make([]byte, 1024)
	le := binary.LittleEndian
	le.PutUint32(b[12:], 0x00061561) // hash magic
	le.PutUint32(b[20:], 512)        // page size
	b[25] = 8                        // hash metadata page
	le.PutUint32(b[32:], 1)          // last page
	p := b[512:]
	le.PutUint16(p[20:], 2) // entries: one key, one value
	p[25] = 13              // hash page
	le.PutUint16(p[28:], value)
	if offPage != nil {
		offPage(p)
	}
	return b
}

// A hostile BerkeleyDB makes go-rpmdb panic in a goroutine of its own
// (an index read from the file, used unchecked), which no recover can
// catch: refit survives it — the database is parsed in a child process —
// and the catalog says which database it could not read.
func TestReadRPMParserPanics(t *testing.T) {
	noTempLeft(t)
	img := ct.RedHat("centos", "7", bdb(0xffff, nil), "var/lib/rpm/Packages")
	_, err := catalog.Read(context.Background(), img, catalog.Limits{})
	if err == nil || !strings.Contains(err.Error(), "reading rpm database var/lib/rpm/Packages: panic: runtime error: index out of range") {
		t.Errorf("err = %v, want the parser's panic, named", err)
	}
	// Not an rpm database at all.
	_, err = catalog.Read(context.Background(), ct.RedHat("rhel", "8.9", []byte("bdb"), "var/lib/rpm/Packages"), catalog.Limits{})
	if err == nil || !strings.Contains(err.Error(), "reading rpm database var/lib/rpm/Packages") {
		t.Errorf("err = %v, want the damaged database named", err)
	}
}

// A BerkeleyDB whose overflow chain points at a page of the wrong type
// makes go-rpmdb loop for ever: the catalog's time budget ends the child
// parser and says so.
func TestReadRPMParserLoops(t *testing.T) {
	noTempLeft(t)
	loop := loopingBDB()
	start := time.Now()
	_, err := catalog.Read(context.Background(), ct.RedHat("centos", "7", loop, "var/lib/rpm/Packages"), catalog.Limits{Time: time.Second})
	var le *catalog.LimitError
	if !errors.As(err, &le) || le.What != "time" || le.Where != "var/lib/rpm/Packages" {
		t.Errorf("err = %v, want the time limit at var/lib/rpm/Packages", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %s after a budget of 1s", took)
	}
}

// ndb returns an ndb database (SUSE's) whose one package's blob claims
// blobLen bytes.
func ndb(blobLen uint32) []byte {
	b := make([]byte, 8192)
	le := binary.LittleEndian
	copy(b, "RpmP")
	le.PutUint32(b[12:], 1) // one page of slots
	copy(b[32:], "Slot")
	le.PutUint32(b[36:], 1)   // package 1…
	le.PutUint32(b[40:], 256) // …its blob at 256 × 16 bytes
	le.PutUint32(b[44:], 1)
	copy(b[4096:], "BlbS")
	le.PutUint32(b[4100:], 1)
	le.PutUint32(b[4108:], blobLen)
	return b
}

// An ndb blob that claims 4 GiB makes go-rpmdb allocate them, which in
// refit serve's process would end it ("fatal error: out of memory" is
// no panic): the child parser's memory cap ends the child instead.
func TestReadRPMParserMemory(t *testing.T) {
	noTempLeft(t)
	_, err := catalog.Read(context.Background(), ct.RedHat("sles", "15.5", ndb(0xfffffff0), "usr/lib/sysimage/rpm/Packages.db"), catalog.Limits{})
	if err == nil || !strings.Contains(err.Error(), "reading rpm database usr/lib/sysimage/rpm/Packages.db: fatal error: runtime: out of memory") {
		t.Errorf("err = %v, want the child's out of memory, named", err)
	}
}

// A copy left by a refit that was killed (older than an hour, or twice
// the time budget) is removed when the next rpm database is read; a
// fresh one, maybe another refit's, is kept.
func TestReadRPMRemovesStaleCopies(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	stale, fresh := filepath.Join(tmp, "refit-rpmdb-1"), filepath.Join(tmp, "refit-rpmdb-2")
	for _, d := range []string{stale, fresh} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "rpmdb"), []byte("left behind"), 0o600)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	catalog.Read(context.Background(), ct.RedHat("centos", "7", bdb(0xffff, nil), "var/lib/rpm/Packages"), catalog.Limits{})
	left, _ := filepath.Glob(filepath.Join(tmp, "refit-rpmdb-*"))
	if !slices.Equal(left, []string{fresh}) {
		t.Errorf("copies after a read: %v, want only the fresh %s", left, fresh)
	}
}

// The copy of the database is bounded by Limits.File and the error names
// the database and the limit.
func TestReadRPMFileLimit(t *testing.T) {
	noTempLeft(t)
	img := ct.RedHat("rocky", "9.3", make([]byte, 4096), "")
	_, err := catalog.Read(context.Background(), img, catalog.Limits{File: 1024})
	var le *catalog.LimitError
	if !errors.As(err, &le) || le.What != "file" || le.Where != "var/lib/rpm/rpmdb.sqlite" || !strings.Contains(err.Error(), "over the file limit of 1024 bytes") {
		t.Errorf("err = %v, want the file limit at var/lib/rpm/rpmdb.sqlite", err)
	}
}

// Diffing two rpm images compares versions with rpm's ordering: an
// epoch outweighs the version, and el9_2 → el9_10 is an upgrade (not
// by string).
func TestCompareRPM(t *testing.T) {
	old := catalog.Catalog{Packages: []catalog.Package{
		{Name: "openssl-libs", Version: "1:3.0.7-27.el9", Arch: "x86_64", Type: "rpm", Source: "openssl"},
		{Name: "vim-minimal", Version: "2:8.2.2637-20.el9_2", Arch: "x86_64", Type: "rpm", Source: "vim"},
		{Name: "tzdata", Version: "2024b-2.el9", Arch: "noarch", Type: "rpm", Source: "tzdata"},
	}}
	cur := catalog.Catalog{Packages: []catalog.Package{
		{Name: "openssl-libs", Version: "3.2.2-6.el9", Arch: "x86_64", Type: "rpm", Source: "openssl"},
		{Name: "vim-minimal", Version: "2:8.2.2637-20.el9_10", Arch: "x86_64", Type: "rpm", Source: "vim"},
		{Name: "tzdata", Version: "2024b-2.el9", Arch: "noarch", Type: "rpm", Source: "tzdata"},
	}}
	d := catalog.Compare(old, cur)
	want := []catalog.PackageChange{
		{Name: "openssl-libs", Arch: "x86_64", Type: "rpm", Old: "1:3.0.7-27.el9", New: "3.2.2-6.el9", Direction: "downgrade", Source: "openssl"},
		{Name: "vim-minimal", Arch: "x86_64", Type: "rpm", Old: "2:8.2.2637-20.el9_2", New: "2:8.2.2637-20.el9_10", Direction: "upgrade", Source: "vim"},
	}
	if diff := cmp.Diff(want, d.Changed); diff != "" {
		t.Errorf("changed (-want +got):\n%s", diff)
	}
}

// Two Rocky Linux-like bases with rpm databases written by rpm, pushed to
// a loopback registry: the diff names exactly the package that changed,
// ordered by rpm, and with a Rocky Linux OSV advisory, which lists binary
// packages, the vulnerability the update fixes in openssl-libs.
func TestServiceDiffRPM(t *testing.T) {
	e := newEnv(t) // first: PostgreSQL's test cluster must not start in noTempLeft's TMPDIR
	noTempLeft(t)
	ctx := context.Background()
	oldDB := rpmDB(t, src("openssl-libs", "1:3.0.7-24.el9", "openssl"), src("bash", "5.1.8-6.el9", ""))
	newDB := rpmDB(t, src("openssl-libs", "1:3.0.7-25.el9_3", "openssl"), src("bash", "5.1.8-6.el9", ""))
	old := e.push(t, "rocky:9", ct.RedHat("rocky", "9.3", oldDB, ""))
	cur := e.push(t, "rocky:9", ct.RedHat("rocky", "9.3", newDB, ""))
	db := vulndb.New(vulndb.Config{Store: e.st})
	zip := osvtest.Zip(map[string]string{
		"RLSA-2024:0310.json": `{"id":"RLSA-2024:0310","modified":"2026-11-20T10:00:00Z","aliases":["CVE-2024-0727"],
  "summary":"openssl: denial of service via null dereference",
  "severity":[{"type":"CVSS_V3","score":"` + osvtest.High + `"}],
  "affected":[{"package":{"ecosystem":"Rocky Linux:9","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:3.0.7-25.el9_3"}]}]},
    {"package":{"ecosystem":"Rocky Linux:9","name":"openssl-libs"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:3.0.7-25.el9_3"}]}]}]}`,
		"RLSA-2024:0999.json": `{"id":"RLSA-2024:0999","modified":"2026-11-20T10:00:00Z","aliases":["CVE-2024-9999"],
  "affected":[{"package":{"ecosystem":"Rocky Linux:9","name":"bash"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"5.1.8-9.el9"}]}]}]}`,
	})
	if _, err := db.Import(ctx, bytes.NewReader(zip), int64(len(zip))); err != nil {
		t.Fatal(err)
	}
	svc, err := catalog.NewService(catalog.Config{Images: regclient.New(regclient.Config{}), Store: e.st, Vulns: vulnsOf{db}, Ecosystem: vulndb.Ecosystem})
	if err != nil {
		t.Fatal(err)
	}
	d, err := svc.Diff(ctx, e.host+"/rocky@"+old, e.host+"/rocky:9", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []catalog.PackageChange{{Name: "openssl-libs", Arch: "noarch", Type: "rpm", Old: "1:3.0.7-24.el9", New: "1:3.0.7-25.el9_3", Direction: "upgrade", Source: "openssl"}}
	if diff := cmp.Diff(want, d.Changed); diff != "" || d.Old != old || d.New != cur || len(d.Added)+len(d.Removed) != 0 {
		t.Errorf("diff %s → %s changed (-want +got):\n%s\nadded %v removed %v", d.Old, d.New, diff, d.Added, d.Removed)
	}
	if d.Vulns == nil || len(d.Vulns.Fixes) != 1 || d.Vulns.Fixes[0].ID != "CVE-2024-0727" || d.Vulns.Fixes[0].Package != "openssl-libs" ||
		d.Vulns.Fixes[0].Severity != "high" || len(d.Vulns.Introduces)+len(d.Vulns.Unchecked) != 0 {
		t.Errorf("vulns %+v, want CVE-2024-0727 (high) fixed in openssl-libs only", d.Vulns)
	}
}

// Two UBI 9-like bases (os-release ID "rhel", VERSION_ID 9.4) with rpm
// databases written by rpm: with OSV's Red Hat advisories, which come
// per repository, the diff names the fixes of RHEL 9's baseos and
// appstream alike, and not those of RHEL 8 nor of RHEL 9.2's extended
// support, which would call the same change a fix; bash, which the rpm
// database lists without an epoch, matches a fix written with epoch 0.
func TestServiceDiffRHEL(t *testing.T) {
	e := newEnv(t) // first: PostgreSQL's test cluster must not start in noTempLeft's TMPDIR
	noTempLeft(t)
	ctx := context.Background()
	oldDB := rpmDB(t, src("openssl-libs", "1:3.0.7-24.el9", "openssl"), src("bash", "5.1.8-6.el9", ""), src("zlib", "1.2.11-40.el9", ""))
	newDB := rpmDB(t, src("openssl-libs", "1:3.0.7-27.el9", "openssl"), src("bash", "5.1.8-9.el9", ""), src("zlib", "1.2.11-40.el9", ""))
	old := e.push(t, "ubi9:latest", ct.RedHat("rhel", "9.4", oldDB, ""))
	cur := e.push(t, "ubi9:latest", ct.RedHat("rhel", "9.4", newDB, ""))
	db := vulndb.New(vulndb.Config{Store: e.st})
	zip := osvtest.Zip(osvtest.RedHat())
	if _, err := db.Import(ctx, bytes.NewReader(zip), int64(len(zip))); err != nil {
		t.Fatal(err)
	}
	svc, err := catalog.NewService(catalog.Config{Images: regclient.New(regclient.Config{}), Store: e.st, Vulns: vulnsOf{db}, Ecosystem: vulndb.Ecosystem})
	if err != nil {
		t.Fatal(err)
	}
	d, err := svc.Diff(ctx, e.host+"/ubi9@"+old, e.host+"/ubi9:latest", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []catalog.PackageChange{
		{Name: "bash", Arch: "noarch", Type: "rpm", Old: "5.1.8-6.el9", New: "5.1.8-9.el9", Direction: "upgrade", Source: "bash"},
		{Name: "openssl-libs", Arch: "noarch", Type: "rpm", Old: "1:3.0.7-24.el9", New: "1:3.0.7-27.el9", Direction: "upgrade", Source: "openssl"},
	}
	if diff := cmp.Diff(want, d.Changed); diff != "" || d.Old != old || d.New != cur || len(d.Added)+len(d.Removed) != 0 {
		t.Errorf("diff %s → %s changed (-want +got):\n%s\nadded %v removed %v", d.Old, d.New, diff, d.Added, d.Removed)
	}
	wantVulns := &catalog.VulnChanges{Fixes: []catalog.Vuln{
		{ID: "CVE-2024-9999", Severity: "critical", Package: "bash", Summary: "Red Hat Security Advisory: bash security update"},
		{ID: "CVE-2024-0727", Severity: "high", Package: "openssl-libs", Summary: "Red Hat Security Advisory: openssl-libs security update"},
		{ID: "CVE-2024-2511", Severity: "medium", Package: "openssl-libs", Summary: "Red Hat Security Advisory: openssl-libs security update"},
	}}
	if diff := cmp.Diff(wantVulns, d.Vulns, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("vulns of the RHEL 9 diff (-want +got):\n%s", diff)
	}
}

// FuzzReadRPM hands the catalog arbitrary bytes as an rpm database, at
// each of the places rpm keeps one: go-rpmdb may panic, loop or allocate
// on them — in goroutines of its own — but nothing reaches refit: Read
// returns the packages or an error naming the database, within its time
// budget, and leaves no copy behind. Seeds: databases that panic and
// loop go-rpmdb, ndb ones that allocate, a sqlite header, and a database
// rpm wrote.
// Run it with -fuzzminimizetime 0 (make fuzz does): the child parser's
// timing makes coverage vary between runs of one input, and minimizing
// an input would spin for a minute without fuzzing.
func FuzzReadRPM(f *testing.F) {
	tmp := f.TempDir()
	f.Setenv("TMPDIR", tmp)
	f.Add(uint8(4), bdb(0xffff, nil))
	f.Add(uint8(4), loopingBDB())
	f.Add(uint8(4), bdb(100, func(p []byte) { p[100] = 3; binary.LittleEndian.PutUint32(p[104:], 0xffffff) }))
	f.Add(uint8(0), append([]byte("SQLite format 3\x00"), make([]byte, 512)...))
	f.Add(uint8(2), ndb(0xfffffff0))
	f.Add(uint8(2), ndb(64))
	if db, err := ct.RPMDB(f.TempDir(), src("bash", "5.1.8-6.el9", "")); err == nil {
		f.Add(uint8(1), db)
	}
	paths := []string{"usr/lib/sysimage/rpm/rpmdb.sqlite", "var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/Packages.db", "var/lib/rpm/Packages.db", "var/lib/rpm/Packages"}
	f.Fuzz(func(t *testing.T, at uint8, b []byte) {
		p := paths[int(at)%len(paths)]
		c, err := catalog.Read(context.Background(), ct.RedHat("rocky", "9", b, p), catalog.Limits{File: 1 << 20, Time: 2 * time.Second})
		switch {
		case err != nil && !strings.Contains(err.Error(), p):
			t.Errorf("error does not name the database %s: %v", p, err)
		case err == nil && !slices.Equal(c.DB, []string{"rpm"}):
			t.Errorf("read without error, db = %v", c.DB)
		}
		for _, pk := range c.Packages {
			if pk.Type != "rpm" {
				t.Errorf("package %+v is not an rpm", pk)
			}
		}
		if left, _ := filepath.Glob(filepath.Join(tmp, "refit-rpmdb-*")); len(left) > 0 {
			t.Errorf("copies left behind: %v", left)
		}
	})
}

// The catalog lists what rpm itself lists (rpm -qa, less the gpg-pubkey
// entries of imported keys), with rpm's own %{EVR}, %{ARCH} and the name
// of %{SOURCERPM}: on go-rpmdb's Fedora 35 sqlite database and its
// CentOS 7 BerkeleyDB one (which Debian's rpm reads, bdb_ro).
func TestReadRPMMatchesRPM(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("skipped: rpm is not installed (apt-get install rpm)")
	}
	noTempLeft(t)
	for _, tc := range []struct{ file, at, backend string }{
		{"fedora35/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite", "sqlite"},
		{"centos7-plain/Packages", "var/lib/rpm/Packages", "bdb_ro"},
	} {
		db, err := ct.GoRPMDBTestdata(tc.file)
		if err != nil {
			t.Skipf("skipped: go-rpmdb's test database %s: %v", tc.file, err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(tc.file)), db, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("rpm", "--define", "_db_backend "+tc.backend, "--dbpath", dir, "-qa", "--qf", `%{NAME} %{EVR} %{ARCH} %{SOURCERPM}\n`).Output()
		if err != nil {
			t.Fatalf("rpm -qa on %s: %v", tc.file, err)
		}
		var want []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(l)
			if f[0] == "gpg-pubkey" {
				continue
			}
			src := strings.TrimSuffix(f[3], ".src.rpm")
			src = src[:strings.LastIndexByte(src, '-')]
			want = append(want, f[0]+" "+f[1]+" "+f[2]+" "+src[:strings.LastIndexByte(src, '-')])
		}
		c := read(t, ct.RedHat("fedora", "35", db, tc.at))
		var got []string
		for _, p := range c.Packages {
			got = append(got, p.Name+" "+p.Version+" "+p.Arch+" "+p.Source)
		}
		slices.Sort(want)
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" || len(got) < 100 {
			t.Errorf("%s: %d packages, rpm -qa (-want +got):\n%s", tc.file, len(got), diff)
		}
	}
}

// loopingBDB is a BerkeleyDB that sends go-rpmdb into an endless loop.
func loopingBDB() []byte {
	return bdb(100, func(p []byte) {
		p[100] = 3                                // an off-page entry…
		binary.LittleEndian.PutUint32(p[104:], 1) // …continued on page 1, a hash page
	})
}

// A refit killed (SIGKILL) while its child parser loops takes the child
// with it: the parser does not outlive the server. The test runs itself
// again as the "server", cataloguing a looping database with a long
// budget, finds its child parser, kills the server and waits for the
// child to be gone.
func TestReadRPMChildDiesWithRefit(t *testing.T) {
	if os.Getenv("REFIT_TEST_RPM_SERVER") == "1" {
		catalog.Read(context.Background(), ct.RedHat("centos", "7", loopingBDB(), "var/lib/rpm/Packages"), catalog.Limits{Time: time.Minute})
		return
	}
	server := exec.Command(os.Args[0], "-test.run=^TestReadRPMChildDiesWithRefit$")
	server.Env = append(os.Environ(), "REFIT_TEST_RPM_SERVER=1", "TMPDIR="+t.TempDir()) // where its copy stays
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	defer server.Process.Kill()
	child := 0
	for deadline := time.Now().Add(30 * time.Second); child == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the child parser never started")
		}
		procs, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			// pid (comm) state ppid …
			_, rest, _ := strings.Cut(string(b), ") ")
			f := strings.Fields(rest)
			if len(f) > 1 && f[1] == strconv.Itoa(server.Process.Pid) {
				cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
				if strings.HasPrefix(string(cmdline), "refit-catalog-rpmdb\x00") {
					child, _ = strconv.Atoi(filepath.Base(filepath.Dir(p)))
				}
			}
		}
	}
	server.Process.Signal(syscall.SIGKILL)
	server.Wait()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		_, rest, _ := strings.Cut(string(b), ") ")
		if err != nil || strings.HasPrefix(rest, "Z") { // gone, or a zombie nobody reaps
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("the child parser %d outlived refit by 10 s: %s", child, b)
		}
	}
}
