package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/opencontainers/go-digest"
	"github.com/riverqueue/river"

	"github.com/refit-dev/refit/internal/build"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/source"
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

type worker struct {
	river.WorkerDefaults[Args]
	r *Runner
}

// stepError is a run failure at a named step; it ends the run, not the job.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func fail(step string, err error) error { return &stepError{step, err} }

// Work executes the run. Build failures end the run as failed and the job
// as done; only a failure to record state is returned (and retried).
func (w *worker) Work(ctx context.Context, job *river.Job[Args]) error {
	st := w.r.cfg.Store
	log := w.r.cfg.Logger.With("run", store.FormatRunID(job.Args.RunID))
	run, err := st.StartRun(ctx, job.Args.RunID, job.ID)
	if errors.Is(err, store.ErrStaleJob) {
		log.Info("run was requeued under another job; this one ends")
		return nil
	}
	if err != nil {
		return err
	}
	if run.State.Done() {
		log.Info("run already ended; nothing to do", "state", run.State)
		return nil
	}
	log.Info("run started", "task", run.Task, "attempt", run.Attempts)
	run.Timings = map[string]string{"queued": run.StartedAt.Sub(run.CreatedAt).Round(time.Millisecond).String()}

	logs := newLogWriter(st, run.ID)
	execErr := w.execute(ctx, &run, logs)
	logs.Close()

	// Record the end even if the job's context is gone (shutdown).
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	run.FinishedAt = time.Now().UTC()
	run.Timings["total"] = run.FinishedAt.Sub(run.StartedAt).Round(time.Millisecond).String()
	var se *stepError
	switch {
	case execErr == nil:
		run.State = store.StateSucceeded
	case ctx.Err() != nil:
		run.State = store.StateCanceled
		run.Error = "canceled: " + context.Cause(ctx).Error()
		if errors.As(execErr, &se) {
			run.Step = se.step
		}
	case errors.As(execErr, &se):
		run.State, run.Step, run.Error = store.StateFailed, se.step, se.err.Error()
	default:
		run.State, run.Error = store.StateFailed, execErr.Error()
	}
	var after func(*store.Tx, []int64) error
	if f := w.r.cfg.AfterFinish; f != nil {
		after = func(tx *store.Tx, released []int64) error { return f(tx, run, released) }
	}
	if err := st.FinishRun(saveCtx, run, w.r.enqueue, after); err != nil {
		if errors.Is(err, store.ErrFinished) {
			return nil
		}
		return err
	}
	w.r.markEnded(run.ID)
	log.Info("run ended", "state", run.State, "image", run.Image, "error", run.Error)
	return nil
}

