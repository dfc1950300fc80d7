package main

import (
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// TestVersion: `refit version` needs no server and reports the Go and
// BuildKit versions the binary was built with (BuildKit as go.mod pins
// it); --version says the same on one line.
func TestVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary")
	}
	bin := refitBinary(t)
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", mod, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pinned string
	for _, r := range f.Require {
		if r.Mod.Path == buildkitModule {
			pinned = r.Mod.Version
		}
	}

	// No server at this address: version must not need one.
	out, stderr, err := cli(t, bin, "127.0.0.1:1", "", "", "version", "-o", "json")
	if err != nil {
		t.Fatalf("refit version: %v\n%s", err, stderr)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("refit version -o json = %s: %v", out, err)
	}
	if v.Go != runtime.Version() || v.BuildKit != pinned || v.Version == "" {
		t.Errorf("refit version = %+v, want go %s, buildkit %s (go.mod) and a version", v, runtime.Version(), pinned)
	}
	out, _, err = cli(t, bin, "127.0.0.1:1", "", "", "--version")
	if err != nil || !strings.HasPrefix(out, "refit ") || !strings.Contains(out, "BuildKit "+pinned) {
		t.Errorf("refit --version = %q (%v), want refit … BuildKit %s", out, err, pinned)
	}
}
