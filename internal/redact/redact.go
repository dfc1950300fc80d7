// Package redact owns hiding credentials in what refit shows: URLs with
// user information or secret parameters (git remotes, database and broker
// URLs), text that quotes such a URL (git's stderr), and error texts that
// may echo credentials (a registry quoting the Authorization header it
// got). Everything refit prints, logs or stores that could hold one goes
// through here. It imports nothing internal, and it does not decide what
// is printed: callers do.
package redact

import (
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// mask replaces what URL and Userinfo hide. It is a valid userinfo, so a
// redacted URL still reads (and parses) as a URL.
const mask = "xxxxx"

// secretParams are the parameter names whose values are secrets, in a
// URL's query or a "key=value" connection string.
const secretParams = `access_token|refresh_token|token|password|client_secret`

var (
	// paramRE matches a secret parameter and its value.
	paramRE = regexp.MustCompile(`(?i)\b((?:` + secretParams + `)=)[^&\s"']+`)

	// For Text: an Authorization header value, URL user information.
	authHeaderRE = regexp.MustCompile(`(?i)\b(basic|bearer)\s+[A-Za-z0-9+/=._~-]{8,}`)
	userInfoRE   = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@`)
)

// URL returns rawURL with its user information (user name and password
// or token) replaced by "xxxxx", e.g. "https://user:token@host/repo"
// becomes "https://xxxxx@host/repo", and the values of secret parameters
// (password=, token=, access_token=, refresh_token=, client_secret=)
// replaced too, as in "postgres://host/db?password=xxxxx" or a
// "host=db password=xxxxx" connection string. scp-like addresses
// ("git@host:repo") keep a plain user name, which is not a secret, and
// local paths keep their user-looking parts. A "scheme://" string that
// does not parse as a URL is redacted up to its last '@'.
func URL(rawURL string) string {
	prefix, info, suffix := splitUserinfo(rawURL)
	if info != "" {
		rawURL = prefix + mask + suffix
	}
	return paramRE.ReplaceAllString(rawURL, "${1}"+mask)
}

// URLs redacts each URL of a comma-separated list (as NATS takes its
// servers), trimming the space around each.
func URLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		parts[i] = URL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// Userinfo removes the credentials in rawURL's user information from
// text, such as git's stderr: the URL itself wherever it appears, and the
// user information, the password alone, and a user name long enough to
// be a token (8 bytes or more) wherever they appear on their own, raw or
// URL-unescaped. A common user name ("git", "alice") is left alone.
func Userinfo(text, rawURL string) string {
	_, info, _ := splitUserinfo(rawURL)
	if info == "" {
		return text
	}
	text = strings.ReplaceAll(text, rawURL, URL(rawURL))
	var secrets []string
	add := func(s string, min int) {
		if len(s) < min {
			return
		}
		secrets = append(secrets, s)
		if u, err := url.PathUnescape(s); err == nil && u != s {
			secrets = append(secrets, u)
		}
	}
	add(info, 1)
	user, pass, hasPass := strings.Cut(info, ":")
	if hasPass {
		add(pass, 1)
	}
	add(user, 8)
	for _, s := range secrets {
		text = strings.ReplaceAll(text, s, mask)
	}
	return text
}

// Text removes what looks like credentials from free text, such as an
// error a registry answered with: Authorization header values ("Basic
// dXNlcjpzZWNyZXQ=" becomes "Basic [redacted]"), URL user information
// ("https://[redacted]@host/") and the values of secret parameters
// ("access_token=[redacted]"). It knows no particular secret, so it
// catches only what has one of these shapes.
func Text(s string) string {
	if plainASCII(s) {
		return s // none of the shapes below can match: skip the expressions
	}
	s = authHeaderRE.ReplaceAllString(s, "$1 [redacted]")
	s = userInfoRE.ReplaceAllString(s, "${1}[redacted]@")
	return paramRE.ReplaceAllString(s, "${1}[redacted]")
}

// plainASCII reports whether s is ASCII and holds nothing Text
// rewrites: no "=" (a secret parameter), no "://" followed by an "@" (URL
// user information) and no "basic" or "bearer" in any case (an
// Authorization value). Such strings are most of what Text and JSON see.
// Non-ASCII text goes through the expressions, whose case folding knows
// more than ASCII ("ſ" is an "s").
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == '=' {
			return false
		}
	}
	if i := strings.Index(s, "://"); i >= 0 && strings.Contains(s[i:], "@") {
		return false
	}
	return !containsFoldASCII(s, "basic") && !containsFoldASCII(s, "bearer")
}

// containsFoldASCII reports whether the ASCII string s contains the
// lowercase word w in any case.
func containsFoldASCII(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		j := 0
		for j < len(w) && s[i+j]|0x20 == w[j] {
			j++
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// splitUserinfo splits rawURL around the user information URL hides;
// info is "" if there is none. suffix starts with the '@'.
func splitUserinfo(rawURL string) (prefix, info, suffix string) {
	at := -1
	if scheme, rest, ok := strings.Cut(rawURL, "://"); ok {
		prefix = scheme + "://"
		if u, err := url.Parse(rawURL); err == nil {
			if u.User != nil {
				end := strings.IndexAny(rest, "/?#")
				if end < 0 {
					end = len(rest)
				}
				at = strings.LastIndex(rest[:end], "@")
			}
		} else {
			at = strings.LastIndex(rest, "@")
		}
		if at < 0 {
			return rawURL, "", ""
		}
		return prefix, rest[:at], rest[at:]
	}
	// scp-like [user@]host:path: only a password (after ':') is secret.
	at = strings.Index(rawURL, "@")
	if at < 0 || !strings.ContainsAny(rawURL[:at], ":/") {
		return rawURL, "", ""
	}
	if i := strings.Index(rawURL, "/"); i >= 0 && i < at {
		return rawURL, "", "" // a local path containing '@'
	}
	return "", rawURL[:at], rawURL[at:]
}

// secretWords are the words that make a JSON key name a secret wherever
// it appears: a subscription's secret, a login's password, a token.
var secretWords = []string{"secret", "password", "passwd", "token", "credential", "private"}

// secretKeyRE matches JSON keys holding one of secretWords in any case.
var secretKeyRE = regexp.MustCompile(`(?i)(` + strings.Join(secretWords, "|") + `)`)

// secretKey reports whether the JSON key k names a secret
// (secretKeyRE), without the expression for an ASCII key that holds none
// of its words.
func secretKey(k string) bool {
	for i := 0; i < len(k); i++ {
		if k[i] >= 0x80 {
			return secretKeyRE.MatchString(k)
		}
	}
	for _, w := range secretWords {
		if containsFoldASCII(k, w) {
			return true
		}
	}
	return false
}

// Masked is what JSON puts in place of a secret value.
const Masked = "[redacted]"

// JSON returns a JSON document with its secrets masked, for records that
// must say what changed without holding a credential (the audit log):
// every string value of a key that names a secret (secret, password,
// token, credential, private: "webhookSecret", "password") and every
// value under one of the keys given (e.g. "buildArgs": each argument's
// value, its name kept) becomes "[redacted]"; every other string goes
// through Text (URL user information, Authorization values, secret
// parameters). Booleans and numbers stay, so "signed": true still reads.
// The result is compact, its object keys sorted.
func JSON(doc []byte, secretKeys ...string) ([]byte, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, err
	}
	return json.Marshal(maskJSON(v, false, secretKeys))
}

func maskJSON(v any, secret bool, keys []string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if m, changed := maskValue(val, secret || secretKey(k) || slices.Contains(keys, k), keys); changed {
				x[k] = m
			}
		}
		return x
	case []any:
		for i, val := range x {
			if m, changed := maskValue(val, secret, keys); changed {
				x[i] = m
			}
		}
		return x
	}
	m, _ := maskValue(v, secret, keys)
	return m
}

// maskValue masks v; objects and arrays in place. It reports whether v
// is to be replaced by the value returned (a string it changed).
func maskValue(v any, secret bool, keys []string) (any, bool) {
	switch x := v.(type) {
	case map[string]any, []any:
		maskJSON(x, secret, keys)
	case string:
		if secret && x != "" {
			return Masked, true
		}
		if t := Text(x); t != x {
			return t, true
		}
	}
	return v, false
}
