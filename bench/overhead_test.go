// Package bench holds end-to-end benchmarks of a whole in-process refit.
//
// BenchmarkOverhead compares refit's wall time for one run (queue → pushed,
// as a user following the run sees it) with a plain `buildctl build` of the
// same Dockerfile and context against the same buildkitd, in alternating
// pairs, and reports the ratio. See README.md.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/baseimage"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/runner"
	"github.com/refit-dev/refit/internal/serve"
	"github.com/refit-dev/refit/internal/task"
)

// benchDockerfile is a small but real build: a build stage that does a
// second or so of CPU work (hashing generated data) and a final stage on
// the same base that copies its output and the context. NONCE changes for
// every build so BuildKit's cache never makes a build free; the context
// COPYs stay cached after the first build, as they would in practice.
const benchDockerfile = `ARG BASE
FROM ${BASE} AS build
ARG NONCE
WORKDIR /src
COPY src/ ./
RUN echo "nonce ${NONCE}" > /nonce \
 && mkdir -p /out \
 && head -c 33554432 /dev/urandom > /tmp/blob \
 && for i in 1 2 3 4; do sha256sum /tmp/blob >> /out/blob.sums; done \
 && sha256sum /src/* > /out/src.sums \
 && head -c 4194304 /tmp/blob > /out/artifact.bin \
 && cat /nonce >> /out/src.sums \
 && rm /tmp/blob

FROM ${BASE}
COPY --from=build /out/ /app/
COPY src/ /app/src/
RUN sha256sum /app/artifact.bin /app/src/* > /app/SHA256SUMS
`

const (
	defaultPairs = 7
	minPairs     = 5
	taskName     = "bench"
)

// sample is one measured build.
type sample struct {
	wall time.Duration
	// refit only: where the wall time went.
	api, queued, source, resolve, build, finish, notice time.Duration
	run                                                 string
}

