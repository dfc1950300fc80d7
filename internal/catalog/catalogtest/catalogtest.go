// Package catalogtest builds small Debian-like and Alpine-like images
// for tests and benchmarks: real dpkg status and apk installed files with
// chosen package versions, an os-release, layers written with
// go-containerregistry.
package catalogtest

import (
	"archive/tar"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Pkg is a package to write into a database: name, version, arch.
type Pkg struct {
	Name, Version, Arch string
	// Source is the source package (dpkg's Source field); "" = Name.
	Source string
}

// DpkgStatus returns a dpkg status file listing pkgs as installed, in the
// format dpkg writes.
func DpkgStatus(pkgs ...Pkg) string {
	var b strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: 1024\n"+
			"Maintainer: Debian <debian@example.org>\nArchitecture: %s\nMulti-Arch: same\nSource: %s\nVersion: %s\n"+
			"Depends: libc6 (>= 2.34)\nDescription: the %s package\n long description of %s,\n .\n more of it\n\n",
			p.Name, p.Arch, cmp.Or(p.Source, p.Name), p.Version, p.Name, p.Name)
	}
	return b.String()
}

// ApkInstalled returns an apk installed database listing pkgs.
func ApkInstalled(pkgs ...Pkg) string {
	var b strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&b, "C:Q1abcdefabcdefabcdefabcdefabcdefab=\nP:%s\nV:%s\nA:%s\nS:100000\nI:200000\nT:the %s package\n"+
			"U:https://example.org\nL:MIT\no:%s\nm:Alpine <alpine@example.org>\nt:1700000000\nc:0123456789abcdef\nD:so:libc.musl-x86_64.so.1\n"+
			"F:usr/lib\nR:lib%s.so.1\na:0:0:755\nZ:Q1abcdefabcdefabcdefabcdefabcd=\n\n", p.Name, p.Version, p.Arch, p.Name, p.Name, p.Name)
	}
	return b.String()
}

// OSRelease returns an os-release file.
func OSRelease(id, versionID, pretty string) string {
	return fmt.Sprintf("PRETTY_NAME=%q\nNAME=%q\nVERSION_ID=%q\nID=%s\n", pretty, pretty, versionID, id)
}

// File is one tar entry; Link makes it a symlink to Link, and an empty
// Body with a name ending in "/" a directory.
type File struct {
	Name, Body, Link string
}

// Layer returns a gzip layer holding files (a map of path → body; a
// body "->target" makes a symlink), in path order.
func Layer(files map[string]string) v1.Layer {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var fs []File
	for _, n := range names {
		body := files[n]
		if t, ok := strings.CutPrefix(body, "->"); ok {
			fs = append(fs, File{Name: n, Link: t})
			continue
		}
		fs = append(fs, File{Name: n, Body: body})
	}
	return LayerOf(fs...)
}

// LayerOf returns a gzip layer holding files in the order given.
func LayerOf(files ...File) v1.Layer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Mode: 0o644, Size: int64(len(f.Body)), Typeflag: tar.TypeReg}
		switch {
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.Link, 0
		case strings.HasSuffix(f.Name, "/"):
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if h.Size > 0 {
			if _, err := io.WriteString(tw, f.Body); err != nil {
				panic(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		panic(err)
	}
	return l
}

// Image returns a linux/amd64 image of layers (bottom first) with cfg.
func Image(cfg v1.Config, layers ...v1.Layer) v1.Image {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{Architecture: "amd64", OS: "linux", Config: cfg,
		RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		panic(err)
	}
	if img, err = mutate.AppendLayers(img, layers...); err != nil {
		panic(err)
	}
	return img
}

// Debian is a Debian-like image: a base layer with os-release (etc link
// to usr/lib, as Debian has it) and the dpkg status, plus extra layers.
func Debian(version string, pkgs []Pkg, extra ...v1.Layer) v1.Image {
	base := Layer(map[string]string{
		"etc/os-release":      "->../usr/lib/os-release",
		"usr/lib/os-release":  OSRelease("debian", version, "Debian GNU/Linux "+version),
		"var/lib/dpkg/status": DpkgStatus(pkgs...),
		"bin/sh":              "#!busybox",
	})
	return Image(v1.Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, Cmd: []string{"bash"}},
		append([]v1.Layer{base}, extra...)...)
}

// Alpine is an Alpine-like image: os-release and the apk database in one
// layer, plus extra layers.
func Alpine(version string, pkgs []Pkg, extra ...v1.Layer) v1.Image {
	base := Layer(map[string]string{
		"etc/os-release":       OSRelease("alpine", version, "Alpine Linux v"+version),
		"lib/apk/db/installed": ApkInstalled(pkgs...),
		"bin/sh":               "#!busybox",
	})
	return Image(v1.Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, Cmd: []string{"/bin/sh"}},
		append([]v1.Layer{base}, extra...)...)
}

// Synthetic returns n packages named pkg0000… with version v.
func Synthetic(n int, v string) []Pkg {
	out := make([]Pkg, n)
	for i := range out {
		out[i] = Pkg{Name: fmt.Sprintf("pkg%04d", i), Version: v, Arch: "amd64"}
	}
	return out
}

// P returns a Pkg.
func P(name, version, arch string) Pkg { return Pkg{Name: name, Version: version, Arch: arch} }
