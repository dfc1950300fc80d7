// Package source owns turning a task's source — a git URL and a ref — into a
// directory holding the tree of one exact commit. It drives the git binary,
// which must be on PATH, and never lets credentials embedded in a URL reach
// an error message. It also owns reading paths inside a source's tree
// without leaving it (Within, ReadFile, OpenDir): a tree's contents are
// untrusted, and its symlinks must not lead refit to server files.
package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/refit-dev/refit/internal/redact"
)

// ErrNotFound is wrapped by the error Resolve returns when the repository
// has no ref or commit matching the requested ref.
var ErrNotFound = errors.New("not found")

// Commit describes the commit a directory was checked out at.
type Commit struct {
	// SHA is the full commit hash (lowercase hex).
	SHA string
	// Short is the first 7 characters of SHA.
	Short string
	// Author is the commit author as "Name <email>".
	Author string
	// Subject is the first line of the commit message.
	Subject string
	// Time is the committer time, the instant the commit was made part of
	// history (what SOURCE_DATE_EPOCH conventionally uses).
	Time time.Time
}

// Resolve returns the full commit SHA that ref names in the repository at
// url (any URL or local path git accepts; file, git, http(s) and ssh
// transports are allowed).
//
// ref may be
//   - a full 40- or 64-hex commit SHA, which is returned lowercased without
//     contacting the repository;
//   - a branch, a tag (annotated tags resolve to the commit they point to), a
//     full ref name such as "refs/heads/main", or "HEAD", looked up with
//     `git ls-remote`; a name that is both a tag and a branch resolves to the
//     tag, as in git;
//   - an abbreviated commit SHA of at least 7 hex digits that is not also a
//     ref name; unless it prefixes an advertised ref's commit, this fetches
//     the repository's commit history (without trees or blobs where the
//     server supports partial clone) into a temporary directory.
//
// Errors name the ref and the URL with credentials redacted, e.g.
// `resolving ref "main" of https://xxxxx@host/repo: not found`; they wrap
// ErrNotFound when no commit matches.
func Resolve(ctx context.Context, url, ref string) (string, error) {
	sha, err := resolve(ctx, url, ref)
	if err != nil {
		return "", fmt.Errorf("resolving ref %q of %s: %w", ref, redact.URL(url), err)
	}
	return sha, nil
}

func resolve(ctx context.Context, url, ref string) (string, error) {
	if err := checkURL(url); err != nil {
		return "", err
	}
	switch {
	case ref == "":
		return "", errors.New("empty ref")
	case strings.HasPrefix(ref, "-"):
		return "", errors.New("ref must not start with '-'")
	case isFullSHA(ref):
		return strings.ToLower(ref), nil
	}

	out, err := git(ctx, url, "", "ls-remote", "--end-of-options", url, ref, ref+"^{}")
	if err != nil {
		return "", err
	}
	refs := parseLsRemote(out)
	for _, name := range candidateRefs(ref) {
		if sha, ok := refs[name+"^{}"]; ok {
			return sha, nil
		}
		if sha, ok := refs[name]; ok {
			return sha, nil
		}
	}
	if !isHex(ref) || len(ref) < 7 {
		return "", ErrNotFound
	}
	return resolveAbbrev(ctx, url, strings.ToLower(ref))
}

// candidateRefs lists the full ref names a short name may stand for, in the
// order git's rev-parse rules try them.
func candidateRefs(ref string) []string {
	if strings.HasPrefix(ref, "refs/") || ref == "HEAD" {
		return []string{ref}
	}
	return []string{"refs/" + ref, "refs/tags/" + ref, "refs/heads/" + ref}
}

// parseLsRemote maps ref names to SHAs from `git ls-remote` output.
func parseLsRemote(out string) map[string]string {
	refs := make(map[string]string)
	for line := range strings.Lines(out) {
		sha, name, ok := strings.Cut(strings.TrimRight(line, "\r\n"), "\t")
		if ok && isFullSHA(sha) {
			refs[name] = strings.ToLower(sha)
		}
	}
	return refs
}

// resolveAbbrev finds the unique commit whose SHA starts with prefix by
// fetching the history of all branches and tags into a scratch repository.
func resolveAbbrev(ctx context.Context, url, prefix string) (string, error) {
	out, err := git(ctx, url, "", "ls-remote", "--end-of-options", url)
	if err != nil {
		return "", err
	}
	tips := make(map[string]bool)
	for _, sha := range parseLsRemote(out) {
		if strings.HasPrefix(sha, prefix) {
			tips[sha] = true
		}
	}
	if len(tips) == 1 {
		for sha := range tips {
			return sha, nil
		}
	}

	tmp, err := os.MkdirTemp("", "refit-resolve-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if _, err := git(ctx, url, "", "init", "-q", "--bare", tmp); err != nil {
		return "", err
	}
	if _, err := git(ctx, url, tmp, "fetch", "-q", "--no-tags", "--filter=tree:0", "--end-of-options", url,
		"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"); err != nil {
		return "", err
	}
	sha, err := git(ctx, url, tmp, "rev-parse", "--verify", "--quiet", "--end-of-options", prefix+"^{commit}")
	if err != nil {
		// rev-parse --quiet fails silently both for no match and for an
		// ambiguous prefix; tell the two apart for the error message.
		if n := countPrefix(ctx, url, tmp, prefix); n > 1 {
			return "", fmt.Errorf("abbreviated commit is ambiguous (%d commits)", n)
		}
		return "", ErrNotFound
	}
	return strings.TrimSpace(sha), nil
}

