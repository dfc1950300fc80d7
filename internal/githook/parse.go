// Package githook owns git webhook intake: it parses the push
// notifications of GitHub, GitLab, Gitea/Forgejo and refit's generic
// format into [Push] values, authenticates them with the secret of the
// repository they name (HMAC-SHA256 signatures or GitLab's token,
// compared in constant time), bounds their size and hands them to a
// callback.
//
// It does not decide which tasks a push builds, store secrets or runs:
// the [Config] callbacks do.
package githook

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Format names a git host's payload format; it is the last element of the
// webhook URL, e.g. /hooks/git/github.
type Format string

// The supported formats.
const (
	// FormatGitHub is GitHub's push event (X-GitHub-Event: push), signed
	// in X-Hub-Signature-256.
	FormatGitHub Format = "github"
	// FormatGitLab is GitLab's Push Hook and Tag Push Hook, authenticated
	// by X-Gitlab-Token.
	FormatGitLab Format = "gitlab"
	// FormatGitea is Gitea's and Forgejo's push event, signed in
	// X-Gitea-Signature (or X-Forgejo-Signature).
	FormatGitea Format = "gitea"
	// FormatGeneric is refit's own {repo, ref, sha} document, signed like
	// GitHub's (X-Refit-Signature-256 or X-Hub-Signature-256).
	FormatGeneric Format = "generic"
)

// Formats lists the supported formats.
func Formats() []Format { return []Format{FormatGitHub, FormatGitLab, FormatGitea, FormatGeneric} }

func (f Format) known() bool { return slices.Contains(Formats(), f) }

// MaxFiles bounds the changed paths a Push keeps; past it FilesKnown is
// false (the push is treated as touching every path).
const MaxFiles = 10000

// zeroSHA is what git hosts send as the new head of a deleted ref.
var zeroSHA = strings.Repeat("0", 40)

// Push is one push a git host reported.
type Push struct {
	// Format is the payload's format.
	Format Format
	// Delivery identifies the notification for idempotency: the host's
	// delivery id, or a hash of (format, repository, ref, sha) when it
	// sends none. The same payload always yields the same Delivery.
	Delivery string
	// Repos are the repository's URLs as the payload names them (clone,
	// ssh, web); any of them may be the one a task uses. Never empty.
	Repos []string
	// Ref is the full ref pushed: "refs/heads/main", "refs/tags/v1".
	Ref string
	// Before is the ref's previous commit ("" or zeros when it is new).
	Before string
	// SHA is the ref's new commit; "" when Deleted.
	SHA string
	// Deleted is true when the push deleted the ref.
	Deleted bool
	// DefaultBranch is the repository's default branch when the payload
	// names it ("main"), else "".
	DefaultBranch string
	// Author is the head commit's author as "Name <email>"; Message its
	// message (first 4 KiB).
	Author, Message string
	// Files are the paths the pushed commits added, modified or removed,
	// sorted and deduplicated. FilesKnown is false when the payload lists
	// none or not all of them (hosts truncate long pushes).
	Files      []string
	FilesKnown bool
}

// Branch returns the branch name of a refs/heads/ push, or "".
func (p Push) Branch() string { return strings.TrimPrefix(p.Ref, "refs/heads/") }

// IsTag reports whether the push moved a tag.
func (p Push) IsTag() bool { return strings.HasPrefix(p.Ref, "refs/tags/") }

// ErrUnknownFormat is returned (wrapped) for a format refit does not know.
var ErrUnknownFormat = errors.New("unknown git webhook format")

// errIgnored marks a well-formed notification that is no push (GitHub's
// ping, an issue event): the handler answers without calling Accept.
type ignoredError struct{ event string }

func (e *ignoredError) Error() string { return "event " + e.event + " is not a push" }

// Parse reads a notification of format f. event is the host's event header
// (X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event; "" for generic) and
// delivery its delivery id header ("" when none). A notification that is
// no push returns an error for which IsIgnored is true; a malformed one an
// error naming the field (and, when the payload named repositories, a Push
// with only Format and Repos set, unauthenticated).
func Parse(f Format, event, delivery string, body []byte) (Push, error) {
	var p Push
	var err error
	switch f {
	case FormatGitHub, FormatGitea:
		if event != "" && event != "push" {
			return Push{}, &ignoredError{event}
		}
		p, err = parseHub(body)
	case FormatGitLab:
		if event != "" && event != "Push Hook" && event != "Tag Push Hook" {
			return Push{}, &ignoredError{event}
		}
		p, err = parseGitLab(body)
	case FormatGeneric:
		p, err = parseGeneric(body)
	default:
		return Push{}, fmt.Errorf("%w %q", ErrUnknownFormat, f)
	}
	if err != nil {
		return Push{}, fmt.Errorf("%s push: %w", f, err)
	}
	p.Format = f
	if err := p.check(); err != nil {
		// The repositories it names (normalized, bounded) stay, so that a
		// refusal can be shown on the repository's triggers.
		return Push{Format: f, Repos: p.Repos}, fmt.Errorf("%s push: %w", f, err)
	}
	p.Delivery = deliveryID(f, delivery, p)
	return p, nil
}

