package serve_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/attest"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/serve"
	"github.com/refit-dev/refit/internal/store"
)

// gatedDockerfile has a test stage that passes while app.txt says ok.
const gatedDockerfile = `ARG BASE
FROM ${BASE} AS build
COPY app.txt /app.txt

FROM ${BASE} AS test
COPY --from=build /app.txt /t
RUN grep -q ok /t

FROM ${BASE}
COPY --from=build /app.txt /app.txt
`

// tagDigest reads what repo:tag points to in the registry ("" if none).
func tagDigest(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		if strings.Contains(err.Error(), "404") || strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
			return ""
		}
		t.Fatalf("reading %s: %v", ref, err)
	}
	return d.Digest.String()
}

func eventsOf(t *testing.T, c *client.Client, typ string) []api.Event {
	t.Helper()
	evs, err := c.ListEvents(context.Background(), api.EventFilter{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestTestApprovePromote is the gated path end to end, with real
// BuildKit, the embedded registry and the real store: a manual run
// builds, passes its test target and command, and awaits approval; its
// user's approval is refused, another user's promotes: stable points at
// the run's digest in the registry. A base update rebuilds and waits; a
// newer run supersedes it; approving the superseded run is refused; the
// newer one is approved and stable moves; a rollback moves it back. A
// failing test target never moves stable (failed at step test with the
// exit code), nor does a test command that exits 3.
func TestTestApprovePromote(t *testing.T) {
	data := t.TempDir()
	dbCfg := store.Config{Path: filepath.Join(data, "refit.db")}
	if pgtest.Wanted() {
		dbCfg = store.Config{URL: pgtest.URL(t)}
	}
	r := startRefitWith(t, serve.Config{DataDir: data, DatabaseURL: dbCfg.URL, Debounce: -1})
	ctx := context.Background()
	st, err := store.Open(ctx, dbCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bobToken, err := st.NewToken(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob := client.New(r.APIURL, bobToken)

	baseRef := r.RegistryAddr + "/base/busybox:1"
	pushBase(t, baseRef, "")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": gatedDockerfile, "app.txt": "ok v1\n"})
	_, err = r.c.CreateTask(ctx, api.TaskSpec{
		Name: "app", Source: api.TaskSource{Dir: dir}, BuildArgs: map[string]string{"BASE": baseRef},
		Test:    &api.TaskTest{Target: "test", Command: []string{"sh", "-c", "grep ok /app.txt"}},
		Promote: &api.Promote{Tags: []string{"stable"}, Policy: "approval"},
	})
	if err != nil {
		t.Fatal(err)
	}
	stable := r.RegistryAddr + "/app:stable"

	// 1. A manual run by admin: built, tested, awaiting approval.
	q1, err := r.c.Run(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, r.c, q1.ID, api.StateAwaitingApproval)
	r1, _ := r.c.GetRun(ctx, q1.ID)
	if r1.Digest == "" || r1.Timings["test"] == "" {
		t.Fatalf("awaiting run %+v: want its digest and test timing", r1)
	}
	if d := tagDigest(t, stable); d != "" {
		t.Fatalf("stable exists (%s) before any approval", d)
	}
	if d := tagDigest(t, r1.Image); d != r1.Digest {
		t.Errorf("the run's image is not pushed by digest: %s → %q", r1.Image, d)
	}
	var sawTest bool
	r.c.Logs(ctx, r1.ID, false, func(c api.LogChunk) error {
		sawTest = sawTest || strings.Contains(string(c.Data), "grep -q ok /t")
		return nil
	})
	if !sawTest {
		t.Error("the run's log lacks the test stage's RUN step")
	}
	if _, err := r.c.Approve(ctx, r1.ID, "mine"); err == nil || !strings.Contains(err.Error(), "admin caused run "+r1.ID) {
		t.Errorf("admin approving the run admin started: %v, want a separation-of-duties refusal", err)
	}
	if _, err := bob.Approve(ctx, r1.ID, "CVE-2026-1234"); err != nil {
		t.Fatal(err)
	}
	waitState(t, r.c, r1.ID, api.StateSucceeded)
	if d := tagDigest(t, stable); d != r1.Digest {
		t.Fatalf("stable → %s after approval, want %s", d, r1.Digest)
	}
	// The image's own record, read from the registry and verified, says
	// its test passed, who approved it and with what comment, and that
	// stable points at it.
	done1, err := r.c.GetRun(ctx, r1.ID)
	if err != nil {
		t.Fatal(err)
	}
	key, err := r.c.SigningKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := attest.ParsePublicKey([]byte(key.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	// (The promotion's statement is attached just after the run is
	// recorded succeeded.)
	var story api.ImageExplanation
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if story, err = attest.FromRegistry(ctx, regclient.New(regclient.Config{}), done1.Image, pub); err != nil {
			t.Fatalf("attestation of %s: %v", done1.Image, err)
		}
		if story.Attestation.Run.State == string(api.StateSucceeded) || time.Now().After(deadline) {
			break
		}
	}
	at := story.Attestation
	if !story.Verified || at.Test == nil || at.Test.Result != "passed" || len(at.Approvals) != 1 || at.Approvals[0].User != "bob" ||
		at.Approvals[0].Comment != "CVE-2026-1234" || !slices.Contains(at.Image.Tags, "stable") || at.Run.State != string(api.StateSucceeded) {
		t.Errorf("attestation of %s (verified %v) = test %+v, approvals %+v, tags %v, state %s; want passed, bob's approval, stable, succeeded",
			done1.Image, story.Verified, at.Test, at.Approvals, at.Image.Tags, at.Run.State)
	}

	// 2. A base update rebuilds and waits; a newer run supersedes it.
	pushBase(t, baseRef, "p1")
	r2 := waitNewRun(t, r.c, "app", r1.ID)
	if r2.Cause.Kind != "base" {
		t.Errorf("run after the base update: cause %+v, want base", r2.Cause)
	}
	waitState(t, r.c, r2.ID, api.StateAwaitingApproval)
	q3, err := r.c.Run(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, r.c, q3.ID, api.StateAwaitingApproval)
	if r2, _ = r.c.GetRun(ctx, r2.ID); r2.State != api.StateSuperseded || r2.Digest == "" {
		t.Errorf("older awaiting run %s is %s (digest %q), want superseded after its push", r2.ID, r2.State, r2.Digest)
	}
	if _, err := bob.Approve(ctx, r2.ID, ""); err == nil || !strings.Contains(err.Error(), "superseded by "+q3.ID) {
		t.Errorf("approving the superseded run: %v, want a refusal naming %s", err, q3.ID)
	}
	if _, err := bob.Approve(ctx, q3.ID, ""); err != nil {
		t.Fatal(err)
	}
	waitState(t, r.c, q3.ID, api.StateSucceeded)
	r3, _ := r.c.GetRun(ctx, q3.ID)
	if d := tagDigest(t, stable); d != r3.Digest || r3.Digest == r1.Digest {
		t.Fatalf("stable → %s, want the new run's %s (≠ %s)", d, r3.Digest, r1.Digest)
	}

	// 3. Rollback.
	if _, err := r.c.Promote(ctx, "app", r2.Digest); err == nil || !strings.Contains(err.Error(), "never promoted") {
		t.Errorf("rollback to a digest never promoted: %v", err)
	}
	ps, err := r.c.Promote(ctx, "app", r1.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].OldDigest != r3.Digest || ps[0].NewDigest != r1.Digest {
		t.Errorf("rollback = %+v, want stable %s → %s", ps, r3.Digest, r1.Digest)
	}
	if d := tagDigest(t, stable); d != r1.Digest {
		t.Errorf("stable → %s after rollback, want %s", d, r1.Digest)
	}
	if evs := eventsOf(t, r.c, "image.promoted"); len(evs) != 3 || !strings.Contains(string(evs[2].Data), r3.Digest) {
		t.Errorf("%d image.promoted events, want 3 (the last with the old digest %s)", len(evs), r3.Digest)
	}
	for _, typ := range []string{"run.testing", "run.awaiting_approval", "run.approved"} {
		if len(eventsOf(t, r.c, typ)) == 0 {
			t.Errorf("no %s event", typ)
		}
	}

	// 4. A failing test target never moves stable.
	writeFiles(t, dir, map[string]string{"app.txt": "bad\n"})
	q4, err := r.c.Run(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	r4 := waitRun(t, r.c, q4.ID)
	if r4.State != api.StateFailed || r4.Step != "test" || !strings.Contains(r4.Error, "exit code 1") || r4.Digest == "" {
		t.Errorf("failing test: %s at %s: %s (digest %q); want failed at test with exit code 1, pushed by digest", r4.State, r4.Step, r4.Error, r4.Digest)
	}
	if d := tagDigest(t, stable); d != r1.Digest {
		t.Errorf("stable → %s after a failed test, want %s", d, r1.Digest)
	}

	t.Logf("failed test target: %s", r4.Error)
	// 5. A test command that exits 3.
	cmdDir := t.TempDir()
	writeFiles(t, cmdDir, map[string]string{"Dockerfile": "FROM " + baseRef + "\nRUN echo built > /built\n"})
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "cmd", Source: api.TaskSource{Dir: cmdDir},
		Test:    &api.TaskTest{Command: []string{"sh", "-c", "echo selftest says no; exit 3"}},
		Promote: &api.Promote{Tags: []string{"stable"}}}); err != nil {
		t.Fatal(err)
	}
	q5, err := r.c.Run(ctx, "cmd")
	if err != nil {
		t.Fatal(err)
	}
	r5 := waitRun(t, r.c, q5.ID)
	if r5.State != api.StateFailed || r5.Step != "test" || !strings.Contains(r5.Error, "exit code 3") || !strings.Contains(r5.Error, "selftest says no") {
		t.Errorf("command exiting 3: %s at %s: %q; want failed at test, exit code 3 and its output", r5.State, r5.Step, r5.Error)
	}
	t.Logf("failed test command: %s", r5.Error)
	if d := tagDigest(t, r.RegistryAddr+"/cmd:stable"); d != "" {
		t.Errorf("cmd:stable → %s after a failed test, want no tag", d)
	}
}

// waitNewRun waits for a run of the task newer than after.
func waitNewRun(t *testing.T, c *client.Client, taskName, after string) api.Run {
	t.Helper()
	n, _ := api.ParseRunID(after)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		runs, err := c.ListRuns(context.Background(), api.RunFilter{Task: taskName, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) > 0 {
			if id, _ := api.ParseRunID(runs[0].ID); id > n {
				return runs[0]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no run of %s after %s", taskName, after)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
