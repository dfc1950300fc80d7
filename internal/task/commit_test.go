package task_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/task"
)

// TestCommitTriggerForms: commit: true and false keep their meaning and
// their encoding (so a task's hash does not move), an object enables the
// trigger with its filters and round-trips, and unknown fields are errors.
func TestCommitTriggerForms(t *testing.T) {
	base := task.Spec{Name: "api", Source: task.Source{Git: "https://example.com/a.git"}}
	for _, tc := range []struct {
		yaml string
		want task.CommitTrigger
		json string
	}{
		{"commit: true", task.CommitOn(), `true`},
		{"commit: false", task.CommitTrigger{}, `false`},
		{`commit: {branches: [main, "release/*"], paths: ["services/api/**"]}`,
			task.CommitTrigger{Enabled: true, Branches: []string{"main", "release/*"}, Paths: []string{"services/api/**"}},
			`{"branches":["main","release/*"],"paths":["services/api/**"]}`},
		{"commit: {tags: true, deletions: true}", task.CommitTrigger{Enabled: true, Tags: true, Deletions: true},
			`{"tags":true,"deletions":true}`},
	} {
		specs, err := task.DecodeYAML([]byte("name: api\nsource: {git: https://example.com/a.git}\ntriggers:\n  " + tc.yaml + "\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		got := specs[0].Triggers.Commit
		if b, _ := json.Marshal(got); string(b) != tc.json {
			t.Errorf("%s: encodes as %s, want %s", tc.yaml, b, tc.json)
		}
		if g, w := mustJSON(t, got), mustJSON(t, tc.want); g != w || got.Enabled != tc.want.Enabled {
			t.Errorf("%s: decoded %+v, want %+v", tc.yaml, got, tc.want)
		}
		if err := specs[0].Validate(); err != nil {
			t.Errorf("%s: %v", tc.yaml, err)
		}
	}
	// The hash of a spec with commit: true is what it was when Commit was
	// a bool: the same JSON.
	s := base
	s.Triggers = &task.Triggers{Commit: task.CommitOn(), Base: true, Manual: true}
	b, _ := json.Marshal(s.Triggers)
	if want := `{"commit":true,"base":true,"manual":true}`; string(b) != want {
		t.Errorf("triggers encode as %s, want %s", b, want)
	}
	if _, err := task.DecodeYAML([]byte("name: api\nsource: {git: g}\ntriggers:\n  commit: {branch: [main]}\n")); err == nil ||
		!strings.Contains(err.Error(), "branch") {
		t.Errorf("unknown field in commit: err = %v, want one naming it", err)
	}
	if _, err := task.DecodeJSON(strings.NewReader(`{"name":"api","source":{"git":"g"},"triggers":{"commit":"yes"}}`)); err == nil ||
		!strings.Contains(err.Error(), "triggers.commit") {
		t.Errorf("commit: \"yes\": err = %v, want one naming triggers.commit", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCommitTriggerValidation: bad globs and filters on a dir source are
// field errors naming the element.
func TestCommitTriggerValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		src   task.Source
		tr    task.CommitTrigger
		field string
	}{
		{"bad branch glob", task.Source{Git: "g"}, task.CommitTrigger{Enabled: true, Branches: []string{"main", "rel/["}}, "triggers.commit.branches[1]"},
		{"empty path", task.Source{Git: "g"}, task.CommitTrigger{Enabled: true, Paths: []string{""}}, "triggers.commit.paths[0]"},
		{"absolute path", task.Source{Git: "g"}, task.CommitTrigger{Enabled: true, Paths: []string{"/etc"}}, "triggers.commit.paths[0]"},
		{"escaping path", task.Source{Git: "g"}, task.CommitTrigger{Enabled: true, Paths: []string{"../x"}}, "triggers.commit.paths[0]"},
		{"filters on a dir", task.Source{Dir: "/src"}, task.CommitTrigger{Enabled: true, Branches: []string{"main"}}, "triggers.commit"},
	} {
		s := task.Spec{Name: "api", Source: tc.src, Triggers: &task.Triggers{Commit: tc.tr}}
		err := s.Validate()
		var fe *task.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: err = %v, want a field error on %s", tc.name, err, tc.field)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"main", "main", true},
		{"main", "mainline", false},
		{"release/*", "release/1.2", true},
		{"release/*", "release/1.2/hotfix", true}, // a directory pattern covers what is under it
		{"release/*", "releases/1", false},
		{"services/api/**", "services/api/main.go", true},
		{"services/api/**", "services/api/x/y/z.go", true},
		{"services/api/**", "services/web/main.go", false},
		{"**/*.go", "a/b/c.go", true},
		{"**/*.go", "c.go", true},
		{"**/*.go", "c.md", false},
		{"docs", "docs/readme.md", true},
		{"*.md", "readme.md", true},
	} {
		if got := task.MatchGlob(tc.pattern, tc.name); got != tc.want {
			t.Errorf("MatchGlob(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

// TestRepoKey: the https, ssh, scp-like and .git forms of one repository
// share a key; another host, port or path does not.
func TestRepoKey(t *testing.T) {
	same := []string{"https://github.com/Acme/API.git", "git@github.com:acme/api", "ssh://git@github.com/acme/api.git",
		"https://user:tok@github.com/acme/api/", "git://github.com/acme/api", "https://github.com:443/acme/api"}
	for _, u := range same {
		if got := task.RepoKey(u); got != "github.com/acme/api" {
			t.Errorf("RepoKey(%q) = %q, want github.com/acme/api", u, got)
		}
	}
	for _, u := range []string{"https://github.com/acme/api2", "https://gitlab.com/acme/api", "https://github.com:8443/acme/api",
		"https://github.com/acme/api/sub", "https://github.com/other/api"} {
		if task.RepoKey(u) == "github.com/acme/api" {
			t.Errorf("RepoKey(%q) matches github.com/acme/api", u)
		}
	}
	if got := task.RepoKey("http://127.0.0.1:8080/repo"); got != "127.0.0.1:8080/repo" {
		t.Errorf("loopback key = %q", got)
	}
	if got := task.RepoKey("file:///srv/git/a.git"); got != "file:/srv/git/a.git" {
		t.Errorf("file key = %q", got)
	}
}

// TestCommitTriggerHashStable: a spec with filters hashes the same from
// YAML and from its JSON (what apply stores and compares), so applying
// the same file twice is unchanged.
func TestCommitTriggerHashStable(t *testing.T) {
	specs, err := task.DecodeYAML([]byte("name: api\nsource: {git: https://example.com/a.git}\ntriggers:\n  commit: {branches: [main], paths: [svc]}\n  base: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(specs[0])
	if err != nil {
		t.Fatal(err)
	}
	again, err := task.DecodeJSON(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if h1, h2 := specs[0].Hash(""), again.Hash(""); h1 != h2 {
		t.Errorf("hash from YAML %s, from its JSON %s", h1, h2)
	}
	plain := task.Spec{Name: "api", Source: task.Source{Git: "g"}}
	withTrue := plain
	withTrue.Triggers = &task.Triggers{Commit: task.CommitOn(), Base: true, Manual: true}
	if plain.Hash("") != withTrue.Hash("") {
		t.Error("a spec without triggers and one with the default triggers hash differently")
	}
}

// FuzzRepoKey: any URL a payload names keys without panicking, and the
// https, scp-like ssh and .git forms of one host and path share a key.
func FuzzRepoKey(f *testing.F) {
	f.Add("github.com", "acme/api", "https://x@h:1/p?q")
	f.Add("h", "a", "::")
	f.Fuzz(func(t *testing.T, host, p, raw string) {
		task.RepoKey(raw)
		task.MatchGlob(raw, p)
		if !plainRE.MatchString(host) || !plainRE.MatchString(p) || strings.HasSuffix(p, ".git") {
			return
		}
		https, scp := task.RepoKey("https://"+host+"/"+p), task.RepoKey("git@"+host+":"+p+".git")
		if https != scp {
			t.Fatalf("https key %q, scp-like key %q", https, scp)
		}
	})
}

var plainRE = regexp.MustCompile(`^[a-z0-9]+([./_-][a-z0-9]+)*$`)
