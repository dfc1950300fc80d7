package catalog

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// Image is what Read needs of an image: a remote.Image, a
// layout image or one built in memory all are.
type Image interface {
	Digest() (v1.Hash, error)
	Layers() ([]v1.Layer, error)
	ConfigFile() (*v1.ConfigFile, error)
}

// Paths read from an image, relative to its root.
const (
	etcOSRelease = "etc/os-release"
	libOSRelease = "usr/lib/os-release"
	dpkgStatus   = "var/lib/dpkg/status"
	dpkgStatusD  = "var/lib/dpkg/status.d/"
	apkInstalled = "lib/apk/db/installed"
)

// rpmDBs are where rpm keeps its database — rpmdb.sqlite (RHEL 9,
// Fedora), Packages.db (ndb: SUSE), Packages (BerkeleyDB: RHEL 8 and
// older) — in /var/lib/rpm or, since Fedora 36 and openSUSE, in
// /usr/lib/sysimage/rpm; in this order of preference when an image has
// more than one (a BerkeleyDB left behind by a conversion to sqlite).
var rpmDBs = []string{"usr/lib/sysimage/rpm/rpmdb.sqlite", "var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/Packages.db", "var/lib/rpm/Packages.db", "var/lib/rpm/Packages"}

// LimitError is a read that went over one of the Limits.
type LimitError struct {
	What  string // "bytes", "file" or "time"
	Limit string // the limit, e.g. "1073741824 bytes"
	Where string // the layer or file
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("cataloguing stopped at %s: over the %s limit of %s (raise it with refit serve's --catalog-max-%s)", e.Where, e.What, e.Limit, e.What)
}

// Read catalogs img. It walks the layers from the top down, opening each
// layer's stream at most once and reading it as a tar stream, and stops
// as soon as the OS release and the package database are known: a
// database rewritten by the top layer costs that layer only. In the
// layer holding the database it stops there too, closing the stream:
// an Alpine layer's lib/apk/db/installed, near the start of its tar,
// costs the bytes up to it, not the whole layer (an rpm database only
// once no database rpm prefers, in rpmDBs' order, can follow). A lower layer entered
// only for the os-release (FROM debian, then apt-get install) is closed
// as soon as it is found: the catalog is of the topmost package
// database, and a second kind of database in a lower layer is not read. Files and
// directories removed by an upper layer (whiteouts, opaque directories)
// do not count. Nothing is written to disk; only the few files read are
// held in memory, each at most lim.File bytes. Errors name the layer or
// file and are *LimitError when a limit was hit.
//
// Three things follow from stopping early. A layer closed before its
// end is not checked against its digest (go-containerregistry checks at
// the end of the stream): what was read of it is trusted as the
// registry served it. A layer's tar holding the same
// path twice (which extraction resolves as "the last one wins", and
// which docker, BuildKit, go-containerregistry and containerd never
// write) is read as "the first one wins", as it always was here: whoever
// can write such a layer can write any database, so this hides nothing
// that could not be hidden otherwise. Distroless images, whose
// dpkg database is one file per package in var/lib/dpkg/status.d spread
// over any layers, are read down to the bottom layer (or to the layer
// that removed status.d): once a status.d file is met the walk never
// stops early. Where a dpkg status file is met first, status.d files
// after it (dpkg itself never reads status.d) are not looked for.
func Read(ctx context.Context, img Image, lim Limits) (Catalog, error) {
	lim = lim.withDefaults()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, lim.Time)
	defer cancel()
	var c Catalog
	d, err := img.Digest()
	if err != nil {
		return c, fmt.Errorf("reading image digest: %w", err)
	}
	c.Digest = d.String()
	cf, err := img.ConfigFile()
	if err != nil {
		return c, fmt.Errorf("reading image config: %w", err)
	}
	c.Config = configOf(cf)
	if cf.OS != "" {
		c.Platform = cf.OS + "/" + cf.Architecture
		if cf.Variant != "" {
			c.Platform += "/" + cf.Variant
		}
	}
	layers, err := img.Layers()
	if err != nil {
		return c, fmt.Errorf("listing image layers: %w", err)
	}
	c.Layers = len(layers)
	for _, l := range layers {
		if n, err := l.Size(); err == nil {
			c.Size += n
		}
	}
	w := newWalker(lim)
	defer w.close()
	for i := len(layers) - 1; i >= 0 && !w.done(nil); i-- {
		if err := ctx.Err(); err != nil {
			return c, timeErr(lim, fmt.Sprintf("layer %d of %d", i+1, len(layers)), err)
		}
		rc, err := layers[i].Compressed()
		if err != nil {
			return c, fmt.Errorf("opening layer %d of %d: %w", i+1, len(layers), err)
		}
		c.Read.LayersRead++
		err = w.layer(ctx, rc)
		rc.Close() // before its end when the walk is done: the rest is never fetched
		if err != nil {
			var le *LimitError
			if errors.As(err, &le) && le.Where == "" {
				le.Where = fmt.Sprintf("layer %d of %d", i+1, len(layers))
			}
			if ctx.Err() != nil && !errors.As(err, &le) {
				return c, timeErr(lim, fmt.Sprintf("layer %d of %d", i+1, len(layers)), err)
			}
			return c, fmt.Errorf("reading layer %d of %d: %w", i+1, len(layers), err)
		}
	}
	c.Read.Bytes = w.read
	if err := w.result(ctx, &c); err != nil {
		return c, err
	}
	c.Read.TookMS = time.Since(start).Milliseconds()
	return c, nil
}