// IsIgnored reports whether err says the notification is no push.
func IsIgnored(err error) bool {
	var ie *ignoredError
	return errors.As(err, &ie)
}

// check normalizes p and refuses what no git host sends.
func (p *Push) check() error {
	var repos []string
	for _, r := range p.Repos {
		if r = strings.TrimSpace(r); r != "" && len(r) <= 2048 && !slices.Contains(repos, r) {
			repos = append(repos, r)
		}
	}
	p.Repos = repos
	if len(p.Repos) == 0 {
		return errors.New("repository: no URL")
	}
	if !strings.HasPrefix(p.Ref, "refs/") || len(p.Ref) > 1024 || strings.ContainsAny(p.Ref, "\x00\n\r ") {
		return fmt.Errorf("ref: %q is not a full ref name (refs/heads/…, refs/tags/…)", trunc(p.Ref, 64))
	}
	p.SHA = strings.ToLower(p.SHA)
	p.Before = strings.ToLower(p.Before)
	if p.SHA == "" || strings.Trim(p.SHA, "0") == "" {
		p.SHA, p.Deleted = "", true
	}
	if !p.Deleted && !isSHA(p.SHA) {
		return fmt.Errorf("sha: %q is not a full commit SHA", trunc(p.SHA, 64))
	}
	if p.Before != "" && !isSHA(p.Before) {
		return fmt.Errorf("before: %q is not a full commit SHA", trunc(p.Before, 64))
	}
	if strings.Trim(p.Before, "0") == "" {
		p.Before = ""
	}
	p.Author = trunc(p.Author, 512)
	p.Message = trunc(p.Message, 4096)
	p.DefaultBranch = trunc(p.DefaultBranch, 255)
	slices.Sort(p.Files)
	p.Files = slices.Compact(p.Files)
	if len(p.Files) > MaxFiles {
		p.Files, p.FilesKnown = nil, false
	}
	return nil
}

func isSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// deliveryID is the host's delivery id, or a stable hash of the push.
func deliveryID(f Format, header string, p Push) string {
	if header = strings.TrimSpace(header); header != "" && len(header) <= 200 {
		return "git:" + string(f) + ":" + header
	}
	h := sha256.New()
	for _, s := range []string{string(f), p.Repos[0], p.Ref, p.Before, p.SHA} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return "git:" + string(f) + ":" + hex.EncodeToString(h.Sum(nil))
}

// person is a commit author as the hosts write it.
type person struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

func (a person) String() string {
	switch {
	case a.Name == "":
		return a.Email
	case a.Email == "":
		return a.Name
	}
	return a.Name + " <" + a.Email + ">"
}

// hubCommit is a commit of GitHub's, Gitea's and GitLab's push payloads.
type hubCommit struct {
	ID       string   `json:"id"`
	Message  string   `json:"message"`
	Author   person   `json:"author"`
	Added    []string `json:"added"`
	Modified []string `json:"modified"`
	Removed  []string `json:"removed"`
}

// files gathers the commits' changed paths; known is false when a commit
// lists none of them (GitHub's payload keeps at most 20 commits and
// Gitea's may omit the lists) or there are more than MaxFiles.
func files(commits []hubCommit) (out []string, known bool) {
	known = len(commits) > 0
	for _, c := range commits {
		n := len(c.Added) + len(c.Modified) + len(c.Removed)
		if n == 0 {
			known = false
		}
		for _, l := range [][]string{c.Added, c.Modified, c.Removed} {
			for _, f := range l {
				if len(out) > MaxFiles {
					return nil, false
				}
				out = append(out, f)
			}
		}
	}
	return out, known
}

