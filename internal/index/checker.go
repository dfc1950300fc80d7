// Package index owns what refit knows about base image references: which
// digest a tag points to now (Checker), watching them for changes
// (Watcher), and hints from pushes and webhooks (Watcher.Hint). It hands
// each successful check on as one Observation to an Observer it declares
// (internal/lifecycle commits it with the runs it causes). It does not
// build or plan.
package index

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/refit-dev/refit/internal/backoff"
	"github.com/refit-dev/refit/internal/redact"
)

const (
	ckDefaultPerRegistry = 4
	ckDefaultTimeout     = 20 * time.Second
	ckBackoffBase        = 10 * time.Second
	ckBackoffCap         = 30 * time.Minute
	ckBackoffJitter      = 0.2
	// ckMaxRetryAfter bounds what a registry's Retry-After can ask for,
	// so a garbage header cannot park a reference for months.
	ckMaxRetryAfter = 24 * time.Hour
	// ckPullerTTL is how long a registry's authenticated session (ping
	// result, credentials from the keychain, bearer tokens) is reused
	// before it is built afresh.
	ckPullerTTL = time.Hour
	ckUserAgent = "refit"

	// ckMaxManifest bounds a manifest fetched without a digest to check
	// it against (distribution refuses manifests over 4 MiB too).
	ckMaxManifest = 4 << 20

	ckAttestationAnnotation = "vnd.docker.reference.type"
	ckAttestationManifest   = "attestation-manifest"
)

// PlatformDigest is one platform's manifest in an index.
type PlatformDigest struct {
	Platform string `json:"platform"` // "linux/amd64", "linux/arm/v7"; "" when unknown
	Digest   string `json:"digest"`
}

// CheckResult is what one check of a reference found.
type CheckResult struct {
	// Digest is the top-level digest the tag points to (index or manifest).
	Digest string
	// MediaType is the top-level manifest's media type.
	MediaType string
	// Platforms lists, for an index, each platform's manifest digest,
	// sorted by platform (attestation manifests and unknown/unknown
	// entries excluded; an entry without a platform has Platform "").
	// For a single image manifest it holds one entry: the image config's
	// os/arch[/variant] and the manifest's digest. Entries of one index
	// sharing os/arch/variant (Windows images of several OS versions) get
	// ":<os.version>" appended to tell them apart.
	Platforms []PlatformDigest
	// Requests is the number of HTTP requests this check made (ping,
	// token, HEAD, GET), counting failed attempts (such as the HTTPS
	// probe go-containerregistry's ping makes before plain HTTP to
	// loopback and insecure hosts) — for benchmarks.
	Requests int
}

// RegistryError is a failed check, with what the registry said.
type RegistryError struct {
	Ref string
	// Status is the registry's HTTP status; 0 for network errors and
	// timeouts.
	Status int
	// RetryAfter is what a 429 or 503 answer's Retry-After header asked
	// for (seconds or HTTP date); 0 if none.
	RetryAfter time.Duration
	Err        error
}

// Error returns e.g. "checking docker.io/library/debian:12: 429 Too Many
// Requests (retry after 30s): ...". Authorization header values, URL user
// info and token query parameters are redacted, so the text never carries
// credentials even if a registry echoes them.
func (e *RegistryError) Error() string {
	var b strings.Builder
	b.WriteString("checking ")
	b.WriteString(e.Ref)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return redact.Text(b.String())
}

// Unwrap returns the underlying error.
func (e *RegistryError) Unwrap() error { return e.Err }

// CheckerConfig configures a Checker. The zero value is usable.
type CheckerConfig struct {
	// Keychain for credentials; nil = authn.DefaultKeychain (Docker config
	// + credential helpers).
	Keychain authn.Keychain
	// Transport; nil = a clone of http.DefaultTransport.
	Transport http.RoundTripper
	// Insecure lists registry hosts (host[:port]) reached over plain HTTP
	// (loopback always is, as go-containerregistry does).
	Insecure []string
	// PerRegistry bounds concurrent checks, and so concurrent requests,
	// to one registry host. Default 4.
	PerRegistry int
	// Timeout bounds one check: waiting for a slot and all its requests.
	// Default 20s.
	Timeout time.Duration
}

