// Package regclient is refit's one registry client: it looks up what an
// image reference points to (Check, for the watcher and a run's first
// look at a tag) and resolves a reference to its digest (Resolve). It
// owns everything about talking to registries: a session and credentials
// per registry (one ping per registry and scheme, token scopes per
// repository; credentials from a keychain, dropped when the keychain's
// logins change), a limit on concurrent requests per registry, rate
// limiting answers and their Retry-After (Error, Backoff), a GET at once
// when nothing is known, else a HEAD first and a GET only when something
// changed, the platforms are unknown, or the HEAD said too little (a
// manifest fetched without a digest is verified before it is trusted), size limits on
// what it reads, and which registries are reached over plain HTTP
// (Insecure, the rule the runner and BuildKit's configuration follow
// too). It does not decide what to check when — that is internal/index's
// watcher — nor what a change causes.
package regclient

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
	"github.com/refit-dev/refit/internal/store"
)

const (
	defaultPerRegistry = 4
	defaultTimeout     = 20 * time.Second
	backoffBase        = 10 * time.Second
	backoffCap         = 30 * time.Minute
	backoffJitter      = 0.2
	// maxRetryAfter bounds what a registry's Retry-After can ask for,
	// so a garbage header cannot park a reference for months.
	maxRetryAfter = 24 * time.Hour
	// sessionTTL is how long a registry's authenticated session (ping
	// result, credentials from the keychain, bearer tokens) is reused
	// before it is built afresh.
	sessionTTL = time.Hour
	userAgent  = "refit"

	// maxManifest bounds a manifest fetched without a digest to check
	// it against (distribution refuses manifests over 4 MiB too).
	maxManifest = 4 << 20

	attestationAnnotation = "vnd.docker.reference.type"
	attestationManifest   = "attestation-manifest"
)

// defaultImagesPerRegistry is Config.ImagesPerRegistry's default.
const defaultImagesPerRegistry = 2

// Result is what one check of a reference found.
type Result struct {
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
	Platforms []store.PlatformDigest
	// Requests is the number of HTTP requests this check made (ping,
	// token, HEAD, GET), counting failed attempts (such as the HTTPS
	// probe go-containerregistry's ping makes before plain HTTP to
	// loopback and insecure hosts) — for benchmarks.
	Requests int
}

