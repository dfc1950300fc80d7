package runner

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/opencontainers/go-digest"

	"github.com/refit-dev/refit/internal/lifecycle"
)

// progress writes a run's log: BuildKit status updates as they come, and
// refit's own steps as synthetic vertices so one renderer shows both.
type progress struct {
	logs  lifecycle.Logs
	runID int64
	n     int // steps so far
}

func newProgress(logs lifecycle.Logs, runID int64) *progress {
	return &progress{logs: logs, runID: runID}
}

// Status records one BuildKit status update.
func (l *progress) Status(s *client.SolveStatus) {
	b, err := json.Marshal(s)
	if err == nil {
		l.logs.Append(b)
	}
}

// logStep is one of refit's own steps, shown like a build step.
type logStep struct {
	l *progress
	v client.Vertex
}

// Step starts a named step in the log.
func (l *progress) Step(name string) *logStep {
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
