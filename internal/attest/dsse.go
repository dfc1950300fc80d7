// Package attest owns refit's run attestation: the in-toto Statement that
// says why an image exists (run, cause chain with old → new base
// digests, commit, pinned bases; later the test result and approvals),
// its DSSE envelope signed with the server's ed25519 key, the parsers
// that read both back from untrusted bytes (size-limited), and the
// server's signing key file. It does not talk to registries (see
// Attach and Lookup, which take a registry client) nor decide anything
// about a run.
package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// Media and predicate types of refit's attestation.
const (
	// PredicateType names refit's run predicate.
	PredicateType = "https://refit.dev/attestation/run/v1"
	// StatementType is in-toto's Statement v1.
	StatementType = "https://in-toto.io/Statement/v1"
	// PayloadType is the DSSE payload type of an in-toto Statement.
	PayloadType = "application/vnd.in-toto+json"
	// EnvelopeMediaType is the media type of the DSSE envelope blob and
	// the artifactType of the OCI artifact holding it.
	EnvelopeMediaType = "application/vnd.dsse.envelope.v1+json"
)

// Limits on what is read back from a registry.
const (
	// MaxEnvelope bounds a DSSE envelope (and so the statement in it).
	MaxEnvelope = 1 << 20
	// maxSignatures bounds the signatures of one envelope.
	maxSignatures = 16
)

// Envelope is a DSSE envelope (https://github.com/secure-systems-lab/dsse).
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"` // standard base64
	Signatures  []Signature `json:"signatures"`
}

// Signature is one signature of an Envelope.
type Signature struct {
	KeyID string `json:"keyid,omitempty"`
	Sig   string `json:"sig"` // standard base64
}

// pae is DSSE's pre-authentication encoding of a payload.
func pae(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// Key is the server's signing key: ed25519, stored as PKCS#8 PEM.
type Key struct {
	priv ed25519.PrivateKey
	// ID is the key's fingerprint, "sha256:<hex of the public key's
	// PKIX DER>": the keyid of its signatures and refit's server id.
	ID string
}

// Public returns the key's public half.
func (k *Key) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// PrivateKey returns the key's private half, for the other records the
// server signs with its one signing key (the audit export's checkpoint).
func (k *Key) PrivateKey() ed25519.PrivateKey { return k.priv }

// PublicPEM returns the public key as a PKIX "PUBLIC KEY" PEM block:
// what `refit explain --public-key FILE` reads.
func (k *Key) PublicPEM() []byte {
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// KeyID returns the fingerprint of a public key, as Key.ID.
func KeyID(pub ed25519.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// LoadKey reads the signing key at path, creating it (mode 0600, its
// directory 0700) when it does not exist. The key signs attestations;
// it is never a key that seals data (regauth's secret.key is another
// file).
func LoadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return nil, fmt.Errorf("creating signing key %s: %w", path, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("creating signing key %s: %w", path, err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("creating signing key %s: %w", path, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) { // created meanwhile: read that one
			return LoadKey(path)
		}
		if err != nil {
			return nil, fmt.Errorf("creating signing key %s: %w", path, err)
		}
		if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
			f.Close()
			return nil, fmt.Errorf("writing signing key %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("writing signing key %s: %w", path, err)
		}
		return &Key{priv: priv, ID: KeyID(priv.Public().(ed25519.PublicKey))}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading signing key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: want a PKCS#8 \"PRIVATE KEY\" PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: %T, want an ed25519 key", path, k)
	}
	return &Key{priv: priv, ID: KeyID(priv.Public().(ed25519.PublicKey))}, nil
}

// ParsePublicKey reads an ed25519 public key from a PKIX "PUBLIC KEY"
// PEM block (Key.PublicPEM's output).
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("want a \"PUBLIC KEY\" PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, want ed25519", k)
	}
	return pub, nil
}

// Sign wraps payload (an in-toto Statement) in a DSSE envelope signed
// with k, and returns the envelope's JSON.
func (k *Key) Sign(payload []byte) []byte {
	sig := ed25519.Sign(k.priv, pae(PayloadType, payload))
	b, _ := json.Marshal(Envelope{
		PayloadType: PayloadType,
		Payload:     base64.StdEncoding.EncodeToString(payload),
		Signatures:  []Signature{{KeyID: k.ID, Sig: base64.StdEncoding.EncodeToString(sig)}},
	})
	return b
}

// ParseEnvelope decodes a DSSE envelope from untrusted bytes (at most
// MaxEnvelope) and returns it with its decoded payload. It checks the
// shape only; Verify checks signatures.
func ParseEnvelope(b []byte) (Envelope, []byte, error) {
	var e Envelope
	if len(b) > MaxEnvelope {
		return e, nil, fmt.Errorf("DSSE envelope of %d bytes is over the %d-byte limit", len(b), MaxEnvelope)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, nil, fmt.Errorf("decoding DSSE envelope: %w", err)
	}
	if e.PayloadType != PayloadType {
		return e, nil, fmt.Errorf("DSSE payload type %.64q, want %s", e.PayloadType, PayloadType)
	}
	if len(e.Signatures) > maxSignatures {
		return e, nil, fmt.Errorf("DSSE envelope has %d signatures, at most %d are read", len(e.Signatures), maxSignatures)
	}
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return e, nil, fmt.Errorf("decoding DSSE payload: %w", err)
	}
	return e, payload, nil
}

// Verify reports whether one of e's signatures over payload verifies
// with pub.
func Verify(e Envelope, payload []byte, pub ed25519.PublicKey) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	msg := pae(e.PayloadType, payload)
	for _, s := range e.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil || len(sig) != ed25519.SignatureSize {
			continue
		}
		if ed25519.Verify(pub, msg, sig) {
			return true
		}
	}
	return false
}