// Checker looks up what image references point to, with as few requests
// as possible: one HEAD when nothing changed. It keeps an authenticated
// session per registry (so a check does not ping the registry or fetch a
// token again each time) and never retries on its own: failures surface
// as *RegistryError for the caller to back off (see Backoff). A Checker is
// safe for concurrent use.
type Checker struct {
	keychain    authn.Keychain
	transport   http.RoundTripper
	insecure    map[string]bool
	perRegistry int
	timeout     time.Duration

	mu    sync.Mutex
	hosts map[string]*ckHost
}

// ckHost is the Checker's state for one registry host.
type ckHost struct {
	sem chan struct{} // one token per check in flight

	// Guarded by Checker.mu.
	puller    *remote.Puller
	pullerAt  time.Time
	remaining int
	rateSeen  bool
}

// NewChecker returns a Checker configured by cfg, defaults filled in.
func NewChecker(cfg CheckerConfig) *Checker {
	c := &Checker{
		keychain:    cfg.Keychain,
		transport:   cfg.Transport,
		insecure:    map[string]bool{},
		perRegistry: cfg.PerRegistry,
		timeout:     cfg.Timeout,
		hosts:       map[string]*ckHost{},
	}
	if c.keychain == nil {
		c.keychain = authn.DefaultKeychain
	}
	if c.transport == nil {
		if t, ok := http.DefaultTransport.(*http.Transport); ok {
			c.transport = t.Clone()
		} else {
			c.transport = http.DefaultTransport
		}
	}
	if c.perRegistry <= 0 {
		c.perRegistry = ckDefaultPerRegistry
	}
	// Keep a connection per allowed concurrent request to a registry
	// (the default keeps 2), so steady polling reuses connections.
	if t, ok := c.transport.(*http.Transport); ok && cfg.Transport == nil && t.MaxIdleConnsPerHost < c.perRegistry {
		t.MaxIdleConnsPerHost = c.perRegistry
	}
	if c.timeout <= 0 {
		c.timeout = ckDefaultTimeout
	}
	for _, h := range cfg.Insecure {
		c.insecure[h] = true
		c.insecure[ckHostKey(h)] = true
	}
	return c
}

// Check looks up what ref (a normalized "registry/repo:tag") points to.
// known is the last CheckResult stored for ref (zero value if none): when
// the HEAD's digest equals known.Digest, Check returns known's Platforms
// without any further request (exactly one request for an unchanged
// reference, once the registry session is set up). When the digest
// changed (or is unknown) and the manifest is an index, it GETs the index
// by digest (one more request) to fill Platforms; for a single manifest
// it GETs the manifest and the config blob to learn the platform. It
// falls back to GET when the registry's HEAD answer lacks the
// Docker-Content-Digest header, and then takes the digest only from a
// body that is a manifest (see ckGetUnverified): an empty or garbage
// answer is an error, never an observation. The first check of a repository also
// pings the registry (and fetches a token where it uses them); a bearer
// token expiring (Docker Hub's last 5 min) costs a 401 and a token request
// on the next check. Nothing is retried. Check waits for a
// slot of the registry's PerRegistry limit, and the whole check is bounded
// by the Timeout. Errors are *RegistryError; the CheckResult returned with
// an error carries only Requests.
func (c *Checker) Check(ctx context.Context, ref string, known CheckResult) (CheckResult, error) {
	r, err := c.parse(ref)
	if err != nil {
		return CheckResult{}, &RegistryError{Ref: ref, Err: err}
	}
	var res CheckResult
	st, err := c.session(ctx, ref, r, func(ctx context.Context, p *remote.Puller, st *ckState) error {
		res, err = c.check(ctx, p, r, known, st)
		return err
	})
	if err != nil {
		return CheckResult{Requests: int(st.requests.Load())}, err
	}
	res.Requests = int(st.requests.Load())
	return res, nil
}