// Error is a failed check, with what the registry said.
type Error struct {
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
func (e *Error) Error() string {
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
func (e *Error) Unwrap() error { return e.Err }

// Config configures a Client. The zero value is usable.
type Config struct {
	// Keychain for credentials; nil = authn.DefaultKeychain (Docker config
	// + credential helpers). When it has a Generation method (as
	// regauth.Credentials does; see Generations), sessions built before
	// its generation moved are dropped, so a changed login applies from
	// the next request on.
	Keychain authn.Keychain
	// Transport; nil = a clone of http.DefaultTransport.
	Transport http.RoundTripper
	// Insecure lists registry hosts (host[:port]) reached over plain HTTP;
	// loopback registries always are (see Insecure).
	Insecure Insecure
	// PerRegistry bounds concurrent checks, and so concurrent requests,
	// to one registry host. Default 4.
	PerRegistry int
	// ImagesPerRegistry bounds concurrent Image calls (catalog reads,
	// which stream layer blobs for up to their own timeout) to one
	// registry host. They have these slots of their own, apart from
	// PerRegistry's, so that a long blob stream never makes a check (the
	// watcher's HEAD) wait; an Image call makes one request at a time, so
	// a registry sees at most PerRegistry + ImagesPerRegistry requests
	// from refit at once. Default 2.
	ImagesPerRegistry int
	// Timeout bounds one check: waiting for a slot and all its requests.
	// Default 20s. A tag listing (Tags) is bounded by it per page.
	Timeout time.Duration
	// TagPageSize is how many tags a listing asks for per page (?n=).
	// Default 1000.
	TagPageSize int
	// MaxTagPages and MaxTags stop a listing that goes on longer: it is
	// an error. Defaults 1000 pages, 100,000 tags.
	MaxTagPages, MaxTags int
	// MaxPageBytes bounds one page of a tag listing. Default 4 MiB.
	MaxPageBytes int64
}

// Client looks up what image references point to, with as few requests
// as possible: one HEAD when nothing changed. It keeps an authenticated
// session per registry (so a check does not ping the registry or fetch a
// token again each time) and never retries on its own: failures surface
// as *Error for the caller to back off (see Backoff). A Client is
// safe for concurrent use.
type Client struct {
	keychain    authn.Keychain
	transport   http.RoundTripper
	insecure    Insecure
	perRegistry int
	images      int // ImagesPerRegistry
	timeout     time.Duration

	tagPageSize, maxTagPages, maxTags int
	maxPageBytes                      int64

	mu    sync.Mutex
	hosts map[string]*hostState
	pings *pingCache
}

// hostState is the Client's state for one registry host.
type hostState struct {
	sem chan struct{} // one token per check in flight
	// images has one token per Image call in flight: a blob stream
	// holds one of these, never one of sem's.
	images chan struct{}

	// Guarded by Client.mu.
	puller    *remote.Puller
	pullerAt  time.Time
	pullerGen uint64 // the keychain's generation when puller was built
	// holdUntil is when the registry's last 429 or 503 Retry-After ends:
	// until then no caller (watcher, run, task check) sends it a request.
	holdUntil time.Time
	// tagSessions are the listing sessions per repository (Tags).
	tagSessions map[string]tagSession
}

// New returns a Client configured by cfg, defaults filled in.
func New(cfg Config) *Client {
	c := &Client{
		keychain:    cfg.Keychain,
		transport:   cfg.Transport,
		insecure:    cfg.Insecure,
		perRegistry: cfg.PerRegistry,
		images:      cmp.Or(max(cfg.ImagesPerRegistry, 0), defaultImagesPerRegistry),
		timeout:     cfg.Timeout,
		hosts:       map[string]*hostState{},

		tagPageSize:  cmp.Or(max(cfg.TagPageSize, 0), defaultTagPageSize),
		maxTagPages:  cmp.Or(max(cfg.MaxTagPages, 0), defaultMaxTagPages),
		maxTags:      cmp.Or(max(cfg.MaxTags, 0), defaultMaxTags),
		maxPageBytes: cmp.Or(max(cfg.MaxPageBytes, 0), defaultMaxPageBytes),
	}
	c.pings = &pingCache{insecure: c.insecure.Has, entries: map[string]*pingEntry{}}
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
		c.perRegistry = defaultPerRegistry
	}
	// Keep a connection per allowed concurrent request to a registry
	// (the default keeps 2), so steady polling reuses connections.
	if t, ok := c.transport.(*http.Transport); ok && cfg.Transport == nil && t.MaxIdleConnsPerHost < c.perRegistry {
		t.MaxIdleConnsPerHost = c.perRegistry
	}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	return c
}

// Check looks up what ref (a normalized "registry/repo:tag") points to.
// known is the last Result stored for ref (zero value if none). With
// nothing known, Check GETs the manifest by tag at once (digest and body
// in one request, verified as below) instead of a HEAD. When the HEAD's
// digest equals known.Digest and known has Platforms, Check returns them
// without any further request (exactly one request for an unchanged
// reference, once the registry session is set up); known without
// Platforms (a digest a run seeded) gets the body fetched once. When the
// digest changed and the manifest is an index, it GETs the index
// by digest (one more request) to fill Platforms; for a single manifest
// it GETs the manifest and the config blob to learn the platform. It
// falls back to GET when the registry's HEAD answer lacks the
// Docker-Content-Digest header, and then takes the digest only from a
// body that is a manifest (see getWithoutDigest): an empty or garbage
// answer is an error, never an observation. The first check of a registry
// also pings it (once per Client and scheme; an HTTPS probe of an
// Insecure registry is never made), and the first of a repository
// fetches a token where the registry uses them; a bearer
// token expiring (Docker Hub's last 5 min) costs a 401 and a token request
// on the next check. Nothing is retried. Check waits for a
// slot of the registry's PerRegistry limit, and the whole check is bounded
// by the Timeout. Errors are *Error; the Result returned with
// an error carries only Requests.
func (c *Client) Check(ctx context.Context, ref string, known Result) (Result, error) {
	r, err := c.parse(ref)
	if err != nil {
		return Result{}, &Error{Ref: ref, Err: err}
	}
	var res Result
	st, err := c.session(ctx, ref, r, func(ctx context.Context, p *remote.Puller, st *callState) error {
		res, err = c.check(ctx, p, r, known, st)
		return err
	})
	if err != nil {
		return Result{Requests: int(st.requests.Load())}, err
	}
	res.Requests = int(st.requests.Load())
	return res, nil
}

// Resolve returns the digest ref (a normalized "registry/repo:tag")
// points to now: one HEAD on the registry's session (GET when the answer
// has no digest, verified as Check does), within the same per-registry
// limit and timeout as
// Check. A reference pinned by digest is returned without a request.
// Errors are *Error.
func (c *Client) Resolve(ctx context.Context, ref string) (string, error) {
	r, err := c.parse(ref)
	if err != nil {
		return "", &Error{Ref: ref, Err: err}
	}
	if d, ok := r.(name.Digest); ok {
		return d.DigestStr(), nil
	}
	var digest string
	_, err = c.session(ctx, ref, r, func(ctx context.Context, p *remote.Puller, st *callState) error {
		opts := []remote.Option{remote.Reuse(p), remote.WithContext(ctx)}
		desc, err := remote.Head(r, opts...)
		if err == nil {
			digest = desc.Digest.String()
			return nil
		}
		if !st.headAnswered() {
			return err
		}
		d, err := getWithoutDigest(r, st, opts)
		if err == nil {
			digest = d.Digest.String()
		}
		return err
	})
	return digest, err
}

// session runs fn with the registry's session for r, within a slot of
// the registry's PerRegistry limit and the Timeout; fn's requests are
// counted in the returned state. An error is a *Error; after a
// 401 or 403 the session is dropped, so that credentials are resolved
// anew next time (they may have changed: a login).
func (c *Client) session(ctx context.Context, ref string, r name.Reference,
	fn func(ctx context.Context, p *remote.Puller, st *callState) error) (*callState, error) {
	return c.sessionWithin(ctx, c.timeout, false, ref, r, fn)
}

// sessionWithin is session bounded by timeout instead of the Timeout,
// within a slot of the registry's ImagesPerRegistry limit instead of
// PerRegistry's when image is true.
func (c *Client) sessionWithin(ctx context.Context, timeout time.Duration, image bool, ref string, r name.Reference,
	fn func(ctx context.Context, p *remote.Puller, st *callState) error) (*callState, error) {
	st := &callState{}
	ctx = context.WithValue(ctx, callStateKey{}, st)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host := r.Context().RegistryStr()
	h := c.state(host)
	sem, what := h.sem, "a request slot"
	if image {
		sem, what = h.images, "an image read slot"
	}
	release, err := c.enter(ctx, h, sem, what, ref, host)
	if err != nil {
		return st, err
	}
	defer release()
	p, err := c.puller(host, h)
	if err != nil {
		return st, &Error{Ref: ref, Err: err}
	}
	if err := fn(ctx, p, st); err != nil {
		return st, c.failed(ctx, h, ref, st, err, func() { c.dropPuller(h, p) })
	}
	return st, nil
}

// enter waits for a slot of sem, one of h's semaphores (what names it in
// the error), and checks that the registry's Retry-After is over: the
// start of every call to a registry. On success the caller calls
// release when its requests are done. Errors are *Error.
func (c *Client) enter(ctx context.Context, h *hostState, sem chan struct{}, what, ref, host string) (release func(), err error) {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, &Error{Ref: ref, Err: fmt.Errorf("waiting for %s for %s: %w", what, host, ctx.Err())}
	}
	if wait := c.held(h); wait > 0 {
		<-sem
		return nil, &Error{Ref: ref, Status: http.StatusTooManyRequests, RetryAfter: wait,
			Err: fmt.Errorf("registry %s asked refit to wait (Retry-After); not asked again before then", host)}
	}
	return func() { <-sem }, nil
}

