package source

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refit-dev/refit/internal/redact"
)

const httpBackend = "/usr/lib/git-core/git-http-backend"

// testRepo is a git repository on disk with history:
//
//	first (tag v1, annotated; branch "feature") <- second (branch main)
type testRepo struct {
	root          string // directory holding the repository
	name          string // repository directory name under root
	first, second string // commit SHAs
}

func (r testRepo) path() string { return filepath.Join(r.root, r.name) }

func commitTime1() time.Time { return time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC) }

func runGit(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME=Ada Tester", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada Tester", "GIT_COMMITTER_EMAIL=ada@example.com")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func commit(t *testing.T, dir, content, msg string, when time.Time) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "file.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	date := "GIT_AUTHOR_DATE=" + when.Format(time.RFC3339)
	cdate := "GIT_COMMITTER_DATE=" + when.Format(time.RFC3339)
	runGit(t, dir, nil, "add", "file.txt")
	runGit(t, dir, []string{date, cdate}, "commit", "-q", "-m", msg)
	return runGit(t, dir, nil, "rev-parse", "HEAD")
}

// newRepo creates a repository with only the first commit; addSecond adds
// the second one, moving main.
func newRepo(t *testing.T) *testRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	r := &testRepo{root: t.TempDir(), name: "repo"}
	dir := r.path()
	runGit(t, "", nil, "init", "-q", "-b", "main", dir)
	r.first = commit(t, dir, "one\n", "first commit\n\nbody", commitTime1())
	runGit(t, dir, []string{"GIT_COMMITTER_DATE=" + commitTime1().Format(time.RFC3339)}, "tag", "-a", "-m", "release 1", "v1")
	runGit(t, dir, nil, "branch", "feature")
	return r
}

func (r *testRepo) addSecond(t *testing.T) {
	t.Helper()
	r.second = commit(t, r.path(), "two\n", "second commit", commitTime1().Add(time.Hour))
}

// serve serves root's repositories over smart HTTP with git http-backend on
// loopback. With v0 set it drops the Git-Protocol header, so the server
// speaks protocol v0, which refuses to serve unadvertised commits.
func serve(t *testing.T, root string, v0 bool) string {
	t.Helper()
	if _, err := os.Stat(httpBackend); err != nil {
		t.Skip("git http-backend not installed")
	}
	var h http.Handler = &cgi.Handler{
		Path:   httpBackend,
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
		Stderr: io.Discard,
	}
	if v0 {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			req.Header.Del("Git-Protocol")
			inner.ServeHTTP(w, req)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// urls returns the ways the tests reach r: smart HTTP, a plain path and a
// file:// URL.
func (r *testRepo) urls(t *testing.T) map[string]string {
	return map[string]string{
		"http": serve(t, r.root, false) + "/" + r.name,
		"path": r.path(),
		"file": "file://" + r.path(),
	}
}

func TestResolve(t *testing.T) {
	r := newRepo(t)
	r.addSecond(t)
	for kind, url := range r.urls(t) {
		t.Run(kind, func(t *testing.T) {
			for _, tc := range []struct{ ref, want string }{
				{"main", r.second},
				{"refs/heads/main", r.second},
				{"HEAD", r.second},
				{"feature", r.first},
				{"v1", r.first}, // annotated tag: the commit, not the tag object
				{"refs/tags/v1", r.first},
				{r.first, r.first},
				{strings.ToUpper(r.second), r.second},
				{r.second[:7], r.second}, // abbreviated tip of a branch
				{r.first[:9], r.first},   // abbreviated, found in history
			} {
				got, err := Resolve(t.Context(), url, tc.ref)
				if err != nil {
					t.Errorf("Resolve(%q): %v", tc.ref, err)
					continue
				}
				if got != tc.want {
					t.Errorf("Resolve(%q) = %s, want %s", tc.ref, got, tc.want)
				}
			}
		})
	}
}

func TestResolveUnknown(t *testing.T) {
	r := newRepo(t)
	for kind, url := range r.urls(t) {
		t.Run(kind, func(t *testing.T) {
			for _, ref := range []string{"nope", "refs/heads/nope", "deadbeef0"} {
				_, err := Resolve(t.Context(), url, ref)
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("Resolve(%q) error = %v, want ErrNotFound", ref, err)
				}
				want := `resolving ref "` + ref + `" of ` + url + `: not found`
				if err.Error() != want {
					t.Errorf("error = %q, want %q", err, want)
				}
			}
		})
	}
}

func TestResolveMissingRepository(t *testing.T) {
	r := newRepo(t)
	url := serve(t, r.root, false) + "/missing"
	_, err := Resolve(t.Context(), url, "main")
	if err == nil || !strings.Contains(err.Error(), `resolving ref "main" of `+url+": ") {
		t.Fatalf("error = %v, want it to name ref and url", err)
	}
}

func TestCheckout(t *testing.T) {
	r := newRepo(t)
	urls := r.urls(t)
	urls["http-v0"] = serve(t, r.root, true) + "/" + r.name

	// Resolve main, then move it on: the checkout must still be the
	// resolved commit. Dropping the other refs to it leaves it unadvertised,
	// which a v0 server refuses to serve by SHA.
	sha, err := Resolve(t.Context(), urls["http"], "main")
	if err != nil {
		t.Fatal(err)
	}
	r.addSecond(t)
	runGit(t, r.path(), nil, "tag", "-d", "v1")
	runGit(t, r.path(), nil, "branch", "-D", "feature")

	for kind, url := range urls {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "src")
			got, err := Checkout(t.Context(), url, sha, dir)
			if err != nil {
				t.Fatal(err)
			}
			want := Commit{
				SHA:     r.first,
				Short:   r.first[:7],
				Author:  "Ada Tester <ada@example.com>",
				Subject: "first commit",
				Time:    commitTime1(),
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Commit mismatch (-want +got):\n%s", diff)
			}
			content, err := os.ReadFile(filepath.Join(dir, "file.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if string(content) != "one\n" {
				t.Errorf("file.txt = %q, want %q", content, "one\n")
			}
			// Fetch by SHA is shallow; a v0 server refuses it and the
			// full-fetch fallback leaves a complete history.
			_, err = os.Stat(filepath.Join(dir, ".git", "shallow"))
			if shallow := err == nil; shallow != (kind != "http-v0") {
				t.Errorf("shallow = %v for %s", shallow, kind)
			}
		})
	}
}