// Resolve returns the digest ref (a normalized "registry/repo:tag")
// points to now: one HEAD on the registry's session (GET when the answer
// has no digest, verified as Check does), within the same per-registry
// limit and timeout as
// Check. A reference pinned by digest is returned without a request.
// Errors are *RegistryError.
func (c *Checker) Resolve(ctx context.Context, ref string) (string, error) {
	r, err := c.parse(ref)
	if err != nil {
		return "", &RegistryError{Ref: ref, Err: err}
	}
	if d, ok := r.(name.Digest); ok {
		return d.DigestStr(), nil
	}
	var digest string
	_, err = c.session(ctx, ref, r, func(ctx context.Context, p *remote.Puller, st *ckState) error {
		opts := []remote.Option{remote.Reuse(p), remote.WithContext(ctx)}
		desc, err := remote.Head(r, opts...)
		if err == nil {
			digest = desc.Digest.String()
			return nil
		}
		if !st.headAnswered() {
			return err
		}
		d, err := ckGetUnverified(r, st, opts)
		if err == nil {
			digest = d.Digest.String()
		}
		return err
	})
	return digest, err
}

// session runs fn with the registry's session for r, within a slot of
// the registry's PerRegistry limit and the Timeout; fn's requests are
// counted in the returned state. An error is a *RegistryError; after a
// 401 or 403 the session is dropped, so that credentials are resolved
// anew next time (they may have changed: a login).
func (c *Checker) session(ctx context.Context, ref string, r name.Reference,
	fn func(ctx context.Context, p *remote.Puller, st *ckState) error) (*ckState, error) {
	st := &ckState{}
	ctx = context.WithValue(ctx, ckStateKey{}, st)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	host := r.Context().RegistryStr()
	h := c.host(host)
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return st, &RegistryError{Ref: ref, Err: fmt.Errorf("waiting for a request slot for %s: %w", host, ctx.Err())}
	}
	defer func() { <-h.sem }()
	p, err := c.puller(host, h)
	if err != nil {
		return st, &RegistryError{Ref: ref, Err: err}
	}
	if err := fn(ctx, p, st); err != nil {
		rerr := c.registryError(ctx, ref, st, err)
		if rerr.Status == http.StatusUnauthorized || rerr.Status == http.StatusForbidden {
			c.dropPuller(h, p)
		}
		return st, rerr
	}
	return st, nil
}

// check does the requests of one Check.
func (c *Checker) check(ctx context.Context, p *remote.Puller, r name.Reference, known CheckResult, st *ckState) (CheckResult, error) {
	opts := []remote.Option{remote.Reuse(p), remote.WithContext(ctx)}
	desc, err := remote.Head(r, opts...)
	if err != nil {
		if !st.headAnswered() {
			return CheckResult{}, err
		}
		// The registry answered the HEAD but without a usable digest
		// (or Content-Type/Length): GET the manifest by tag instead.
		d, gerr := ckGetUnverified(r, st, opts)
		if gerr != nil {
			return CheckResult{}, gerr
		}
		if known.Digest != "" && d.Digest.String() == known.Digest {
			return ckUnchanged(known, d.MediaType), nil
		}
		return ckDescribe(d)
	}
	if known.Digest != "" && desc.Digest.String() == known.Digest {
		return ckUnchanged(known, desc.MediaType), nil
	}
	// By digest, so that the tag moving between HEAD and GET cannot mix
	// two manifests up.
	d, err := remote.Get(r.Context().Digest(desc.Digest.String()), opts...)
	if err != nil {
		return CheckResult{}, err
	}
	return ckDescribe(d)
}

