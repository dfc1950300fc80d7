package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/refit-dev/refit/internal/catalog"
	ct "github.com/refit-dev/refit/internal/catalog/catalogtest"
)

func read(t *testing.T, img v1.Image) catalog.Catalog {
	t.Helper()
	c, err := catalog.Read(context.Background(), img, catalog.Limits{})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return c
}

func names(c catalog.Catalog) []string {
	var out []string
	for _, p := range c.Packages {
		out = append(out, p.Name+"="+p.Version)
	}
	return out
}

func TestReadDebian(t *testing.T) {
	img := ct.Debian("12", []ct.Pkg{ct.P("openssl", "3.0.11-1~deb12u2", "amd64"), ct.P("bash", "5.2.15-2+b2", "amd64")},
		ct.Layer(map[string]string{"app/readme": "hello"}))
	c := read(t, img)
	if diff := cmp.Diff([]string{"bash=5.2.15-2+b2", "openssl=3.0.11-1~deb12u2"}, names(c)); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if c.OS.ID != "debian" || c.OS.VersionID != "12" {
		t.Errorf("os = %+v, want debian 12 (read through the etc/os-release link)", c.OS)
	}
	if c.Layers != 2 || c.Read.LayersRead != 2 || c.Platform != "linux/amd64" {
		t.Errorf("layers %d, read %d, platform %q; want 2, 2 (the database is in the lower one), linux/amd64", c.Layers, c.Read.LayersRead, c.Platform)
	}
	if cmp.Diff([]string{"dpkg"}, c.DB) != "" || c.Packages[0].Type != "deb" || c.Packages[0].Arch != "amd64" {
		t.Errorf("db %v, first package %+v", c.DB, c.Packages[0])
	}
}

func TestReadAlpine(t *testing.T) {
	c := read(t, ct.Alpine("3.19.1", []ct.Pkg{ct.P("musl", "1.2.4_git20230717-r4", "x86_64"), ct.P("busybox", "1.36.1-r15", "x86_64")}))
	if diff := cmp.Diff([]string{"busybox=1.36.1-r15", "musl=1.2.4_git20230717-r4"}, names(c)); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if c.OS.ID != "alpine" || c.OS.VersionID != "3.19.1" || c.Packages[0].Type != "apk" {
		t.Errorf("os %+v, package %+v", c.OS, c.Packages[0])
	}
}

// A database rewritten by the top layer is read from it alone: the
// lower layers' streams are never opened.
func TestReadStopsAtTopLayer(t *testing.T) {
	old := ct.Synthetic(50, "1.0-1")
	top := ct.Layer(map[string]string{
		"var/lib/dpkg/status": ct.DpkgStatus(ct.P("openssl", "3.0.13-1~deb12u1", "amd64")),
		"etc/os-release":      ct.OSRelease("debian", "12", "Debian GNU/Linux 12"),
	})
	big := ct.Layer(map[string]string{"usr/share/big": strings.Repeat("x", 1<<20)})
	img := ct.Debian("12", old, big, big, top)
	c := read(t, img)
	if c.Read.LayersRead != 1 {
		t.Errorf("read %d layers, want 1 (the top one)", c.Read.LayersRead)
	}
	if diff := cmp.Diff([]string{"openssl=3.0.13-1~deb12u1"}, names(c)); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if c.Read.Bytes*10 > c.Size {
		t.Errorf("read %d of %d bytes; want far less", c.Read.Bytes, c.Size)
	}
}

// A database in the lowest layer under unrelated top layers is found.
func TestReadFindsLowerLayer(t *testing.T) {
	img := ct.Debian("12", []ct.Pkg{ct.P("libc6", "2.36-9", "amd64")},
		ct.Layer(map[string]string{"app/a": "1"}), ct.Layer(map[string]string{"app/b": "2", "etc/motd": "hi"}))
	c := read(t, img)
	if diff := cmp.Diff([]string{"libc6=2.36-9"}, names(c)); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if c.Read.LayersRead != 3 {
		t.Errorf("read %d layers, want 3", c.Read.LayersRead)
	}
}

