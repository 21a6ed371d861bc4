package subject

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAwaitReady: the run's clock starts once every instance is ready; an
// instance that ends first, or a subject that never gets ready, is said.
func TestAwaitReady(t *testing.T) {
	ctx := context.Background()
	var n atomic.Int32
	slowly := func() bool { return n.Add(1) > 3 } // ready on the fourth look
	yes := func() bool { return true }
	if why := awaitReady(ctx, []func() bool{yes, slowly}, nil, time.Minute); why != "" {
		t.Errorf("all ready: %q", why)
	}
	ended := make(chan struct{}, 1)
	ended <- struct{}{}
	never := func() bool { return false }
	if why := awaitReady(ctx, []func() bool{yes, never}, ended, time.Minute); !strings.Contains(why, "ended before") {
		t.Errorf("an instance ended: %q", why)
	}
	if why := awaitReady(ctx, []func() bool{never}, nil, 50*time.Millisecond); !strings.Contains(why, "not ready to tick within 50ms") {
		t.Errorf("never ready: %q", why)
	}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	if why := awaitReady(stopped, []func() bool{never}, nil, time.Minute); why != "" {
		t.Errorf("stopped run: %q (the caller reports the interruption)", why)
	}
}
