package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/refit-dev/refit/internal/redact"
)

// Remote is what `git ls-remote` says of a repository.
type Remote struct {
	// Heads maps full ref names (refs/heads/…, refs/tags/…) to commit
	// SHAs; an annotated tag maps to the commit it points to.
	Heads map[string]string
	// DefaultBranch is the branch HEAD points to ("main"), "" when the
	// server does not say.
	DefaultBranch string
}

// ListRemote lists the branches and tags of the repository at url with one
// `git ls-remote --symref` (credentials as git finds them: in the URL, a
// credential helper, ssh keys). Errors name the URL, redacted.
func ListRemote(ctx context.Context, url string) (Remote, error) {
	if err := checkURL(url); err != nil {
		return Remote{}, fmt.Errorf("listing %s: %w", redact.URL(url), err)
	}
	out, err := git(ctx, url, "", "ls-remote", "--symref", "--end-of-options", url)
	if err != nil {
		return Remote{}, fmt.Errorf("listing %s: %w", redact.URL(url), err)
	}
	return parseRemote(out), nil
}

// parseRemote reads `git ls-remote --symref` output.
func parseRemote(out string) Remote {
	r := Remote{Heads: map[string]string{}}
	peeled := map[string]string{}
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\r\n")
		if target, ok := strings.CutPrefix(line, "ref: "); ok {
			if to, name, ok := strings.Cut(target, "\t"); ok && name == "HEAD" {
				r.DefaultBranch = strings.TrimPrefix(to, "refs/heads/")
			}
			continue
		}
		sha, name, ok := strings.Cut(line, "\t")
		if !ok || !isFullSHA(sha) {
			continue
		}
		sha = strings.ToLower(sha)
		switch {
		case strings.HasSuffix(name, "^{}"):
			peeled[strings.TrimSuffix(name, "^{}")] = sha
		case strings.HasPrefix(name, "refs/heads/") || strings.HasPrefix(name, "refs/tags/"):
			r.Heads[name] = sha
		}
	}
	for name, sha := range peeled {
		if _, ok := r.Heads[name]; ok {
			r.Heads[name] = sha
		}
	}
	return r
}

// ErrHistoryUnknown is wrapped by ChangedFiles when old is not in the
// history fetched for ref (a force push): every path counts as changed.
var ErrHistoryUnknown = errors.New("old commit not in the fetched history")

// ChangedFiles returns the paths that differ between commits old and new
// of ref in the repository at url. It fetches ref's history without file
// contents (--filter=blob:none, where the server supports it) into a
// scratch repository, removed afterwards, and compares the two trees.
func ChangedFiles(ctx context.Context, url, ref, old, new string) ([]string, error) {
	files, err := changedFiles(ctx, url, ref, old, new)
	if err != nil {
		return nil, fmt.Errorf("diffing %.12s..%.12s of %s: %w", old, new, redact.URL(url), err)
	}
	return files, nil
}

func changedFiles(ctx context.Context, url, ref, old, new string) ([]string, error) {
	if err := checkURL(url); err != nil {
		return nil, err
	}
	if !isFullSHA(old) || !isFullSHA(new) || !strings.HasPrefix(ref, "refs/") {
		return nil, errors.New("want a full ref and two full commit SHAs")
	}
	tmp, err := os.MkdirTemp("", "refit-diff-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if _, err := git(ctx, url, "", "init", "-q", "--bare", tmp); err != nil {
		return nil, err
	}
	if _, err := git(ctx, url, tmp, "fetch", "-q", "--no-tags", "--filter=blob:none", "--end-of-options", url, "+"+ref+":refs/polled"); err != nil {
		// A server (or git) that refuses the filter serves the history
		// with contents.
		if _, err := git(ctx, url, tmp, "fetch", "-q", "--no-tags", "--end-of-options", url, "+"+ref+":refs/polled"); err != nil {
			return nil, err
		}
	}
	if _, err := git(ctx, url, tmp, "cat-file", "-e", old+"^{commit}"); err != nil {
		return nil, ErrHistoryUnknown
	}
	out, err := git(ctx, url, tmp, "diff", "--name-only", "--no-renames", "-z", old, new, "--")
	if err != nil {
		return nil, err
	}
	var files []string
	for f := range strings.SplitSeq(out, "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	return files, nil
}