func TestReadWhiteouts(t *testing.T) {
	base := ct.Layer(map[string]string{
		"etc/os-release":       ct.OSRelease("alpine", "3.19.1", "Alpine"),
		"lib/apk/db/installed": ct.ApkInstalled(ct.P("musl", "1.2.4-r4", "x86_64")),
		"var/lib/dpkg/status":  ct.DpkgStatus(ct.P("stale", "1", "amd64")),
	})
	t.Run("file whiteout", func(t *testing.T) {
		// The dpkg database deleted in an upper layer does not count.
		img := ct.Image(v1.Config{}, base, ct.Layer(map[string]string{"var/lib/dpkg/.wh.status": ""}))
		c := read(t, img)
		if diff := cmp.Diff([]string{"musl=1.2.4-r4"}, names(c)); diff != "" {
			t.Errorf("packages (-want +got):\n%s", diff)
		}
		if cmp.Diff([]string{"apk"}, c.DB) != "" {
			t.Errorf("db = %v, want [apk]", c.DB)
		}
	})
	t.Run("directory whiteout", func(t *testing.T) {
		img := ct.Image(v1.Config{}, base, ct.Layer(map[string]string{"var/lib/.wh.dpkg": "", "lib/apk/.wh..wh..opq": ""}))
		c := read(t, img)
		if len(c.Packages) != 0 || len(c.DB) != 0 {
			t.Errorf("packages %v db %v, want none (both databases removed)", names(c), c.DB)
		}
		if c.OS.ID != "alpine" {
			t.Errorf("os = %+v", c.OS)
		}
	})
	t.Run("opaque directory, rewritten", func(t *testing.T) {
		img := ct.Image(v1.Config{}, base, ct.LayerOf(
			ct.File{Name: "var/lib/dpkg/.wh..wh..opq"},
			ct.File{Name: "var/lib/dpkg/status", Body: ct.DpkgStatus(ct.P("fresh", "2", "amd64"))}))
		// The catalog is of the topmost database: the base layer is
		// entered for its os-release only, and closed there.
		c := read(t, img)
		if diff := cmp.Diff([]string{"fresh=2"}, names(c)); diff != "" {
			t.Errorf("packages (-want +got):\n%s", diff)
		}
	})
}

func TestReadStatusD(t *testing.T) {
	// distroless keeps one status file per package in status.d, spread
	// over layers.
	img := ct.Image(v1.Config{},
		ct.Layer(map[string]string{"var/lib/dpkg/status.d/base": ct.DpkgStatus(ct.P("base-files", "12.4", "amd64")), "etc/os-release": ct.OSRelease("debian", "12", "Distroless")}),
		ct.Layer(map[string]string{"var/lib/dpkg/status.d/libssl3": ct.DpkgStatus(ct.P("libssl3", "3.0.11-1", "amd64"))}))
	c := read(t, img)
	if diff := cmp.Diff([]string{"base-files=12.4", "libssl3=3.0.11-1"}, names(c)); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
}

func TestReadLimits(t *testing.T) {
	img := ct.Debian("12", ct.Synthetic(200, "1.0"))
	_, err := catalog.Read(context.Background(), img, catalog.Limits{File: 1000})
	var le *catalog.LimitError
	if !errors.As(err, &le) || le.What != "file" || !strings.Contains(err.Error(), "var/lib/dpkg/status") {
		t.Errorf("err = %v, want a file LimitError naming the status file", err)
	}
	_, err = catalog.Read(context.Background(), img, catalog.Limits{Bytes: 100})
	if !errors.As(err, &le) || le.What != "bytes" || !strings.Contains(err.Error(), "--catalog-max-bytes") {
		t.Errorf("err = %v, want a bytes LimitError naming the flag", err)
	}
}

func TestDpkgSkipsNotInstalled(t *testing.T) {
	in := ct.DpkgStatus(ct.P("a", "1", "amd64")) + "Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n"
	ps, err := catalog.ParseDpkgStatus(strings.NewReader(in))
	if err != nil || len(ps) != 1 || ps[0].Name != "a" || ps[0].Source != "a" {
		t.Errorf("got %+v, %v; want only a", ps, err)
	}
}

