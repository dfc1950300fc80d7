package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/baseimage"
)

// TestApproveRejectPromoteCLI: the real binary against a real `refit
// serve`: a gated run waits (refit run --wait says so and exits 0), its
// own user's approve is refused, reject ends it, and promote refuses a
// digest the task never promoted.
func TestApproveRejectPromoteCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)
	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	startProcess(t, bin, data, apiAddr, reg)
	token := readToken(t, data)
	if _, _, err := baseimage.Push(reg+"/base/busybox:1", ""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"Dockerfile": "FROM " + reg + "/base/busybox:1\nRUN echo ok > /ok\n",
		"tasks.yaml": "name: app\nsource: {dir: " + dir + "}\ntest: {command: [cat, /ok]}\npromote: {tags: [stable], policy: approval}\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, stderr, err := cli(t, bin, apiAddr, token, "", "apply", "-f", filepath.Join(dir, "tasks.yaml")); err != nil {
		t.Fatalf("apply: %v\n%s%s", err, out, stderr)
	}
	out, stderr, err := cli(t, bin, apiAddr, token, "", "run", "app", "--wait", "--progress", "plain")
	if err != nil || !strings.Contains(out, "run r-1 built") || !strings.Contains(out, "awaits approval (refit approve r-1") {
		t.Fatalf("run --wait: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"approve", "r-1"}, "admin caused run r-1"},
		{[]string{"approve", "r-9"}, "run r-9 does not exist"},
		{[]string{"promote", "app"}, "--digest is required"},
		{[]string{"promote", "app", "--digest", "sha256:" + strings.Repeat("0", 64)}, "never promoted"},
	} {
		_, stderr, err := cli(t, bin, apiAddr, token, "", c.args...)
		if err == nil || !strings.Contains(stderr, c.want) {
			t.Errorf("refit %s: %v, stderr %q; want a failure saying %q", strings.Join(c.args, " "), err, stderr, c.want)
		}
	}
	out, stderr, err = cli(t, bin, apiAddr, token, "", "reject", "r-1", "--comment", "not today")
	if err != nil || !strings.Contains(out, "run r-1 rejected at step approval: rejected by admin: not today") {
		t.Errorf("reject: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
}
