package source

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func gitT(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@x", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestListRemoteAndChangedFiles: ls-remote reports branches, peeled
// tags and the default branch; ChangedFiles lists what two commits of a
// branch differ in, and says when the old one is not in its history.
func TestListRemoteAndChangedFiles(t *testing.T) {
	dir := t.TempDir()
	gitT(t, dir, "init", "-q", "-b", "trunk")
	os.MkdirAll(filepath.Join(dir, "svc"), 0o755)
	os.WriteFile(filepath.Join(dir, "svc", "a"), []byte("1"), 0o644)
	os.WriteFile(filepath.Join(dir, "readme"), []byte("1"), 0o644)
	gitT(t, dir, "add", ".")
	gitT(t, dir, "commit", "-q", "-m", "one")
	first := gitT(t, dir, "rev-parse", "HEAD")
	gitT(t, dir, "tag", "-a", "-m", "v1", "v1")
	os.WriteFile(filepath.Join(dir, "svc", "a"), []byte("2"), 0o644)
	os.WriteFile(filepath.Join(dir, "svc", "b"), []byte("2"), 0o644)
	gitT(t, dir, "add", ".")
	gitT(t, dir, "commit", "-q", "-m", "two")
	second := gitT(t, dir, "rev-parse", "HEAD")

	ctx := context.Background()
	r, err := ListRemote(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.DefaultBranch != "trunk" || r.Heads["refs/heads/trunk"] != second || r.Heads["refs/tags/v1"] != first {
		t.Errorf("remote = %+v, want trunk at %s and v1 peeled to %s", r, second, first)
	}
	files, err := ChangedFiles(ctx, dir, "refs/heads/trunk", first, second)
	if err != nil || !slices.Equal(files, []string{"svc/a", "svc/b"}) {
		t.Errorf("changed files = %v, %v; want [svc/a svc/b]", files, err)
	}
	if _, err := ChangedFiles(ctx, dir, "refs/heads/trunk", strings.Repeat("e", 40), second); !errors.Is(err, ErrHistoryUnknown) {
		t.Errorf("unknown old commit: %v, want ErrHistoryUnknown", err)
	}
}
