package redact

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// textByExpressions is Text without its shortcut: what Text did before
// plain strings skipped the expressions.
func textByExpressions(s string) string {
	s = authHeaderRE.ReplaceAllString(s, "$1 [redacted]")
	s = userInfoRE.ReplaceAllString(s, "${1}[redacted]@")
	return paramRE.ReplaceAllString(s, "${1}[redacted]")
}

var shortcutSeeds = []string{
	"", "plain text", "run r-42 of task web", "docker.io/library/debian:12",
	"Basic dXNlcjpzZWNyZXQ=", "BEARER abcdefgh12345", "basically fine", "bEaReR",
	"https://user:tok@host/r", "https://host/r", "git@github.com:o/r.git", "a://b @c",
	"token=abc", "x=1", "ſecret", "baſic dXNlcjpzZWNyZXQ=", "Kelvin \u212a", "pass\u00e9",
	"webhookSecret", "PASSWD", "apiToken", "privateKey", "credentials", "name",
}

// TestShortcutsAgree checks that Text's and JSON's shortcuts for plain
// strings give what the expressions give.
func TestShortcutsAgree(t *testing.T) {
	for _, s := range shortcutSeeds {
		if got, want := Text(s), textByExpressions(s); got != want {
			t.Errorf("Text(%q) = %q, the expressions give %q", s, got, want)
		}
		if got, want := secretKey(s), secretKeyRE.MatchString(s); got != want {
			t.Errorf("secretKey(%q) = %v, the expression gives %v", s, got, want)
		}
	}
	doc := `{"a":"Basic dXNlcjpzZWNyZXQ=","b":["x","https://u:p@h/"],"c":{"token":"t","n":1,"ok":true,"z":null},"buildArgs":{"K":"v"},"d":"plain"}`
	got, err := JSON([]byte(doc), "buildArgs")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":"Basic [redacted]","b":["x","https://[redacted]@h/"],"buildArgs":{"K":"[redacted]"},"c":{"n":1,"ok":true,"token":"[redacted]","z":null},"d":"plain"}`
	if string(got) != want {
		t.Errorf("JSON:\n got %s\nwant %s", got, want)
	}
}

// FuzzShortcuts checks the shortcuts against the expressions on any
// string, and that JSON still masks what a key names.
func FuzzShortcuts(f *testing.F) {
	for _, s := range shortcutSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Text(s), textByExpressions(s); got != want {
			t.Fatalf("Text(%q) = %q, the expressions give %q", s, got, want)
		}
		if got, want := secretKey(s), secretKeyRE.MatchString(s); got != want {
			t.Fatalf("secretKey(%q) = %v, the expression gives %v", s, got, want)
		}
		if !utf8.ValidString(s) {
			return // encoding/json would change the key
		}
		doc, _ := json.Marshal(map[string]any{s: "v", "x": s})
		out, err := JSON(doc)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatal(err)
		}
		if s != "x" && secretKeyRE.MatchString(s) && m[s] != Masked {
			t.Fatalf("key %q names a secret, its value is %q", s, m[s])
		}
	})
}