func TestCheckoutErrors(t *testing.T) {
	r := newRepo(t)
	url := serve(t, r.root, false) + "/" + r.name

	nonEmpty := t.TempDir()
	if err := os.WriteFile(filepath.Join(nonEmpty, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	unknown := strings.Repeat("ab", 20)
	for _, tc := range []struct {
		name, url, sha, dir, want string
	}{
		{"not empty", url, r.first, nonEmpty, "directory is not empty"},
		{"short sha", url, r.first[:7], filepath.Join(t.TempDir(), "d"), "not a full commit SHA"},
		{"unknown commit", url, unknown, filepath.Join(t.TempDir(), "d"), "checking out " + unknown + " of " + url},
		{"unknown commit v0", serve(t, r.root, true) + "/" + r.name, unknown, filepath.Join(t.TempDir(), "d"), "commit not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Checkout(t.Context(), tc.url, tc.sha, tc.dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestCheckoutCancelled(t *testing.T) {
	r := newRepo(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Checkout(ctx, r.path(), r.first, filepath.Join(t.TempDir(), "d"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

// Credentials in a URL must not appear in errors, whether the server is
// unreachable or answers, and must not be written into the checkout.
func TestCredentialsNotLeaked(t *testing.T) {
	const secret = "s3cretTOKENvalue"
	r := newRepo(t)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	live := strings.TrimPrefix(serve(t, r.root, false), "http://")
	for _, url := range []string{
		"http://user:" + secret + "@" + closed + "/repo",
		"http://" + secret + "@" + closed + "/repo",
		"http://user:" + secret + "@" + live + "/missing",
	} {
		_, err := Resolve(t.Context(), url, "main")
		if err == nil {
			t.Fatalf("Resolve(%s) succeeded", redact.URL(url))
		}
		checkNoSecret(t, err.Error(), secret)
		if !strings.Contains(err.Error(), "xxxxx@") {
			t.Errorf("error %q does not show the redacted url", err)
		}
		_, err = Checkout(t.Context(), url, r.first, filepath.Join(t.TempDir(), "d"))
		if err == nil {
			t.Fatalf("Checkout(%s) succeeded", redact.URL(url))
		}
		checkNoSecret(t, err.Error(), secret)
	}

	// A server that ignores credentials: the checkout works and keeps no
	// trace of them.
	url := "http://user:" + secret + "@" + live + "/" + r.name
	dir := filepath.Join(t.TempDir(), "d")
	if _, err := Checkout(t.Context(), url, r.first, dir); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), secret) {
			t.Errorf("%s contains the secret", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkNoSecret(t *testing.T, msg, secret string) {
	t.Helper()
	if strings.Contains(msg, secret) {
		t.Errorf("error leaks the secret: %s", msg)
	}
}
