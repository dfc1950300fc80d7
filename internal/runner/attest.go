package runner

import (
	"context"
	"errors"
	"time"

	"github.com/refit-dev/refit/internal/attest"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/store"
)

// ErrNoSigner is returned by Attest when the Runner has no Signer.
var ErrNoSigner = errors.New("attestations are off: no signing key")

// Attest signs and attaches a statement about the image run pushed
// (run.Image, run.Digest, run.Platforms as recorded), told from refit's
// database (attest.FromRun), after fill — when not nil — has added what
// the run learned since its push: the test result (p.Test), approvals
// (p.Approvals), its state. Each call attaches a new, complete
// statement beside the earlier ones; the newest is the image's story.
// The image and its tags are not touched. The steps that decide a
// run's test and approvals call it after each decision.
func (r *Runner) Attest(ctx context.Context, run store.Run, fill func(*attest.Predicate)) (attest.Attached, error) {
	if r.cfg.Signer == nil {
		return attest.Attached{}, ErrNoSigner
	}
	p, err := attest.FromRun(ctx, r.cfg.Store, run, r.cfg.Signer.ID)
	if err != nil {
		return attest.Attached{}, err
	}
	if fill != nil {
		fill(&p)
	}
	return attest.Attach(ctx, r.cfg.Attestations, r.cfg.Signer, p)
}

// AttestRun attaches a fresh statement of run as refit's database tells
// it now — its test result, approvals and promotion included — for the
// lifecycle to call after each decision on a pushed run. Without a
// signing key it does nothing.
func (r *Runner) AttestRun(ctx context.Context, run store.Run) error {
	if r.cfg.Signer == nil || run.Digest == "" {
		return nil
	}
	_, err := r.Attest(ctx, run, nil)
	return err
}

// attach attests the image run has just pushed: a step of the run's
// log, whose failure is a warning there and leaves the run as it is.
func (r *Runner) attach(ctx context.Context, run store.Run, out *lifecycle.Outcome, logs *progress) {
	if r.cfg.Signer == nil || out.Digest == "" {
		return
	}
	t0 := time.Now()
	defer func() { out.Timings["attest"] = time.Since(t0).Round(time.Millisecond).String() }()
	step := logs.Step("attach attestation to " + out.Image)
	run = out.Pushed(run)
	run.State, run.FinishedAt = "", time.Now().UTC() // pushed; the run ends after this
	at, err := r.Attest(ctx, run, nil)
	for _, a := range at.Artifacts {
		step.Logf("%s (%s)\n", a, at.Via)
	}
	if err != nil {
		step.Logf("warning: the image has no attestation: %v\n", err)
	}
	step.Done(err)
}
