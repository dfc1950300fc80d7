package api

import "time"

// ImageExplanation is GET /api/v1/images/explain?ref=IMAGE@DIGEST (and
// what `refit explain IMAGE@DIGEST` prints): why an image exists.
type ImageExplanation struct {
	// Image is the reference asked about (repository@digest).
	Image string `json:"image"`
	// From is where the story comes from: "database" (refit's runs) or
	// "attestation" (the image's attestation in the registry).
	From string `json:"from"`
	// Verified: an attestation's signature verified with the server's
	// public key (always false from the database, which needs none).
	Verified bool `json:"verified"`
	// Verification says how the attestation was checked, or why not.
	Verification string `json:"verification,omitempty"`
	// Via is how the registry listed the attestation (referrers API or
	// tag schema fallback); Artifact its manifest digest.
	Via      string `json:"via,omitempty"`
	Artifact string `json:"artifact,omitempty"`
	// Attestation is the story: refit's run predicate.
	Attestation RunAttestation `json:"attestation"`
	// TagsNow says which of the image's tags point at it now.
	TagsNow []TagNow `json:"tagsNow,omitempty"`
	// OtherRuns are other runs that pushed the same digest (a
	// reproducible rebuild), newest first.
	OtherRuns []string `json:"otherRuns,omitempty"`
}

// TagNow is what one of an image's tags points to now.
type TagNow struct {
	Tag    string `json:"tag"`
	Digest string `json:"digest,omitempty"`
	// Here: the tag points at the image explained.
	Here  bool   `json:"here"`
	Error string `json:"error,omitempty"`
}

// RunAttestation is refit's run predicate
// (https://refit.dev/attestation/run/v1), as attached to every image.
type RunAttestation struct {
	Run        AttestedRun    `json:"run"`
	Server     AttestedServer `json:"server"`
	Source     AttestedSource `json:"source"`
	Cause      []CauseLink    `json:"cause"`
	Bases      []AttestedBase `json:"bases"`
	Image      AttestedImage  `json:"image"`
	Test       *TestResult    `json:"test,omitempty"`
	Approvals  []Approval     `json:"approvals,omitempty"`
	AttestedAt time.Time      `json:"attestedAt"`
}

// AttestedRun names the run that built an image.
type AttestedRun struct {
	ID         string    `json:"id"`
	Task       string    `json:"task"`
	State      string    `json:"state,omitempty"`
	CreatedAt  time.Time `json:"createdAt,omitzero"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// AttestedServer is the refit server that built an image: its signing
// key's fingerprint.
type AttestedServer struct {
	ID string `json:"id"`
}

// AttestedSource is what an image was built from.
type AttestedSource struct {
	Repo string `json:"repo,omitempty"`
	Ref  string `json:"ref,omitempty"`
	SHA  string `json:"sha,omitempty"`
	Dir  string `json:"dir,omitempty"`
}

// CauseLink is one step of a cause chain: the run's own cause first,
// then each upstream run's, down to the root.
type CauseLink struct {
	Kind          string    `json:"kind"`
	Run           string    `json:"run,omitempty"`
	Task          string    `json:"task,omitempty"`
	UpstreamRun   string    `json:"upstreamRun,omitempty"`
	UpstreamTask  string    `json:"upstreamTask,omitempty"`
	UpstreamImage string    `json:"upstreamImage,omitempty"`
	Base          string    `json:"base,omitempty"`
	Platform      string    `json:"platform,omitempty"`
	OldDigest     string    `json:"oldDigest,omitempty"`
	NewDigest     string    `json:"newDigest,omitempty"`
	ObservedAt    time.Time `json:"observedAt,omitzero"`
	Via           string    `json:"via,omitempty"`
	Repo          string    `json:"repo,omitempty"`
	Ref           string    `json:"ref,omitempty"`
	SHA           string    `json:"sha,omitempty"`
	Author        string    `json:"author,omitempty"`
	User          string    `json:"user,omitempty"`
	Schedule      string    `json:"schedule,omitempty"`
}

// AttestedBase is a base image pinned into a build.
type AttestedBase struct {
	Ref    string `json:"ref"`
	Stage  string `json:"stage,omitempty"`
	Role   string `json:"role,omitempty"`
	Digest string `json:"digest"`
}

// AttestedImage is what a run pushed.
type AttestedImage struct {
	Repository string           `json:"repository"`
	Digest     string           `json:"digest"`
	Platforms  []PlatformDigest `json:"platforms,omitempty"`
	Tags       []string         `json:"tags,omitempty"`
}

// TestResult is a run's test outcome.
type TestResult struct {
	Result   string    `json:"result"`
	Target   string    `json:"target,omitempty"`
	Command  []string  `json:"command,omitempty"`
	ExitCode int       `json:"exitCode,omitempty"`
	At       time.Time `json:"at,omitzero"`
}

// Approval is one decision on a run.
type Approval struct {
	User     string    `json:"user"`
	Decision string    `json:"decision"`
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}

// SigningKey is GET /api/v1/signing-key: the public half of the key
// refit signs attestations with.
type SigningKey struct {
	// KeyID is the key's fingerprint ("sha256:…"): the server id in
	// attestations and the keyid of their signatures.
	KeyID     string `json:"keyId"`
	Algorithm string `json:"algorithm"` // "ed25519"
	// PublicKey is a PKIX "PUBLIC KEY" PEM block (for --public-key).
	PublicKey string `json:"publicKey"`
}
