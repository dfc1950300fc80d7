package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/api"
)

// TestApplyAllOrNothingCLI: `refit apply -f` with a valid first document
// and bad later ones stores nothing and names every bad task; once the
// file is fixed, every task is created, and a second apply changes
// nothing.
func TestApplyAllOrNothingCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)
	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	startProcess(t, bin, data, apiAddr, reg)
	token := readToken(t, data)

	dir := t.TempDir()
	for p, body := range map[string]string{
		"app/Dockerfile": "FROM busybox\n",
		"bad/Dockerfile": "FROM busybox\nNOTANINSTRUCTION foo\n",
	} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "tasks.yaml")
	write := func(body string) {
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`name: first
source: {dir: ./app}
---
name: second
source: {dir: ./bad}
---
name: third
source: {dir: ./app}
tags: ["{{.Env.HOME}}"]
---
name: fourth
source: {dir: ./app}
buildArgs: {FOO: "a\nb"}
`)
	out, stderr, err := cli(t, bin, apiAddr, token, "", "apply", "-f", file)
	if err == nil {
		t.Fatalf("apply of a file with bad tasks succeeded:\n%s", out)
	}
	for _, want := range []string{"3 of 4 tasks refused, nothing applied", "task second:", "line 2", "task third:", "tags[0]", "task fourth:", "buildArgs.FOO"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("apply stderr does not say %q:\n%s", want, stderr)
		}
	}
	if out, _, _ := cli(t, bin, apiAddr, token, "", "task", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("tasks after a refused apply: %s, want none (not even the valid first one)", out)
	}

	// Unknown fields in several documents are all reported before any
	// request is sent.
	write("name: a\ncolour: red\n---\nname: b\nsource: {dir: ./app}\n---\nname: c\nsorce: {dir: ./app}\n")
	if _, stderr, err := cli(t, bin, apiAddr, token, "", "apply", "-f", file); err == nil ||
		!strings.Contains(stderr, "document 1") || !strings.Contains(stderr, "document 3") {
		t.Errorf("apply with two bad documents: %v, stderr %q; want both named", err, stderr)
	}

	write("name: first\nsource: {dir: ./app}\n---\nname: second\nsource: {dir: ./app}\n")
	for _, want := range []string{"created", "unchanged"} {
		out, stderr, err := cli(t, bin, apiAddr, token, "", "apply", "-f", file)
		if err != nil || !strings.Contains(out, "task first "+want) || !strings.Contains(out, "task second "+want) {
			t.Errorf("apply: %v\nstdout: %s\nstderr: %s\nwant both tasks %s", err, out, stderr, want)
		}
	}
	out, _, _ = cli(t, bin, apiAddr, token, "", "task", "list", "-o", "json")
	var ts []api.Task
	if err := json.Unmarshal([]byte(out), &ts); err != nil || len(ts) != 2 {
		t.Errorf("tasks after apply: %s (%v), want first and second", out, err)
	}
}

// TestApplyLargeFileCLI: a task file over 1 MiB (the limit of one task,
// once the limit of the whole file) is applied in one go; applied again,
// every task is unchanged.
func TestApplyLargeFileCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)
	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	startProcess(t, bin, data, apiAddr, reg)
	token := readToken(t, data)

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const n = 1500
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "name: t%04d\nsource: {dir: %s}\nimage: fleet/t%04d\nbuildArgs:\n", i, dir, i)
		for _, k := range []string{"GIT_URL", "DESCRIPTION", "MAINTAINER", "FEATURES"} {
			fmt.Fprintf(&b, "  %s: %q\n", k, strings.Repeat(strings.ToLower(k), 150/len(k)))
		}
		b.WriteString("---\n")
	}
	if b.Len() <= 1<<20 {
		t.Fatalf("task file is %d bytes, want over 1 MiB", b.Len())
	}
	file := filepath.Join(dir, "tasks.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"created", "unchanged"} {
		out, stderr, err := cli(t, bin, apiAddr, token, "", "apply", "-f", file)
		if err != nil || strings.Count(out, " "+want+"\n") != n {
			t.Fatalf("apply of %d tasks (%d bytes): %v\nstderr: %s\nwant every task %s, got %d", n, b.Len(), err, stderr, want, strings.Count(out, " "+want+"\n"))
		}
	}
}
