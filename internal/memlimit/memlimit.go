// Package memlimit keeps the daemon's memory bounded and gives it back to
// the operating system when I/O stops.
//
// Most of the daemon's memory is request buffers: go-fuse keeps one
// sync.Pool per request size in pages (up to 256 classes for 1 MiB
// requests), and pooled buffers live until two garbage collections pass
// them by. With the default GC pacing (next GC at twice the live heap,
// pooled buffers counted as live) a mix of request sizes grows the heap to
// hundreds of MiB that are never collected. A soft memory limit makes the
// collector run when the heap reaches it, which empties the pools; the
// buffers hold no pointers, so those collections are cheap. When no I/O has
// completed for a while, Trimmer runs two collections (a pool survives
// one) and returns the freed memory at once instead of waiting for the
// runtime's two-minute forced GC and its slow scavenger.
package memlimit

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"time"
)

// DefaultMiB is the default soft limit: the working set of 32 requests of
// 1 MiB in flight plus go-fuse's reader buffers, with room for the pools,
// keeps the whole process (heap, stacks, runtime) under 128 MB.
const DefaultMiB = 96

// SetLimit sets the Go runtime's soft memory limit to mib MiB (0: no
// limit) unless the GOMEMLIMIT environment variable is set, which wins. It
// returns the limit in force in bytes (math.MaxInt64 for none).
func SetLimit(mib int) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	if mib <= 0 {
		return debug.SetMemoryLimit(-1)
	}
	debug.SetMemoryLimit(int64(mib) << 20)
	return int64(mib) << 20
}

// Trimmer decides when the process is idle: no change of an activity count
// (completed plus in-flight I/Os) for Idle. It trims once per idle period.
type Trimmer struct {
	// Idle is how long the count must stay unchanged (default 5 s).
	Idle time.Duration
	// Free returns memory to the OS; the default collects twice and calls
	// debug.FreeOSMemory.
	Free func()

	last    uint64
	since   time.Time
	trimmed bool
	started bool
}

// Observe records the activity count at now and reports whether it
// trimmed (called Free).
func (t *Trimmer) Observe(count uint64, now time.Time) bool {
	idle := t.Idle
	if idle <= 0 {
		idle = 5 * time.Second
	}
	if !t.started || count != t.last {
		t.started, t.last, t.since, t.trimmed = true, count, now, false
		return false
	}
	if t.trimmed || now.Sub(t.since) < idle {
		return false
	}
	t.trimmed = true
	if t.Free != nil {
		t.Free()
	} else {
		FreeOSMemory()
	}
	return true
}

// Run observes count every interval until ctx ends.
func (t *Trimmer) Run(ctx context.Context, interval time.Duration, count func() uint64) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			t.Observe(count(), now)
		}
	}
}

// FreeOSMemory empties the sync.Pools (a pooled object survives one
// collection in the pool's victim cache) and returns the freed heap to the
// operating system.
func FreeOSMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}