func BenchmarkOverhead(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark: needs buildkitd, runc and bin/buildctl (make deps)")
	}
	root, err := moduleRoot()
	if err != nil {
		b.Fatal(err)
	}
	buildctl := filepath.Join(root, "bin", "buildctl")
	if fi, err := os.Stat(buildctl); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		b.Fatalf("%s is missing or not executable (%v): build it with `go build -o bin/buildctl github.com/moby/buildkit/cmd/buildctl` in %s", buildctl, err, root)
	}
	pairs := defaultPairs
	if v := os.Getenv("REFIT_BENCH_PAIRS"); v != "" {
		if pairs, err = strconv.Atoi(v); err != nil || pairs < 1 {
			b.Fatalf("REFIT_BENCH_PAIRS=%q: want a positive number of pairs", v)
		}
	}
	pairs = max(pairs, minPairs, b.N)

	// One refit, one managed buildkitd, for both sides.
	ctx, cancel := context.WithCancel(context.Background())
	var binary string
	if p := filepath.Join(root, "bin", "buildkitd"); fileExists(p) {
		binary = p
	}
	var database string // REFIT_TEST_POSTGRES=1: refit keeps its state in PostgreSQL
	if pgtest.Wanted() {
		database = pgtest.URL(b)
	}
	s, err := serve.Start(ctx, serve.Config{
		DatabaseURL:    database,
		DataDir:        b.TempDir(),
		Listen:         "127.0.0.1:0",
		RegistryListen: "127.0.0.1:0",
		BuildKitBinary: binary,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Out:            io.Discard,
	})
	if err != nil {
		cancel()
		b.Fatalf("starting refit: %v", err)
	}
	b.Cleanup(func() {
		cancel()
		if err := s.Wait(); err != nil {
			b.Errorf("stopping refit: %v", err)
		}
	})
	tok, err := os.ReadFile(s.TokenFile)
	if err != nil {
		b.Fatal(err)
	}
	c := client.New(s.APIURL, strings.TrimSpace(string(tok)))

	// The base, in the embedded registry.
	baseRef := s.RegistryAddr + "/base/busybox:1"
	_, baseDigest, err := baseimage.Push(baseRef, "")
	if err != nil {
		b.Fatal(err)
	}

	// One context directory for both sides.
	dir := b.TempDir()
	if err := writeContext(dir); err != nil {
		b.Fatal(err)
	}
	spec := api.TaskSpec{
		Name:      taskName,
		Source:    api.TaskSource{Dir: dir},
		BuildArgs: map[string]string{"BASE": baseRef, "NONCE": "0"},
	}
	if _, err := c.CreateTask(ctx, spec); err != nil {
		b.Fatalf("creating task: %v", err)
	}

	// The plain side does what refit's build does (internal/build,
	// internal/runner/execute.go): same frontend and build args, the base
	// pinned by digest through a named context, the same labels and
	// manifest+index annotations, mode=max provenance, a reproducible
	// build (SOURCE_DATE_EPOCH from the context's newest file, as refit
	// takes it for a dir source, and rewrite-timestamp), push to the
	// same registry.
	pinKey, err := dockerfile.ContextKey(baseRef)
	if err != nil {
		b.Fatal(err)
	}
	epoch, err := newestModTime(dir)
	if err != nil {
		b.Fatal(err)
	}
	plainRef := s.RegistryAddr + "/plain:latest"
	plain := func(nonce string) (sample, error) {
		ann := map[string]string{
			runner.AnnotationCreated:    epoch.UTC().Format(time.RFC3339),
			runner.AnnotationBaseName:   baseRef,
			runner.AnnotationBaseDigest: baseDigest,
		}
		out := "type=image,name=" + plainRef + ",push=true,registry.insecure=true,rewrite-timestamp=true"
		args := []string{"--addr", s.BuildKitAddr, "build", "--progress", "plain",
			"--frontend", "dockerfile.v0",
			"--local", "context=" + dir, "--local", "dockerfile=" + dir,
			"--opt", "filename=Dockerfile",
			"--opt", "platform=" + task.HostPlatform(),
			"--opt", "build-arg:BASE=" + baseRef,
			"--opt", "build-arg:NONCE=" + nonce,
			"--opt", "context:" + pinKey + "=docker-image://" + baseRef + "@" + baseDigest,
			"--opt", "attest:provenance=mode=max",
			"--opt", "build-arg:SOURCE_DATE_EPOCH=" + strconv.FormatInt(epoch.Unix(), 10),
		}
		for _, k := range slices.Sorted(maps.Keys(ann)) {
			args = append(args, "--opt", "label:"+k+"="+ann[k])
			out += ",annotation-manifest." + k + "=" + ann[k] + ",annotation-index." + k + "=" + ann[k]
		}
		args = append(args, "--output", out)
		var log bytes.Buffer
		cmd := exec.CommandContext(ctx, buildctl, args...)
		cmd.Stdout, cmd.Stderr = &log, &log
		t0 := time.Now()
		err := cmd.Run()
		wall := time.Since(t0)
		if err != nil {
			return sample{}, fmt.Errorf("buildctl %s: %v\n%s", strings.Join(args, " "), err, tail(log.String(), 4000))
		}
		return sample{wall: wall}, nil
	}

	refit := func(nonce string) (sample, error) {
		spec.BuildArgs["NONCE"] = nonce
		if _, err := c.PutTask(ctx, spec); err != nil {
			return sample{}, fmt.Errorf("updating task: %w", err)
		}
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Minute)
		defer rcancel()
		t0 := time.Now()
		queued, err := c.Run(rctx, taskName)
		if err != nil {
			return sample{}, fmt.Errorf("queueing run: %w", err)
		}
		rid := queued.ID
		var logEnd time.Time
		if err := c.Logs(rctx, rid, true, func(api.LogChunk) error { return nil }); err != nil {
			return sample{}, fmt.Errorf("following %s: %w", rid, err)
		}
		logEnd = time.Now()
		run, err := c.GetRun(rctx, rid)
		if err != nil {
			return sample{}, err
		}
		wall := time.Since(t0)
		if run.State != api.StateSucceeded {
			return sample{}, fmt.Errorf("run %s: state %s, step %s: %s", rid, run.State, run.Step, run.Error)
		}
		sm := sample{
			wall:    wall,
			run:     rid,
			api:     run.CreatedAt.Sub(t0),
			queued:  run.StartedAt.Sub(run.CreatedAt),
			source:  timing(run, "source"),
			resolve: timing(run, "resolve"),
			build:   timing(run, "build"),
			notice:  logEnd.Sub(run.FinishedAt),
		}
		sm.finish = run.FinishedAt.Sub(run.StartedAt) - sm.source - sm.resolve - sm.build
		return sm, nil
	}

	nonce := func(side string, i int) string {
		return fmt.Sprintf("%s-%d-%d", side, i, time.Now().UnixNano())
	}

	// Warm-up, not measured: the first build of each side pulls the base
	// into BuildKit and fills the cache of the context COPYs.
	for _, side := range []func(string) (sample, error){refit, plain} {
		if _, err := side(nonce("warm", 0)); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}

	b.ResetTimer()
	rs, ps := make([]sample, pairs), make([]sample, pairs)
	for i := range pairs {
		var err error
		if i%2 == 0 {
			if rs[i], err = refit(nonce("refit", i)); err == nil {
				ps[i], err = plain(nonce("plain", i))
			}
		} else {
			if ps[i], err = plain(nonce("plain", i)); err == nil {
				rs[i], err = refit(nonce("refit", i))
			}
		}
		if err != nil {
			b.Fatalf("pair %d: %v", i+1, err)
		}
	}
	b.StopTimer()

	// Both sides pushed an index with a provenance attestation.
	for _, r := range []string{s.RegistryAddr + "/" + taskName + ":latest", plainRef} {
		if err := checkProvenance(r); err != nil {
			b.Error(err)
		}
	}

	report(b, rs, ps)
}