func TestCompare(t *testing.T) {
	old := read(t, ct.Debian("12.4", []ct.Pkg{ct.P("openssl", "3.0.11-1~deb12u2", "amd64"), ct.P("bash", "5.2.15-2+b2", "amd64"), ct.P("gone", "1", "amd64")}))
	newImg := ct.Debian("12.5", []ct.Pkg{ct.P("openssl", "3.0.13-1~deb12u1", "amd64"), ct.P("bash", "5.2.15-2+b2", "amd64"), ct.P("curl", "7.88.1-10", "amd64")},
		ct.Layer(map[string]string{"x": "y"}))
	nc := read(t, newImg)
	d := catalog.Compare(old, nc)
	want := []catalog.PackageChange{{Name: "openssl", Arch: "amd64", Type: "deb", Old: "3.0.11-1~deb12u2", New: "3.0.13-1~deb12u1", Direction: "upgrade", Source: "openssl"}}
	if diff := cmp.Diff(want, d.Changed); diff != "" {
		t.Errorf("changed (-want +got):\n%s", diff)
	}
	if len(d.Added) != 1 || d.Added[0].Name != "curl" || len(d.Removed) != 1 || d.Removed[0].Name != "gone" {
		t.Errorf("added %v removed %v", d.Added, d.Removed)
	}
	if d.OS == nil || d.OS.Old.VersionID != "12.4" || d.OS.New.VersionID != "12.5" {
		t.Errorf("os change = %+v", d.OS)
	}
	if d.Layers.OldCount != 1 || d.Layers.NewCount != 2 || !d.PackagesChanged() {
		t.Errorf("layers %+v", d.Layers)
	}
	if got, want := d.Summary(), "debian 12.4 → debian 12.5; openssl 3.0.11-1~deb12u2 → 3.0.13-1~deb12u1; +curl; -gone"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	same := catalog.Compare(old, old)
	if same.PackagesChanged() || same.OS != nil || len(same.Config) != 0 || same.Summary() != "no package changed" {
		t.Errorf("an image compared with itself changed: %+v", same)
	}
}

