package source_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/refit-dev/refit/internal/source"
)

const outsideSecret = "SECRET-outside-the-root-7f3a"

// linkTree builds <tmp>/outside (a directory with a secret file) and
// <tmp>/root, a source tree linking to it every way it can, and returns
// the root's real path.
func linkTree(t testing.TB) (root, outside string) {
	t.Helper()
	tmp, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	outside = filepath.Join(tmp, "outside")
	root = filepath.Join(tmp, "root")
	for _, d := range []string{outside, filepath.Join(root, "dir", "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(outside, "secret"):     outsideSecret,
		filepath.Join(outside, "Dockerfile"): outsideSecret,
		filepath.Join(root, "Dockerfile"):    "FROM scratch\n",
		filepath.Join(root, "dir", "file"):   "inside\n",
	}
	for p, body := range files {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"abs":         outside, // absolute, outside
		"abs-secret":  filepath.Join(outside, "secret"),
		"abs-inside":  filepath.Join(root, "dir"), // absolute, even if it lands inside
		"proc":        "/proc/self/environ",
		"up":          "../outside", // relative, escaping
		"up-secret":   "../outside/secret",
		"dotdot":      "..",
		"d1":          "d2", // nested: d1 -> d2 -> outside
		"d2":          "../outside",
		"in":          "dir", // inside: allowed
		"in-file":     "dir/file",
		"in-updown":   "dir/sub/../file",
		"dir/sub/up":  "../../Dockerfile", // climbs, stays inside
		"dir/sub/out": "../../../outside/secret",
		"chain":       "in/sub/up",
		"loop1":       "loop2",
		"loop2":       "loop1",
		"self":        ".",
		"dangling":    "nowhere",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root, outside
}

func TestWithin(t *testing.T) {
	rootDir, _ := linkTree(t)
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	cases := []struct {
		rel  string
		want string // resolved path; "" when an error is expected
		err  error  // wrapped by the error
		msg  string // in the error message
	}{
		{rel: "Dockerfile", want: "Dockerfile"},
		{rel: ".", want: "."},
		{rel: "", want: "."},
		{rel: "./dir//file", want: "dir/file"},
		{rel: "dir/sub/..", want: "dir"},
		{rel: "dir/../Dockerfile", want: "Dockerfile"},
		{rel: "in", want: "dir"},
		{rel: "in/file", want: "dir/file"},
		{rel: "in-file", want: "dir/file"},
		{rel: "in-updown", want: "dir/file"},
		{rel: "dir/sub/up", want: "Dockerfile"},
		{rel: "chain", want: "Dockerfile"},
		{rel: "self/self/Dockerfile", want: "Dockerfile"},
		{rel: "in/sub/../../Dockerfile", want: "Dockerfile"},
		{rel: "dir/.", want: "dir"},
		{rel: "in/", want: "dir"},
		{rel: "./", want: "."},

		{rel: "..", err: source.ErrEscapes, msg: `".." leaves the source`},
		{rel: "dir/../../outside/secret", err: source.ErrEscapes},
		{rel: "/etc/passwd", err: source.ErrEscapes, msg: "absolute"},
		{rel: "abs", err: source.ErrEscapes, msg: `"abs" leaves the source (symlink "abs")`},
		{rel: "abs/secret", err: source.ErrEscapes, msg: `(symlink "abs")`},
		{rel: "abs-secret", err: source.ErrEscapes},
		{rel: "abs-inside/file", err: source.ErrEscapes},
		{rel: "proc", err: source.ErrEscapes},
		{rel: "up/secret", err: source.ErrEscapes, msg: `"up/secret" leaves the source (symlink "up")`},
		{rel: "up-secret", err: source.ErrEscapes},
		{rel: "dotdot/outside/secret", err: source.ErrEscapes},
		{rel: "d1", err: source.ErrEscapes, msg: `(symlink "d2")`},
		{rel: "d1/secret", err: source.ErrEscapes},
		{rel: "in/sub/out", err: source.ErrEscapes, msg: `(symlink "dir/sub/out")`},
		{rel: "self/dotdot/root/Dockerfile", err: source.ErrEscapes},

		{rel: "missing", err: fs.ErrNotExist, msg: `"missing" not found in the source`},
		{rel: "dangling", err: fs.ErrNotExist},
		{rel: "Dockerfile/x", err: fs.ErrNotExist},
		{rel: "Dockerfile/", err: fs.ErrNotExist},
		{rel: "Dockerfile/.", err: fs.ErrNotExist},
		{rel: "dir/sub/up/.", err: fs.ErrNotExist},
		{rel: "dir/sub/up/..", err: fs.ErrNotExist},
		{rel: "Dockerfile/../dir", err: fs.ErrNotExist},
		{rel: "loop1", msg: "too many levels of symlinks"},
	}
	for _, tc := range cases {
		got, err := source.Within(root, tc.rel)
		if tc.want != "" {
			if err != nil || got != tc.want {
				t.Errorf("Within(%q) = %q, %v; want %q", tc.rel, got, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("Within(%q) = %q; want an error", tc.rel, got)
			continue
		}
		if tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("Within(%q) error %q does not wrap %v", tc.rel, err, tc.err)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Within(%q) error %q does not say %q", tc.rel, err, tc.msg)
		}
		if strings.Contains(err.Error(), "outside") && !strings.Contains(tc.rel, "outside") {
			t.Errorf("Within(%q) error %q names a link's target", tc.rel, err)
		}
	}
}

func TestReadFileAndOpenDir(t *testing.T) {
	rootDir, _ := linkTree(t)
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	if b, err := source.ReadFile(root, "chain", 100); err != nil || string(b) != "FROM scratch\n" {
		t.Errorf("ReadFile(chain) = %q, %v; want the root's Dockerfile", b, err)
	}
	if _, err := source.ReadFile(root, "Dockerfile", 4); err == nil || !strings.Contains(err.Error(), "larger than 4 bytes") {
		t.Errorf("ReadFile over the limit: %v", err)
	}
	if _, err := source.ReadFile(root, "in", 100); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ReadFile of a directory: %v", err)
	}
	for _, rel := range []string{"abs-secret", "up-secret", "d1/secret", "proc", "in/sub/out"} {
		b, err := source.ReadFile(root, rel, 1<<20)
		if !errors.Is(err, source.ErrEscapes) || len(b) > 0 || strings.Contains(err.Error(), outsideSecret) {
			t.Errorf("ReadFile(%q) = %q, %v; want a refusal without the content", rel, b, err)
		}
	}
	if err := syscallMkfifo(filepath.Join(rootDir, "fifo")); err == nil {
		if _, err := source.ReadFile(root, "fifo", 100); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("ReadFile of a FIFO: %v", err)
		}
	}

	d, err := source.OpenDir(root, "in")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := d.ReadFile("file"); err != nil || string(b) != "inside\n" {
		t.Errorf("OpenDir(in)/file = %q, %v", b, err)
	}
	// The opened directory is a root: its own links cannot leave it.
	if _, err := d.ReadFile("sub/up"); err == nil {
		t.Errorf("reading sub/up (../../Dockerfile) through OpenDir(in) succeeded; want refused")
	}
	d.Close()
	for _, rel := range []string{"abs", "up", "d1", "dotdot"} {
		if d, err := source.OpenDir(root, rel); !errors.Is(err, source.ErrEscapes) {
			if d != nil {
				d.Close()
			}
			t.Errorf("OpenDir(%q): %v, want refused", rel, err)
		}
	}
	if _, err := source.OpenDir(root, "Dockerfile"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("OpenDir of a file: %v", err)
	}
}

// FuzzWithin feeds hostile names to Within over a tree full of links and
// checks that whatever it accepts is inside the root, free of links, and
// the very file os.Root finds; and that no read through it ever yields
// the secret planted outside.
func FuzzWithin(f *testing.F) {
	for _, s := range []string{
		"Dockerfile", "..", "../outside/secret", "/etc/passwd", "abs/secret", "up/secret",
		"d1/secret", "in/sub/out", "chain", "loop1/x", "self/self/../..", "in/../../outside",
		"dir/sub/up/../x", "dotdot/root/Dockerfile", "a\x00b", strings.Repeat("self/", 50) + "Dockerfile",
		strings.Repeat("../", 10), "in/./sub//up", "proc", "dangling/..",
	} {
		f.Add(s)
	}
	rootDir, _ := linkTree(f)
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { root.Close() })
	f.Fuzz(func(t *testing.T, rel string) {
		got, err := source.Within(root, rel)
		if b, rerr := source.ReadFile(root, rel, 1<<10); rerr == nil && strings.Contains(string(b), outsideSecret) {
			t.Fatalf("ReadFile(%q) read the secret outside the root", rel)
		} else if rerr != nil && strings.Contains(rerr.Error(), outsideSecret) {
			t.Fatalf("ReadFile(%q) error %q carries the secret", rel, rerr)
		}
		if err != nil {
			return
		}
		if got != "." && !filepath.IsLocal(got) {
			t.Fatalf("Within(%q) = %q, not a local path", rel, got)
		}
		real, err := filepath.EvalSymlinks(filepath.Join(rootDir, got))
		if err != nil {
			t.Fatalf("Within(%q) = %q, which does not resolve: %v", rel, got, err)
		}
		if real != filepath.Join(rootDir, got) {
			t.Fatalf("Within(%q) = %q, which still has a symlink (really %s)", rel, got, real)
		}
		if r, err := filepath.Rel(rootDir, real); err != nil || !filepath.IsLocal(r) && r != "." {
			t.Fatalf("Within(%q) = %q, outside the root (%s)", rel, got, real)
		}
		// os.Root agrees on the file.
		a, err := root.Stat(got)
		if err != nil {
			t.Fatal(err)
		}
		osRel := rel
		if osRel == "" {
			osRel = "."
		}
		b, err := root.Stat(osRel)
		if err != nil {
			t.Fatalf("Within(%q) = %q, but os.Root refuses it: %v", rel, got, err)
		}
		if !os.SameFile(a, b) {
			t.Fatalf("Within(%q) = %q, but os.Root finds another file", rel, got)
		}
	})
}

func syscallMkfifo(p string) error { return syscall.Mkfifo(p, 0o644) }