func countPrefix(ctx context.Context, url, repo, prefix string) int {
	out, err := git(ctx, url, repo, "rev-list", "--all")
	if err != nil {
		return 0
	}
	n := 0
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}

// Checkout fetches exactly commit sha (full hex) from url into dir, which is
// created if absent and must otherwise be empty, checks it out detached and
// returns its Commit info. It fetches shallowly (depth 1) by SHA and falls
// back to fetching all branches and tags if the server refuses to serve an
// unadvertised commit (git protocol v0/v1 without
// uploadpack.allowReachableSHA1InWant). The URL is not stored in dir's git
// configuration, so credentials in it are not written to disk. On error dir
// may hold a partial repository; removing it is up to the caller. Errors name
// the commit and the URL with credentials redacted.
func Checkout(ctx context.Context, url, sha, dir string) (Commit, error) {
	c, err := checkout(ctx, url, sha, dir)
	if err != nil {
		return Commit{}, fmt.Errorf("checking out %s of %s into %s: %w", sha, redact.URL(url), dir, err)
	}
	return c, nil
}

func checkout(ctx context.Context, url, sha, dir string) (Commit, error) {
	if err := checkURL(url); err != nil {
		return Commit{}, err
	}
	if !isFullSHA(sha) {
		return Commit{}, errors.New("not a full commit SHA")
	}
	sha = strings.ToLower(sha)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Commit{}, err
	}
	if entries, err := os.ReadDir(dir); err != nil {
		return Commit{}, err
	} else if len(entries) > 0 {
		return Commit{}, errors.New("directory is not empty")
	}

	if _, err := git(ctx, url, dir, "-c", "init.defaultBranch=main", "init", "-q"); err != nil {
		return Commit{}, err
	}
	target := "FETCH_HEAD"
	if _, err := git(ctx, url, dir, "fetch", "-q", "--no-tags", "--depth", "1", "--end-of-options", url, sha); err != nil {
		shallowErr := err
		if _, err := git(ctx, url, dir, "fetch", "-q", "--no-tags", "--end-of-options", url,
			"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"); err != nil {
			if err.Error() == shallowErr.Error() {
				return Commit{}, fmt.Errorf("fetching: %w", err)
			}
			return Commit{}, fmt.Errorf("fetching: %w (fetch by SHA: %w)", err, shallowErr)
		}
		target = sha
	}
	if _, err := git(ctx, url, dir, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", target+"^{commit}", "--"); err != nil {
		if target == sha {
			return Commit{}, fmt.Errorf("commit not found in repository: %w", err)
		}
		return Commit{}, err
	}

	out, err := git(ctx, url, dir, "log", "-1", "--no-show-signature", "--format=%H%x00%an <%ae>%x00%ct%x00%s", "HEAD")
	if err != nil {
		return Commit{}, err
	}
	f := strings.SplitN(strings.TrimRight(out, "\n"), "\x00", 4)
	if len(f) != 4 {
		return Commit{}, fmt.Errorf("unexpected git log output %q", out)
	}
	if f[0] != sha {
		return Commit{}, fmt.Errorf("checked out %s instead", f[0])
	}
	var secs int64
	if _, err := fmt.Sscan(f[2], &secs); err != nil {
		return Commit{}, fmt.Errorf("parsing commit time %q: %w", f[2], err)
	}
	return Commit{SHA: sha, Short: sha[:7], Author: f[1], Subject: f[3], Time: time.Unix(secs, 0).UTC()}, nil
}

// git runs git with args in dir ("" = current directory) and returns its
// stdout. Its error carries git's stderr with credentials from url removed.
func git(ctx context.Context, url, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_ALLOW_PROTOCOL=file:git:http:https:ssh",
		"GCM_INTERACTIVE=never",
		"LC_ALL=C",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		msg := strings.TrimSpace(redact.Userinfo(stderr.String(), url))
		if msg == "" {
			return "", fmt.Errorf("git %s: %w", args[0], err)
		}
		return "", fmt.Errorf("git %s: %w: %s", args[0], err, msg)
	}
	return stdout.String(), nil
}

// checkURL rejects URLs git would take for an option.
func checkURL(url string) error {
	switch {
	case url == "":
		return errors.New("empty repository url")
	case strings.HasPrefix(url, "-"):
		return errors.New("repository url must not start with '-'")
	}
	return nil
}

func isFullSHA(s string) bool {
	return (len(s) == 40 || len(s) == 64) && isHex(s)
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