func TestCompareConfig(t *testing.T) {
	a := catalog.Catalog{Config: catalog.ImageConfig{Env: []string{"A=1", "B=2"}, User: "root", Labels: map[string]string{"v": "1"}}}
	b := catalog.Catalog{Config: catalog.ImageConfig{Env: []string{"A=1", "B=3"}, User: "app", Entrypoint: []string{"/init"}, Labels: map[string]string{"v": "2"}}}
	got := catalog.Compare(a, b).Config
	want := []catalog.ConfigChange{{Field: "user", Old: "root", New: "app"}, {Field: "entrypoint", New: "/init"},
		{Field: "env B", Old: "2", New: "3"}, {Field: "label v", Old: "1", New: "2"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func FuzzParseDpkgStatus(f *testing.F) {
	f.Add([]byte(ct.DpkgStatus(ct.P("a", "1", "amd64"))))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\n\nPackage: a\n"))
	f.Add([]byte("Package: a\n continuation\nbad line\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = catalog.ParseDpkgStatus(bytes.NewReader(b))
	})
}

func FuzzParseApkInstalled(f *testing.F) {
	f.Add([]byte(ct.ApkInstalled(ct.P("a", "1", "x86_64"))))
	f.Add([]byte("P:\nV\n\n\nP:x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = catalog.ParseApkInstalled(bytes.NewReader(b))
	})
}

func FuzzParseOSRelease(f *testing.F) {
	f.Add([]byte(ct.OSRelease("debian", "12", "Debian")))
	f.Add([]byte("ID='x\nVERSION_ID=\"\\q\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = catalog.ParseOSRelease(bytes.NewReader(b))
	})
}

// noise is n incompressible bytes, so that a layer's compressed size is
// about what it holds.
func noise(n int) string {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(b)
	return string(b)
}

// In the layer holding the database, reading stops once the catalog has
// what it needs: an Alpine-like single layer whose os-release and apk
// database come first costs their bytes, not the megabyte after them.
func TestReadStopsInsideLayer(t *testing.T) {
	img := ct.Image(v1.Config{}, ct.Layer(map[string]string{
		"etc/os-release":       ct.OSRelease("alpine", "3.19.1", "Alpine"),
		"lib/apk/db/installed": ct.ApkInstalled(ct.P("musl", "1.2.4-r4", "x86_64")),
		"usr/share/big":        noise(1 << 20),
	}))
	c := read(t, img)
	if diff := cmp.Diff([]string{"musl=1.2.4-r4"}, names(c)); diff != "" || c.OS.ID != "alpine" {
		t.Errorf("packages (-want +got):\n%s\nos %+v", diff, c.OS)
	}
	if c.Read.Bytes*10 > c.Size {
		t.Errorf("read %d of the layer's %d bytes; want the stream closed after the database", c.Read.Bytes, c.Size)
	}
}

// FROM debian plus apt-get install: the database is in the top layer,
// and the base layer, entered only for its os-release, is closed once
// the os-release is read.
func TestReadStopsInBaseLayerAtOSRelease(t *testing.T) {
	img := ct.Image(v1.Config{},
		ct.LayerOf(
			ct.File{Name: "etc/os-release", Link: "../usr/lib/os-release"},
			ct.File{Name: "usr/lib/os-release", Body: ct.OSRelease("debian", "12", "Debian GNU/Linux 12")},
			ct.File{Name: "usr/share/big", Body: noise(1 << 20)},
			ct.File{Name: "var/lib/dpkg/status", Body: ct.DpkgStatus(ct.P("base-files", "12.4", "amd64"))}),
		ct.Layer(map[string]string{"var/lib/dpkg/status": ct.DpkgStatus(ct.P("base-files", "12.4", "amd64"), ct.P("curl", "7.88.1-10", "amd64"))}))
	c := read(t, img)
	if diff := cmp.Diff([]string{"base-files=12.4", "curl=7.88.1-10"}, names(c)); diff != "" || c.OS.ID != "debian" {
		t.Errorf("packages (-want +got):\n%s\nos %+v", diff, c.OS)
	}
	if c.Read.Bytes*10 > c.Size {
		t.Errorf("read %d of the image's %d bytes; want the base layer closed after its os-release", c.Read.Bytes, c.Size)
	}
}

// A tar holding the same path twice is read as "the first one wins" (see
// Read): the walk stops at the first.
func TestReadDuplicatePathFirstWins(t *testing.T) {
	img := ct.Image(v1.Config{}, ct.LayerOf(
		ct.File{Name: "etc/os-release", Body: ct.OSRelease("alpine", "3.19.1", "Alpine")},
		ct.File{Name: "lib/apk/db/installed", Body: ct.ApkInstalled(ct.P("first", "1", "x86_64"))},
		ct.File{Name: "lib/apk/db/installed", Body: ct.ApkInstalled(ct.P("second", "2", "x86_64"))}))
	if diff := cmp.Diff([]string{"first=1"}, names(read(t, img))); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
}

// status.d (distroless) never stops early: files in the rest of a big
// layer and in lower layers all count.
func TestReadStatusDReadsEveryLayer(t *testing.T) {
	img := ct.Image(v1.Config{},
		ct.Layer(map[string]string{"var/lib/dpkg/status.d/base": ct.DpkgStatus(ct.P("base-files", "12.4", "amd64"))}),
		ct.LayerOf(
			ct.File{Name: "etc/os-release", Body: ct.OSRelease("debian", "12", "Distroless")},
			ct.File{Name: "var/lib/dpkg/status.d/libc6", Body: ct.DpkgStatus(ct.P("libc6", "2.36-9", "amd64"))},
			ct.File{Name: "usr/share/big", Body: noise(64 << 10)},
			ct.File{Name: "var/lib/dpkg/status.d/libssl3", Body: ct.DpkgStatus(ct.P("libssl3", "3.0.11-1", "amd64"))}))
	c := read(t, img)
	if diff := cmp.Diff([]string{"base-files=12.4", "libc6=2.36-9", "libssl3=3.0.11-1"}, names(c)); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if c.Read.LayersRead != 2 || c.Read.Bytes < c.Size {
		t.Errorf("read %d layers, %d of %d bytes; want every byte of both", c.Read.LayersRead, c.Read.Bytes, c.Size)
	}
}

// Stopping inside a layer keeps rpm's preference: a BerkeleyDB Packages
// left behind comes before var/lib/rpm/rpmdb.sqlite in the tar, and the
// sqlite database is still the one read.
func TestReadStopsNotBeforeThePreferredRPM(t *testing.T) {
	sqlite, err := ct.GoRPMDBTestdata("fedora35/rpmdb.sqlite")
	if err != nil {
		t.Skip(err)
	}
	bdb, err := ct.GoRPMDBTestdata("centos7-plain/Packages")
	if err != nil {
		t.Skip(err)
	}
	want := read(t, ct.RedHat("fedora", "35", sqlite, "var/lib/rpm/rpmdb.sqlite"))
	both := ct.Image(v1.Config{}, ct.LayerOf(
		ct.File{Name: "etc/os-release", Body: ct.OSRelease("fedora", "35", "Fedora 35")},
		ct.File{Name: "var/lib/rpm/Packages", Body: string(bdb)},
		ct.File{Name: "var/lib/rpm/rpmdb.sqlite", Body: string(sqlite)}))
	got := read(t, both)
	if diff := cmp.Diff(names(want), names(got)); diff != "" || len(got.Packages) == 0 {
		t.Errorf("packages (-sqlite alone +both):\n%s", diff)
	}
}
