// Package build owns turning a prepared build request into a pushed image
// with a BuildKit daemon: the dockerfile frontend, pinned base images
// (named contexts), OCI annotations and labels, SLSA provenance, and the
// live progress stream. It does not fetch sources, resolve digests or
// decide what to build.
package build

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/tonistiigi/fsutil"
)

// Request is one build: everything BuildKit needs, already resolved and
// read. BuildKit is handed no path to open: the context is a directory
// opened as a root, the Dockerfile is bytes.
type Request struct {
	// Context is the build context directory, opened as a root (required).
	// BuildKit reads the context through it, so nothing outside it can be
	// reached: a symlink in the context is sent as a symlink, and one
	// that leads out is refused. Build does not close it.
	Context *os.Root
	// Dockerfile is the Dockerfile's content (required).
	Dockerfile []byte
	// DockerfileName is the Dockerfile's file name as BuildKit shows it in
	// messages and provenance, without directories. Default "Dockerfile".
	DockerfileName string
	// DockerIgnore is the content of the Dockerfile's own ignore file
	// (<Dockerfile>.dockerignore), which replaces the context's
	// .dockerignore; nil when there is none.
	DockerIgnore []byte
	// BuildArgs override ARG defaults.
	BuildArgs map[string]string
	// Target is the stage to build; "" = last.
	Target string
	// Platforms to build; empty = the daemon's default.
	Platforms []string
	// Pins maps a BuildKit named-context key (the FROM reference as written,
	// see dockerfile.ContextKey) to "ref@digest": the build uses exactly
	// that digest even if the tag has moved since.
	Pins map[string]string
	// Names are the image references to push (repository:tag). Required
	// unless Repository is set.
	Names []string
	// Repository, when Names is empty, is where the image is pushed by
	// digest alone (no tag).
	Repository string
	// Insecure allows pushing to a plain-HTTP registry.
	Insecure bool
	// Annotations are added to the image manifest and index.
	Annotations map[string]string
	// Labels are added to the image config.
	Labels map[string]string
	// Provenance turns on the SLSA provenance attestation (mode=max).
	Provenance bool
	// SourceDateEpoch, when not zero, makes the build reproducible: it is
	// passed as the SOURCE_DATE_EPOCH build arg (BuildKit stamps the image
	// config's created time and history with it) and the exporter
	// rewrites every layer file newer than it to it (rewrite-timestamp),
	// so the same inputs give the same platform image digest. Zero =
	// BuildKit's defaults (build time, files' own times).
	SourceDateEpoch time.Time
}

// Result is what a successful build pushed.
type Result struct {
	// Digest of the pushed image (the index when provenance is on).
	Digest string
}

// Builder builds with the BuildKit daemon at an address.
type Builder struct {
	addr  func() string
	creds Credentials
}

// Credentials looks up a registry login that refit stores (see package
// regauth); ok is false when it has none for host.
type Credentials interface {
	Lookup(ctx context.Context, host string) (username, password string, ok bool, err error)
}

// New returns a Builder that connects to the address addr returns at each
// build (unix://, tcp://, docker-container://), so a restarted daemon on a
// new socket is picked up. BuildKit asks it for registry credentials
// (pulls and pushes): creds first, when not nil, then the Docker config
// and its credential helpers.
func New(addr func() string, creds Credentials) *Builder { return &Builder{addr: addr, creds: creds} }

// Build solves the request with the dockerfile frontend and pushes the
// result. Progress updates are sent on status, which Build closes when it
// returns (status may be nil). A failed step's error message is returned
// as is from BuildKit (it names the step and exit code).
func (b *Builder) Build(ctx context.Context, req Request, status chan *client.SolveStatus) (Result, error) {
	return b.solve(ctx, req, status, true)
}

// Test builds the request's Target (a test stage) with the same inputs,
// and so the same cache, as Build, and exports nothing: it succeeds when
// the stage builds. Names are not needed. Progress goes to status, which
// Test closes; the error is BuildKit's (see ExitCode).
func (b *Builder) Test(ctx context.Context, req Request, status chan *client.SolveStatus) error {
	_, err := b.solve(ctx, req, status, false)
	return err
}

