package catalogtest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNoRPM is returned by RPMDB when rpm or rpmbuild is not installed
// (Debian: apt-get install rpm); tests skip on it.
var ErrNoRPM = errors.New("rpm and rpmbuild are not installed (apt-get install rpm)")

// RPMDB builds one tiny noarch rpm per package with rpmbuild and
// installs them all with `rpm --justdb` into a new rpm database in dir;
// it returns the database file's content (rpmdb.sqlite: Debian's rpm
// 4.18 writes sqlite only — it has no ndb backend and reads BerkeleyDB
// only). A Pkg's Version is rpm's [epoch:]version-release; a Source other
// than the Name makes the package a subpackage of a source package of
// that name (openssl-libs of openssl); Arch is ignored (noarch).
func RPMDB(dir string, pkgs ...Pkg) ([]byte, error) {
	for _, tool := range []string{"rpm", "rpmbuild"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, ErrNoRPM
		}
	}
	top, db := filepath.Join(dir, "top"), filepath.Join(dir, "db")
	run := func(args ...string) error {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "HOME="+dir) // no ~/.rpmmacros of the machine
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for i, p := range pkgs {
		spec := filepath.Join(dir, fmt.Sprintf("p%d.spec", i))
		if err := os.WriteFile(spec, []byte(rpmSpec(p)), 0o644); err != nil {
			return nil, err
		}
		if err := run("rpmbuild", "--quiet", "--define", "_topdir "+top, "-bb", spec); err != nil {
			return nil, err
		}
	}
	rpms, err := filepath.Glob(filepath.Join(top, "RPMS", "noarch", "*.rpm"))
	if err != nil || len(rpms) == 0 {
		return nil, fmt.Errorf("rpmbuild made no rpm in %s (%v)", top, err)
	}
	if err := run("rpm", "--dbpath", db, "--initdb"); err != nil {
		return nil, err
	}
	if err := run(append([]string{"rpm", "--dbpath", db, "-i", "--justdb", "--nodeps", "--nosignature", "--nodigest"}, rpms...)...); err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(db, "rpmdb.sqlite"))
}

// rpmSpec is the spec file of one package with no files.
func rpmSpec(p Pkg) string {
	epoch, vr, ok := strings.Cut(p.Version, ":")
	if !ok {
		epoch, vr = "", p.Version
	}
	version, release, _ := strings.Cut(vr, "-")
	var b strings.Builder
	src := cmp.Or(p.Source, p.Name)
	fmt.Fprintf(&b, "Name: %s\nVersion: %s\nRelease: %s\n", src, version, cmp.Or(release, "1"))
	if epoch != "" {
		fmt.Fprintf(&b, "Epoch: %s\n", epoch)
	}
	b.WriteString("Summary: a test package\nLicense: MIT\nBuildArch: noarch\n%description\na test package\n")
	if src != p.Name {
		fmt.Fprintf(&b, "%%package -n %s\nSummary: a test subpackage\n%%description -n %s\na test subpackage\n%%files -n %s\n", p.Name, p.Name, p.Name)
	} else {
		b.WriteString("%files\n")
	}
	return b.String()
}

// RedHat is a Red Hat-like image: os-release and an rpm database (its
// file's content, at var/lib/rpm/rpmdb.sqlite unless at says otherwise)
// in one layer, plus extra layers.
func RedHat(id, version string, db []byte, at string, extra ...v1.Layer) v1.Image {
	base := LayerOf(
		File{Name: "etc/os-release", Body: OSRelease(id, version, id+" "+version)},
		File{Name: "bin/sh", Body: "#!bash"},
		File{Name: cmp.Or(at, "var/lib/rpm/rpmdb.sqlite"), Body: string(bytes.Clone(db))},
	)
	return Image(v1.Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, Cmd: []string{"/bin/bash"}},
		append([]v1.Layer{base}, extra...)...)
}

// GoRPMDBTestdata returns a database of github.com/anchore/go-rpmdb's own
// test data (MIT), read from the module cache at test time and copied
// nowhere: "sle15-bci/Packages.db" (ndb), "centos7-plain/Packages"
// (BerkeleyDB), which rpm 4.18 cannot write. It fails when the go
// command or the module is not at hand.
func GoRPMDBTestdata(name string) ([]byte, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/anchore/go-rpmdb").Output()
	if err != nil {
		return nil, fmt.Errorf("finding go-rpmdb in the module cache: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return nil, errors.New("go-rpmdb is not in the module cache (go mod download)")
	}
	return os.ReadFile(filepath.Join(dir, "pkg", "testdata", filepath.FromSlash(name)))
}
