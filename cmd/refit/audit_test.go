package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/api"
)

// TestTokenAndAuditCLI: through the refit binary against `refit serve`
// (no BuildKit needed): the admin creates tokens for users with roles,
// a viewer is refused a change naming the role it needs, an operator's
// change is audited under its user, `refit audit verify` passes and
// prints the server's key, an export verifies offline with that key,
// and the same export edited by hand fails naming the entry.
func TestTokenAndAuditCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)
	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	startServe(t, bin, "serve", "--data", data, "--listen", apiAddr, "--registry-listen", reg,
		"--buildkit", "unix://"+filepath.Join(data, "no-buildkitd.sock"))
	admin := readToken(t, data)
	run := func(token string, args ...string) (string, string, error) {
		t.Helper()
		return cli(t, bin, apiAddr, token, "", args...)
	}

	secretRE := regexp.MustCompile(`(?m)^(refit_[0-9a-f]{64})$`)
	out, stderr, err := run(admin, "token", "create", "--user", "vera", "--role", "viewer")
	viewer := secretRE.FindString(out)
	if err != nil || viewer == "" || !strings.Contains(out, "for user vera (viewer)") {
		t.Fatalf("token create vera: %v\n%s%s", err, out, stderr)
	}
	out, _, _ = run(admin, "token", "create", "--user", "otto", "--role", "operator", "-o", "json")
	var nt api.NewToken
	if err := json.Unmarshal([]byte(out), &nt); err != nil || nt.Secret == "" {
		t.Fatalf("token create -o json = %s (%v)", out, err)
	}
	operator := nt.Secret

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY Dockerfile /\n"), 0o644)
	if _, stderr, err := run(viewer, "task", "create", "app", "--dir", dir); err == nil || !strings.Contains(stderr, "needs role operator") || !strings.Contains(stderr, "user vera") {
		t.Errorf("a viewer creating a task: %v %q, want refused naming operator and vera", err, stderr)
	}
	if _, stderr, err := run(operator, "task", "create", "app", "--dir", dir); err != nil {
		t.Fatalf("operator task create: %v\n%s", err, stderr)
	}
	if _, stderr, err := run(viewer, "token", "list"); err == nil || !strings.Contains(stderr, "needs role admin") {
		t.Errorf("a viewer listing tokens: %v %q", err, stderr)
	}
	out, _, err = run(admin, "token", "list")
	if err != nil || !strings.Contains(out, "vera") || !strings.Contains(out, "otto") || secretRE.MatchString(out) || strings.Contains(out, operator) {
		t.Errorf("token list: %v\n%s", err, out)
	}

	out, _, err = run(viewer, "audit", "list", "--subject", "app", "-o", "json")
	var es []api.AuditEntry
	if err != nil || json.Unmarshal([]byte(out), &es) != nil || len(es) != 1 || es[0].Action != "task.create" || es[0].Actor != "otto" {
		t.Errorf("audit list --subject app = %v\n%s; want otto's task.create", err, out)
	}
	out, stderr, err = run(viewer, "audit", "verify")
	key := regexp.MustCompile(`ed25519:\S+`).FindString(out)
	if err != nil || !strings.Contains(out, "audit log intact") || key == "" {
		t.Fatalf("audit verify: %v\n%s%s", err, out, stderr)
	}
	if _, stderr, err := run(viewer, "audit", "export"); err == nil || !strings.Contains(stderr, "needs role admin") {
		t.Errorf("a viewer exporting: %v %q", err, stderr)
	}
	export, stderr, err := run(admin, "audit", "export", "--format", "jsonl")
	if err != nil || !strings.Contains(export, `{"checkpoint"`) {
		t.Fatalf("audit export: %v\n%s", err, stderr)
	}
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	os.WriteFile(file, []byte(export), 0o600)
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte(key+"\n"), 0o600)
	// Offline: no server, no token.
	for _, k := range []string{key, keyFile} {
		out, stderr, err = cli(t, bin, "127.0.0.1:1", "", "", "audit", "verify", "--file", file, "--public-key", k)
		if err != nil || !strings.Contains(out, "intact") || !strings.Contains(out, "(the trusted key)") {
			t.Errorf("verify --file --public-key %s: %v\n%s%s", k, err, out, stderr)
		}
	}
	edited := strings.Replace(export, `"actor":"otto"`, `"actor":"vera"`, 1)
	os.WriteFile(file, []byte(edited), 0o600)
	if _, stderr, err := cli(t, bin, "127.0.0.1:1", "", "", "audit", "verify", "--file", file, "--public-key", key); err == nil ||
		!regexp.MustCompile(`broken at entry \d+: its content does not match its hash`).MatchString(stderr) {
		t.Errorf("an edited export: %v %q, want it refused naming the entry", err, stderr)
	}

	if out, stderr, err := run(admin, "token", "revoke", "otto"); err != nil || !strings.Contains(out, "revoked token "+nt.ID) {
		t.Errorf("token revoke otto: %v\n%s%s", err, out, stderr)
	}
	if _, stderr, err := run(operator, "task", "list"); err == nil || !strings.Contains(stderr, "invalid token") {
		t.Errorf("a revoked token: %v %q", err, stderr)
	}
	if _, stderr, err := run(admin, "token", "revoke", "admin"); err == nil || !strings.Contains(stderr, "last active admin token") {
		t.Errorf("revoking the last admin token: %v %q", err, stderr)
	}
}