func timeErr(lim Limits, where string, err error) error {
	return fmt.Errorf("%w: %w", &LimitError{What: "time", Limit: lim.Time.String(), Where: where}, err)
}

// configOf keeps the fields of cf a diff shows.
func configOf(cf *v1.ConfigFile) ImageConfig {
	c := cf.Config
	return ImageConfig{Env: c.Env, User: c.User, Entrypoint: c.Entrypoint, Cmd: c.Cmd, WorkingDir: c.WorkingDir, Labels: c.Labels}
}

// walker is the state of one top-down walk: what upper layers hid or
// already provided, and the files found.
type walker struct {
	lim  Limits
	read int64 // compressed bytes read so far

	// From the layers above the current one.
	seen     map[string]bool // paths an upper layer had (or whited out)
	whiteout map[string]bool // paths removed by an upper layer
	opaque   map[string]bool // directories ("a/b/") whose lower content is hidden

	files   map[string][]byte // the target files found, by path
	links   map[string]bool   // targets found as something other than a regular file
	statusD map[string][]byte // var/lib/dpkg/status.d/* found
	rpm     *rpmDB            // the rpm database found, copied to a temporary file
}

func newWalker(lim Limits) *walker {
	return &walker{lim: lim, seen: map[string]bool{}, whiteout: map[string]bool{}, opaque: map[string]bool{},
		files: map[string][]byte{}, links: map[string]bool{}, statusD: map[string][]byte{}}
}

// hidden reports whether an upper layer removed p or one of its parents.
func (w *walker) hidden(p string) bool {
	if w.whiteout[p] {
		return true
	}
	for dir := path.Dir(p); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if w.whiteout[dir] || w.opaque[dir+"/"] {
			return true
		}
	}
	return false
}

// decided reports whether what the image has at p is known: an upper
// layer had it or removed it, or the layer being read (cur, its paths
// so far; nil between layers) had it.
func (w *walker) decided(p string, cur map[string]bool) bool {
	return w.seen[p] || cur[p] || w.hidden(p)
}

// done reports whether the walk may stop: the OS release and the
// package database are known. cur is what the layer being read has
// shown so far (nil between layers): done with it means the rest of
// that layer and every lower one can change nothing.
func (w *walker) done(cur map[string]bool) bool {
	osDone := (w.decided(etcOSRelease, cur) && w.files[etcOSRelease] != nil) ||
		(w.decided(etcOSRelease, cur) || w.links[etcOSRelease]) && w.decided(libOSRelease, cur)
	if !osDone {
		return false
	}
	if len(w.statusD) > 0 && !w.hidden(dpkgStatusD+"x") {
		return false // status.d files may sit in any layer
	}
	for _, db := range append([]string{dpkgStatus, apkInstalled}, rpmDBs...) {
		if w.files[db] != nil || w.links[db] {
			return true
		}
	}
	if w.rpm == nil {
		return false
	}
	// In the middle of a layer, a database rpm prefers to the one found
	// (rpmDBs' order) may still come: var/lib/rpm/rpmdb.sqlite after a
	// Packages left behind.
	for _, db := range rpmDBs[:slices.Index(rpmDBs, w.rpm.at)] {
		if cur != nil && !w.decided(db, cur) {
			return false
		}
	}
	return true
}

// target reports whether p is a file the catalog reads.
func target(p string) bool {
	switch p {
	case etcOSRelease, libOSRelease, dpkgStatus, apkInstalled:
		return true
	}
	return strings.HasPrefix(p, dpkgStatusD) && len(p) > len(dpkgStatusD) && !strings.Contains(p[len(dpkgStatusD):], "/")
}

// counter counts bytes read and enforces the bytes limit and ctx.
type counter struct {
	ctx context.Context
	r   io.Reader
	w   *walker
}

func (c *counter) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.w.read += int64(n)
	if c.w.read > c.w.lim.Bytes {
		return n, &LimitError{What: "bytes", Limit: fmt.Sprintf("%d bytes", c.w.lim.Bytes)}
	}
	return n, err
}

