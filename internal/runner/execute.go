package runner

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/tonistiigi/fsutil"

	"github.com/refit-dev/refit/internal/build"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/redact"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// OCI annotation keys refit sets on every image it builds.
const (
	AnnotationBaseName   = "org.opencontainers.image.base.name"
	AnnotationBaseDigest = "org.opencontainers.image.base.digest"
	AnnotationSource     = "org.opencontainers.image.source"
	AnnotationRevision   = "org.opencontainers.image.revision"
	AnnotationCreated    = "org.opencontainers.image.created"
)

// fail is a run failure at a named step.
func fail(step string, err error) error { return &lifecycle.StepError{Step: step, Err: err} }

// Execute does the run's work: source at an exact commit, bases
// discovered and pinned, build and push. It fills the Outcome as it
// learns things, so a failure still reports what came before it; a
// failure is a *lifecycle.StepError naming the step, except one to
// record the task's bases. Its log goes to logs.
func (r *Runner) Execute(ctx context.Context, run store.Run, logs lifecycle.Logs) (lifecycle.Outcome, error) {
	out := lifecycle.Outcome{Timings: map[string]string{}}
	err := r.execute(ctx, run, &out, logs, newProgress(logs, run.ID))
	return out, err
}

func (r *Runner) execute(ctx context.Context, run store.Run, out *lifecycle.Outcome, raw lifecycle.Logs, logs *progress) error {
	cfg := r.cfg
	spec := run.Spec.Defaults()
	begin := time.Now()
	mark := func(name string, since time.Time) {
		out.Timings[name] = time.Since(since).Round(time.Millisecond).String()
	}

	// 1. Source at an exact commit.
	var step *logStep
	var dir string
	if spec.Source.Git != "" {
		step = logs.Step("fetch source " + redact.URL(spec.Source.Git) + "#" + spec.Source.Ref)
		dir = filepath.Join(cfg.WorkDir, store.FormatRunID(run.ID))
		os.RemoveAll(dir)
		defer os.RemoveAll(dir)
	}
	root, commit, err := r.fetchSource(ctx, spec, run.Cause.SHA, dir)
	if step != nil {
		if err == nil {
			step.Logf("commit %s %s (%s)\n", commit.Short, commit.Subject, commit.Author)
		}
		step.Done(err)
	}
	if err != nil {
		return fail("source", err)
	}
	out.Commit = commit.SHA
	mark("source", begin)

	// 2. Read the context and Dockerfile inside the source; discover and
	// pin the bases.
	t0 := time.Now()
	step = logs.Step("resolve base images of " + spec.Dockerfile)
	src, err := readSource(root, spec)
	if err != nil {
		step.Done(err)
		var de *dockerfile.Error
		if errors.As(err, &de) {
			return fail("dockerfile", err)
		}
		return fail("source", err)
	}
	defer src.Close()
	parsed := src.parsed
	if err := cfg.Store.SetTaskBases(ctx, run.Task, parsed.Bases); err != nil {
		return err
	}
	pins := map[string]string{}
	var runtimeBase *store.UsedBase
	for _, b := range parsed.Bases {
		// A tag is looked up with its platforms (one GET of the manifest
		// — an index lists them — plus the config of a single image), so
		// that the index, seeded from this sighting, knows each
		// platform's manifest when the tag moves before its first check.
		var seen regclient.Result
		if strings.Contains(b.Ref, "@") {
			seen.Digest, err = cfg.Resolver.Resolve(ctx, b.Ref)
		} else {
			seen, err = cfg.Resolver.Check(ctx, b.Ref, regclient.Result{})
		}
		if err != nil {
			err = resolveError(b.Ref, err)
			step.Done(err)
			return fail("resolve", err)
		}
		dgst := seen.Digest
		key, err := dockerfile.ContextKey(b.Name)
		if err != nil {
			return fail("resolve", err)
		}
		pins[key] = stripDigest(b.Ref) + "@" + dgst
		if !strings.Contains(b.Ref, "@") {
			if err := cfg.Store.SeedBase(ctx, store.BaseRef{Ref: b.Ref, Digest: dgst, MediaType: seen.MediaType, Platforms: seen.Platforms}); err != nil {
				return err
			}
		}
		out.Bases = append(out.Bases, store.UsedBase{Ref: b.Ref, Name: b.Name, Stage: b.Stage, Role: string(b.Role), Digest: dgst})
		step.Logf("%-8s %s@%s\n", b.Role, b.Ref, dgst)
		if b.Role == dockerfile.RoleRuntime {
			runtimeBase = &out.Bases[len(out.Bases)-1]
		}
	}
	step.Done(nil)
	mark("resolve", t0)

	// 3. Build, push, tag.
	t0 = time.Now()
	repo := spec.Repository(cfg.Registry)
	var td task.TagData
	td.Run.ID = store.FormatRunID(run.ID)
	td.Commit.SHA, td.Commit.Short = commit.SHA, commit.Short
	td.Task.Name = spec.Name
	tags, err := task.RenderTags(spec.Tags, td)
	if err != nil {
		return fail("tags", err)
	}
	var names []string
	for _, t := range tags {
		names = append(names, repo+":"+t)
	}
	epoch := commit.Time
	if spec.Source.Git == "" {
		if epoch, err = dirEpoch(ctx, root, spec, src); err != nil {
			return fail("source", err)
		}
	}
	if epoch.IsZero() {
		epoch = time.Now() // no commit time known: not reproducible
	}
	epoch = epoch.UTC().Truncate(time.Second)
	ann := map[string]string{AnnotationCreated: epoch.Format(time.RFC3339)}
	if runtimeBase != nil {
		ann[AnnotationBaseName] = runtimeBase.Ref
		ann[AnnotationBaseDigest] = runtimeBase.Digest
	}
	if spec.Source.Git != "" {
		ann[AnnotationSource] = redact.URL(spec.Source.Git)
		ann[AnnotationRevision] = commit.SHA
	}
	if cfg.BuilderReady != nil {
		if err := cfg.BuilderReady(ctx); err != nil {
			return fail("build", fmt.Errorf("waiting for buildkit: %w", err))
		}
	}
	status := make(chan *client.SolveStatus)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range status {
			logs.Status(s)
		}
	}()
	req := build.Request{
		Context:        src.context,
		Dockerfile:     src.dockerfile,
		DockerfileName: path.Base(spec.Dockerfile),
		DockerIgnore:   src.ignore,
		BuildArgs:      spec.BuildArgs,
		Target:         spec.Target,
		Platforms:      spec.Platforms,
		Pins:           pins,
		Names:          names,
		Repository:     repo, // pushed by digest alone when there are no tags
		Insecure:       r.insecure(repo),
		Annotations:    ann,
		Labels:         ann,
		Provenance:     true,
		// The same inputs (commit or dir content, pinned bases, args)
		// give the same platform image digests: see SourceDateEpoch.
		SourceDateEpoch: epoch,
	}
	res, err := cfg.Builder.Build(ctx, req, status)
	<-done
	mark("build", t0)
	if err != nil {
		return fail("build", err)
	}
	out.Digest, out.Image, out.Tags = res.Digest, repo+"@"+res.Digest, tags

	// 4. Read back the platform image digests: what dependents build on,
	// and what decides whether this push changed anything (the index
	// digest moves with the provenance's timestamps alone). A failed read
	// does not fail a pushed build; without them the run counts as a
	// change.
	step = logs.Step("read platform digests of " + out.Image)
	pushed, err := cfg.Resolver.Check(ctx, out.Image, regclient.Result{})
	if err == nil {
		out.Platforms = pushed.Platforms
		for _, p := range pushed.Platforms {
			step.Logf("%s %s\n", cmp.Or(p.Platform, "(no platform)"), p.Digest)
		}
	}
	step.Done(err)

	// 5. Attach the attestation: why this image exists. A registry that
	// refuses it does not fail the pushed build; the log says so.
	r.attach(ctx, run, out, logs)

	// 6. Test the pushed image (see test.go).
	if spec.Test != nil {
		return r.test(ctx, run, req, out, raw, logs)
	}
	return nil
}

