package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// deaf is a store on which the queue cannot listen for other processes'
// jobs, as before the notifications: it finds them by polling.
type deaf struct{ *store.Store }

func (deaf) ListenJobs(context.Context) (*store.JobsListener, error) {
	return nil, errors.New("not listening (benchmark)")
}

// BenchmarkCrossProcessPickup (PostgreSQL only, REFIT_TEST_POSTGRES=1):
// how long a run committed by one process (A, its queue not started)
// waits before another (B, its queue stopped between runs, the default
// 5 s poll) starts it — createdAt → startedAt — with B listening for
// notifications, and with B deaf to them (polling only, as before).
// It prints the median and maximum of each; no assertion.
func BenchmarkCrossProcessPickup(b *testing.B) {
	if !pgtest.Wanted() {
		b.Skip("PostgreSQL only (REFIT_TEST_POSTGRES=1)")
	}
	const runs = 6
	measure := func(listen bool) []time.Duration {
		dbURL := pgtest.URL(b)
		open := func() *store.Store {
			st, err := store.Open(context.Background(), store.Config{URL: dbURL})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}
		newRuns := func(cfg lifecycle.Config) *lifecycle.Runs {
			cfg.Executor, cfg.Registry, cfg.Debounce = &fakeExecutor{}, reg, -1
			l, err := lifecycle.New(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { l.Stop(context.Background()) })
			return l
		}
		stA, stB := open(), open()
		a := &fixture{st: stA, l: newRuns(lifecycle.Config{Store: stA})}
		a.addTask(b, task.Spec{Name: "app"}, "FROM debian:12\n")
		cfg := lifecycle.Config{Store: stB, Idle: 50 * time.Millisecond}
		if !listen {
			cfg.Store = deaf{stB}
		}
		bl := newRuns(cfg)
		if err := bl.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // B listens
		var waits []time.Duration
		for range runs {
			time.Sleep(200 * time.Millisecond) // B's queue stops
			r, err := a.l.Queue(context.Background(), "app", store.Cause{Kind: "manual", User: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			for {
				got, err := stB.GetRun(context.Background(), r.ID)
				if err != nil {
					b.Fatal(err)
				}
				if got.State.Done() {
					waits = append(waits, got.StartedAt.Sub(got.CreatedAt))
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		return waits
	}
	b.ResetTimer()
	polled := measure(false)
	notified := measure(true)
	b.StopTimer()
	fmt.Printf("cross-process pick-up on PostgreSQL, A commits → B starts (createdAt → startedAt), %d runs each:\n", runs)
	fmt.Printf("  polling only (5 s poll)   median %v, max %v\n", median(polled), slices.Max(polled))
	fmt.Printf("  LISTEN/NOTIFY             median %v, max %v\n", median(notified), slices.Max(notified))
	b.ReportMetric(float64(median(polled).Microseconds())/1000, "polled-pickup-ms")
	b.ReportMetric(float64(median(notified).Microseconds())/1000, "notified-pickup-ms")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
