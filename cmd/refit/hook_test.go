package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/api"
)

// TestHookSecretCLI: `refit hook secret set` takes the secret from stdin
// or a file, never from the command line, and echoes it nowhere; `list`
// shows the repository's key; `remove` takes any URL form of it.
func TestHookSecretCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)
	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	startProcess(t, bin, data, apiAddr, reg)
	token := readToken(t, data)
	const secret = "hook-s3cret-0123456789"

	out, stderr, err := cli(t, bin, apiAddr, token, secret+"\n", "hook", "secret", "set", "https://github.com/Acme/API.git", "--secret-stdin")
	if err != nil || !strings.Contains(out, "webhook secret of github.com/acme/api stored") || strings.Contains(out+stderr, secret) {
		t.Fatalf("hook secret set: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	file := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(file, []byte(secret+"\n"), 0o600)
	if out, stderr, err := cli(t, bin, apiAddr, token, "", "hook", "secret", "set", "git@gitlab.com:acme/web", "--secret-file", file); err != nil {
		t.Fatalf("hook secret set --secret-file: %v\n%s%s", err, out, stderr)
	}
	out, stderr, err = cli(t, bin, apiAddr, token, "", "hook", "secret", "list", "-o", "json")
	var list []api.GitSecret
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[0].RepoKey != "github.com/acme/api" ||
		list[1].RepoKey != "gitlab.com/acme/web" || strings.Contains(out, secret) {
		t.Fatalf("hook secret list = %s (%v, %s); want both repositories, no secret", out, err, stderr)
	}
	if out, stderr, err := cli(t, bin, apiAddr, token, "", "hook", "secret", "remove", "ssh://git@github.com/acme/api"); err != nil {
		t.Fatalf("hook secret remove: %v\n%s%s", err, out, stderr)
	}
	if _, stderr, err := cli(t, bin, apiAddr, token, "", "hook", "secret", "set", "https://github.com/acme/api"); err == nil ||
		!strings.Contains(stderr, "--secret-stdin or --secret-file") {
		t.Errorf("hook secret set without a secret: %v, %s; want an error naming the flags", err, stderr)
	}
}
