// Package audit is the audit log's chain: the entry, its canonical
// encoding and hash, verification of a sequence of entries, the signed
// checkpoint that closes an export, and the reader of an export file.
// It stores nothing (internal/store appends and reads entries) and
// imports nothing internal, so the server and the CLI's offline check
// share one definition of a valid chain.
//
// # Canonical encoding (v1)
//
// An entry's hash is the lowercase hex SHA-256 of
//
//	"refit-audit-v1," N(seq) N(time) N(actor) N(action) N(subject) N(details) N(prevHash)
//
// where N(x) is the netstring of x's UTF-8 bytes: its length in decimal,
// ":", the bytes, "," (so "alice" is "5:alice,"). seq is decimal without
// leading zeros; time is UTC with nine fraction digits
// ("2026-05-03T10:00:00.000000000Z"); details is the entry's JSON object
// exactly as stored and exported (compact); prevHash is the previous
// entry's hash, "" for entry 1. Entries are numbered from 1 without gaps.
//
// # Checkpoint
//
// An export ends with a checkpoint naming the last entry's seq and hash,
// signed with the server's Ed25519 key over
//
//	"refit-audit-checkpoint-v1," N(seq) N(hash) N(time)
//
// (time is when it was signed, in the format above). With the server's
// public key, anyone can check offline that an export is whole (nothing
// cut from its end) and unaltered.
package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TimeFormat is how an entry's time is written into its hash.
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// Entry is one record of the audit log.
type Entry struct {
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"` // a user, or "system"
	Action  string    `json:"action"`
	Subject string    `json:"subject"`
	// Details is a JSON object (secrets redacted): old and new values of
	// a change, a run's cause, digests.
	Details  json.RawMessage `json:"details"`
	PrevHash string          `json:"prevHash"`
	Hash     string          `json:"hash"`
}

func netstring[T ~string | ~[]byte](b []byte, s T) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	b = append(b, s...)
	return append(b, ',')
}

// Canonical returns the bytes an entry's hash covers (see the package
// comment). Hash is not among them.
func Canonical(e Entry) []byte {
	var n [32]byte
	b := make([]byte, 0, 128+len(e.Actor)+len(e.Action)+len(e.Subject)+len(e.Details)+len(e.PrevHash))
	b = append(b, "refit-audit-v1,"...)
	b = netstring(b, strconv.AppendInt(n[:0], e.Seq, 10))
	b = netstring(b, e.Time.UTC().AppendFormat(n[:0], TimeFormat))
	b = netstring(b, e.Actor)
	b = netstring(b, e.Action)
	b = netstring(b, e.Subject)
	b = netstring(b, e.Details)
	return netstring(b, e.PrevHash)
}

// Hash returns the entry's hash: hex SHA-256 of Canonical(e).
func Hash(e Entry) string {
	h := sha256.Sum256(Canonical(e))
	return hex.EncodeToString(h[:])
}

// BreakError names the first entry where a chain is broken.
type BreakError struct {
	Seq    int64  // the first entry that is altered, missing or out of place
	Reason string // what is wrong with it
}

func (e *BreakError) Error() string {
	return fmt.Sprintf("audit log broken at entry %d: %s", e.Seq, e.Reason)
}

// Verifier checks entries one at a time, in the order they are read.
// The zero value expects entry 1.
type Verifier struct {
	n    int64 // entries accepted
	head Entry // the last accepted entry
	prev Entry // the one before it
}

// Add checks e against the entries before it: its seq is the next one,
// its prevHash is the previous entry's hash, and its hash is its own. The
// first failure is a *BreakError naming the first broken entry.
func (v *Verifier) Add(e Entry) error {
	want := v.n + 1
	switch {
	case e.Seq < want:
		return &BreakError{e.Seq, fmt.Sprintf("out of order: it comes after entry %d", v.head.Seq)}
	case e.Seq == want+1:
		return &BreakError{want, "missing: deleted, or moved elsewhere"}
	case e.Seq > want:
		return &BreakError{want, fmt.Sprintf("missing, with the entries up to %d: deleted, or moved elsewhere", e.Seq-1)}
	}
	if Hash(e) != e.Hash {
		return &BreakError{e.Seq, "its content does not match its hash (altered, or moved from another position)"}
	}
	if e.PrevHash != v.head.Hash {
		if v.n == 0 {
			return &BreakError{e.Seq, "it names a predecessor, but the log starts here"}
		}
		// The previous entry hashes right but is not the one its
		// successor followed: it was rewritten and rehashed. It is the
		// first broken entry; take it back.
		broken := v.head.Seq
		v.n, v.head = v.n-1, v.prev
		return &BreakError{broken, fmt.Sprintf("replaced: entry %d records another hash for it (rewritten and rehashed)", e.Seq)}
	}
	v.n, v.prev, v.head = e.Seq, v.head, e
	return nil
}

// Count returns how many entries were accepted.
func (v *Verifier) Count() int64 { return v.n }

// Head returns the last accepted entry (zero when none was).
func (v *Verifier) Head() Entry { return v.head }

// Checkpoint closes an export: the last entry's seq and hash, signed.
type Checkpoint struct {
	Seq  int64     `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
	// PublicKey is the signer's Ed25519 public key, "ed25519:" + base64.
	// Compare it with the key you trust (refit audit verify --public-key).
	PublicKey string `json:"publicKey"`
	// Signature is base64 of the Ed25519 signature over SignedBytes.
	Signature string `json:"signature"`
}

// SignedBytes returns what a checkpoint's signature covers.
func (c Checkpoint) SignedBytes() []byte {
	b := []byte("refit-audit-checkpoint-v1,")
	b = netstring(b, strconv.FormatInt(c.Seq, 10))
	b = netstring(b, c.Hash)
	return netstring(b, c.Time.UTC().Format(TimeFormat))
}

// Sign returns the checkpoint for head (seq and hash; zero for an empty
// log) signed by key at now.
func Sign(key ed25519.PrivateKey, seq int64, hash string, now time.Time) Checkpoint {
	c := Checkpoint{Seq: seq, Hash: hash, Time: now.UTC().Truncate(time.Nanosecond), PublicKey: PublicKeyString(key.Public().(ed25519.PublicKey))}
	c.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, c.SignedBytes()))
	return c
}

// PublicKeyString renders a public key as a checkpoint carries it.
func PublicKeyString(pub ed25519.PublicKey) string {
	return "ed25519:" + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads a key as PublicKeyString writes it (the
// "ed25519:" prefix may be left out), or as a PKIX "PUBLIC KEY" PEM
// block (what GET /api/v1/signing-key serves).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode([]byte(s)); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("public key: a %q PEM block, want \"PUBLIC KEY\"", blk.Type)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is %T, want ed25519", k)
		}
		return pub, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "ed25519:"))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %.80q: want ed25519: and the base64 of 32 bytes", s)
	}
	return ed25519.PublicKey(raw), nil
}

// VerifySignature checks the checkpoint's signature with its own public
// key, and that this key is trusted when trusted is not nil.
func (c Checkpoint) VerifySignature(trusted ed25519.PublicKey) error {
	pub, err := ParsePublicKey(c.PublicKey)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if trusted != nil && !pub.Equal(trusted) {
		return fmt.Errorf("checkpoint is signed by %s, not by the trusted key %s", c.PublicKey, PublicKeyString(trusted))
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || !ed25519.Verify(pub, c.SignedBytes(), sig) {
		return fmt.Errorf("checkpoint signature does not verify with %s (the checkpoint or the key was changed)", c.PublicKey)
	}
	return nil
}