// failed returns err, met calling the registry for ref, as a *Error: after
// a 401 or 403 it calls drop (when not nil) so that the next call
// resolves credentials anew, and a Retry-After holds the registry.
func (c *Client) failed(ctx context.Context, h *hostState, ref string, st *callState, err error, drop func()) *Error {
	rerr := c.registryError(ctx, ref, st, err)
	switch {
	case rerr.Status == http.StatusUnauthorized || rerr.Status == http.StatusForbidden:
		if drop != nil {
			drop()
		}
	case rerr.RetryAfter > 0:
		c.hold(h, rerr.RetryAfter)
	}
	return rerr
}

// held returns how much longer the registry's Retry-After lasts; 0 if
// it is over or there was none.
func (c *Client) held(h *hostState) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Until(h.holdUntil).Round(time.Second)
}

// hold keeps every caller's requests away from the registry for d: a
// registry's Retry-After is about the registry, not about one reference
// or one caller.
func (c *Client) hold(h *hostState, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until := time.Now().Add(d); until.After(h.holdUntil) {
		h.holdUntil = until
	}
}

// check does the requests of one Check.
func (c *Client) check(ctx context.Context, p *remote.Puller, r name.Reference, known Result, st *callState) (Result, error) {
	opts := []remote.Option{remote.Reuse(p), remote.WithContext(ctx)}
	if _, byDigest := r.(name.Digest); known.Digest == "" && !byDigest {
		// First sight: nothing to compare a HEAD with, so GET the
		// manifest by tag at once — digest and body in one request —
		// verified as a GET after a digest-less HEAD is.
		d, err := getVerified(r, st, opts, "the registry's manifest GET")
		if err != nil {
			return Result{}, err
		}
		return describe(d)
	}
	desc, err := remote.Head(r, opts...)
	if err != nil {
		if !st.headAnswered() {
			return Result{}, err
		}
		// The registry answered the HEAD but without a usable digest
		// (or Content-Type/Length): GET the manifest by tag instead.
		d, gerr := getWithoutDigest(r, st, opts)
		if gerr != nil {
			return Result{}, gerr
		}
		if known.Digest != "" && d.Digest.String() == known.Digest && len(known.Platforms) > 0 {
			return unchanged(known, d.MediaType), nil
		}
		return describe(d)
	}
	// Unchanged and its platforms known: nothing more to fetch. Known
	// without platforms (a run's resolution seeded only the digest):
	// fetch the body once, so the index learns each platform's digest.
	if known.Digest != "" && desc.Digest.String() == known.Digest && len(known.Platforms) > 0 {
		return unchanged(known, desc.MediaType), nil
	}
	// By digest, so that the tag moving between HEAD and GET cannot mix
	// two manifests up.
	d, err := remote.Get(r.Context().Digest(desc.Digest.String()), opts...)
	if err != nil {
		return Result{}, err
	}
	return describe(d)
}