// ckGetUnverified GETs the manifest r (a tag) points to when the
// registry's HEAD gave no digest, and makes sure what came back is a
// manifest before its digest is trusted: at most ckMaxManifest bytes of
// JSON with schemaVersion 2, of a known manifest or index media type
// (the body's mediaType, or else the Content-Type; the two must agree
// when both are given), whose digest is computed from the body and
// must equal the GET's Docker-Content-Digest when there is one. An
// empty or garbage answer is an error, never a digest.
func ckGetUnverified(r name.Reference, st *ckState, opts []remote.Option) (*remote.Descriptor, error) {
	d, err := remote.Get(r, opts...)
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("the registry answered the manifest HEAD without Docker-Content-Digest, and its GET is no manifest: "+format, args...)
	}
	if len(d.Manifest) > ckMaxManifest {
		return nil, bad("%d bytes, over the %d-byte limit", len(d.Manifest), ckMaxManifest)
	}
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
	}
	if len(bytes.TrimSpace(d.Manifest)) == 0 {
		return nil, bad("empty body")
	}
	if err := json.Unmarshal(d.Manifest, &probe); err != nil {
		return nil, bad("body is not a JSON object: %v", err)
	}
	if probe.SchemaVersion != 2 {
		return nil, bad("schemaVersion %d, want 2", probe.SchemaVersion)
	}
	ct := types.MediaType("")
	if v := strings.TrimSpace(string(d.MediaType)); v != "" {
		if parsed, _, err := mime.ParseMediaType(v); err == nil {
			ct = types.MediaType(parsed)
		} else {
			ct = types.MediaType(v)
		}
	}
	mt := cmp.Or(probe.MediaType, ct)
	if !ckKnownManifest(mt) {
		return nil, bad("media type %q is not an image manifest or index", mt)
	}
	if probe.MediaType != "" && ckKnownManifest(ct) && ct != probe.MediaType {
		return nil, bad("Content-Type %q but the body says mediaType %q", ct, probe.MediaType)
	}
	sum := sha256.Sum256(d.Manifest)
	digest := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if h := st.getDigestValue(); h != "" && h != digest.String() {
		return nil, bad("its Docker-Content-Digest %s does not match the body's digest %s", h, digest)
	}
	d.Digest, d.MediaType, d.Size = digest, mt, int64(len(d.Manifest))
	return d, nil
}

// ckKnownManifest reports whether mt is an image manifest or index
// media type (OCI or Docker schema 2).
func ckKnownManifest(mt types.MediaType) bool {
	switch mt {
	case types.OCIImageIndex, types.OCIManifestSchema1, types.DockerManifestList, types.DockerManifestSchema2:
		return true
	}
	return false
}

// ckUnchanged is known, seen again.
func ckUnchanged(known CheckResult, mt types.MediaType) CheckResult {
	return CheckResult{
		Digest:    known.Digest,
		MediaType: cmp.Or(string(mt), known.MediaType),
		Platforms: slices.Clone(known.Platforms),
	}
}

// ckDescribe fills a CheckResult from a fetched manifest, fetching the
// image config of a single image manifest.
func ckDescribe(d *remote.Descriptor) (CheckResult, error) {
	res := CheckResult{Digest: d.Digest.String(), MediaType: string(d.MediaType)}
	mt := d.MediaType
	if !mt.IsIndex() && !mt.IsImage() && !mt.IsSchema1() {
		// Some registries send no or a wrong Content-Type: look inside.
		mt = ckSniffMediaType(d.Manifest)
	}
	switch {
	case mt.IsIndex():
		im, err := v1.ParseIndexManifest(bytes.NewReader(d.Manifest))
		if err != nil {
			return CheckResult{}, fmt.Errorf("parsing index %s: %w", res.Digest, err)
		}
		res.Platforms = ckIndexPlatforms(im)
	case mt.IsSchema1():
		// Legacy schema 1 carries no usable platform.
		res.Platforms = []PlatformDigest{{Digest: res.Digest}}
	default:
		m, err := v1.ParseManifest(bytes.NewReader(d.Manifest))
		if err != nil {
			return CheckResult{}, fmt.Errorf("parsing manifest %s: %w", res.Digest, err)
		}
		platform := ""
		if m.Config.MediaType.IsConfig() {
			img, err := d.Image()
			if err != nil {
				return CheckResult{}, fmt.Errorf("reading image %s: %w", res.Digest, err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return CheckResult{}, fmt.Errorf("fetching config of image %s: %w", res.Digest, err)
			}
			platform = ckPlatformString(cf.OS, cf.Architecture, cf.Variant)
		}
		// Other artifacts (no image config) have no platform.
		res.Platforms = []PlatformDigest{{Platform: platform, Digest: res.Digest}}
	}
	return res, nil
}

// ckSniffMediaType reads a manifest's own mediaType field, or guesses
// from its shape when there is none.
func ckSniffMediaType(b []byte) types.MediaType {
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return ""
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case probe.Manifests != nil:
		return types.OCIImageIndex
	case probe.Config != nil:
		return types.OCIManifestSchema1
	}
	return ""
}

