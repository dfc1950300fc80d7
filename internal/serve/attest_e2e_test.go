package serve_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	bkclient "github.com/moby/buildkit/client"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/attest"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/serve"
)

// TestExplainImageFromDatabaseAndAttestation: a base update rebuilds
// busybox → acme/base → acme/mid → app; `refit explain` of app's final
// image tells the base update that started it, with the old and new
// digests — from refit's database, from the image's attestation in the
// embedded registry (no referrers API: the sha256-<hex> tag fallback),
// and from a copy of image and attestation in a second registry that
// has the referrers API, where no database knows it. A tampered
// attestation is reported unverified; a registry that refuses the
// attestation fails no run.
func TestExplainImageFromDatabaseAndAttestation(t *testing.T) {
	r := startRefitWith(t, serve.Config{Debounce: time.Second, PollInterval: time.Hour})
	ctx := context.Background()
	reg := r.RegistryAddr
	osRef := reg + "/os/busybox:1"
	_, oldDigest := pushBase(t, osRef, "")

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"base/Dockerfile": "FROM " + osRef + "\nRUN echo acme > /etc/company\n",
		"mid/Dockerfile":  "FROM " + reg + "/acme/base:latest\nRUN echo mid > /mid\n",
		"app/Dockerfile":  "FROM " + reg + "/acme/mid:latest\nRUN echo app > /app\n",
	})
	for _, spec := range []api.TaskSpec{
		{Name: "base", Source: api.TaskSource{Dir: dir}, Context: "base", Image: "acme/base"},
		{Name: "mid", Source: api.TaskSource{Dir: dir}, Context: "mid", Image: "acme/mid"},
		{Name: "app", Source: api.TaskSource{Dir: dir}, Context: "app"},
	} {
		if _, err := r.c.CreateTask(ctx, spec); err != nil {
			t.Fatalf("creating %s: %v", spec.Name, err)
		}
	}
	if _, err := r.c.Run(ctx, "base"); err != nil {
		t.Fatal(err)
	}
	settle(t, r.c, 3)
	waitChecked(t, r.c, osRef, oldDigest)
	_, newDigest := pushBase(t, osRef, "p1")
	runs := settle(t, r.c, 6)
	b, m, a := lastOf(runs, "base"), lastOf(runs, "mid"), lastOf(runs, "app")
	for _, x := range []api.Run{b, m, a} {
		if x.State != api.StateSucceeded || runNum(x) <= 3 {
			t.Fatalf("wave run %s of %s: %s %s", x.ID, x.Task, x.State, x.Error)
		}
	}
	if !logHas(t, r.c, a.ID, "[refit] attach attestation to "+a.Image) || a.Timings["attest"] == "" {
		t.Errorf("app's run log has no attestation step (timings %v)", a.Timings)
	}
	t.Logf("app's run: build %s, attest %s, total %s", a.Timings["build"], a.Timings["attest"], a.Timings["total"])

	// checkStory holds a story to the wave: app ← mid ← base ← the update.
	checkStory := func(how string, e api.ImageExplanation) {
		t.Helper()
		at := e.Attestation
		if at.Run.ID != a.ID || at.Run.Task != "app" || at.Image.Digest != a.Digest || len(at.Bases) != 1 || at.Bases[0].Digest != m.Digest {
			t.Errorf("%s: run %+v image %+v bases %+v, want %s of app built on mid's %s", how, at.Run, at.Image, at.Bases, a.ID, m.Digest)
		}
		if len(at.Cause) != 3 {
			t.Fatalf("%s: cause chain %+v, want 3 links", how, at.Cause)
		}
		c0, c1, c2 := at.Cause[0], at.Cause[1], at.Cause[2]
		if c0.Kind != "cascade" || c0.Run != a.ID || c0.UpstreamRun != m.ID || c0.UpstreamImage != m.Image {
			t.Errorf("%s: first link %+v, want app's cascade of %s (%s)", how, c0, m.ID, m.Image)
		}
		if c1.Kind != "cascade" || c1.Run != m.ID || c1.UpstreamRun != b.ID {
			t.Errorf("%s: second link %+v, want mid's cascade of %s", how, c1, b.ID)
		}
		if c2.Kind != "base" || c2.Run != b.ID || c2.Base != osRef || c2.OldDigest != oldDigest || c2.NewDigest != newDigest || c2.ObservedAt.IsZero() || c2.Via != "push" {
			t.Errorf("%s: root %+v, want base update of %s %s → %s observed via push", how, c2, osRef, oldDigest, newDigest)
		}
		if at.Server.ID == "" {
			t.Errorf("%s: no server id", how)
		}
	}

	// From refit's database.
	e, err := r.c.ExplainImage(ctx, a.Image)
	if err != nil {
		t.Fatal(err)
	}
	if e.From != "database" {
		t.Errorf("from %q, want database", e.From)
	}
	checkStory("database", e)
	if len(e.TagsNow) != 1 || e.TagsNow[0].Tag != "latest" || !e.TagsNow[0].Here {
		t.Errorf("tags now = %+v, want latest pointing here", e.TagsNow)
	}
	key, err := r.c.SigningKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := attest.ParsePublicKey([]byte(key.PublicKey))
	if err != nil || key.KeyID != e.Attestation.Server.ID {
		t.Fatalf("signing key %+v (%v), want the server id %s", key, err, e.Attestation.Server.ID)
	}

	// From the attestation in the embedded registry (distribution: no
	// referrers API), by the index digest and by the platform's.
	rc := regclient.New(regclient.Config{})
	for _, ref := range []string{a.Image, reg + "/app@" + a.Platforms[0].Digest} {
		e, err := attest.FromRegistry(ctx, rc, ref, pub)
		if err != nil {
			t.Fatalf("attestation of %s: %v", ref, err)
		}
		if e.From != "attestation" || !e.Verified || e.Via != regclient.ViaTag {
			t.Errorf("attestation of %s: from %q verified %v via %q, want a verified one via the tag fallback", ref, e.From, e.Verified, e.Via)
		}
		checkStory("embedded registry", e)
	}
	// Attaching moved no tag: latest is still the image.
	if d, err := rc.Resolve(ctx, reg+"/app:latest"); err != nil || d != a.Digest {
		t.Errorf("app:latest = %s (%v), want %s", d, err, a.Digest)
	}

	// A copy in a second registry, with the referrers API, that no
	// refit database knows.
	other := httptest.NewServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)), ggcr.WithReferrersSupport(true)))
	defer other.Close()
	copyRef := strings.TrimPrefix(other.URL, "http://") + "/mirror/app"
	copyImage(t, rc, a.Image, copyRef+":latest", nil)
	ce, err := attest.FromRegistry(ctx, rc, copyRef+"@"+a.Digest, pub)
	if err != nil {
		t.Fatal(err)
	}
	if !ce.Verified || ce.Via != regclient.ViaAPI {
		t.Errorf("copy: verified %v via %q, want verified via the referrers API", ce.Verified, ce.Via)
	}
	checkStory("copy", ce)
	if len(ce.TagsNow) != 1 || !ce.TagsNow[0].Here {
		t.Errorf("copy's tags now = %+v, want latest here", ce.TagsNow)
	}
	// Another key does not verify it.
	if e, err := attest.FromRegistry(ctx, rc, copyRef+"@"+a.Digest, pubOf(t, e.Attestation.Server.ID)); err != nil || e.Verified || !strings.Contains(e.Verification, "does not verify") {
		t.Errorf("with another key: verified %v %q (%v), want unverified", e.Verified, e.Verification, err)
	}

	// A tampered copy: the base update's new digest rewritten, the
	// signature kept. It is reported unverified.
	forged := strings.TrimPrefix(other.URL, "http://") + "/forged/app"
	copyImage(t, rc, a.Image, forged+":latest", func(env []byte) []byte {
		var ev attest.Envelope
		if err := json.Unmarshal(env, &ev); err != nil {
			t.Fatal(err)
		}
		p, _ := base64.StdEncoding.DecodeString(ev.Payload)
		p = []byte(strings.ReplaceAll(string(p), newDigest, oldDigest))
		ev.Payload = base64.StdEncoding.EncodeToString(p)
		out, _ := json.Marshal(ev)
		return out
	})
	fe, err := attest.FromRegistry(ctx, rc, forged+"@"+a.Digest, pub)
	if err != nil {
		t.Fatal(err)
	}
	if fe.Verified || !strings.Contains(fe.Verification, "UNVERIFIED") {
		t.Errorf("tampered attestation: verified %v %q, want UNVERIFIED", fe.Verified, fe.Verification)
	}

	// A registry that refuses the attestation (the fallback tag) fails
	// no run: the image is pushed and tagged, the log warns.
	target, _ := url.Parse("http://" + reg)
	proxy := httputil.NewSingleHostReverseProxy(target)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, "/manifests/sha256-") {
			http.Error(w, `{"errors":[{"code":"DENIED","message":"no referrers here"}]}`, http.StatusForbidden)
			return
		}
		proxy.ServeHTTP(w, req)
	}))
	defer refusing.Close()
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "refused", Source: api.TaskSource{Dir: dir}, Context: "app",
		Image: strings.TrimPrefix(refusing.URL, "http://") + "/refused"}); err != nil {
		t.Fatal(err)
	}
	rr, err := r.c.Run(ctx, "refused")
	if err != nil {
		t.Fatal(err)
	}
	done := waitRun(t, r.c, rr.ID)
	if done.State != api.StateSucceeded || done.Digest == "" {
		t.Fatalf("run of a task whose registry refuses attestations: %s %s, want succeeded", done.State, done.Error)
	}
	if !logHas(t, r.c, done.ID, "warning: the image has no attestation") || !logNames(t, r.c, done.ID, "no referrers here") {
		t.Errorf("the run's log does not warn that the attestation was refused")
	}
}