// dirEpoch is a dir source's SOURCE_DATE_EPOCH: the newest modification
// time among the files the build sends (the context after its ignore
// file) and the Dockerfile. It stays put while the directory is
// unchanged, moves when a file is written, and ignores files the build
// does not see (logs, node_modules excluded by .dockerignore).
func dirEpoch(ctx context.Context, root string, spec task.Spec, src *sourceFiles) (time.Time, error) {
	var newest time.Time
	tree, err := os.OpenRoot(root)
	if err != nil {
		return newest, fmt.Errorf("opening the source: %w", err)
	}
	defer tree.Close()
	if fi, err := tree.Stat(path.Join(spec.Context, spec.Dockerfile)); err == nil {
		newest = fi.ModTime()
	}
	var excludes []string
	if src.ignore != nil {
		if excludes, err = ignorefile.ReadAll(bytes.NewReader(src.ignore)); err != nil {
			return newest, fmt.Errorf("dockerignore: %w", err)
		}
	}
	ctxFS, err := fsutil.NewFilterFS(fsutil.NewRootFS(fsutil.NewRoot(src.context)), &fsutil.FilterOpt{ExcludePatterns: excludes})
	if err != nil {
		return newest, fmt.Errorf("dockerignore: %w", err)
	}
	err = ctxFS.Walk(ctx, "/", func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		return nil
	})
	if err != nil {
		return newest, fmt.Errorf("reading the context's modification times: %w", err)
	}
	return newest, nil
}

func (r *Runner) insecure(repo string) bool {
	return regclient.Insecure(r.cfg.Insecure).Has(registryHost(repo))
}

// stripDigest removes an "@sha256:…" suffix, keeping repository and tag.
func stripDigest(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i]
	}
	return ref
}