// parseHub reads GitHub's and Gitea's push payload (the same shape).
func parseHub(body []byte) (Push, error) {
	var v struct {
		Ref        string      `json:"ref"`
		Before     string      `json:"before"`
		After      string      `json:"after"`
		Deleted    bool        `json:"deleted"`
		Commits    []hubCommit `json:"commits"`
		HeadCommit *hubCommit  `json:"head_commit"`
		Size       int         `json:"size"`          // GitHub: commits in the push
		TotalCount int         `json:"total_commits"` // Gitea
		Repository struct {
			CloneURL      string `json:"clone_url"`
			SSHURL        string `json:"ssh_url"`
			GitURL        string `json:"git_url"`
			HTMLURL       string `json:"html_url"`
			DefaultBranch string `json:"default_branch"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return Push{}, fmt.Errorf("decoding: %w", err)
	}
	r := v.Repository
	p := Push{Repos: []string{r.CloneURL, r.SSHURL, r.GitURL, r.HTMLURL}, Ref: v.Ref, Before: v.Before, SHA: v.After,
		Deleted: v.Deleted, DefaultBranch: r.DefaultBranch}
	if v.Deleted {
		p.SHA = ""
	}
	head := v.HeadCommit
	if head == nil && len(v.Commits) > 0 {
		head = &v.Commits[len(v.Commits)-1]
	}
	if head != nil {
		p.Author, p.Message = head.Author.String(), head.Message
		// An annotated tag's after is the tag object; its head commit is
		// what is built.
		if strings.HasPrefix(v.Ref, "refs/tags/") && isSHA(strings.ToLower(head.ID)) && !v.Deleted {
			p.SHA = head.ID
		}
	}
	p.Files, p.FilesKnown = files(v.Commits)
	if n := max(v.Size, v.TotalCount); n > len(v.Commits) {
		p.FilesKnown = false
	}
	return p, nil
}

// parseGitLab reads GitLab's Push Hook and Tag Push Hook payloads.
func parseGitLab(body []byte) (Push, error) {
	var v struct {
		ObjectKind  string      `json:"object_kind"`
		Ref         string      `json:"ref"`
		Before      string      `json:"before"`
		After       string      `json:"after"`
		CheckoutSHA string      `json:"checkout_sha"`
		UserName    string      `json:"user_name"`
		UserEmail   string      `json:"user_email"`
		Commits     []hubCommit `json:"commits"`
		Total       int         `json:"total_commits_count"`
		Project     struct {
			HTTPURL       string `json:"git_http_url"`
			SSHURL        string `json:"git_ssh_url"`
			WebURL        string `json:"web_url"`
			DefaultBranch string `json:"default_branch"`
		} `json:"project"`
		Repository struct {
			HTTPURL string `json:"git_http_url"`
			SSHURL  string `json:"git_ssh_url"`
			URL     string `json:"url"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return Push{}, fmt.Errorf("decoding: %w", err)
	}
	if v.ObjectKind != "push" && v.ObjectKind != "tag_push" {
		return Push{}, &ignoredError{v.ObjectKind}
	}
	pr, r := v.Project, v.Repository
	p := Push{Repos: []string{pr.HTTPURL, pr.SSHURL, pr.WebURL, r.HTTPURL, r.SSHURL, r.URL}, Ref: v.Ref,
		Before: v.Before, SHA: v.After, DefaultBranch: pr.DefaultBranch}
	// A tag push names the tag object in after; checkout_sha is the commit.
	if v.CheckoutSHA != "" {
		p.SHA = v.CheckoutSHA
	}
	if strings.Trim(v.After, "0") == "" {
		p.SHA = ""
	}
	if n := len(v.Commits); n > 0 {
		// GitLab lists commits oldest first; the head is the last.
		head := v.Commits[n-1]
		for _, c := range v.Commits {
			if c.ID == p.SHA {
				head = c
			}
		}
		p.Author, p.Message = head.Author.String(), head.Message
	} else if v.UserName != "" {
		p.Author = person{v.UserName, v.UserEmail}.String()
	}
	p.Files, p.FilesKnown = files(v.Commits)
	if v.Total > len(v.Commits) {
		p.FilesKnown = false
	}
	return p, nil
}

// GenericPush is the generic format's document: POST it to
// /hooks/git/generic signed like GitHub's (X-Refit-Signature-256:
// sha256=<hex HMAC-SHA256 of the body keyed with the repository's
// secret>).
type GenericPush struct {
	// Repo is the repository URL as a task's source.git names it. Required.
	Repo string `json:"repo"`
	// Ref is the pushed ref: "refs/heads/main" (a bare branch name "main"
	// is taken as refs/heads/main). Required.
	Ref string `json:"ref"`
	// SHA is the new commit; "" or zeros for a deleted ref.
	SHA string `json:"sha"`
	// Before is the previous commit, if known.
	Before string `json:"before,omitempty"`
	// DefaultBranch names the repository's default branch, for tasks
	// that follow HEAD.
	DefaultBranch string `json:"defaultBranch,omitempty"`
	// Author and Message describe the commit.
	Author  string `json:"author,omitempty"`
	Message string `json:"message,omitempty"`
	// Files are the changed paths, for paths filters; absent means
	// unknown (every path counts as changed).
	Files []string `json:"files,omitempty"`
}

func parseGeneric(body []byte) (Push, error) {
	var v GenericPush
	if err := json.Unmarshal(body, &v); err != nil {
		return Push{}, fmt.Errorf("decoding: %w", err)
	}
	ref := v.Ref
	if ref != "" && !strings.HasPrefix(ref, "refs/") {
		ref = "refs/heads/" + ref
	}
	p := Push{Repos: []string{v.Repo}, Ref: ref, SHA: v.SHA, Before: v.Before, DefaultBranch: v.DefaultBranch,
		Author: v.Author, Message: v.Message, Files: v.Files, FilesKnown: v.Files != nil}
	if len(p.Files) > MaxFiles {
		p.Files, p.FilesKnown = nil, false
	}
	return p, nil
}
