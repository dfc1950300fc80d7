package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDirPolicy(t *testing.T) {
	top := t.TempDir()
	for _, d := range []string{"data/buildkit", "work/app", "other", "keys"} {
		if err := os.MkdirAll(filepath.Join(top, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(top, "keys", "secret.key"), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(top, "data"), filepath.Join(top, "work", "link-to-data")); err != nil {
		t.Fatal(err)
	}
	p := func(rel string) string { return filepath.Join(top, rel) }
	deny := []string{p("data"), p("keys/secret.key")}

	tests := []struct {
		name   string
		policy DirPolicy
		dir    string
		refuse string // "" = allowed
	}{
		{"any directory by default", DirPolicy{}, p("other"), ""},
		{"a file is no directory", DirPolicy{}, p("keys/secret.key"), "not a readable directory"},
		{"missing", DirPolicy{}, p("nope"), "not a readable directory"},
		{"the data directory", DirPolicy{Deny: deny}, p("data"), "refit's own state"},
		{"inside the data directory", DirPolicy{Deny: deny}, p("data/buildkit"), "refit's own state"},
		{"a parent of the data directory", DirPolicy{Deny: deny}, top, "refit's own state"},
		{"a symlink to the data directory", DirPolicy{Deny: deny}, p("work/link-to-data"), "refit's own state"},
		{"a dotted way into the data directory", DirPolicy{Deny: deny}, p("work/../data"), "refit's own state"},
		{"the key file's directory", DirPolicy{Deny: deny}, p("keys"), "refit's own state"},
		{"beside them", DirPolicy{Deny: deny}, p("work/app"), ""},
		{"inside an allowed root", DirPolicy{Allow: []string{p("work")}, Deny: deny}, p("work/app"), ""},
		{"the allowed root itself", DirPolicy{Allow: []string{p("work")}}, p("work"), ""},
		{"outside every allowed root", DirPolicy{Allow: []string{p("work")}}, p("other"), "--source-dir"},
		{"a sibling sharing a prefix", DirPolicy{Allow: []string{p("work/ap")}}, p("work/app"), "--source-dir"},
		{"an allowed root's link out", DirPolicy{Allow: []string{p("work")}, Deny: deny}, p("work/link-to-data"), "refit's own state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			real, err := tt.policy.Check(tt.dir)
			if tt.refuse == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want allowed", tt.dir, err)
				}
				want, _ := filepath.EvalSymlinks(tt.dir)
				if real != want {
					t.Errorf("Check(%s) = %s, want the real path %s", tt.dir, real, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%s) allowed it (%s), want refused: %s", tt.dir, real, tt.refuse)
			}
			if !strings.Contains(err.Error(), tt.refuse) || !strings.Contains(err.Error(), tt.dir) {
				t.Errorf("Check(%s) = %q, want it to name the directory and say %q", tt.dir, err, tt.refuse)
			}
		})
	}
}