// solve is Build (export true) and Test (export false).
func (b *Builder) solve(ctx context.Context, req Request, status chan *client.SolveStatus, export bool) (Result, error) {
	if status == nil {
		status = make(chan *client.SolveStatus)
		go func() {
			for range status {
			}
		}()
	}
	if export && len(req.Names) == 0 && req.Repository == "" {
		close(status)
		return Result{}, errors.New("build: no image names to push")
	}
	if req.Context == nil || len(req.Dockerfile) == 0 {
		close(status)
		return Result{}, errors.New("build: no context or no Dockerfile")
	}
	addr := b.addr()
	c, err := client.New(ctx, addr)
	if err != nil {
		close(status)
		return Result{}, fmt.Errorf("connecting to buildkit at %s: %w", addr, err)
	}
	defer c.Close()

	// The Dockerfile BuildKit reads is the one refit read: a private copy,
	// not a path into the source that could change or lead elsewhere.
	name := path.Base(req.DockerfileName)
	if req.DockerfileName == "" || name == "." || name == "/" || name == ".." {
		name = "Dockerfile"
	}
	dfDir, err := os.MkdirTemp("", "refit-dockerfile-")
	if err != nil {
		close(status)
		return Result{}, fmt.Errorf("writing the Dockerfile for buildkit: %w", err)
	}
	defer os.RemoveAll(dfDir)
	files := map[string][]byte{name: req.Dockerfile}
	if req.DockerIgnore != nil {
		files[name+".dockerignore"] = req.DockerIgnore
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dfDir, n), b, 0o600); err != nil {
			close(status)
			return Result{}, fmt.Errorf("writing the Dockerfile for buildkit: %w", err)
		}
	}
	dfFS, err := fsutil.NewFS(dfDir)
	if err != nil {
		close(status)
		return Result{}, fmt.Errorf("writing the Dockerfile for buildkit: %w", err)
	}
	ctxFS := fsutil.NewRootFS(fsutil.NewRoot(req.Context))

	attrs := map[string]string{"filename": name}
	if req.Target != "" {
		attrs["target"] = req.Target
	}
	if len(req.Platforms) > 0 {
		attrs["platform"] = strings.Join(req.Platforms, ",")
	}
	for k, v := range req.BuildArgs {
		attrs["build-arg:"+k] = v
	}
	if !req.SourceDateEpoch.IsZero() {
		attrs["build-arg:SOURCE_DATE_EPOCH"] = strconv.FormatInt(req.SourceDateEpoch.Unix(), 10)
	}
	for k, v := range req.Pins {
		attrs["context:"+k] = "docker-image://" + v
	}
	for k, v := range req.Labels {
		attrs["label:"+k] = v
	}
	if req.Provenance {
		attrs["attest:provenance"] = "mode=max"
	}

	exp := map[string]string{
		"name": strings.Join(req.Names, ","),
		"push": "true",
	}
	if len(req.Names) == 0 {
		// No tag: the image is pushed by digest alone.
		exp["name"], exp["push-by-digest"] = req.Repository, "true"
	}
	if req.Insecure {
		exp["registry.insecure"] = "true"
	}
	if !req.SourceDateEpoch.IsZero() {
		exp["rewrite-timestamp"] = "true"
	}
	for _, k := range slices.Sorted(maps.Keys(req.Annotations)) {
		exp["annotation-manifest."+k] = req.Annotations[k]
		if req.Provenance || len(req.Platforms) > 1 {
			exp["annotation-index."+k] = req.Annotations[k]
		}
	}
	name0 := req.Repository
	if len(req.Names) > 0 {
		name0 = req.Names[0]
	}

	opt := client.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		Exports:       []client.ExportEntry{{Type: client.ExporterImage, Attrs: exp}},
		Session: []session.Attachable{authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
			AuthConfigProvider: b.authConfig(),
		})},
	}
	if !export {
		opt.Exports = nil
		if _, err := c.Solve(ctx, nil, opt, status); err != nil {
			return Result{}, fmt.Errorf("building test stage %s: %w", req.Target, err)
		}
		return Result{}, nil
	}
	resp, err := c.Solve(ctx, nil, opt, status)
	if err != nil {
		return Result{}, fmt.Errorf("building %s: %w", name0, err)
	}
	dgst := resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	if dgst == "" {
		return Result{}, fmt.Errorf("building %s: buildkit reported no image digest", name0)
	}
	return Result{Digest: dgst}, nil
}

// authConfig answers BuildKit's credential requests: refit's stored login
// for the host, else the Docker config's.
func (b *Builder) authConfig() authprovider.AuthConfigProvider {
	docker := authprovider.LoadAuthConfig(config.LoadDefaultConfigFile(os.Stderr))
	return func(ctx context.Context, host string, scope []string, check authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
		if b.creds != nil {
			user, pass, ok, err := b.creds.Lookup(ctx, host)
			if err != nil {
				return types.AuthConfig{}, err
			}
			if ok {
				return types.AuthConfig{Username: user, Password: pass, ServerAddress: host}, nil
			}
		}
		return docker(ctx, host, scope, check)
	}
}
