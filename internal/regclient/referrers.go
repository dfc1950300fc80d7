package regclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// OCI media types of artifacts and the referrers index.
const (
	MediaTypeOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex    = "application/vnd.oci.image.index.v1+json"
	// MediaTypeEmpty is the OCI empty descriptor's type: an artifact's
	// config when it has none ("{}").
	MediaTypeEmpty = "application/vnd.oci.empty.v1+json"

	// MaxReferrersIndex bounds a referrers list (API answer or fallback
	// tag's index) read from a registry.
	MaxReferrersIndex = 4 << 20
	// maxReferrers bounds the descriptors taken from one list.
	maxReferrers = 4096
)

// ReferrersVia says how a registry keeps an image's referrers.
const (
	// ViaAPI: the registry answers GET /v2/<name>/referrers/<digest>.
	ViaAPI = "referrers API"
	// ViaTag: the OCI tag schema fallback, an index tagged
	// sha256-<hex> listing the referrers.
	ViaTag = "tag schema fallback"
)

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// Artifact is a small OCI artifact (one blob) that refers to an image.
type Artifact struct {
	// ArtifactType is the manifest's artifactType.
	ArtifactType string
	// Blob is the artifact's one layer, of BlobMediaType.
	Blob          []byte
	BlobMediaType string
	// Annotations go on the manifest (and its entry in a fallback index).
	Annotations map[string]string
}

