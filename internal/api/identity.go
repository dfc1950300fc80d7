package api

import (
	"encoding/json"
	"time"
)

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	User  string   `json:"user"`
	Roles []string `json:"roles"` // viewer, operator, approver, admin
}

// Token is an API token as GET /api/v1/tokens lists it: never its secret.
type Token struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
}

// NewToken answers POST /api/v1/tokens: the token and, this once, its
// secret.
type NewToken struct {
	Token
	Secret string `json:"secret"`
}

// RevokeResult answers DELETE /api/v1/tokens/{id}: the tokens revoked.
type RevokeResult struct {
	Revoked []Token `json:"revoked"`
}

// AuditEntry is one entry of the audit log (see internal/audit for how
// its hash is computed).
type AuditEntry struct {
	Seq      int64           `json:"seq"`
	Time     time.Time       `json:"time"`
	Actor    string          `json:"actor"`
	Action   string          `json:"action"`
	Subject  string          `json:"subject"`
	Details  json.RawMessage `json:"details"`
	PrevHash string          `json:"prevHash"`
	Hash     string          `json:"hash"`
}

// AuditBreak names the first broken entry of the audit log.
type AuditBreak struct {
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
}

// AuditVerification answers GET /api/v1/audit:verify: the server
// recomputed the chain from entry 1.
type AuditVerification struct {
	OK bool `json:"ok"`
	// Entries is how many entries verified (up to the break).
	Entries int64 `json:"entries"`
	// HeadSeq and HeadHash are the last verified entry: note them, and a
	// later verify that shows fewer entries or another hash at HeadSeq
	// shows the log was cut or rewritten.
	HeadSeq  int64  `json:"headSeq"`
	HeadHash string `json:"headHash"`
	// Broken is the first broken entry, when OK is false.
	Broken *AuditBreak `json:"broken,omitempty"`
	// PublicKey is the key the server signs export checkpoints with
	// ("ed25519:" + base64), for refit audit verify --file --public-key.
	PublicKey string `json:"publicKey,omitempty"`
}
