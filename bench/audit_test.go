package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/build"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/runner"
	"github.com/refit-dev/refit/internal/server"
	"github.com/refit-dev/refit/internal/store"
)

// auditSide is the API over a store with or without the audit trail.
type auditSide struct {
	name string
	c    *client.Client
	spec api.TaskSpec
}

func newAuditSide(b *testing.B, withAudit bool) *auditSide {
	b.Helper()
	ctx := context.Background()
	data := b.TempDir()
	cfg := store.Config{Path: filepath.Join(data, "refit.db"), DisableAuditForBenchmark: !withAudit}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(b), DisableAuditForBenchmark: !withAudit}
	}
	st, err := store.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	run, err := runner.New(runner.Config{
		Store:    st,
		Builder:  build.New(func() string { return "unix://" + filepath.Join(data, "none.sock") }, nil),
		Resolver: regclient.New(regclient.Config{}),
		Registry: "127.0.0.1:5999",
		WorkDir:  b.TempDir(),
	})
	if err != nil {
		b.Fatal(err)
	}
	// The lifecycle is not started: a manual run is committed with its
	// job (what POST /runs costs), and never built.
	runs, err := lifecycle.New(ctx, lifecycle.Config{Store: st, Executor: run, Registry: "127.0.0.1:5999"})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Config{Store: st, Runs: runs, Inspector: run, Index: st, Events: st,
		Registry: "127.0.0.1:5999", CheckTasks: runs.CheckTasks, AuditKey: testSigningKey("bench")}))
	b.Cleanup(srv.Close)
	token, err := st.NewToken(ctx, "admin")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nARG N\nCOPY Dockerfile /\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	s := &auditSide{name: map[bool]string{true: "audit", false: "none"}[withAudit], c: client.New(srv.URL, token),
		spec: api.TaskSpec{Name: "app", Source: api.TaskSource{Dir: dir}, BuildArgs: map[string]string{"N": "0"}}}
	if _, err := s.c.CreateTask(ctx, s.spec); err != nil {
		b.Fatal(err)
	}
	return s
}

// round queues runs manual runs and puts updates changed task specs
// through the API, one request at a time, and returns each rate per
// second.
func (s *auditSide) round(b *testing.B, runs, updates int, n *int) (runRate, updateRate float64) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	for range runs {
		if _, err := s.c.Run(ctx, "app"); err != nil {
			b.Fatal(err)
		}
	}
	runRate = float64(runs) / time.Since(start).Seconds()
	start = time.Now()
	for range updates {
		*n++
		s.spec.BuildArgs["N"] = fmt.Sprint(*n)
		if r, err := s.c.PutTask(ctx, s.spec); err != nil || !r.Changed {
			b.Fatalf("update: %+v %v", r, err)
		}
	}
	updateRate = float64(updates) / time.Since(start).Seconds()
	return runRate, updateRate
}

// BenchmarkAuditCost measures what the audit trail costs a change made
// through the API: manual runs queued per second (POST /tasks/app/runs:
// the run, its job, its event and its run.queue entry in one
// transaction) and task updates per second (PUT /tasks/app with a new
// build argument: the task.update entry carries the old and new spec),
// on a store with the audit trail and one without
// (store.Config.DisableAuditForBenchmark), in alternating rounds so
// drift hits both. It reports each rate and the ratio audit/none.
// SQLite, or PostgreSQL with REFIT_TEST_POSTGRES=1.
func BenchmarkAuditCost(b *testing.B) {
	const rounds, runs, updates = 6, 150, 100
	sides := []*auditSide{newAuditSide(b, false), newAuditSide(b, true)}
	n := 0
	for _, s := range sides { // warm-up, unmeasured
		s.round(b, 20, 20, &n)
	}
	runRate := map[string][]float64{}
	updRate := map[string][]float64{}
	b.ResetTimer()
	for range b.N {
		for r := range rounds {
			order := sides
			if r%2 == 1 {
				order = []*auditSide{sides[1], sides[0]}
			}
			for _, s := range order {
				rr, ur := s.round(b, runs, updates, &n)
				runRate[s.name] = append(runRate[s.name], rr)
				updRate[s.name] = append(updRate[s.name], ur)
			}
		}
	}
	b.StopTimer()
	med := func(xs []float64) float64 {
		s := append([]float64{}, xs...)
		for i := range s {
			for j := i + 1; j < len(s); j++ {
				if s[j] < s[i] {
					s[i], s[j] = s[j], s[i]
				}
			}
		}
		return s[len(s)/2]
	}
	rn, ra := med(runRate["none"]), med(runRate["audit"])
	un, ua := med(updRate["none"]), med(updRate["audit"])
	b.ReportMetric(rn, "runs/s-none")
	b.ReportMetric(ra, "runs/s-audit")
	b.ReportMetric(ra/rn, "runs-ratio")
	b.ReportMetric(un, "updates/s-none")
	b.ReportMetric(ua, "updates/s-audit")
	b.ReportMetric(ua/un, "updates-ratio")
	b.Logf("manual runs queued: %.0f/s without the audit trail, %.0f/s with it (ratio %.2f); task updates: %.0f/s, %.0f/s (ratio %.2f); medians of %d rounds",
		rn, ra, ra/rn, un, ua, ua/un, len(runRate["none"]))
}

// testSigningKey is a fixed ed25519 key named by s, standing in for the
// server's signing key.
func testSigningKey(s string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(s))
	return ed25519.NewKeyFromSeed(seed[:])
}
