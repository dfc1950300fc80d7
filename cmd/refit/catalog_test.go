package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/api"
	ct "github.com/refit-dev/refit/internal/catalog/catalogtest"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/vulndb/osvtest"
)

// TestBaseDiffCLI: a real refit serve and its index watch a Debian-like
// base in the embedded registry. Moving the tag to an image that changed
// only a non-package file skips the task with rebuildWhen: packages —
// visible in refit explain, refit runs and as a run.skipped event — and
// refit bases diff says no package changed; moving it again to one with
// a newer openssl shows exactly that change, in the CLI and in the
// base.diff event. Two Alpine-like images compare with refit image diff.
// No BuildKit is needed: the skipped run never builds.
func TestBaseDiffCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)
	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	// No BuildKit: a run the policy lets build waits for it, holding a
	// worker, so there are workers enough for the runs still to decide.
	startServe(t, bin, "serve", "--data", data, "--listen", apiAddr, "--registry-listen", reg, "--workers", "4",
		"--debounce", "-1s", "--buildkit", "unix://"+filepath.Join(data, "no-buildkitd.sock"))
	token := readToken(t, data)
	c := client.New("http://"+apiAddr, token)
	// run runs the CLI; table columns are squeezed to one space.
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := cli(t, bin, apiAddr, token, "", args...)
		if err != nil {
			t.Fatalf("refit %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		lines := strings.Split(out, "\n")
		for i, l := range lines {
			lines[i] = strings.Join(strings.Fields(l), " ")
		}
		return strings.Join(lines, "\n")
	}
	push := func(repo string, img v1.Image) string {
		t.Helper()
		r, err := name.ParseReference(reg+"/"+repo, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			t.Fatalf("pushing %s: %v", repo, err)
		}
		d, _ := img.Digest()
		return d.String()
	}
	ref := reg + "/base/debian:12"
	openssl11, openssl13 := ct.P("openssl", "3.0.11-1~deb12u2", "amd64"), ct.P("openssl", "3.0.13-1~deb12u1", "amd64")
	bash := ct.P("bash", "5.2.15-2+b2", "amd64")
	libssl11, libssl13 := ct.Pkg{Name: "libssl3", Version: openssl11.Version, Arch: "amd64", Source: "openssl"}, ct.Pkg{Name: "libssl3", Version: openssl13.Version, Arch: "amd64", Source: "openssl"}
	first := push("base/debian:12", ct.Debian("12", []ct.Pkg{openssl11, libssl11, bash}))

	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "app"), 0o755)
	os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte("FROM "+ref+"\n"), 0o644)
	// With the offline vulnerability database, the diff says what the
	// update fixes and introduces: asked by source package (libssl3 is
	// built from openssl), each source move once; and rebuildWhen: fixes
	// uses it.
	osv := filepath.Join(dir, "debian-all.zip")
	os.WriteFile(osv, osvtest.Zip(osvtest.Fixture()), 0o644)
	run("vulndb", "import", osv)
	file := filepath.Join(dir, "tasks.yaml")
	os.WriteFile(file, []byte(`name: app
source: {dir: ./app}
triggers:
  base: true
  baseChange:
    rebuildWhen: packages
---
name: high
source: {dir: ./app}
triggers: {base: true, baseChange: {rebuildWhen: fixes, minSeverity: high}}
---
name: critical
source: {dir: ./app}
triggers: {base: true, baseChange: {rebuildWhen: fixes, minSeverity: critical}}
`), 0o644)
	run("apply", "-f", file)
	waitIndexed(t, c, ref, first)

	// Only /etc/motd changes.
	second := push("base/debian:12", ct.Debian("12", []ct.Pkg{openssl11, libssl11, bash}, ct.Layer(map[string]string{"etc/motd": "patched"})))
	skipped := waitRun(t, c, "app", 1, func(r api.Run) bool { return r.State.Done() })
	if skipped.State != api.StateSkipped || skipped.Cause.Decision != "base moved, not rebuilt: no package changed" ||
		skipped.Cause.OldDigest != first || skipped.Cause.NewDigest != second {
		t.Fatalf("app's run = %s, cause %+v; want skipped, no package changed, %s → %s", skipped.State, skipped.Cause, first, second)
	}
	if out := run("explain", "app"); !strings.Contains(out, "skipped") || !strings.Contains(out, "base moved, not rebuilt: no package changed") ||
		!strings.Contains(out, "only when an OS package changed (rebuildWhen: packages)") {
		t.Errorf("refit explain app does not say the base move was skipped:\n%s", out)
	}
	if out := run("runs", skipped.ID); !strings.Contains(out, "base moved, not rebuilt: no package changed") {
		t.Errorf("refit runs %s:\n%s", skipped.ID, out)
	}
	if out := run("events", "list", "--type", "run.skipped", "-o", "json"); !strings.Contains(out, `"subject": "app"`) {
		t.Errorf("no run.skipped event for app:\n%s", out)
	}
	if out := run("bases", "diff", ref); !strings.Contains(out, "packages no change") || !strings.Contains(out, "layers 1 → 2") {
		t.Errorf("refit bases diff after a non-package change:\n%s", out)
	}

	// openssl moves: exactly that change, in the CLI and the event.
	third := push("base/debian:12", ct.Debian("12", []ct.Pkg{openssl13, libssl13, bash}, ct.Layer(map[string]string{"etc/motd": "patched"})))
	rebuilt := waitRun(t, c, "app", 2, func(r api.Run) bool { return r.Cause.Decision != "" })
	if rebuilt.State == api.StateSkipped || rebuilt.Cause.Decision != "rebuilt: packages 2 changed" {
		t.Errorf("app's second run = %s, decision %q; want rebuilt: packages 2 changed", rebuilt.State, rebuilt.Cause.Decision)
	}
	out := run("bases", "diff", ref)
	raw, _, _ := cli(t, bin, apiAddr, token, "", "bases", "diff", ref)
	t.Logf("refit bases diff %s:\n%s", ref, raw)
	raw, _, _ = cli(t, bin, apiAddr, token, "", "explain", "app")
	t.Logf("refit explain app:\n%s", raw)
	var changed []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "changed") || strings.HasPrefix(l, "added") || strings.HasPrefix(l, "removed") {
			changed = append(changed, l)
		}
	}
	if want := []string{"changed libssl3 (amd64) 3.0.11-1~deb12u2 → 3.0.13-1~deb12u1", "changed openssl (amd64) 3.0.11-1~deb12u2 → 3.0.13-1~deb12u1"}; !slices.Equal(changed, want) {
		t.Errorf("refit bases diff shows %q, want exactly %q\n%s", changed, want, out)
	}
	var vulns []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "fixes") || strings.HasPrefix(l, "introduces") || strings.HasPrefix(l, "unchecked") {
			vulns = append(vulns, l)
		}
	}
	// The fixture: 0727 (high) fixed in 3.0.13-1~deb12u1, 9143 affects
	// only that version; 2511 is fixed later and 5678 earlier (neither
	// changes), curl is not in the image.
	if want := []string{"fixes CVE-2024-0727 (high) in openssl", "introduces CVE-2024-9143 (unknown) in openssl"}; !slices.Equal(vulns, want) {
		t.Errorf("refit bases diff names vulnerabilities %q, want exactly %q\n%s", vulns, want, out)
	}
	// rebuildWhen: fixes — the motd move fixed nothing; the openssl move
	// fixes a high one, not a critical one.
	for _, c2 := range []struct {
		task     string
		n        int
		decision string
	}{
		{"high", 1, "base moved, not rebuilt: fixes no vulnerability at or above high"},
		{"critical", 1, "base moved, not rebuilt: fixes no vulnerability at or above critical"},
		{"high", 2, "rebuilt: fixes CVE-2024-0727 (high) in openssl"},
		{"critical", 2, "base moved, not rebuilt: fixes no vulnerability at or above critical"},
	} {
		r := waitRun(t, c, c2.task, c2.n, func(r api.Run) bool { return r.Cause.Decision != "" })
		if r.Cause.Decision != c2.decision || (r.State == api.StateSkipped) != strings.HasPrefix(c2.decision, "base moved") {
			t.Errorf("task %s's run %d = %s, decision %q; want %q", c2.task, c2.n, r.State, r.Cause.Decision, c2.decision)
		}
	}
	if out := run("bases", "diff", ref, first, third); !strings.Contains(out, "openssl (amd64) 3.0.11-1~deb12u2 → 3.0.13-1~deb12u1") {
		t.Errorf("refit bases diff REF OLD NEW:\n%s", out)
	}
	evs, err := c.ListEvents(context.Background(), api.EventFilter{Type: "base.diff"})
	if err != nil {
		t.Fatal(err)
	}
	var last struct {
		NewDigest string        `json:"newDigest"`
		Diff      api.ImageDiff `json:"diff"`
	}
	for _, e := range evs {
		if err := json.Unmarshal(e.Data, &last); err != nil {
			t.Fatal(err)
		}
		if last.NewDigest == third {
			break
		}
	}
	if last.NewDigest != third || len(last.Diff.Changed) != 2 || last.Diff.Changed[1].Name != "openssl" ||
		last.Diff.Vulns == nil || len(last.Diff.Vulns.Fixes) != 1 || last.Diff.Vulns.Fixes[0].ID != "CVE-2024-0727" ||
		len(last.Diff.Added)+len(last.Diff.Removed) != 0 {
		t.Errorf("base.diff event for %s = %+v, want libssl3 and openssl changed, fixing CVE-2024-0727", third, last)
	}

	// Any two images: Alpine-like ones.
	a := push("base/alpine:3.19", ct.Alpine("3.19.1", []ct.Pkg{ct.P("musl", "1.2.4_git20230717-r4", "x86_64"), ct.P("busybox", "1.36.1-r15", "x86_64")}))
	push("base/alpine:3.19", ct.Alpine("3.19.2", []ct.Pkg{ct.P("musl", "1.2.4_git20230717-r5", "x86_64"), ct.P("busybox", "1.36.1-r15", "x86_64"), ct.P("curl", "8.5.0-r0", "x86_64")}))
	out = run("image", "diff", reg+"/base/alpine@"+a, reg+"/base/alpine:3.19")
	for _, want := range []string{"os alpine 3.19.1 → alpine 3.19.2", "changed musl (x86_64) 1.2.4_git20230717-r4 → 1.2.4_git20230717-r5", "added curl (x86_64) 8.5.0-r0"} {
		if !strings.Contains(out, want) {
			t.Errorf("refit image diff lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "busybox") {
		t.Errorf("refit image diff shows the unchanged busybox:\n%s", out)
	}
	if out := run("image", "packages", reg+"/base/alpine:3.19"); !strings.Contains(out, "curl") || !strings.Contains(out, "alpine 3.19.2") {
		t.Errorf("refit image packages:\n%s", out)
	}
}

// waitRun waits for the task's nth run (1-based) to satisfy ok.
func waitRun(t *testing.T, c *client.Client, task string, n int, ok func(api.Run) bool) api.Run {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		runs, err := c.ListRuns(context.Background(), api.RunFilter{Task: task, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) >= n && ok(runs[len(runs)-n]) {
			return runs[len(runs)-n]
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s's run %d never got there: %+v", task, n, runs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
