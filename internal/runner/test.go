package runner

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/refit-dev/refit/internal/build"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/store"
)

// tester tests what a builder built (a *build.Builder): Test builds a
// test stage with the build's inputs and cache, Exec runs a command in
// the pushed image. Both go through BuildKit only.
type tester interface {
	Test(ctx context.Context, req build.Request, status chan *client.SolveStatus) error
	Exec(ctx context.Context, req build.ExecRequest, status chan *client.SolveStatus) error
}

var _ tester = (*build.Builder)(nil)

// tailLines is how many of a failed test's last output lines its error
// carries.
const tailLines = 10

// TestError is a failed test step: what failed, its exit code when a
// process failed, and the last lines of its output.
type TestError struct {
	What     string // "target test", "command [/app/selftest]"
	ExitCode int    // 0 when no process exit code is known
	Tail     []string
	Err      error
}

func (e *TestError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s failed", e.What)
	if e.ExitCode != 0 {
		fmt.Fprintf(&b, " with exit code %d", e.ExitCode)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if len(e.Tail) > 0 {
		b.WriteString("\nlast output lines:\n" + strings.Join(e.Tail, "\n"))
	}
	return b.String()
}

func (e *TestError) Unwrap() error { return e.Err }

// tail keeps the last lines of the processes' output in status updates.
type tail struct {
	lines []string
	part  []byte
}

func (t *tail) add(s *client.SolveStatus) {
	for _, l := range s.Logs {
		t.part = append(t.part, l.Data...)
		for {
			i := bytes.IndexByte(t.part, '\n')
			if i < 0 {
				break
			}
			t.push(string(bytes.TrimRight(t.part[:i], "\r")))
			t.part = t.part[i+1:]
		}
	}
}

func (t *tail) push(line string) {
	t.lines = append(t.lines, line)
	if len(t.lines) > tailLines {
		t.lines = t.lines[len(t.lines)-tailLines:]
	}
}

func (t *tail) result() []string {
	if len(t.part) > 0 {
		t.push(string(t.part))
		t.part = nil
	}
	return t.lines
}

// test runs the task's test step after the push: it tells the lifecycle
// the run is testing, builds the test target (req with Target replaced,
// nothing exported) and runs the command in the pushed image. A failure
// is a *TestError, at step test.
func (r *Runner) test(ctx context.Context, run store.Run, req build.Request, out *lifecycle.Outcome,
	raw lifecycle.Logs, logs *progress) error {
	t := run.Spec.Test
	if ph, ok := raw.(lifecycle.Phases); ok {
		if err := ph.Testing(ctx, *out); err != nil {
			return err
		}
	}
	tb, ok := r.cfg.Builder.(tester)
	if !ok {
		return fail("test", fmt.Errorf("the builder cannot run tests"))
	}
	t0 := time.Now()
	solve := func(what string, fn func(status chan *client.SolveStatus) error) error {
		if r.cfg.BuilderReady != nil {
			if err := r.cfg.BuilderReady(ctx); err != nil {
				return fail("test", fmt.Errorf("waiting for buildkit: %w", err))
			}
		}
		var tl tail
		status := make(chan *client.SolveStatus)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for s := range status {
				tl.add(s)
				logs.Status(s)
			}
		}()
		err := fn(status)
		<-done
		if err != nil {
			code, _ := build.ExitCode(err)
			return fail("test", &TestError{What: what, ExitCode: code, Tail: tl.result(), Err: err})
		}
		return nil
	}
	if t.Target != "" {
		req.Target, req.Names, req.Repository, req.Provenance = t.Target, nil, "", false
		err := solve("test target "+t.Target, func(status chan *client.SolveStatus) error { return tb.Test(ctx, req, status) })
		if err != nil {
			return err
		}
	}
	if len(t.Command) > 0 {
		platform := ""
		if len(run.Spec.Platforms) > 0 {
			platform = run.Spec.Platforms[0]
		}
		err := solve(fmt.Sprintf("test command %q", t.Command), func(status chan *client.SolveStatus) error {
			return tb.Exec(ctx, build.ExecRequest{Image: out.Image, Args: t.Command, Platform: platform}, status)
		})
		if err != nil {
			return err
		}
	}
	out.Timings["test"] = time.Since(t0).Round(time.Millisecond).String()
	return nil
}
