package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/baseimage"
	"github.com/refit-dev/refit/internal/client"
)

// cliEnv runs the refit binary with env added to the test's environment
// (and no REFIT_SERVER or REFIT_TOKEN of its own), returning stdout,
// stderr and the exit code.
func cliEnv(t *testing.T, bin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir() // no ./refit-data/admin-token to fall back on
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "REFIT_SERVER=") && !strings.HasPrefix(e, "REFIT_TOKEN=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "XDG_CONFIG_HOME="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestCLIErrorsNameTheThingAndTheNextStep runs the errors a new user met,
// as the user meets them: the real binary against a real `refit serve`.
// Each must name the thing, say what to do, and leak no driver or
// library text; exit codes and stdout/stderr are those of a CLI users
// script around.
func TestCLIErrorsNameTheThingAndTheNextStep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)

	// Nobody listens: say refit is not running there, and how to fix it.
	down := freePort(t)
	_, stderr, code := cliEnv(t, bin, []string{"REFIT_SERVER=http://" + down, "REFIT_TOKEN=x"}, "task", "list")
	for _, want := range []string{"refit is not running at http://" + down, "refit serve", "--server", "REFIT_SERVER"} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("server down: exit %d, stderr %q; want exit 1 saying %q", code, stderr, want)
		}
	}
	if strings.Contains(stderr, "dial tcp") {
		t.Errorf("server down: stderr %q shows the dialer's words", stderr)
	}
	_, stderr, code = cliEnv(t, bin, []string{"REFIT_SERVER=ftp://" + down, "REFIT_TOKEN=x"}, "task", "list")
	if code != 1 || !strings.Contains(stderr, `"ftp://`+down+`"`) || !strings.Contains(stderr, "HOST:PORT") {
		t.Errorf("REFIT_SERVER=ftp://…: exit %d, stderr %q; want it named with what is wanted", code, stderr)
	}

	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	startProcess(t, bin, data, apiAddr, reg)
	token := readToken(t, data)
	// HOST:PORT without a scheme, as docker and kubectl take it.
	env := []string{"REFIT_SERVER=" + apiAddr, "REFIT_TOKEN=" + token}
	run := func(args ...string) (string, string, int) {
		t.Helper()
		return cliEnv(t, bin, env, args...)
	}
	if out, stderr, code := run("task", "list"); code != 0 || !strings.Contains(out, "NAME") {
		t.Fatalf("REFIT_SERVER=%s (no scheme): exit %d\nstdout: %s\nstderr: %s", apiAddr, code, out, stderr)
	}

	// A base image that does not exist: created, with a warning on stderr.
	dir := t.TempDir()
	missing := reg + "/nope/missing:1"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+missing+"\nRUN true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notFound := "base image " + missing + " not found in registry " + reg
	out, stderr, code := run("task", "create", "helo", "--dir", dir)
	if code != 0 || !strings.Contains(out, "task helo created") {
		t.Fatalf("task create helo: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if !strings.Contains(stderr, "Warning: "+notFound) || strings.Contains(out, "Warning") {
		t.Errorf("task create on a missing base: stderr %q, stdout %q; want the warning %q on stderr only", stderr, out, notFound)
	}

	// The same name again: it exists, use apply; no SQL in sight.
	_, stderr, code = run("task", "create", "helo", "--dir", dir)
	if code != 1 || !strings.Contains(stderr, "task helo already exists") || !strings.Contains(stderr, "refit apply") {
		t.Errorf("task create helo again: exit %d, stderr %q; want exit 1, already exists, refit apply", code, stderr)
	}
	for _, leak := range []string{"UNIQUE", "constraint", "1555", "duplicate key"} {
		if strings.Contains(stderr, leak) {
			t.Errorf("task create helo again: stderr %q leaks the database's %q", stderr, leak)
		}
	}

	// Names that do not exist, said once.
	for _, args := range [][]string{{"task", "delete", "nope"}, {"task", "show", "nope"}, {"runs", "--task", "nope"}, {"run", "nope"}, {"explain", "nope"}} {
		out, stderr, code := run(args...)
		if code != 1 || strings.Count(stderr, "nope") != 1 || !strings.Contains(stderr, "task nope does not exist") || out != "" {
			t.Errorf("refit %s: exit %d, stdout %q, stderr %q; want exit 1 and 'task nope does not exist', said once", strings.Join(args, " "), code, out, stderr)
		}
	}
	for _, args := range [][]string{{"runs", "r-99"}, {"logs", "r-99"}} {
		out, stderr, code := run(args...)
		if code != 1 || strings.Count(stderr, "r-99") != 1 || !strings.Contains(stderr, "run r-99 does not exist") || out != "" {
			t.Errorf("refit %s: exit %d, stdout %q, stderr %q; want exit 1 and 'run r-99 does not exist', said once", strings.Join(args, " "), code, out, stderr)
		}
	}

	// A failed run --wait: the failure, at step resolve, in words; exit 1
	// and no "exit status" trailer. --progress tty without a terminal
	// falls back to plain.
	out, stderr, code = run("run", "helo", "--wait", "--progress", "tty")
	if code != 1 {
		t.Errorf("run helo --wait: exit %d, want 1\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if want := "run r-1 failed at step resolve: " + notFound; !strings.Contains(out, want) {
		t.Errorf("run helo --wait: stdout %q, want %q", out, want)
	}
	for _, bad := range []string{"exit status", "failed to get console", "HEAD responses have no body"} {
		if strings.Contains(stderr+out, bad) {
			t.Errorf("run helo --wait: output has %q\nstdout: %s\nstderr: %s", bad, out, stderr)
		}
	}

	// refit logs: the build log on stdout (refit logs r-1 > build.log).
	out, stderr, code = run("logs", "r-1")
	if code != 0 || !strings.Contains(out, "resolve base images") || !strings.Contains(out, notFound) || stderr != "" {
		t.Errorf("logs r-1: exit %d\nstdout: %q\nstderr: %q; want the log on stdout, nothing on stderr", code, out, stderr)
	}
	if _, _, code := run("logs", "r-1", "--progress", "tty"); code != 0 {
		t.Errorf("logs r-1 --progress tty without a terminal: exit %d, want plain output", code)
	}
	// -o json: the API's NDJSON stream, one chunk per line.
	out, stderr, code = run("logs", "r-1", "-o", "json")
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		var ch api.LogChunk
		if err := json.Unmarshal(sc.Bytes(), &ch); err != nil || ch.Seq <= 0 || len(ch.Data) == 0 {
			t.Errorf("logs r-1 -o json: line %q is not a log chunk (%v)", sc.Text(), err)
		}
		lines++
	}
	if code != 0 || lines == 0 {
		t.Errorf("logs r-1 -o json: exit %d, %d chunks, stderr %q", code, lines, stderr)
	}

	// A registry webhook whose format has no secret is 403, as the README says.
	resp, err := http.Post("http://"+apiAddr+"/hooks/registry/harbor", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	var e api.Error
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || e.Message != "webhook source harbor is not configured" {
		t.Errorf("POST /hooks/registry/harbor without secrets: %d %q, want 403 webhook source harbor is not configured", resp.StatusCode, e.Message)
	}
}

// TestBasesAndExplainShowOneDigest: for a multi-platform base (an index),
// `refit bases` and `refit explain` show the same digest — the one the
// tag points to and runs pin — and say it is an index.
func TestBasesAndExplainShowOneDigest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)
	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	startProcess(t, bin, data, apiAddr, reg)
	token := readToken(t, data)

	ref := reg + "/base/multi:1"
	img, err := baseimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	imgDigest, _ := img.Digest()

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+ref+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"REFIT_SERVER=http://" + apiAddr, "REFIT_TOKEN=" + token}
	if out, stderr, code := cliEnv(t, bin, env, "task", "create", "multi", "--dir", dir); code != 0 || stderr != "" {
		t.Fatalf("task create: exit %d\n%s%s", code, out, stderr)
	}
	waitIndexed(t, client.New("http://"+apiAddr, token), ref, idxDigest.String())

	want := short(idxDigest.String())
	out, _, _ := cliEnv(t, bin, env, "bases")
	if !strings.Contains(out, want) || !strings.Contains(out, "index") || strings.Contains(out, short(imgDigest.String())) {
		t.Errorf("refit bases:\n%s\nwant the index digest %s, said to be an index, and not the platform manifest's %s", out, want, short(imgDigest.String()))
	}
	out, _, _ = cliEnv(t, bin, env, "explain", "multi")
	if !strings.Contains(out, "current "+want+" (index)") {
		t.Errorf("refit explain multi:\n%s\nwant current %s (index)", out, want)
	}
}
