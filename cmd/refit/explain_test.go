package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/attest"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/registry"
)

// TestExplainImageOffline: with no refit server, `refit explain
// IMAGE@DIGEST --public-key FILE` tells the image's story from its
// attestation in the registry (the embedded one: tag schema fallback),
// marked verified; with a server whose database does not know the
// image, the server's key verifies it; with another key it is marked
// UNVERIFIED and the command fails.
func TestExplainImageOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary")
	}
	bin := refitBinary(t)
	ctx := context.Background()
	reg, err := registry.New(ctx, registry.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	repo := strings.TrimPrefix(srv.URL, "http://") + "/app"
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(repo + ":latest")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	// A refit server whose database has never heard of the image, but
	// whose key signed its attestation.
	data := t.TempDir()
	apiAddr := freePort(t)
	startProcess(t, bin, data, apiAddr, freePort(t))
	token := readToken(t, data)
	key, err := attest.LoadKey(filepath.Join(data, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	old, new := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	p := attest.Predicate{
		Run:    attest.RunInfo{ID: "r-9", Task: "app"},
		Server: attest.ServerInfo{ID: key.ID},
		Cause: []attest.CauseLink{
			{Kind: "cascade", Run: "r-9", Task: "app", UpstreamRun: "r-8", UpstreamTask: "base", UpstreamImage: "reg/base@" + new},
			{Kind: "base", Run: "r-8", Task: "base", Base: "reg/os:1", OldDigest: old, NewDigest: new, Via: "webhook", ObservedAt: time.Now()},
		},
		Image:      attest.Image{Repository: repo, Digest: d.String(), Tags: []string{"latest"}},
		AttestedAt: time.Now(),
	}
	if _, err := attest.Attach(ctx, regclient.New(regclient.Config{}), key, p); err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "refit.pub")
	os.WriteFile(pubFile, key.PublicPEM(), 0o644)

	noServer := freePort(t) // nothing listens
	out, stderr, err := cli(t, bin, noServer, "tok", "", "explain", repo+"@"+d.String(), "--public-key", pubFile)
	if err != nil {
		t.Fatalf("explain: %v\n%s\n%s", err, out, stderr)
	}
	for _, want := range []string{
		"the image's attestation (verified)",
		"r-9 (app) ← cascade of r-8 (base, pushed reg/base@" + new + ")",
		"r-8 (base) ← base update of reg/os:1 from " + old + " to " + new,
		"via webhook",
		"latest → this image",
		"tag schema fallback",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("refit explain:\n%s", out)
	out, _, err = cli(t, bin, noServer, "tok", "", "explain", repo+"@"+d.String(), "--public-key", pubFile, "-o", "json")
	var e api.ImageExplanation
	if err != nil || json.Unmarshal([]byte(out), &e) != nil || e.From != "attestation" || !e.Verified || e.Attestation.Cause[1].NewDigest != new {
		t.Errorf("explain -o json = %s (%v)", out, err)
	}

	// With the server: it knows no run that pushed the image (404), so
	// the CLI reads the attestation and verifies it with the server's key.
	out, stderr, err = cli(t, bin, apiAddr, token, "", "explain", repo+"@"+d.String())
	if err != nil || !strings.Contains(out, "the image's attestation (verified)") || !strings.Contains(out, "to "+new) {
		t.Errorf("explain with a server that does not know the image: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}

	// A later decision attaches a fuller statement beside the first: the
	// newest is the story, with its test result and approval.
	p.Test = &attest.TestResult{Result: "passed", Target: "test", At: time.Now()}
	p.Approvals = []attest.Approval{{User: "alice", Decision: "approved", Comment: "CVE-2026-1234", At: time.Now()}}
	p.AttestedAt = p.AttestedAt.Add(time.Minute)
	if _, err := attest.Attach(ctx, regclient.New(regclient.Config{}), key, p); err != nil {
		t.Fatal(err)
	}
	out, stderr, err = cli(t, bin, apiAddr, token, "", "explain", repo+"@"+d.String())
	if err != nil || !strings.Contains(out, "passed, target test") || !strings.Contains(out, `alice approved`) || !strings.Contains(out, `"CVE-2026-1234"`) {
		t.Errorf("explain after a test and an approval: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}

	other, _ := attest.LoadKey(filepath.Join(t.TempDir(), "other.key"))
	os.WriteFile(pubFile, other.PublicPEM(), 0o644)
	out, stderr, err = cli(t, bin, noServer, "tok", "", "explain", repo+"@"+d.String(), "--public-key", pubFile)
	if err == nil || !strings.Contains(out, "UNVERIFIED") || !strings.Contains(stderr, "does not verify") {
		t.Errorf("explain with another key: %v\nstdout: %s\nstderr: %s\nwant UNVERIFIED and a failure", err, out, stderr)
	}
}
