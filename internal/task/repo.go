package task

import (
	"net/url"
	"path/filepath"
	"strings"
)

// RepoKey returns the key under which refit matches a git repository URL
// with webhooks, secrets and polling: "host/path" in lower case, without
// scheme, user, default port (22, 80, 443, 9418), trailing "/" or ".git".
// So https://github.com/Acme/API.git, git@github.com:acme/api and
// ssh://git@github.com/acme/api all have the key "github.com/acme/api",
// while a different host or a non-default port is a different repository.
// A local path or file:// URL keys as "file:" and its clean absolute path.
// An unparseable URL keys as itself, trimmed.
func RepoKey(raw string) string {
	s := strings.TrimSpace(raw)
	if p, ok := strings.CutPrefix(s, "file://"); ok {
		return "file:" + filepath.Clean(p)
	}
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") {
		abs, err := filepath.Abs(s)
		if err != nil {
			abs = s
		}
		return "file:" + filepath.Clean(abs)
	}
	var host, p string
	if i := strings.Index(s, "://"); i >= 0 {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return strings.ToLower(s)
		}
		host = strings.ToLower(u.Hostname())
		if port := u.Port(); port != "" && port != "22" && port != "80" && port != "443" && port != "9418" {
			host += ":" + port
		}
		p = u.Path
	} else if at, rest, ok := strings.Cut(s, ":"); ok && !strings.Contains(at, "/") {
		// scp-like: [user@]host:path
		if _, h, ok := strings.Cut(at, "@"); ok {
			at = h
		}
		host, p = strings.ToLower(at), rest
	} else {
		return strings.ToLower(s)
	}
	p = strings.Trim(p, "/")
	p = strings.TrimSuffix(p, ".git")
	p = strings.Trim(p, "/")
	return host + "/" + strings.ToLower(p)
}