// ckIndexPlatforms lists an index's platform manifests, sorted.
func ckIndexPlatforms(im *v1.IndexManifest) []PlatformDigest {
	type entry struct {
		p v1.Platform
		d string
	}
	var entries []entry
	seen := map[string]int{}
	for _, m := range im.Manifests {
		if m.Annotations[ckAttestationAnnotation] == ckAttestationManifest {
			continue
		}
		var p v1.Platform
		if m.Platform != nil {
			p = *m.Platform
		}
		if p.OS == "unknown" && p.Architecture == "unknown" {
			continue
		}
		entries = append(entries, entry{p, m.Digest.String()})
		seen[ckPlatformString(p.OS, p.Architecture, p.Variant)]++
	}
	out := make([]PlatformDigest, 0, len(entries))
	for _, e := range entries {
		s := ckPlatformString(e.p.OS, e.p.Architecture, e.p.Variant)
		if seen[s] > 1 && e.p.OSVersion != "" {
			s += ":" + e.p.OSVersion
		}
		out = append(out, PlatformDigest{Platform: s, Digest: e.d})
	}
	slices.SortFunc(out, func(a, b PlatformDigest) int {
		return cmp.Or(cmp.Compare(a.Platform, b.Platform), cmp.Compare(a.Digest, b.Digest))
	})
	return out
}

// ckPlatformString is "os/arch[/variant]", or "" without an OS.
func ckPlatformString(os, arch, variant string) string {
	if os == "" {
		return ""
	}
	s := os + "/" + arch
	if variant != "" {
		s += "/" + variant
	}
	return s
}

// Backoff returns how long to wait before checking again after n
// consecutive failures (n ≥ 1; smaller n counts as 1): 10s doubling with
// each failure up to a 30 min cap, with ±20% jitter (the result never
// exceeds the cap). A *RegistryError's RetryAfter (found with errors.As),
// when larger, wins.
func Backoff(n int, err error) time.Duration {
	d := backoff.Policy{Min: ckBackoffBase, Max: ckBackoffCap, Jitter: ckBackoffJitter}.Delay(n)
	var re *RegistryError
	if errors.As(err, &re) && re.RetryAfter > d {
		d = re.RetryAfter
	}
	return d
}

// RateLimit returns the `ratelimit-remaining` value of the last answer
// from registry host (Docker Hub sends e.g. "76;w=21600"), and whether one
// was seen. host is as in references: "docker.io" and "index.docker.io"
// are the same.
func (c *Checker) RateLimit(host string) (remaining int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.hosts[ckHostKey(host)]
	if h == nil || !h.rateSeen {
		return 0, false
	}
	return h.remaining, true
}

// parse parses ref, plain HTTP for the configured insecure hosts.
func (c *Checker) parse(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference: %w", err)
	}
	host, _, _ := strings.Cut(ref, "/")
	if c.insecure[r.Context().RegistryStr()] || c.insecure[host] {
		if r, err = name.ParseReference(ref, name.Insecure); err != nil {
			return nil, fmt.Errorf("parsing image reference: %w", err)
		}
	}
	return r, nil
}

// host returns the state of registry host, created on first use.
func (c *Checker) host(host string) *ckHost {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.hosts[host]
	if h == nil {
		h = &ckHost{sem: make(chan struct{}, c.perRegistry)}
		c.hosts[host] = h
	}
	return h
}

