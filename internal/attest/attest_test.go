package attest_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/attest"
)

func testKey(t *testing.T) *attest.Key {
	t.Helper()
	k, err := attest.LoadKey(filepath.Join(t.TempDir(), "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func samplePredicate() attest.Predicate {
	return attest.Predicate{
		Run:   attest.RunInfo{ID: "r-9", Task: "app"},
		Image: attest.Image{Repository: "127.0.0.1:5000/app", Digest: "sha256:" + strings.Repeat("1", 64), Platforms: []attest.Platform{{Platform: "linux/amd64", Digest: "sha256:" + strings.Repeat("2", 64)}}},
		Cause: []attest.CauseLink{
			{Kind: "cascade", Run: "r-9", Task: "app", UpstreamRun: "r-8"},
			{Kind: "base", Run: "r-7", Task: "base", Base: "127.0.0.1:5000/os:1", OldDigest: "sha256:aa", NewDigest: "sha256:bb", Via: "poll", ObservedAt: time.Unix(1e9, 0).UTC()},
		},
		AttestedAt: time.Unix(2e9, 0).UTC(),
	}
}

func TestKeyFileAndSignVerify(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "signing.key")
	k, err := attest.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", fi.Mode(), err)
	}
	again, err := attest.LoadKey(path)
	if err != nil || again.ID != k.ID {
		t.Fatalf("reloaded key %s (%v), want the same %s", again.ID, err, k.ID)
	}
	pub, err := attest.ParsePublicKey(k.PublicPEM())
	if err != nil || attest.KeyID(pub) != k.ID {
		t.Fatalf("public PEM: %v", err)
	}

	st := attest.NewStatement(samplePredicate())
	if len(st.Subject) != 2 {
		t.Fatalf("subjects %+v, want index and platform", st.Subject)
	}
	payload, _ := json.Marshal(st)
	envJSON := k.Sign(payload)
	env, got, err := attest.ParseEnvelope(envJSON)
	if err != nil || !attest.Verify(env, got, pub) {
		t.Fatalf("signed envelope does not verify: %v", err)
	}
	back, err := attest.ParseStatement(got)
	if err != nil || back.Predicate.Cause[1].OldDigest != "sha256:aa" || !back.Covers("sha256:"+strings.Repeat("2", 64)) {
		t.Fatalf("statement back: %+v %v", back, err)
	}
	// Another key does not verify it; nor does a changed payload.
	if attest.Verify(env, got, testKey(t).Public()) {
		t.Error("verified with another key")
	}
	tampered := strings.Replace(string(got), "sha256:bb", "sha256:cc", 1)
	env.Payload = base64.StdEncoding.EncodeToString([]byte(tampered))
	if attest.Verify(env, []byte(tampered), pub) {
		t.Error("a tampered payload verified")
	}
}

func TestParseRefusesHostileInput(t *testing.T) {
	for _, b := range []string{
		`{"payloadType":"text/plain","payload":"","signatures":[]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"!!","signatures":[]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"","signatures":[` + strings.Repeat(`{"sig":""},`, 20) + `{"sig":""}]}`,
		strings.Repeat(" ", attest.MaxEnvelope+1),
	} {
		if _, _, err := attest.ParseEnvelope([]byte(b)); err == nil {
			t.Errorf("ParseEnvelope(%.60q) accepted", b)
		}
	}
	for _, b := range []string{
		`{}`,
		`{"_type":"https://in-toto.io/Statement/v1","predicateType":"other","subject":[]}`,
		`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://refit.dev/attestation/run/v1","subject":[]}`,
		`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://refit.dev/attestation/run/v1","subject":[{"digest":{"sha256":"zz"}}],"predicate":{"run":{"id":"r-1"}}}`,
	} {
		if _, err := attest.ParseStatement([]byte(b)); err == nil {
			t.Errorf("ParseStatement(%.60q) accepted", b)
		}
	}
}

func FuzzParseEnvelopeAndStatement(f *testing.F) {
	k, err := attest.LoadKey(filepath.Join(f.TempDir(), "k"))
	if err != nil {
		f.Fatal(err)
	}
	payload, _ := json.Marshal(attest.NewStatement(samplePredicate()))
	f.Add(k.Sign(payload))
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"AA=="}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, p, err := attest.ParseEnvelope(b)
		if err != nil {
			return
		}
		if attest.Verify(env, p, k.Public()) && string(p) != string(payload) {
			t.Fatalf("a different payload verified: %q", p)
		}
		if st, err := attest.ParseStatement(p); err == nil {
			if len(st.Subject) == 0 || st.Predicate.Run.ID == "" {
				t.Fatalf("accepted statement without subject or run: %+v", st)
			}
		}
	})
}

func FuzzParseArtifactManifest(f *testing.F) {
	sub := "sha256:" + strings.Repeat("1", 64)
	f.Add([]byte(`{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.dsse.envelope.v1+json","digest":"sha256:` + strings.Repeat("3", 64) + `","size":10}],"subject":{"digest":"` + sub + `"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := attest.ParseArtifactManifest(b, sub); err == nil && len(b) > 64<<10 {
			t.Fatal("oversized manifest accepted")
		}
	})
}
