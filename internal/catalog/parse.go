package catalog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"pault.ag/go/debian/control"
)

// ParseDpkgStatus reads a dpkg status file (var/lib/dpkg/status, or one
// file of status.d) with pault.ag/go/debian's control-file parser and
// returns the packages it says are installed: a paragraph whose Status
// is not "… installed" (removed, config-files, half-installed) is
// skipped; one without a Status (status.d of distroless images) counts.
func ParseDpkgStatus(r io.Reader) ([]Package, error) {
	pr, err := control.NewParagraphReader(r, nil)
	if err != nil {
		return nil, fmt.Errorf("reading dpkg status: %w", err)
	}
	var out []Package
	for {
		p, err := pr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading dpkg status: %w", err)
		}
		name := p.Values["Package"]
		if name == "" {
			continue
		}
		if st, ok := p.Values["Status"]; ok && !strings.HasSuffix(strings.TrimSpace(st), " installed") {
			continue
		}
		src := p.Values["Source"]
		// "Source: openssl (3.0.11-1)" names the source version too.
		if i := strings.IndexByte(src, ' '); i >= 0 {
			src = src[:i]
		}
		out = append(out, Package{Name: name, Version: p.Values["Version"], Arch: p.Values["Architecture"], Type: "deb", Source: src})
	}
	return out, nil
}

// ParseApkInstalled reads an apk database (lib/apk/db/installed):
// paragraphs of "X:value" lines separated by blank lines, as apk-tools
// writes them (P: name, V: version, A: architecture, o: origin). No
// maintained Go parser of this format exists outside syft's whole
// module (see README), and the format is two fields per line.
func ParseApkInstalled(r io.Reader) ([]Package, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var out []Package
	var cur Package
	flush := func() {
		if cur.Name != "" {
			cur.Type = "apk"
			out = append(out, cur)
		}
		cur = Package{}
	}
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			continue // unknown lines are apk's to add; skip them
		}
		v := string(line[2:])
		switch line[0] {
		case 'P':
			cur.Name = v
		case 'V':
			cur.Version = v
		case 'A':
			cur.Arch = v
		case 'o':
			cur.Source = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading apk database: %w", err)
	}
	flush()
	return out, nil
}

// ParseOSRelease reads an os-release file (os-release(5)): shell-like
// KEY=value lines, values optionally quoted.
func ParseOSRelease(r io.Reader) (OS, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4<<10), 64<<10)
	var o OS
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			if v[0] == '"' {
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				} else {
					v = v[1 : len(v)-1]
				}
			} else {
				v = v[1 : len(v)-1]
			}
		}
		switch k {
		case "ID":
			o.ID = v
		case "VERSION_ID":
			o.VersionID = v
		case "PRETTY_NAME":
			o.PrettyName = v
		case "VERSION_CODENAME":
			o.Codename = v
		}
	}
	if err := sc.Err(); err != nil {
		return OS{}, fmt.Errorf("reading os-release: %w", err)
	}
	return o, nil
}
