package runner

import (
	"context"
	"time"

	"github.com/refit-dev/refit/internal/attest"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/store"
)

// attach signs and pushes the attestation of the image run pushed (see
// internal/attest): a step of the run's log, whose failure is a warning
// there and leaves the run as it is. The image and its tags are not
// touched.
func (r *Runner) attach(ctx context.Context, run store.Run, out *lifecycle.Outcome, commit string, logs *progress) {
	if r.cfg.Signer == nil || out.Digest == "" {
		return
	}
	t0 := time.Now()
	defer func() { out.Timings["attest"] = time.Since(t0).Round(time.Millisecond).String() }()
	step := logs.Step("attach attestation to " + out.Image)
	run.Commit, run.Bases, run.Digest, run.Image, run.Tags, run.Platforms = commit, out.Bases, out.Digest, out.Image, out.Tags, out.Platforms
	run.State, run.FinishedAt = "", time.Now().UTC() // pushed; the run ends after this
	p, err := attest.FromRun(ctx, r.cfg.Store, run, r.cfg.Signer.ID)
	if err == nil {
		var at attest.Attached
		if at, err = attest.Attach(ctx, r.cfg.Attestations, r.cfg.Signer, p); err == nil {
			for _, a := range at.Artifacts {
				step.Logf("%s (%s)\n", a, at.Via)
			}
		}
	}
	if err != nil {
		step.Logf("warning: the image has no attestation: %v\n", err)
	}
	step.Done(err)
}