// puller returns the registry's session, building a new one when there is
// none or it is older than ckPullerTTL. A Puller caches, per repository,
// the ping result, the credentials and the bearer token, so that a check
// is one HEAD rather than ping + token + HEAD.
func (c *Checker) puller(host string, h *ckHost) (*remote.Puller, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.puller != nil && time.Since(h.pullerAt) < ckPullerTTL {
		return h.puller, nil
	}
	p, err := remote.NewPuller(
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithTransport(&ckTransport{c: c, host: host, next: c.transport}),
		remote.WithUserAgent(ckUserAgent),
		// No retries inside go-containerregistry: by default it retries
		// 408/429/5xx and temporary network errors up to 3 times (1s, 3s
		// apart), which would multiply requests against a rate limit and
		// hide 429 from the caller. Steps must stay ≥ 1 or no attempt at
		// all is made.
		remote.WithRetryBackoff(remote.Backoff{Duration: time.Second, Factor: 1, Steps: 1}),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
	)
	if err != nil {
		return nil, fmt.Errorf("setting up registry client for %s: %w", host, err)
	}
	h.puller, h.pullerAt = p, time.Now()
	return p, nil
}

// ForgetSessions drops every registry session, so that the next request
// to each registry resolves its credentials anew (after a login changed).
func (c *Checker) ForgetSessions() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.hosts {
		h.puller = nil
	}
}

// dropPuller forgets p, if it is still the host's session.
func (c *Checker) dropPuller(h *ckHost, p *remote.Puller) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.puller == p {
		h.puller = nil
	}
}

// registryError turns what a check returned into a *RegistryError.
func (c *Checker) registryError(ctx context.Context, ref string, st *ckState, err error) *RegistryError {
	re := &RegistryError{Ref: ref, Err: err}
	var te *transport.Error
	if errors.As(err, &te) {
		re.Status = te.StatusCode
	}
	if re.Status == http.StatusTooManyRequests || re.Status == http.StatusServiceUnavailable {
		re.RetryAfter = st.retryAfterValue()
	}
	if re.Status == 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
		re.Err = fmt.Errorf("no answer within %s: %w", c.timeout, err)
	}
	return re
}

// ckStateKey is the context key of a check's *ckState.
type ckStateKey struct{}

// ckState is what the transport learns during one check.
type ckState struct {
	requests atomic.Int32

	mu         sync.Mutex
	retryAfter time.Duration
	headOK     bool
	getDigest  string // Docker-Content-Digest of the last manifest GET
}

func (s *ckState) getDigestValue() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getDigest
}

func (s *ckState) headAnswered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headOK
}

func (s *ckState) retryAfterValue() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retryAfter
}

// ckTransport counts a check's requests and records what answers say:
// rate limit headers (per host), Retry-After, and whether a manifest HEAD
// was answered. It sits below go-containerregistry's auth and retry
// layers, so it sees every request on the wire.
type ckTransport struct {
	c    *Checker
	host string
	next http.RoundTripper
}

func (t *ckTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(ckStateKey{}).(*ckState)
	if st != nil {
		st.requests.Add(1)
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if v := resp.Header.Get("Ratelimit-Remaining"); v != "" {
		if n, ok := ckParseRateLimit(v); ok {
			t.c.setRateLimit(t.host, n)
		}
	}
	if st != nil {
		st.mu.Lock()
		switch {
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			st.retryAfter = backoff.RetryAfter(resp.Header.Get("Retry-After"), time.Now(), ckMaxRetryAfter)
		case req.Method == http.MethodHead && resp.StatusCode == http.StatusOK && strings.Contains(req.URL.Path, "/manifests/"):
			st.headOK = true
		case req.Method == http.MethodGet && resp.StatusCode == http.StatusOK && strings.Contains(req.URL.Path, "/manifests/"):
			st.getDigest = strings.TrimSpace(resp.Header.Get("Docker-Content-Digest"))
		}
		st.mu.Unlock()
	}
	return resp, nil
}

func (c *Checker) setRateLimit(host string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.hosts[host]; h != nil {
		h.remaining, h.rateSeen = n, true
	}
}

// ckParseRateLimit reads "76;w=21600" (or "76").
func ckParseRateLimit(v string) (int, bool) {
	v, _, _ = strings.Cut(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, false
	}
	return n, true
}

// ckHostKey normalizes a registry host the way references do
// ("docker.io" is "index.docker.io").
func ckHostKey(host string) string {
	r, err := name.NewRegistry(host)
	if err != nil {
		return host
	}
	return r.RegistryStr()
}