// execute does the run's work, filling in run as it learns things.
func (w *worker) execute(ctx context.Context, run *store.Run, logs *logWriter) error {
	cfg := w.r.cfg
	spec := run.Spec.Defaults()
	begin := time.Now()
	mark := func(name string, since time.Time) {
		run.Timings[name] = time.Since(since).Round(time.Millisecond).String()
	}

	// 1. Source at an exact commit.
	var step *logStep
	var dir string
	if spec.Source.Git != "" {
		step = logs.Step("fetch source " + source.Redact(spec.Source.Git) + "#" + spec.Source.Ref)
		dir = filepath.Join(cfg.WorkDir, store.FormatRunID(run.ID))
		os.RemoveAll(dir)
		defer os.RemoveAll(dir)
	}
	root, commit, err := w.r.fetchSource(ctx, spec, run.Cause.SHA, dir)
	if step != nil {
		if err == nil {
			step.Logf("commit %s %s (%s)\n", commit.Short, commit.Subject, commit.Author)
		}
		step.Done(err)
	}
	if err != nil {
		return fail("source", err)
	}
	run.Commit = commit.SHA
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
		dgst, err := cfg.Resolver.Resolve(ctx, b.Ref)
		if err != nil {
			step.Done(err)
			return fail("resolve", err)
		}
		key, err := dockerfile.ContextKey(b.Name)
		if err != nil {
			return fail("resolve", err)
		}
		pins[key] = stripDigest(b.Ref) + "@" + dgst
		if !strings.Contains(b.Ref, "@") {
			if err := cfg.Store.SeedBaseRef(ctx, b.Ref, dgst); err != nil {
				return err
			}
		}
		run.Bases = append(run.Bases, store.UsedBase{Ref: b.Ref, Name: b.Name, Stage: b.Stage, Role: string(b.Role), Digest: dgst})
		step.Logf("%-8s %s@%s\n", b.Role, b.Ref, dgst)
		if b.Role == dockerfile.RoleRuntime {
			runtimeBase = &run.Bases[len(run.Bases)-1]
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
	ann := map[string]string{AnnotationCreated: time.Now().UTC().Format(time.RFC3339)}
	if runtimeBase != nil {
		ann[AnnotationBaseName] = runtimeBase.Ref
		ann[AnnotationBaseDigest] = runtimeBase.Digest
	}
	if spec.Source.Git != "" {
		ann[AnnotationSource] = source.Redact(spec.Source.Git)
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
	res, err := cfg.Builder.Build(ctx, build.Request{
		Context:        src.context,
		Dockerfile:     src.dockerfile,
		DockerfileName: path.Base(spec.Dockerfile),
		DockerIgnore:   src.ignore,
		BuildArgs:      spec.BuildArgs,
		Target:         spec.Target,
		Platforms:      spec.Platforms,
		Pins:           pins,
		Names:          names,
		Insecure:       w.insecure(repo),
		Annotations:    ann,
		Labels:         ann,
		Provenance:     true,
	}, status)
	<-done
	mark("build", t0)
	if err != nil {
		return fail("build", err)
	}
	run.Digest, run.Image, run.Tags = res.Digest, repo+"@"+res.Digest, tags
	return nil
}

func (w *worker) insecure(repo string) bool {
	host, _, _ := strings.Cut(repo, "/")
	for _, h := range w.r.cfg.Insecure {
		if h == host {
			return true
		}
	}
	return strings.HasPrefix(host, "127.") || strings.HasPrefix(host, "localhost")
}

// stripDigest removes an "@sha256:…" suffix, keeping repository and tag.
func stripDigest(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i]
	}
	return ref
}

// logWriter batches a run's progress into the store: BuildKit status
// updates as they come, and refit's own steps as synthetic vertices so one
// renderer shows both.
type logWriter struct {
	st    runStore
	runID int64
	ch    chan []byte
	done  chan struct{}
	n     int
}

func newLogWriter(st runStore, runID int64) *logWriter {
	l := &logWriter{st: st, runID: runID, ch: make(chan []byte, 256), done: make(chan struct{})}
	go l.loop()
	return l
}

func (l *logWriter) loop() {
	defer close(l.done)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var batch [][]byte
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		// A log write that fails loses log lines, never the run.
		_ = l.st.AppendLogs(ctx, l.runID, batch)
		cancel()
		batch = nil
	}
	for {
		select {
		case b, ok := <-l.ch:
			if !ok {
				flush()
				return
			}
			batch = append(batch, b)
			if len(batch) >= 128 {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// Status records one BuildKit status update.
func (l *logWriter) Status(s *client.SolveStatus) {
	b, err := json.Marshal(s)
	if err == nil {
		l.ch <- b
	}
}

// Close flushes and stops the writer.
func (l *logWriter) Close() {
	close(l.ch)
	<-l.done
}

// logStep is one of refit's own steps, shown like a build step.
type logStep struct {
	l *logWriter
	v client.Vertex
}

// Step starts a named step in the log.
func (l *logWriter) Step(name string) *logStep {
	l.n++
	now := time.Now()
	s := &logStep{l: l, v: client.Vertex{
		Digest:  digest.FromString(fmt.Sprintf("refit-step-%d-%d", l.runID, l.n)),
		Name:    "[refit] " + name,
		Started: &now,
	}}
	l.Status(&client.SolveStatus{Vertexes: []*client.Vertex{&s.v}})
	return s
}

// Logf adds a line of output to the step.
func (s *logStep) Logf(format string, args ...any) {
	s.l.Status(&client.SolveStatus{Logs: []*client.VertexLog{{
		Vertex: s.v.Digest, Stream: 1, Data: fmt.Appendf(nil, format, args...), Timestamp: time.Now(),
	}}})
}

// Done completes the step, with its error if any.
func (s *logStep) Done(err error) {
	now := time.Now()
	v := s.v
	v.Completed = &now
	if err != nil {
		v.Error = err.Error()
	}
	s.l.Status(&client.SolveStatus{Vertexes: []*client.Vertex{&v}})
}
