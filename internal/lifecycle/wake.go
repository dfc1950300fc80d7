package lifecycle

import (
	"container/heap"
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivershared/baseservice"
	"github.com/riverqueue/river/rivershared/riverpilot"
	"github.com/riverqueue/river/rivertype"
)

// River learns of a job committed in refit's own transaction by polling:
// on SQLite its LISTEN/NOTIFY is emulated by polling a notification
// table, and on PostgreSQL refit speaks database/sql (riverdatabasesql),
// which has no listener. Polling for jobs every 50 ms (and River's
// notification polling beside it) cost an idle server ~40 ms of CPU per
// second. So the queue runs without a listener (poll-only), and the
// process that commits a job wakes its own producer, through the hook
// River itself uses after a non-transactional insert in poll-only mode
// (riverpilot.PilotInitParams.NotifyNonTxJobInsert); the fetch poll can
// be seconds: it only picks up what another process committed, or what a
// restart left behind. The wake-up goes through onDemand (ondemand.go),
// which starts River's client first when it is stopped.
//
// The hook is reached through River's driver plugin interface (a driver
// with PluginPilot), which River documents as internal; go.mod pins River
// and TestQueueWakesWithoutPolling fails if an upgrade breaks it.
//
// Debounced jobs are inserted available, with their scheduled_at in the
// future, instead of scheduled: River's fetch takes only jobs whose
// scheduled_at has passed, so they wait all the same, and a timer here
// wakes the queue when the earliest is due. A scheduled job would wait
// for River's scheduler, which runs every 5 s (not configurable).

// wakeDriver is the queue's driver with wakePilot plugged in.
type wakeDriver struct {
	riverdriver.Driver[*sql.Tx]
	pilot *wakePilot
}

// SupportsListener is false: the queue runs poll-only, woken in-process.
func (d *wakeDriver) SupportsListener() bool { return false }

// SupportsListenNotify is false: nobody listens for insert notifications.
func (d *wakeDriver) SupportsListenNotify() bool { return false }

// PluginInit is River's plugin hook; nothing to initialize.
func (d *wakeDriver) PluginInit(*baseservice.Archetype) {}

// PluginPilot gives River the pilot that keeps its wake-up function.
func (d *wakeDriver) PluginPilot() riverpilot.Pilot { return d.pilot }

// wakePilot is River's standard pilot that keeps the producer's wake-up
// function and schedules wake-ups for debounced jobs. Safe for concurrent
// use.
type wakePilot struct {
	riverpilot.StandardPilot

	notify func(context.Context, []*rivertype.JobInsertResult)
	due    func() // called when a wake-up falls due (Runs.wake)

	mu      sync.Mutex
	dues    timeHeap           // when debounced jobs fall due, rounded up
	pending map[time.Time]bool // members of dues
	timer   *time.Timer        // fires at armed
	armed   time.Time
	stopped bool
}

// wakeGrain rounds due times up, so a wave's jobs (due microseconds
// apart) share one wake-up, a little after the last of them is due.
const wakeGrain = 10 * time.Millisecond

// PilotInit keeps River's producer wake-up.
func (p *wakePilot) PilotInit(a *baseservice.Archetype, params *riverpilot.PilotInitParams) {
	p.notify = params.NotifyNonTxJobInsert
	p.StandardPilot.PilotInit(a, params)
}

// JobInsertMany inserts a job meant to start later as available (with
// its future scheduled_at), and sets a wake-up for when it is due.
func (p *wakePilot) JobInsertMany(ctx context.Context, tx riverdriver.ExecutorTx, params *riverdriver.JobInsertFastManyParams) ([]*riverdriver.JobInsertFastResult, error) {
	for _, j := range params.Jobs {
		if j.State == rivertype.JobStateScheduled && j.ScheduledAt != nil {
			j.State = rivertype.JobStateAvailable
			p.at(*j.ScheduledAt)
		}
	}
	return p.StandardPilot.JobInsertMany(ctx, tx, params)
}

// fetch makes the producer fetch now (debounced by River's
// FetchCooldown). Only onDemand calls it, while the client runs: others
// call Runs.wake after the transaction that made a job available
// commits.
func (p *wakePilot) fetch() {
	if p.notify != nil {
		p.notify(context.Background(), []*rivertype.JobInsertResult{{Job: &rivertype.JobRow{Queue: river.QueueDefault}}})
	}
}

// at sets a wake-up for a job due at t. A wake-up for a job whose
// transaction rolled back costs one empty fetch.
func (p *wakePilot) at(t time.Time) {
	t = t.Add(wakeGrain).Truncate(wakeGrain)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.pending[t] {
		return
	}
	if p.pending == nil {
		p.pending = map[time.Time]bool{}
	}
	p.pending[t] = true
	heap.Push(&p.dues, t)
	p.arm()
}

// arm sets the timer for the earliest due time; p.mu is held.
func (p *wakePilot) arm() {
	if len(p.dues) == 0 || p.stopped {
		return
	}
	next := p.dues[0]
	if p.timer != nil && !p.armed.IsZero() && !next.Before(p.armed) {
		return // already set for it, or earlier
	}
	p.armed = next
	if p.timer == nil {
		p.timer = time.AfterFunc(time.Until(next), p.fire)
	} else {
		p.timer.Reset(time.Until(next))
	}
}

// fire wakes the queue for the jobs now due and sets the next timer.
func (p *wakePilot) fire() {
	p.mu.Lock()
	now := time.Now()
	due := false
	for len(p.dues) > 0 && !p.dues[0].After(now) {
		delete(p.pending, heap.Pop(&p.dues).(time.Time))
		due = true
	}
	p.armed = time.Time{}
	p.arm()
	stopped := p.stopped
	p.mu.Unlock()
	if due && !stopped && p.due != nil {
		p.due()
	}
}

// stop cancels the pending wake-ups.
func (p *wakePilot) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.timer != nil {
		p.timer.Stop()
	}
}

// timeHeap is a min-heap of times.
type timeHeap []time.Time

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *timeHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
