package source

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DirPolicy decides which of the server's directories a task's `dir:`
// source may name. A dir source is read by the server with the server's
// rights, so without a policy anyone who may create a task can build any
// directory the server can read into an image. The zero value allows any
// directory.
type DirPolicy struct {
	// Allow lists the directories dir sources must lie in (each one, or
	// below it). Empty = any directory that Deny does not refuse.
	Allow []string
	// Deny lists directories and files that a dir source may neither lie
	// in nor contain: refit's data directory, its key file.
	Deny []string
}

// Check returns dir's real path (absolute, symlinks resolved) when the
// policy allows it as a source root. The error names dir as given and
// says which rule refused it; it never names what the directory holds.
func (p DirPolicy) Check(dir string) (string, error) {
	real, err := realPath(dir)
	if err != nil {
		return "", fmt.Errorf("%s is not a readable directory", dir)
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s is not a readable directory", dir)
	}
	for _, d := range p.Deny {
		d = realOrClean(d)
		if inside(real, d) || inside(d, real) {
			return "", fmt.Errorf("%s holds or is inside refit's own state (its data directory or key file); build from another directory", dir)
		}
	}
	if len(p.Allow) == 0 {
		return real, nil
	}
	for _, a := range p.Allow {
		if inside(real, realOrClean(a)) {
			return real, nil
		}
	}
	return "", fmt.Errorf("%s is not inside a directory the server allows sources in (refit serve --source-dir)", dir)
}

// realPath returns p made absolute with every symlink resolved.
func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// realOrClean is realPath, or the cleaned absolute path when p does not
// exist (yet).
func realOrClean(p string) string {
	if r, err := realPath(p); err == nil {
		return r
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	return abs
}

// inside reports whether path p is dir or lies below it (both absolute
// and clean).
func inside(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
