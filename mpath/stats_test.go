package mpath_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/mpath"
)

// In-flight requests are split by direction as the block layer's inflight
// file splits them, and every completion lands in the latency bucket of its
// duration (fake clock), on the head and on the path.
func TestInFlightByDirectionAndLatencyHistogram(t *testing.T) {
	f := newFixture(t, mpath.PolicyRoundRobin)
	c := mpath.NewController("0", mpath.NoNode)
	p, d := f.add(t, 1, c)
	h := <-f.added
	entered, release := make(chan struct{}), make(chan struct{})
	d.SubmitHook = func(ctx context.Context, r *mpath.Request) error {
		entered <- struct{}{}
		<-release
		return nil
	}
	done := make(chan error, 2)
	go func() { done <- h.Do(context.Background(), write()) }()
	<-entered
	go func() { done <- h.Do(context.Background(), read()) }()
	<-entered
	for _, st := range []mpath.IOStat{h.Stats(), p.Stats()} {
		if st.InFlightRW != [2]uint64{1, 1} || st.InFlight != 2 {
			t.Fatalf("in flight: %v total %d, want [1 1] total 2", st.InFlightRW, st.InFlight)
		}
	}
	f.clock.Advance(3 * time.Millisecond) // 3000 us: bucket 12 (< 4096 us)
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if st := h.Stats(); st.InFlight != 0 || st.InFlightRW != [2]uint64{} {
		t.Fatalf("after completion in flight %d %v", st.InFlight, st.InFlightRW)
	}
	for name, l := range map[string]mpath.Latencies{"head": h.Latencies(), "path": p.Latencies()} {
		for dir, hist := range map[string]mpath.LatencyHistogram{"read": l.Read, "write": l.Write} {
			if hist.Count() != 1 || hist.Buckets[12] != 1 || hist.Sum != 3*time.Millisecond {
				t.Errorf("%s %s: count %d bucket[12] %d sum %v", name, dir, hist.Count(), hist.Buckets[12], hist.Sum)
			}
		}
		if l.Flush.Count() != 0 {
			t.Errorf("%s: flush count %d", name, l.Flush.Count())
		}
	}
	if b := mpath.LatencyBucketBound(12); b != 4096*time.Microsecond {
		t.Errorf("bound(12) = %v", b)
	}
}
