package lifecycle

import (
	"context"
	"time"

	"github.com/refit-dev/refit/internal/store"
)

// On PostgreSQL several refit processes may share the queue. The
// transaction that inserts jobs notifies store.JobsChannel (the store
// does, at commit), and each process listens on one connection of its
// own (listen): a notification makes the running producer fetch, or a
// stopped queue look at the queue (onDemand.look), so a job committed
// by a process that cannot work it now (its workers busy) is picked up
// by another at once rather than at its next poll (Config.Poll). The
// committing process hears its own notification too; it only makes a
// producer that fetched already fetch again, and moves none of the
// times the idle stop counts from. While no notification comes, the
// listener is a goroutine blocked in a read. When its connection drops
// it connects again with backoff, logging once per outage, and looks at
// the queue once it is back; meanwhile the poll still finds jobs.

// listenBackoffMin and listenBackoffMax bound the wait between attempts
// to listen again: it doubles from the one to the other.
const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 10 * time.Second
)

// listener is what listen needs of the store.
type listener interface {
	ListenJobs(ctx context.Context) (*store.JobsListener, error)
}

// listen makes the queue look on every notification of jobs committed
// (by any process), until ctx ends.
func (l *Runs) listen(ctx context.Context, st listener) {
	backoff := listenBackoffMin
	var down error // the error that began the current outage
	again := false // listened before: jobs may have been missed since
	for ctx.Err() == nil {
		jl, err := st.ListenJobs(ctx)
		if err == nil {
			if down != nil {
				l.cfg.Logger.Info("job queue: listening for other processes' jobs again")
				down = nil
			}
			backoff = listenBackoffMin
			if again {
				l.queue.look() // jobs committed while nobody listened
			}
			again = true
			for {
				if err = jl.Wait(ctx); err != nil {
					break
				}
				l.queue.look()
			}
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			jl.Close(closeCtx)
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
		if down == nil {
			down = err
			l.cfg.Logger.Warn("job queue: not listening for other processes' jobs; finding them by polling until it listens again",
				"poll", l.cfg.Poll, "error", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}
