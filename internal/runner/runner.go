// Package runner owns executing a run: fetch the task's source at an
// exact commit, discover and pin the base images, build and push with
// BuildKit, and report what it produced (a lifecycle.Outcome). It is the
// lifecycle's Executor: it decides no run state, knows no queue, and
// never decides when a task should run. It also inspects a task's source
// for the API (Inspect).
package runner

import (
	"context"
	"errors"

	"github.com/moby/buildkit/client"

	"github.com/refit-dev/refit/internal/attest"
	"github.com/refit-dev/refit/internal/build"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/source"
	"github.com/refit-dev/refit/internal/store"
)

// runStore is what a run records of what it discovers.
type runStore interface {
	SetTaskBases(ctx context.Context, name string, bases []dockerfile.Base) error
	SeedBase(ctx context.Context, b store.BaseRef) error
	// The runs of a cascade and the observation of a base update, for
	// the attestation's cause chain.
	attest.RunDB
}

// builder builds and pushes an image.
type builder interface {
	Build(ctx context.Context, req build.Request, status chan *client.SolveStatus) (build.Result, error)
}

// resolver returns what a reference points to now: Resolve its digest
// (none fetched for a reference pinned by digest), Check its digest and
// platforms (a *regclient.Client) — for a base before the build, and for
// the image a run has pushed (its per-platform manifest digests).
type resolver interface {
	Resolve(ctx context.Context, ref string) (string, error)
	Check(ctx context.Context, ref string, known regclient.Result) (regclient.Result, error)
}

var (
	_ builder            = (*build.Builder)(nil)
	_ runStore           = (*store.Store)(nil)
	_ lifecycle.Executor = (*Runner)(nil)
	_ resolver           = (*regclient.Client)(nil)
)

// Config configures a Runner.
type Config struct {
	// Store records the bases a run discovers (required).
	Store runStore
	// Builder builds images (required).
	Builder builder
	// Resolver resolves base tags to digests and reads the platform
	// manifest digests of each pushed image (required).
	Resolver resolver
	// Registry is the embedded registry's host:port; images named without
	// a registry host are pushed there (required).
	Registry string
	// Insecure lists registry hosts reached over plain HTTP; the embedded
	// registry and loopback hosts always are (regclient.Insecure's rule).
	Insecure []string
	// WorkDir holds source checkouts while a run builds (required).
	WorkDir string
	// SourceDirs bounds the server directories a task's dir source may
	// name (checked when a task is inspected and when a run starts). The
	// zero value allows any directory.
	SourceDirs source.DirPolicy
	// BuilderReady, when set, is called before each build and waits until
	// the build daemon answers (a managed daemon may be restarting).
	BuilderReady func(ctx context.Context) error
	// Signer signs the attestation attached to every pushed image (its
	// run, cause chain, commit and pinned bases; see internal/attest).
	// nil = no attestation.
	Signer *attest.Key
	// Attestations pushes the attestation next to the image (a
	// *regclient.Client); required with Signer.
	Attestations attest.Registry
}

// Runner executes runs. It is safe for concurrent use.
type Runner struct {
	cfg Config
}

// New returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.Store == nil || cfg.Builder == nil || cfg.Resolver == nil || cfg.Registry == "" || cfg.WorkDir == "" {
		return nil, errors.New("runner: Store, Builder, Resolver, Registry and WorkDir are required")
	}
	if cfg.Signer != nil && cfg.Attestations == nil {
		return nil, errors.New("runner: Attestations is required with Signer")
	}
	cfg.Insecure = append([]string{cfg.Registry}, cfg.Insecure...)
	return &Runner{cfg: cfg}, nil
}
