package lifecycle

import (
	"context"
	"time"
)

// logStore stores a run's log chunks.
type logStore interface {
	AppendLogs(ctx context.Context, runID int64, chunks [][]byte) error
}

// logWriter batches a run's log into the store: up to 128 chunks or
// 200 ms at a time. A write that fails loses log lines, never the run.
type logWriter struct {
	st    logStore
	runID int64
	ch    chan []byte
	done  chan struct{}
}

func newLogWriter(st logStore, runID int64) *logWriter {
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

// Append queues one chunk of the log.
func (l *logWriter) Append(chunk []byte) { l.ch <- chunk }

// Close flushes and stops the writer.
func (l *logWriter) Close() {
	close(l.ch)
	<-l.done
}