// getWithoutDigest GETs the manifest r (a tag) points to when the
// registry's HEAD gave no digest, and makes sure what came back is a
// manifest before its digest is trusted: at most maxManifest bytes of
// JSON with schemaVersion 2, of a known manifest or index media type
// (the body's mediaType, or else the Content-Type; the two must agree
// when both are given), whose digest is computed from the body and
// must equal the GET's Docker-Content-Digest when there is one. An
// empty or garbage answer is an error, never a digest.
func getWithoutDigest(r name.Reference, st *callState, opts []remote.Option) (*remote.Descriptor, error) {
	return getVerified(r, st, opts, "the registry answered the manifest HEAD without Docker-Content-Digest, and its GET")
}

// getVerified GETs the manifest r points to and checks it as
// getWithoutDigest describes; what names the request in errors.
func getVerified(r name.Reference, st *callState, opts []remote.Option, what string) (*remote.Descriptor, error) {
	d, err := remote.Get(r, opts...)
	if err != nil {
		return nil, err
	}
	if st.getDigestValue() == "" && !strings.Contains(what, "Docker-Content-Digest") {
		what += " (answered without Docker-Content-Digest)"
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf(what+" is no manifest: "+format, args...)
	}
	if len(d.Manifest) > maxManifest {
		return nil, bad("%d bytes, over the %d-byte limit", len(d.Manifest), maxManifest)
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
	if !isManifestType(mt) {
		return nil, bad("media type %q is not an image manifest or index", mt)
	}
	if probe.MediaType != "" && isManifestType(ct) && ct != probe.MediaType {
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

// isManifestType reports whether mt is an image manifest or index
// media type (OCI or Docker schema 2).
func isManifestType(mt types.MediaType) bool {
	switch mt {
	case types.OCIImageIndex, types.OCIManifestSchema1, types.DockerManifestList, types.DockerManifestSchema2:
		return true
	}
	return false
}

// unchanged is known, seen again.
func unchanged(known Result, mt types.MediaType) Result {
	return Result{
		Digest:    known.Digest,
		MediaType: cmp.Or(string(mt), known.MediaType),
		Platforms: slices.Clone(known.Platforms),
	}
}

// describe fills a Result from a fetched manifest, fetching the
// image config of a single image manifest.
func describe(d *remote.Descriptor) (Result, error) {
	res := Result{Digest: d.Digest.String(), MediaType: string(d.MediaType)}
	mt := d.MediaType
	if !mt.IsIndex() && !mt.IsImage() && !mt.IsSchema1() {
		// Some registries send no or a wrong Content-Type: look inside.
		mt = sniffMediaType(d.Manifest)
	}
	switch {
	case mt.IsIndex():
		im, err := v1.ParseIndexManifest(bytes.NewReader(d.Manifest))
		if err != nil {
			return Result{}, fmt.Errorf("parsing index %s: %w", res.Digest, err)
		}
		res.Platforms = indexPlatforms(im)
	case mt.IsSchema1():
		// Legacy schema 1 carries no usable platform.
		res.Platforms = []store.PlatformDigest{{Digest: res.Digest}}
	default:
		m, err := v1.ParseManifest(bytes.NewReader(d.Manifest))
		if err != nil {
			return Result{}, fmt.Errorf("parsing manifest %s: %w", res.Digest, err)
		}
		platform := ""
		if m.Config.MediaType.IsConfig() {
			img, err := d.Image()
			if err != nil {
				return Result{}, fmt.Errorf("reading image %s: %w", res.Digest, err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return Result{}, fmt.Errorf("fetching config of image %s: %w", res.Digest, err)
			}
			platform = platformString(cf.OS, cf.Architecture, cf.Variant)
		}
		// Other artifacts (no image config) have no platform.
		res.Platforms = []store.PlatformDigest{{Platform: platform, Digest: res.Digest}}
	}
	return res, nil
}

// sniffMediaType reads a manifest's own mediaType field, or guesses
// from its shape when there is none.
func sniffMediaType(b []byte) types.MediaType {
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

// indexPlatforms lists an index's platform manifests, sorted.
func indexPlatforms(im *v1.IndexManifest) []store.PlatformDigest {
	type entry struct {
		p v1.Platform
		d string
	}
	var entries []entry
	seen := map[string]int{}
	for _, m := range im.Manifests {
		if m.Annotations[attestationAnnotation] == attestationManifest {
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
		seen[platformString(p.OS, p.Architecture, p.Variant)]++
	}
	out := make([]store.PlatformDigest, 0, len(entries))
	for _, e := range entries {
		s := platformString(e.p.OS, e.p.Architecture, e.p.Variant)
		if seen[s] > 1 && e.p.OSVersion != "" {
			s += ":" + e.p.OSVersion
		}
		out = append(out, store.PlatformDigest{Platform: s, Digest: e.d})
	}
	slices.SortFunc(out, func(a, b store.PlatformDigest) int {
		return cmp.Or(cmp.Compare(a.Platform, b.Platform), cmp.Compare(a.Digest, b.Digest))
	})
	return out
}

// platformString is "os/arch[/variant]", or "" without an OS.
func platformString(os, arch, variant string) string {
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
// exceeds the cap). A *Error's RetryAfter (found with errors.As),
// when larger, wins.
func Backoff(n int, err error) time.Duration {
	d := backoff.Policy{Min: backoffBase, Max: backoffCap, Jitter: backoffJitter}.Delay(n)
	var re *Error
	if errors.As(err, &re) && re.RetryAfter > d {
		d = re.RetryAfter
	}
	return d
}

// parse parses ref, plain HTTP for insecure hosts.
func (c *Client) parse(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference: %w", err)
	}
	host, _, _ := strings.Cut(ref, "/")
	if c.insecure.Has(r.Context().RegistryStr()) || c.insecure.Has(host) {
		if r, err = name.ParseReference(ref, name.Insecure); err != nil {
			return nil, fmt.Errorf("parsing image reference: %w", err)
		}
	}
	return r, nil
}

// host returns the state of registry host, created on first use.
func (c *Client) state(host string) *hostState {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.hosts[host]
	if h == nil {
		h = &hostState{sem: make(chan struct{}, c.perRegistry), images: make(chan struct{}, c.images)}
		c.hosts[host] = h
	}
	return h
}

// puller returns the registry's session, building a new one when there is
// none, it is older than sessionTTL, or the keychain's credentials changed
// since it was built. A Puller caches, per repository, the ping result,
// the credentials and the bearer token, so that a check is one HEAD
// rather than ping + token + HEAD.
func (c *Client) puller(host string, h *hostState) (*remote.Puller, error) {
	gen := c.generation()
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.puller != nil && h.pullerGen == gen && time.Since(h.pullerAt) < sessionTTL {
		return h.puller, nil
	}
	p, err := remote.NewPuller(
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithTransport(c.pings.wrap(&recorder{next: c.transport})),
		remote.WithUserAgent(userAgent),
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
	h.puller, h.pullerAt, h.pullerGen = p, time.Now(), gen
	return p, nil
}

// Generations is what a keychain whose credentials change has for the
// Client: a number that moves with every change (see Config.Keychain).
type Generations interface {
	Generation() uint64
}

// generation is the keychain's generation; 0 for one without.
func (c *Client) generation() uint64 {
	if g, ok := c.keychain.(Generations); ok {
		return g.Generation()
	}
	return 0
}

// dropPuller forgets p, if it is still the host's session.
func (c *Client) dropPuller(h *hostState, p *remote.Puller) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.puller == p {
		h.puller = nil
	}
}

// registryError turns what a check returned into a *Error.
func (c *Client) registryError(ctx context.Context, ref string, st *callState, err error) *Error {
	re := &Error{Ref: ref, Err: err}
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

// callStateKey is the context key of a check's *callState.
type callStateKey struct{}

// callState is what the transport learns during one check.
type callState struct {
	requests atomic.Int32

	mu         sync.Mutex
	retryAfter time.Duration
	headOK     bool
	getDigest  string // Docker-Content-Digest of the last manifest GET
}

func (s *callState) getDigestValue() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getDigest
}

func (s *callState) headAnswered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headOK
}

func (s *callState) retryAfterValue() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retryAfter
}

// recorder counts a check's requests and records what answers say:
// Retry-After, whether a manifest HEAD was answered, and a manifest GET's
// digest. It sits below go-containerregistry's auth and retry layers, so
// it sees every request on the wire.
type recorder struct {
	next http.RoundTripper
}

func (t *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(callStateKey{}).(*callState)
	if st != nil {
		st.requests.Add(1)
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if st != nil {
		st.mu.Lock()
		switch {
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			st.retryAfter = backoff.RetryAfter(resp.Header.Get("Retry-After"), time.Now(), maxRetryAfter)
		case req.Method == http.MethodHead && resp.StatusCode == http.StatusOK && strings.Contains(req.URL.Path, "/manifests/"):
			st.headOK = true
		case req.Method == http.MethodGet && resp.StatusCode == http.StatusOK && strings.Contains(req.URL.Path, "/manifests/"):
			st.getDigest = strings.TrimSpace(resp.Header.Get("Docker-Content-Digest"))
		}
		st.mu.Unlock()
	}
	return resp, nil
}

// hostKey normalizes a registry host the way references do
// ("docker.io" is "index.docker.io").
func hostKey(host string) string {
	r, err := name.NewRegistry(host)
	if err != nil {
		return host
	}
	return r.RegistryStr()
}
