package source

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrEscapes is wrapped by the errors of Within, ReadFile and OpenDir when a path
// leaves the source's root, lexically ("..") or through a symlink.
var ErrEscapes = errors.New("leaves the source")

// maxLinks bounds the symlinks Within follows for one path, so link loops
// end. It is os.Root's limit, so that what Within accepts os.Root opens.
const maxLinks = 8

// Within resolves rel, a slash-separated path relative to root, the way
// the kernel would, except that it never leaves root: a symlink whose
// target is absolute, or whose ".." components climb above root, is
// refused with an error wrapping ErrEscapes, as is rel itself climbing
// above root. Symlinks that stay inside root are followed; repositories
// use them (a Dockerfile linked from a shared directory). The result is a
// clean relative path ("." for root) that contains no symlink, to be
// opened through root (os.Root refuses escapes by itself, so a tree
// changed between Within and the open cannot redirect it outside).
//
// Errors name rel as given and, for an escape, the symlink inside root
// that leads out; never a link's target nor any file's content. A missing
// component gives an error wrapping fs.ErrNotExist.
func Within(root *os.Root, rel string) (string, error) {
	type part struct {
		name string
		via  string // the symlink (resolved path in root) that produced it, "" if rel
	}
	if path.IsAbs(rel) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%q %w (absolute path)", rel, ErrEscapes)
	}
	// split keeps "." (and a trailing "/", which means the same): the
	// path before it must be a directory, as in POSIX.
	split := func(p, via string) []part {
		var out []part
		names := strings.Split(p, "/")
		for i, n := range names {
			if n == "" && i == len(names)-1 && i > 0 {
				n = "."
			}
			if n != "" {
				out = append(out, part{n, via})
			}
		}
		return out
	}
	todo := split(rel, "")
	var done []string
	links := 0
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		if p.name == "." || p.name == ".." {
			// What comes before must be a directory ("file/.." is not).
			if len(done) > 0 {
				if fi, err := root.Lstat(path.Join(done...)); err != nil || !fi.IsDir() {
					return "", notFoundError(rel)
				}
			}
		}
		if p.name == "." {
			continue
		}
		if p.name == ".." {
			if len(done) == 0 {
				if p.via != "" {
					return "", fmt.Errorf("%q %w (symlink %q)", rel, ErrEscapes, p.via)
				}
				return "", fmt.Errorf("%q %w", rel, ErrEscapes)
			}
			done = done[:len(done)-1]
			continue
		}
		cur := path.Join(append(done, p.name)...)
		fi, err := root.Lstat(cur)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return "", notFoundError(rel)
			}
			return "", fmt.Errorf("resolving %q in the source: %w", rel, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, p.name)
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolving %q in the source: too many levels of symlinks", rel)
		}
		target, err := root.Readlink(cur)
		if err != nil {
			return "", fmt.Errorf("resolving %q in the source: %w", rel, err)
		}
		if path.IsAbs(target) || filepath.IsAbs(target) {
			return "", fmt.Errorf("%q %w (symlink %q)", rel, ErrEscapes, cur)
		}
		todo = append(split(target, cur), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return path.Join(done...), nil
}

// notFoundError says a path is missing from the source; it is an
// fs.ErrNotExist.
type notFoundError string

func (e notFoundError) Error() string        { return fmt.Sprintf("%q not found in the source", string(e)) }
func (e notFoundError) Is(target error) bool { return target == fs.ErrNotExist }

// ReadFile reads the regular file at rel inside root (see Within), at
// most max bytes: a longer file is an error. Errors name rel, never the
// content.
func ReadFile(root *os.Root, rel string, max int64) ([]byte, error) {
	p, err := Within(root, rel)
	if err != nil {
		return nil, err
	}
	// O_NONBLOCK: a FIFO planted in a dir source must not hang the open;
	// it is refused below.
	f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %q in the source: %w", rel, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("opening %q in the source: %w", rel, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%q in the source is not a regular file", rel)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %q in the source: %w", rel, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%q in the source is larger than %d bytes", rel, max)
	}
	return b, nil
}

// OpenDir opens the directory at rel inside root (see Within) as a root
// of its own, through which nothing outside it can be reached.
func OpenDir(root *os.Root, rel string) (*os.Root, error) {
	p, err := Within(root, rel)
	if err != nil {
		return nil, err
	}
	d, err := root.OpenRoot(p)
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return nil, fmt.Errorf("%q in the source is not a directory", rel)
		}
		return nil, fmt.Errorf("opening %q in the source: %w", rel, err)
	}
	return d, nil
}
