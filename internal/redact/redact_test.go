package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// git remotes
		{"https://host/org/repo.git", "https://host/org/repo.git"},
		{"https://user:token@host/org/repo.git", "https://xxxxx@host/org/repo.git"},
		{"https://ghp_abcdef123@github.com/o/r", "https://xxxxx@github.com/o/r"},
		{"https://x-access-token:t%40k@host:8443/r?x=1#f", "https://xxxxx@host:8443/r?x=1#f"},
		{"https://user:tok@host", "https://xxxxx@host"},
		{"https://host/org/repo@v1", "https://host/org/repo@v1"},
		{"https://user:p/ss@host/r", "https://xxxxx@host/r"}, // unescaped '/' in password: not a valid URL
		{"https://us er:p@host/r", "https://xxxxx@host/r"},   // invalid URL: redacted to the last '@'
		{"ssh://git@host:22/r.git", "ssh://xxxxx@host:22/r.git"},
		{"git@github.com:org/repo.git", "git@github.com:org/repo.git"},
		{"user:secret@host:org/repo.git", "xxxxx@host:org/repo.git"},
		{"/srv/git/repo", "/srv/git/repo"},
		{"/srv/git/user:x@y", "/srv/git/user:x@y"},
		{"file:///srv/git/repo", "file:///srv/git/repo"},
		{"", ""},
		{"https://host/r?access_token=abc&x=1", "https://host/r?access_token=xxxxx&x=1"},
		// database URLs and connection strings
		{"postgres://refit:s3cret@db:5432/refit?sslmode=disable", "postgres://xxxxx@db:5432/refit?sslmode=disable"},
		{"postgres://refit@db/refit?password=s3cret&sslmode=disable", "postgres://xxxxx@db/refit?password=xxxxx&sslmode=disable"},
		{"postgres://db/refit", "postgres://db/refit"},
		{"postgres://u:p@ss@db/refit", "postgres://xxxxx@db/refit"},
		{"host=db user=refit password=s3cret", "host=db user=refit password=xxxxx"},
		// NATS
		{"nats://user:hunter2@:4222", "nats://xxxxx@:4222"},
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestURLs(t *testing.T) {
	in := "nats://a:hunter2@n1:4222, nats://n2:4222 ,tls://tok3n@n3"
	want := "nats://xxxxx@n1:4222,nats://n2:4222,tls://xxxxx@n3"
	if got := URLs(in); got != want {
		t.Errorf("URLs(%q) = %q, want %q", in, got, want)
	}
}

func TestUserinfo(t *testing.T) {
	url := "https://alice:s3cr%2Ft@host/r"
	text := "fatal: unable to access 'https://alice:s3cr%2Ft@host/r/': password s3cr/t or s3cr%2Ft for alice"
	got := Userinfo(text, url)
	want := "fatal: unable to access 'https://xxxxx@host/r/': password xxxxx or xxxxx for alice"
	if got != want {
		t.Errorf("Userinfo = %q, want %q", got, want)
	}
	// A token as the user name is long enough to be replaced on its own.
	if got := Userinfo("auth failed for ghp_abcdef123", "https://ghp_abcdef123@github.com/o/r"); strings.Contains(got, "ghp_") {
		t.Errorf("Userinfo left the token user name: %q", got)
	}
	if got := Userinfo("no such repo", "https://github.com/o/r"); got != "no such repo" {
		t.Errorf("Userinfo without credentials changed the text: %q", got)
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"Authorization: Basic dXNlcjpzZWNyZXQ=":               "Authorization: Basic [redacted]",
		"bearer eyJhbGciOiJIUzI1NiJ9.e30.abc":                 "bearer [redacted]",
		`Basic realm="x"`:                                     `Basic realm="x"`,
		"GET https://user:pw@example.com/v2/":                 "GET https://[redacted]@example.com/v2/",
		"GET https://auth/token?scope=x&access_token=abc&n=1": "GET https://auth/token?scope=x&access_token=[redacted]&n=1",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestJSON: secrets named by their key, every value under a key the
// caller names, and credentials shaped as such in any string are masked;
// names, booleans and other values stay.
func TestJSON(t *testing.T) {
	in := `{"buildArgs":{"NPM_TOKEN":"abc","PLAIN":"p"},"source":{"git":"https://u:pw@git.example/r.git"},` +
		`"sub":{"secret":"s","signed":true,"url":"http://h/x?token=t0k"},"login":{"password":"pw","username":"robot"},"n":3,"list":["Bearer abcdefghijkl"]}`
	out, err := JSON([]byte(in), "buildArgs")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"buildArgs":{"NPM_TOKEN":"[redacted]","PLAIN":"[redacted]"},"list":["Bearer [redacted]"],` +
		`"login":{"password":"[redacted]","username":"robot"},"n":3,"source":{"git":"https://[redacted]@git.example/r.git"},` +
		`"sub":{"secret":"[redacted]","signed":true,"url":"http://h/x?token=[redacted]"}}`
	if string(out) != want {
		t.Errorf("JSON =\n%s\nwant\n%s", out, want)
	}
	if _, err := JSON([]byte(`{`)); err == nil {
		t.Error("JSON of a broken document: no error")
	}
}
