package lifecycle

import (
	"context"
	"encoding/json"
	"time"

	"github.com/riverqueue/river"

	"github.com/refit-dev/refit/internal/store"
)

// Finish runs the finish transaction of r, as the worker does when a run
// ends.
func Finish(ctx context.Context, l *Runs, r store.Run) error { return l.finish(ctx, r) }

// JobRunIDs returns the run ID of every job in the queue, in insertion
// order.
func JobRunIDs(ctx context.Context, l *Runs) ([]int64, error) {
	res, err := l.river.JobList(ctx, river.NewJobListParams().First(10000))
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, j := range res.Jobs {
		var a Args
		if err := json.Unmarshal(j.EncodedArgs, &a); err != nil {
			return nil, err
		}
		ids = append(ids, a.RunID)
	}
	return ids, nil
}

// JobsByID returns every job in the queue by its ID: the run its
// arguments name and when it may start.
func JobsByID(ctx context.Context, l *Runs) (map[int64]QueuedJob, error) {
	res, err := l.river.JobList(ctx, river.NewJobListParams().First(10000))
	if err != nil {
		return nil, err
	}
	out := map[int64]QueuedJob{}
	for _, j := range res.Jobs {
		var a Args
		if err := json.Unmarshal(j.EncodedArgs, &a); err != nil {
			return nil, err
		}
		out[j.ID] = QueuedJob{RunID: a.RunID, ScheduledAt: j.ScheduledAt, MaxAttempts: j.MaxAttempts}
	}
	return out, nil
}

// QueuedJob is a job as JobsByID reports it.
type QueuedJob struct {
	RunID       int64
	ScheduledAt time.Time
	MaxAttempts int
}

// QueueRunning says whether the queue's River client runs (see
// ondemand.go).
func QueueRunning(l *Runs) bool {
	l.queue.mu.Lock()
	defer l.queue.mu.Unlock()
	return l.queue.running
}

// OnQueueStopping sets fn to be called each time the idle queue has
// stopped taking wake-ups and before its River client is stopped. Call
// it before Start.
func OnQueueStopping(l *Runs, fn func()) { l.queue.stopping = fn }