// artifactManifest is an OCI image manifest used for an artifact.
type artifactManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        Descriptor        `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Subject       *Descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// referrersIndex is an OCI image index listing referrers.
type referrersIndex struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// emptyConfig is the OCI empty JSON object blob.
var emptyConfig = []byte("{}")

// PushReferrer pushes a as an OCI artifact of repo ("host/name") whose
// subject is the image manifest or index subject, and returns the
// artifact manifest's descriptor and how the registry lists it: ViaAPI
// when the registry keeps referrers itself (it answered the PUT with
// OCI-Subject, or answers the referrers API), else ViaTag, after adding
// the artifact to the index tagged sha256-<subject hex> (created when
// missing; an entry already there is left alone). It pushes by digest
// and moves no other tag. Concurrent pushes of referrers of one subject
// to a registry without the API can lose an entry of that index
// (registries offer no compare-and-swap on tags); refit pushes one per
// run. Errors are *Error.
func (c *Client) PushReferrer(ctx context.Context, repo string, subject Descriptor, a Artifact) (Descriptor, string, error) {
	var desc Descriptor
	var via string
	err := c.raw(ctx, repo, true, func(ctx context.Context, rc *rawClient) error {
		blob := Descriptor{MediaType: a.BlobMediaType, Digest: sha256Digest(a.Blob), Size: int64(len(a.Blob))}
		config := Descriptor{MediaType: MediaTypeEmpty, Digest: sha256Digest(emptyConfig), Size: int64(len(emptyConfig))}
		for _, b := range []struct {
			d    Descriptor
			body []byte
		}{{config, emptyConfig}, {blob, a.Blob}} {
			if err := rc.pushBlob(ctx, b.d.Digest, b.body); err != nil {
				return err
			}
		}
		sub := Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
		m, err := json.Marshal(artifactManifest{
			SchemaVersion: 2, MediaType: MediaTypeOCIManifest, ArtifactType: a.ArtifactType,
			Config: config, Layers: []Descriptor{blob}, Subject: &sub, Annotations: a.Annotations,
		})
		if err != nil {
			return err
		}
		desc = Descriptor{MediaType: MediaTypeOCIManifest, Digest: sha256Digest(m), Size: int64(len(m)),
			ArtifactType: a.ArtifactType, Annotations: a.Annotations}
		resp, err := rc.do(ctx, http.MethodPut, "manifests/"+desc.Digest, MediaTypeOCIManifest, "", m, http.StatusCreated)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.Header.Get("OCI-Subject") == subject.Digest {
			via = ViaAPI
			return nil
		}
		list, api, err := rc.referrers(ctx, subject.Digest)
		if err != nil {
			return err
		}
		if api {
			via = ViaAPI
			return nil
		}
		via = ViaTag
		if slices.ContainsFunc(list, func(d Descriptor) bool { return d.Digest == desc.Digest }) {
			return nil
		}
		list = append(list, desc)
		slices.SortFunc(list, func(x, y Descriptor) int { return strings.Compare(x.Digest, y.Digest) })
		idx, err := json.Marshal(referrersIndex{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: list})
		if err != nil {
			return err
		}
		resp, err = rc.do(ctx, http.MethodPut, "manifests/"+fallbackTag(subject.Digest), MediaTypeOCIIndex, "", idx, http.StatusCreated)
		if err != nil {
			return fmt.Errorf("updating referrers tag %s: %w", fallbackTag(subject.Digest), err)
		}
		resp.Body.Close()
		return nil
	})
	return desc, via, err
}

// Referrers lists the referrers of the manifest subject (a digest) in
// repo: from the registry's referrers API when it has one, else from
// the index tagged sha256-<hex> (none yet: an empty list). It returns
// how it found them (ViaAPI or ViaTag). A list is read up to
// MaxReferrersIndex bytes and must be an OCI index; its entries must
// carry valid sha256 digests (others are skipped). Errors are *Error.
func (c *Client) Referrers(ctx context.Context, repo, subject string) ([]Descriptor, string, error) {
	if !validDigest(subject) {
		return nil, "", &Error{Ref: repo + "@" + subject, Err: errors.New("not a sha256 digest")}
	}
	var list []Descriptor
	var via string
	err := c.raw(ctx, repo, false, func(ctx context.Context, rc *rawClient) error {
		l, api, err := rc.referrers(ctx, subject)
		list, via = l, ViaTag
		if api {
			via = ViaAPI
		}
		return err
	})
	return list, via, err
}

// FetchManifest returns the manifest repo@digest as stored (at most max
// bytes) and its media type, after checking that its content has that
// digest. Errors are *Error.
func (c *Client) FetchManifest(ctx context.Context, repo, digest string, max int64) ([]byte, string, error) {
	return c.fetch(ctx, repo, "manifests", digest, max)
}

// FetchBlob returns the blob repo@digest (at most max bytes), after
// checking that its content has that digest. Errors are *Error.
func (c *Client) FetchBlob(ctx context.Context, repo, digest string, max int64) ([]byte, error) {
	b, _, err := c.fetch(ctx, repo, "blobs", digest, max)
	return b, err
}

func (c *Client) fetch(ctx context.Context, repo, kind, digest string, max int64) ([]byte, string, error) {
	if !validDigest(digest) {
		return nil, "", &Error{Ref: repo + "@" + digest, Err: errors.New("not a sha256 digest")}
	}
	var body []byte
	var mt string
	err := c.raw(ctx, repo, false, func(ctx context.Context, rc *rawClient) error {
		accept := ""
		if kind == "manifests" {
			accept = strings.Join([]string{MediaTypeOCIManifest, MediaTypeOCIIndex,
				"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json"}, ", ")
		}
		resp, err := rc.do(ctx, http.MethodGet, kind+"/"+digest, "", accept, nil, http.StatusOK)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if body, err = readLimited(resp.Body, max); err != nil {
			return fmt.Errorf("reading %s %s: %w", kind, digest, err)
		}
		if got := sha256Digest(body); got != digest {
			return fmt.Errorf("%s %s: the registry sent content whose digest is %s", kind, digest, got)
		}
		mt, _, _ = mime.ParseMediaType(resp.Header.Get("Content-Type"))
		return nil
	})
	return body, mt, err
}

// rawClient speaks the distribution API to one repository with an
// authenticated transport.
type rawClient struct {
	base   *url.URL // scheme://host/v2/<name>/
	client *http.Client
}

// raw runs fn with an authenticated client for repo scoped to pull
// (pull, or push and pull when push), within the registry's PerRegistry limit and the Timeout, as Check's
// requests are (and honouring a Retry-After the registry gave).
func (c *Client) raw(ctx context.Context, repo string, push bool, fn func(ctx context.Context, rc *rawClient) error) error {
	var opts []name.Option
	host, _, _ := strings.Cut(repo, "/")
	insecure := c.insecure.Has(host)
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(repo, opts...)
	if err == nil && !insecure && c.insecure.Has(r.RegistryStr()) {
		r, err = name.NewRepository(repo, name.Insecure)
	}
	if err != nil {
		return &Error{Ref: repo, Err: fmt.Errorf("parsing repository: %w", err)}
	}
	st := &callState{}
	ctx = context.WithValue(ctx, callStateKey{}, st)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	h := c.state(r.RegistryStr())
	release, err := c.enter(ctx, h, h.sem, "a request slot", repo, r.RegistryStr())
	if err != nil {
		return err
	}
	defer release()
	err = func() error {
		auth, err := authn.Resolve(ctx, c.keychain, r)
		if err != nil {
			return fmt.Errorf("credentials for %s: %w", r.RegistryStr(), err)
		}
		scopes := []string{r.Scope(transport.PullScope)}
		if push {
			scopes = []string{r.Scope(transport.PushScope)}
		}
		t, err := transport.NewWithContext(ctx, r.Registry, auth, c.pings.wrap(&recorder{next: c.transport}), scopes)
		if err != nil {
			return err
		}
		base := &url.URL{Scheme: r.Scheme(), Host: r.RegistryStr(), Path: "/v2/" + r.RepositoryStr() + "/"}
		return fn(ctx, &rawClient{base: base, client: &http.Client{Transport: t}})
	}()
	if err != nil {
		// Nothing to drop on a 401 or 403: every call resolves anew.
		return c.failed(ctx, h, repo, st, err, nil)
	}
	return nil
}

// do sends one request (path relative to the repository, or absolute)
// and returns the answer when its status is one of ok; otherwise the
// registry's error (a *transport.Error).
func (rc *rawClient) do(ctx context.Context, method, path, contentType, accept string, body []byte, ok ...int) (*http.Response, error) {
	u, err := rc.base.Parse(path)
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := rc.client.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, ok...); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// pushBlob uploads body as blob digest unless the repository has it:
// HEAD, then POST an upload and PUT the content.
func (rc *rawClient) pushBlob(ctx context.Context, digest string, body []byte) error {
	resp, err := rc.do(ctx, http.MethodHead, "blobs/"+digest, "", "", nil, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return fmt.Errorf("looking for blob %s: %w", digest, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	resp, err = rc.do(ctx, http.MethodPost, "blobs/uploads/", "", "", nil, http.StatusAccepted)
	if err != nil {
		return fmt.Errorf("starting upload of blob %s: %w", digest, err)
	}
	resp.Body.Close()
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return fmt.Errorf("starting upload of blob %s: the registry gave no usable Location", digest)
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	resp, err = rc.do(ctx, http.MethodPut, loc.String(), "application/octet-stream", "", body, http.StatusCreated)
	if err != nil {
		return fmt.Errorf("uploading blob %s: %w", digest, err)
	}
	resp.Body.Close()
	return nil
}

// referrers lists subject's referrers; api reports whether the
// registry's referrers API answered.
func (rc *rawClient) referrers(ctx context.Context, subject string) ([]Descriptor, bool, error) {
	resp, err := rc.do(ctx, http.MethodGet, "referrers/"+subject, "", MediaTypeOCIIndex, nil,
		http.StatusOK, http.StatusNotFound, http.StatusBadRequest, http.StatusNotAcceptable, http.StatusMethodNotAllowed)
	if err != nil {
		return nil, false, fmt.Errorf("listing referrers of %s: %w", subject, err)
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode == http.StatusOK && ct == MediaTypeOCIIndex {
		defer resp.Body.Close()
		b, err := readLimited(resp.Body, MaxReferrersIndex)
		if err != nil {
			return nil, true, fmt.Errorf("reading referrers of %s: %w", subject, err)
		}
		list, err := ParseReferrersIndex(b)
		if err != nil {
			return nil, true, fmt.Errorf("referrers of %s: %w", subject, err)
		}
		return list, true, nil
	}
	resp.Body.Close()
	tag := fallbackTag(subject)
	resp, err = rc.do(ctx, http.MethodGet, "manifests/"+tag, "", MediaTypeOCIIndex, nil, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return nil, false, fmt.Errorf("reading referrers tag %s: %w", tag, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, false, nil
	}
	b, err := readLimited(resp.Body, MaxReferrersIndex)
	if err != nil {
		return nil, false, fmt.Errorf("reading referrers tag %s: %w", tag, err)
	}
	list, err := ParseReferrersIndex(b)
	if err != nil {
		return nil, false, fmt.Errorf("referrers tag %s: %w", tag, err)
	}
	return list, false, nil
}

// ParseReferrersIndex reads a referrers list from untrusted bytes (a
// registry's referrers API answer or a fallback tag's index): an OCI
// image index (schemaVersion 2; mediaType, when given, the OCI index
// type) of at most MaxReferrersIndex bytes. Entries without a valid
// sha256 digest or a non-negative size are skipped, and at most 4096
// are kept.
func ParseReferrersIndex(b []byte) ([]Descriptor, error) {
	if len(b) > MaxReferrersIndex {
		return nil, fmt.Errorf("referrers index of %d bytes is over the %d-byte limit", len(b), MaxReferrersIndex)
	}
	var idx referrersIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("referrers index is not an OCI index: %w", err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("referrers index has schemaVersion %d, want 2", idx.SchemaVersion)
	}
	if idx.MediaType != "" && idx.MediaType != MediaTypeOCIIndex {
		return nil, fmt.Errorf("referrers index has media type %.64q, want %s", idx.MediaType, MediaTypeOCIIndex)
	}
	var out []Descriptor
	for _, d := range idx.Manifests {
		if !validDigest(d.Digest) || d.Size < 0 {
			continue
		}
		if out = append(out, d); len(out) == maxReferrers {
			break
		}
	}
	return out, nil
}

// readLimited reads r up to max bytes; more is an error.
func readLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("more than the %d-byte limit", max)
	}
	return b, nil
}

// fallbackTag is the OCI referrers tag schema's tag of subject.
func fallbackTag(subject string) string { return strings.Replace(subject, ":", "-", 1) }

// sha256Digest is b's sha256 digest.
func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// validDigest reports whether d is "sha256:" and 64 lowercase hex digits.
func validDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}