// layer reads one layer's stream (gzip, zstd or plain tar).
func (w *walker) layer(ctx context.Context, rc io.Reader) error {
	br := bufio.NewReader(&counter{ctx: ctx, r: rc, w: w})
	magic, _ := br.Peek(4)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("decompressing (gzip): %w", err)
		}
		defer zr.Close()
		r = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			return fmt.Errorf("decompressing (zstd): %w", err)
		}
		defer zr.Close()
		r = zr
	}
	seen, whiteout, opaque := map[string]bool{}, map[string]bool{}, map[string]bool{}
	tr := tar.NewReader(r)
	for met := false; ; {
		if met && w.done(seen) {
			// Nothing further down can change the catalog: stop here,
			// and the caller closes the stream. This layer's whiteouts
			// past this point would only hide lower layers, which are
			// not read.
			break
		}
		met = false
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar stream: %w", err)
		}
		p := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		dir, base := path.Split(p)
		switch {
		case base == ".wh..wh..opq":
			opaque[dir] = true
			continue
		case strings.HasPrefix(base, ".wh."):
			whiteout[dir+base[len(".wh."):]] = true
			continue
		}
		if w.decided(p, seen) {
			continue // hidden above, or met before in this layer: the first one wins
		}
		seen[p] = true
		if !target(p) && !isRPM(p) {
			continue
		}
		met = true
		if h.Typeflag != tar.TypeReg {
			if h.Typeflag != tar.TypeDir {
				w.links[p] = true // a link: os-release usually is one
			}
			continue
		}
		if isRPM(p) {
			if err := w.spoolRPM(p, tr); err != nil {
				return err
			}
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, w.lim.File+1))
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if int64(len(b)) > w.lim.File {
			return &LimitError{What: "file", Limit: fmt.Sprintf("%d bytes", w.lim.File), Where: p}
		}
		if strings.HasPrefix(p, dpkgStatusD) {
			w.statusD[p] = b
		} else {
			w.files[p] = b
		}
	}
	if w.read > w.lim.Bytes {
		return &LimitError{What: "bytes", Limit: fmt.Sprintf("%d bytes", w.lim.Bytes)}
	}
	for p := range seen {
		w.seen[p] = true
	}
	for p := range whiteout {
		w.seen[p] = true
		w.whiteout[p] = true
	}
	for d := range opaque {
		w.opaque[d] = true
	}
	return nil
}

func isRPM(p string) bool { return slices.Contains(rpmDBs, p) }

// spoolRPM copies the rpm database at p out of the layer's stream r when
// it is the first found or preferred to the one found before (rpmDBs'
// order).
func (w *walker) spoolRPM(p string, r io.Reader) error {
	if w.rpm != nil && slices.Index(rpmDBs, w.rpm.at) <= slices.Index(rpmDBs, p) {
		return nil
	}
	db, err := spoolRPM(p, r, w.lim)
	if err != nil {
		return err
	}
	w.close()
	w.rpm = db
	return nil
}

// close removes the copy of the rpm database, if any.
func (w *walker) close() {
	if w.rpm != nil {
		w.rpm.Close()
		w.rpm = nil
	}
}

// result parses the files found into c; the rpm database is parsed in a
// child process (see rpmChildArg0) that ctx's end kills.
func (w *walker) result(ctx context.Context, c *Catalog) error {
	osFile := w.files[etcOSRelease]
	if osFile == nil {
		osFile = w.files[libOSRelease]
	}
	if osFile != nil {
		o, err := ParseOSRelease(bytes.NewReader(osFile))
		if err != nil {
			return err
		}
		c.OS = o
	}
	c.Packages = []Package{}
	if b := w.files[dpkgStatus]; b != nil || len(w.statusD) > 0 {
		c.DB = append(c.DB, "dpkg")
		if b != nil {
			ps, err := ParseDpkgStatus(bytes.NewReader(b))
			if err != nil {
				return fmt.Errorf("%s: %w", dpkgStatus, err)
			}
			c.Packages = append(c.Packages, ps...)
		}
		for p, b := range w.statusD {
			ps, err := ParseDpkgStatus(bytes.NewReader(b))
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			c.Packages = append(c.Packages, ps...)
		}
	}
	if b := w.files[apkInstalled]; b != nil {
		c.DB = append(c.DB, "apk")
		ps, err := ParseApkInstalled(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("%s: %w", apkInstalled, err)
		}
		c.Packages = append(c.Packages, ps...)
	}
	if w.rpm != nil {
		ps, err := w.rpm.packages(ctx, w.lim)
		if err != nil {
			return err
		}
		c.DB = append(c.DB, "rpm")
		c.Packages = append(c.Packages, ps...)
	} else {
		for _, db := range rpmDBs {
			if w.links[db] {
				c.DB = append(c.DB, "rpm (a link, not followed: "+db+")")
				break
			}
		}
	}
	sortPackages(c.Packages)
	// Drop repeated identical entries (a package listed in status and in
	// status.d).
	c.Packages = slices.Compact(c.Packages)
	return nil
}
