package memlimit

import (
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

func TestTrimmerOncePerIdlePeriod(t *testing.T) {
	frees := 0
	tr := &Trimmer{Idle: 5 * time.Second, Free: func() { frees++ }}
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	steps := []struct {
		s     float64
		count uint64
		trim  bool
	}{
		{0, 10, false},   // first sample
		{1, 20, false},   // busy
		{5.9, 20, false}, // idle 4.9 s
		{6, 20, true},    // idle 5 s: trim
		{7, 20, false},   // still idle: trimmed already
		{60, 20, false},  // long idle: still once
		{61, 21, false},  // I/O again
		{65, 21, false},
		{66, 21, true}, // idle again: trim again
	}
	for _, s := range steps {
		if got := tr.Observe(s.count, at(s.s)); got != s.trim {
			t.Fatalf("t=%vs count=%d: trimmed %v, want %v", s.s, s.count, got, s.trim)
		}
	}
	if frees != 2 {
		t.Fatalf("Free called %d times, want 2", frees)
	}
}

func TestSetLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOMEMLIMIT", "")
	if got := SetLimit(96); got != 96<<20 || debug.SetMemoryLimit(-1) != 96<<20 {
		t.Fatalf("SetLimit(96) = %d, runtime limit %d", got, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(math.MaxInt64)
	if got := SetLimit(0); got != math.MaxInt64 {
		t.Fatalf("SetLimit(0) = %d, want no limit", got)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	if got := SetLimit(96); got != 1<<30 {
		t.Fatalf("with GOMEMLIMIT set, SetLimit(96) = %d, want the variable's 1 GiB", got)
	}
}

// TestFreeOSMemoryEmptiesPools fills a sync.Pool with 64 MiB of buffers,
// as go-fuse's size-class pools hold them, and checks that FreeOSMemory
// gives them back: one collection alone would keep them in the pool's
// victim cache.
func TestFreeOSMemoryEmptiesPools(t *testing.T) {
	// No collection while filling: every buffer stays in the pool.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var pool sync.Pool
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 1<<20)
		bufs[i][0] = 1
	}
	for _, b := range bufs {
		pool.Put(b)
	}
	bufs = nil
	before := heapObjects()
	FreeOSMemory()
	after := heapObjects()
	if before < 64<<20 || after > before-60<<20 {
		t.Fatalf("heap objects %d MiB -> %d MiB: pooled buffers not freed", before>>20, after>>20)
	}
	_ = pool.Get // the pool stays reachable
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
