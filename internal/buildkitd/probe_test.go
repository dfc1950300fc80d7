package buildkitd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/buildkitd"
)

// TestWaitNamesTheDaemon: waiting for a daemon that never answers ends
// with ctx, naming its address.
func TestWaitNamesTheDaemon(t *testing.T) {
	addr := "unix://" + t.TempDir() + "/none.sock"
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := buildkitd.Wait(ctx, addr)
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Wait = %v, want an error naming %s", err, addr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Wait returned %v after ctx ended", d)
	}
}