// report prints the pairs and the summary and records the metrics.
func report(b *testing.B, rs, ps []sample) {
	var w strings.Builder
	fmt.Fprintf(&w, "\n%-4s %-6s %10s %10s %7s   refit breakdown: %s\n", "pair", "first", "refit", "buildctl", "ratio",
		"api queued source resolve build finish notice")
	var ratios []float64
	for i := range rs {
		first := "refit"
		if i%2 == 1 {
			first = "plain"
		}
		r := rs[i]
		ratio := float64(r.wall) / float64(ps[i].wall)
		ratios = append(ratios, ratio)
		fmt.Fprintf(&w, "%-4d %-6s %10s %10s %7.3f   %s %s %s %s %s %s %s (%s)\n", i+1, first,
			ms(r.wall), ms(ps[i].wall), ratio,
			ms(r.api), ms(r.queued), ms(r.source), ms(r.resolve), ms(r.build), ms(r.finish), ms(r.notice), r.run)
	}
	walls := func(ss []sample, f func(sample) time.Duration) time.Duration {
		var ds []time.Duration
		for _, s := range ss {
			ds = append(ds, f(s))
		}
		return median(ds)
	}
	wall := func(s sample) time.Duration { return s.wall }
	mr, mp := walls(rs, wall), walls(ps, wall)
	ratio := float64(mr) / float64(mp)
	pairRatio := medianF(ratios)
	fmt.Fprintf(&w, "median refit    %s\n", ms(mr))
	fmt.Fprintf(&w, "median buildctl %s\n", ms(mp))
	fmt.Fprintf(&w, "ratio median(refit)/median(buildctl) %.3f  → overhead %+.1f%% (%s)\n", ratio, (ratio-1)*100, ms(mr-mp))
	fmt.Fprintf(&w, "median of per-pair ratios           %.3f  → overhead %+.1f%%\n", pairRatio, (pairRatio-1)*100)
	fmt.Fprintf(&w, "median refit breakdown: api %s, queued %s, source %s, resolve %s, build %s, finish %s, notice %s\n",
		ms(walls(rs, func(s sample) time.Duration { return s.api })),
		ms(walls(rs, func(s sample) time.Duration { return s.queued })),
		ms(walls(rs, func(s sample) time.Duration { return s.source })),
		ms(walls(rs, func(s sample) time.Duration { return s.resolve })),
		ms(walls(rs, func(s sample) time.Duration { return s.build })),
		ms(walls(rs, func(s sample) time.Duration { return s.finish })),
		ms(walls(rs, func(s sample) time.Duration { return s.notice })))
	fmt.Fprintf(&w, "(target: overhead ≤ 10%%; reported, not enforced)\n")
	b.Log(w.String())
	fmt.Fprint(os.Stderr, w.String())

	b.ReportMetric(0, "ns/op") // one invocation is many builds: ns/op means nothing
	b.ReportMetric(float64(mr)/1e6, "refit-ms")
	b.ReportMetric(float64(mp)/1e6, "buildctl-ms")
	b.ReportMetric(ratio, "refit/buildctl")
	b.ReportMetric(pairRatio, "pair-ratio")
	b.ReportMetric((ratio-1)*100, "overhead-%")
	b.ReportMetric(float64(len(rs)), "pairs")
}

// writeContext writes the Dockerfile and a small source tree (about 1 MB
// of deterministic text in 40 files).
func writeContext(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(benchDockerfile), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 40 {
		var body bytes.Buffer
		for body.Len() < 25<<10 {
			fmt.Fprintf(&body, "line %d: %016x %016x\n", body.Len(), rng.Uint64(), rng.Uint64())
		}
		if err := os.WriteFile(filepath.Join(dir, "src", fmt.Sprintf("file%02d.txt", i)), body.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// checkProvenance fails unless ref is an index holding an attestation
// manifest, as refit pushes.
func checkProvenance(ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	idx, err := remote.Index(r)
	if err != nil {
		return fmt.Errorf("reading index %s: %w", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, m := range im.Manifests {
		if m.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			return nil
		}
	}
	return fmt.Errorf("%s has no provenance attestation manifest: the two sides did not do the same work", ref)
}

// moduleRoot walks up from the working directory to the one holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run the benchmark inside the refit module")
		}
		dir = parent
	}
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

func timing(r api.Run, key string) time.Duration {
	d, _ := time.ParseDuration(r.Timings[key])
	return d
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func medianF(fs []float64) float64 {
	s := slices.Clone(fs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// newestModTime is the newest modification time under dir: what refit
// takes as a dir source's SOURCE_DATE_EPOCH (it has no ignore file).
func newestModTime(dir string) (time.Time, error) {
	var newest time.Time
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		return nil
	})
	return newest.Truncate(time.Second), err
}