// pubOf returns a fresh key's public half, other than the one named id.
func pubOf(t *testing.T, id string) []byte {
	t.Helper()
	k, err := attest.LoadKey(t.TempDir() + "/other.key")
	if err != nil || k.ID == id {
		t.Fatal("no other key", err)
	}
	return k.Public()
}

// copyImage copies the image src (repo@digest) to dst (repo:tag) and its
// attestations after it, each envelope passed through edit when given.
func copyImage(t *testing.T, rc *regclient.Client, src, dst string, edit func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	sref, err := name.ParseReference(src, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	dref, err := name.ParseReference(dst, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(sref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(dref, idx); err != nil {
		t.Fatal(err)
	}
	srcRepo, digest, _ := attest.SplitRef(src)
	dstRepo := dref.Context().Name()
	raw, _ := idx.RawManifest()
	mt, _ := idx.MediaType()
	list, _, err := rc.Referrers(ctx, srcRepo, digest)
	if err != nil || len(list) == 0 {
		t.Fatalf("referrers of %s: %v %v", src, list, err)
	}
	for _, d := range list {
		m, _, err := rc.FetchManifest(ctx, srcRepo, d.Digest, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		layer, err := attest.ParseArtifactManifest(m, digest)
		if err != nil {
			t.Fatal(err)
		}
		env, err := rc.FetchBlob(ctx, srcRepo, layer, attest.MaxEnvelope)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			env = edit(env)
		}
		_, _, err = rc.PushReferrer(ctx, dstRepo, regclient.Descriptor{MediaType: string(mt), Digest: digest, Size: int64(len(raw))},
			regclient.Artifact{ArtifactType: d.ArtifactType, Blob: env, BlobMediaType: attest.EnvelopeMediaType, Annotations: d.Annotations})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// logHas reports whether run id's log has text in a step's name, error
// or output.
func logHas(t *testing.T, c *client.Client, id, text string) bool {
	t.Helper()
	found := false
	err := c.Logs(context.Background(), id, false, func(ch api.LogChunk) error {
		var s bkclient.SolveStatus
		if json.Unmarshal(ch.Data, &s) == nil {
			for _, v := range s.Vertexes {
				found = found || strings.Contains(v.Name, text) || strings.Contains(v.Error, text)
			}
			for _, l := range s.Logs {
				found = found || strings.Contains(string(l.Data), text)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("reading the log of %s: %v", id, err)
	}
	return found
}
