package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/api"
)

// cli runs the refit binary as a client of the server at apiAddr, with stdin,
// and returns its stdout, stderr and exit error.
func cli(t *testing.T, bin, apiAddr, token, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "REFIT_SERVER=http://"+apiAddr, "REFIT_TOKEN="+token)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// TestRegistryLoginCLI: `refit registry login` stores a login read from
// stdin, `list` shows it without the password, `logout` removes it; bad
// input fails with a message naming what is wrong.
func TestRegistryLoginCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)
	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	startProcess(t, bin, data, apiAddr, reg)
	token := readToken(t, data)
	const password = "cli-pa55-word"

	out, stderr, err := cli(t, bin, apiAddr, token, password+"\n", "registry", "login", "Registry.Example:5000", "-u", "robot", "--password-stdin")
	if err != nil || !strings.Contains(out, "login for registry.example:5000 stored (user robot)") {
		t.Fatalf("registry login: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	out, stderr, err = cli(t, bin, apiAddr, token, "", "registry", "list", "-o", "json")
	if err != nil {
		t.Fatalf("registry list: %v\n%s", err, stderr)
	}
	var creds []api.RegistryCredential
	if err := json.Unmarshal([]byte(out), &creds); err != nil || len(creds) != 1 ||
		creds[0].Host != "registry.example:5000" || creds[0].Username != "robot" {
		t.Fatalf("registry list -o json = %s (%v); want robot at registry.example:5000", out, err)
	}
	if strings.Contains(out, password) {
		t.Error("registry list shows the password")
	}
	table, _, _ := cli(t, bin, apiAddr, token, "", "registry", "list")
	if !strings.Contains(table, "HOST") || !strings.Contains(table, "robot") || strings.Contains(table, password) {
		t.Errorf("registry list table:\n%s", table)
	}

	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"registry", "login", "r.example", "-u", "robot"}, "--password-stdin"}, // stdin is no terminal
		{"pw\n", []string{"registry", "login", "r.example", "--password-stdin"}, "--username"},
		{"\n", []string{"registry", "login", "r.example", "-u", "robot", "--password-stdin"}, "no password"},
		{"pw\n", []string{"registry", "login", "https://r.example/v2", "-u", "robot", "--password-stdin"}, `registry host "https://r.example/v2"`},
		{"", []string{"registry", "logout", "nowhere.example"}, "not found"},
	} {
		_, stderr, err := cli(t, bin, apiAddr, token, c.stdin, c.args...)
		if err == nil || !strings.Contains(stderr, c.want) {
			t.Errorf("refit %s: %v, stderr %q; want a failure saying %q", strings.Join(c.args, " "), err, stderr, c.want)
		}
	}

	if out, stderr, err := cli(t, bin, apiAddr, token, "", "registry", "logout", "registry.example:5000"); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("registry logout: %v\n%s%s", err, out, stderr)
	}
	if out, _, _ := cli(t, bin, apiAddr, token, "", "registry", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("after logout, registry list = %s, want []", out)
	}
	if db, err := os.ReadFile(data + "/refit.db"); err == nil && strings.Contains(string(db), password) {
		t.Error("the password is in the database file in the clear")
	}
}

// TestWatchCLI: `refit watch add` watches a reference (again: updates
// its range), `list` shows it, `remove` stops it, a bad range fails
// naming the field, and `refit apply -f` takes a file of watches alone.
func TestWatchCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)
	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	startProcess(t, bin, data, apiAddr, reg)
	token := readToken(t, data)
	// Every reference is on the embedded registry (loopback): the
	// server's watcher polls what is watched, and reaches nothing else.
	py, node := reg+"/library/python", reg+"/library/node"

	out, stderr, err := cli(t, bin, apiAddr, token, "", "watch", "add", py+":3.12", "--semver", "~3.12")
	if err != nil || !strings.Contains(out, "watch "+py+":3.12 added") {
		t.Fatalf("watch add: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	if out, _, err := cli(t, bin, apiAddr, token, "", "watch", "add", py+":3.12", "--semver", "~3.13"); err != nil || !strings.Contains(out, "updated") {
		t.Errorf("watch add again: %v %s, want updated", err, out)
	}
	if _, stderr, err := cli(t, bin, apiAddr, token, "", "watch", "add", py, "--semver", "~three"); err == nil || !strings.Contains(stderr, "semver:") {
		t.Errorf("bad range: %v, stderr %q; want a failure naming semver", err, stderr)
	}
	file := t.TempDir() + "/watches.yaml"
	os.WriteFile(file, []byte("watches:\n  - ref: "+node+"\n    semver: \"^22\"\n"), 0o644)
	if out, stderr, err := cli(t, bin, apiAddr, token, "", "apply", "-f", file); err != nil || !strings.Contains(out, "watch "+node+" created") {
		t.Errorf("apply of watches: %v\n%s%s", err, out, stderr)
	}
	table, _, _ := cli(t, bin, apiAddr, token, "", "watch", "list")
	for _, want := range []string{"REF", py + ":3.12", "~3.13", node, "no (tags only)", "^22"} {
		if !strings.Contains(table, want) {
			t.Errorf("watch list lacks %q:\n%s", want, table)
		}
	}
	// A task following tags: task show prints the entry.
	src := t.TempDir()
	os.WriteFile(src+"/Dockerfile", []byte("ARG PYTHON_TAG=3.12.8\nFROM "+py+":${PYTHON_TAG}\n"), 0o644)
	os.WriteFile(file, []byte("name: py\nsource: {dir: "+src+"}\nbuildArgs: {PYTHON_TAG: 3.12.8}\ntriggers:\n  base: true\n  baseTags:\n    - {ref: "+py+", arg: PYTHON_TAG, semver: \"~3.12\"}\n"), 0o644)
	if out, stderr, err := cli(t, bin, apiAddr, token, "", "apply", "-f", file); err != nil || !strings.Contains(out, "task py created") {
		t.Fatalf("apply of a baseTags task: %v\n%s%s", err, out, stderr)
	}
	if out, _, err := cli(t, bin, apiAddr, token, "", "task", "show", "py"); err != nil || !strings.Contains(out, py+" ~3.12 → PYTHON_TAG (rebuild)") {
		t.Errorf("task show: %v\n%s", err, out)
	}
	if out, _, err := cli(t, bin, apiAddr, token, "", "task", "triggers", "py"); err != nil || !strings.Contains(out, py+" ~3.12") || !strings.Contains(out, "PYTHON_TAG=3.12.8") {
		t.Errorf("task triggers: %v\n%s", err, out)
	}
	if out, stderr, err := cli(t, bin, apiAddr, token, "", "watch", "remove", py+":3.12"); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("watch remove: %v\n%s%s", err, out, stderr)
	}
	if _, stderr, err := cli(t, bin, apiAddr, token, "", "watch", "remove", py+":3.12"); err == nil || !strings.Contains(stderr, "not watched") {
		t.Errorf("remove again: %v, stderr %q; want not watched", err, stderr)
	}
}
