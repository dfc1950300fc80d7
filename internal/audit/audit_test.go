package audit_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/audit"
)

// TestCanonical pins the canonical encoding README documents, so a
// change to it (which would break every stored chain) fails here.
func TestCanonical(t *testing.T) {
	e := audit.Entry{Seq: 1, Time: time.Date(2026, 5, 3, 10, 0, 0, 0, time.UTC), Actor: "alice", Action: "task.create",
		Subject: "api", Details: json.RawMessage(`{"a":1}`)}
	want := `refit-audit-v1,1:1,30:2026-05-03T10:00:00.000000000Z,5:alice,11:task.create,3:api,7:{"a":1},0:,`
	if got := string(audit.Canonical(e)); got != want {
		t.Errorf("Canonical = %s\nwant        %s", got, want)
	}
	// sha256 of the line above, as `printf '%s' '…' | sha256sum` gives it.
	if got := audit.Hash(e); got != "e5c1a726a37fcde8a9cd10bd6a5adb8b4a7c9906f92578f00007095aeb0a2c69" {
		t.Errorf("Hash = %s", got)
	}
}

// TestCheckpointBytes pins what a checkpoint's signature covers, as the
// package comment documents it, so signed exports keep verifying.
func TestCheckpointBytes(t *testing.T) {
	c := audit.Checkpoint{Seq: 12, Hash: "ab12", Time: time.Date(2026, 5, 3, 10, 0, 0, 7, time.UTC)}
	want := `refit-audit-checkpoint-v1,2:12,4:ab12,30:2026-05-03T10:00:00.000000007Z,`
	if got := string(c.SignedBytes()); got != want {
		t.Errorf("SignedBytes = %s\nwant          %s", got, want)
	}
}

func chain(n int) []audit.Entry {
	var es []audit.Entry
	prev := ""
	for i := 1; i <= n; i++ {
		e := audit.Entry{Seq: int64(i), Time: time.Unix(int64(1700000000+i), 5).UTC(), Actor: "system", Action: "run.queue",
			Subject: fmt.Sprint("t", i), Details: json.RawMessage(`{"run":"r-1"}`), PrevHash: prev}
		e.Hash = audit.Hash(e)
		prev = e.Hash
		es = append(es, e)
	}
	return es
}

func TestVerifier(t *testing.T) {
	run := func(es []audit.Entry) error {
		var v audit.Verifier
		for _, e := range es {
			if err := v.Add(e); err != nil {
				return err
			}
		}
		return nil
	}
	if err := run(chain(10)); err != nil {
		t.Fatalf("an intact chain: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func([]audit.Entry) []audit.Entry
		seq  int64
	}{
		{"altered subject", func(es []audit.Entry) []audit.Entry { es[3].Subject = "x"; return es }, 4},
		{"altered time", func(es []audit.Entry) []audit.Entry { es[6].Time = es[6].Time.Add(time.Nanosecond); return es }, 7},
		{"deleted", func(es []audit.Entry) []audit.Entry { return append(es[:4], es[5:]...) }, 5},
		{"first deleted", func(es []audit.Entry) []audit.Entry { return es[1:] }, 1},
		{"swapped seqs", func(es []audit.Entry) []audit.Entry {
			es[2].Seq, es[3].Seq = es[3].Seq, es[2].Seq
			es[2], es[3] = es[3], es[2]
			return es
		}, 3},
		{"rehashed", func(es []audit.Entry) []audit.Entry {
			es[5].Actor = "mallory"
			es[5].Hash = audit.Hash(es[5])
			return es
		}, 6},
		{"duplicated", func(es []audit.Entry) []audit.Entry { return append(es[:5], es[4:]...) }, 5},
	} {
		err := run(c.edit(chain(10)))
		var be *audit.BreakError
		if !errors.As(err, &be) || be.Seq != c.seq {
			t.Errorf("%s: %v, want broken at %d", c.name, err, c.seq)
		}
	}
}

func export(t testing.TB, n int) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	es := chain(n)
	for _, e := range es {
		enc.Encode(audit.Line{Entry: e})
	}
	cp := audit.Sign(testSigningKey("k"), es[n-1].Seq, es[n-1].Hash, time.Unix(1800000000, 0))
	enc.Encode(audit.Line{Checkpoint: &cp})
	return b.Bytes()
}

func TestReadExportLineLimit(t *testing.T) {
	file := export(t, 3)
	if _, err := audit.ReadExport(bytes.NewReader(file), nil, 0); err != nil {
		t.Fatalf("a valid export: %v", err)
	}
	long := append([]byte(`{"seq":1,"details":"`+strings.Repeat("x", 5000)+`"}`), '\n')
	if _, err := audit.ReadExport(bytes.NewReader(long), nil, 4096); err == nil || !strings.Contains(err.Error(), "longer than 4096 bytes") {
		t.Errorf("a line over the limit: %v", err)
	}
	if _, err := audit.ReadExport(strings.NewReader(""), nil, 0); err == nil {
		t.Error("an empty file verifies")
	}
}

// FuzzReadExport: whatever the file holds, the reader returns (no
// panic), and what it accepts is a chain ending at its checkpoint.
func FuzzReadExport(f *testing.F) {
	f.Add(export(f, 3))
	f.Add(export(f, 1))
	f.Add([]byte(`{"checkpoint":{"seq":0,"hash":"","time":"2026-01-01T00:00:00Z","publicKey":"ed25519:","signature":""}}`))
	f.Add([]byte("{\"seq\":1}\n{\"checkpoint\":null}\n"))
	f.Add([]byte(`{"seq":-1,"time":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := audit.ReadExport(bytes.NewReader(b), nil, 1<<16)
		if err != nil {
			return
		}
		if res.Checkpoint.Seq != res.Head.Seq || res.Checkpoint.Hash != res.Head.Hash || res.Entries != res.Head.Seq {
			t.Fatalf("accepted %+v", res)
		}
		if err := res.Checkpoint.VerifySignature(nil); err != nil {
			t.Fatalf("accepted a bad signature: %v", err)
		}
	})
}

// testSigningKey is a fixed ed25519 key named by s, standing in for the
// server's signing key.
func testSigningKey(s string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(s))
	return ed25519.NewKeyFromSeed(seed[:])
}

// TestParsePublicKeyPEM: --public-key takes the PEM block GET
// /api/v1/signing-key serves, as well as the ed25519:BASE64 form.
func TestParsePublicKeyPEM(t *testing.T) {
	pub := testSigningKey("pem").Public().(ed25519.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	for _, in := range []string{pemText, audit.PublicKeyString(pub)} {
		got, err := audit.ParsePublicKey(in)
		if err != nil || !got.Equal(pub) {
			t.Errorf("ParsePublicKey(%.30q) = %v, %v; want the key", in, got, err)
		}
	}
	if _, err := audit.ParsePublicKey(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))); err == nil || !strings.Contains(err.Error(), `"PRIVATE KEY"`) {
		t.Errorf("a PRIVATE KEY block: err = %v, want one naming the block type", err)
	}
}
