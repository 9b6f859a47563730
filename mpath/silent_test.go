package mpath_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/mpath"
)

// Reads get a silence deadline only while another path could take them;
// writes never. The deadline follows the path's read service time (fake
// clock), within [SilentReadMin, SilentReadMax].
func TestSilentAfterOnlyForReadsWithAnotherPath(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	_, d1 := f.add(t, 1, mpath.NewController("1", 0))
	h := p0.Head()
	var seen time.Duration
	var service time.Duration
	d0.SubmitHook = func(ctx context.Context, req *mpath.Request) error {
		seen = req.SilentAfter
		f.clock.Advance(service) // the read's service time
		return nil
	}
	do := func(r *mpath.Request) time.Duration {
		t.Helper()
		seen = -1
		if err := h.Do(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		return seen
	}
	if got := do(read()); got != mpath.SilentReadMin {
		t.Errorf("first read: SilentAfter %v, want the floor %v", got, mpath.SilentReadMin)
	}
	if got := do(write()); got != 0 {
		t.Errorf("write: SilentAfter %v, want 0 (writes are never given up)", got)
	}
	// A slow path (200 ms reads) gets a longer deadline, capped.
	service = 200 * time.Millisecond
	for range 50 {
		do(read())
	}
	if got := p0.SilentAfter(); got <= mpath.SilentReadMin || got > mpath.SilentReadMax {
		t.Errorf("after 200 ms reads: SilentAfter %v, want in (%v, %v]", got, mpath.SilentReadMin, mpath.SilentReadMax)
	}
	service = 2 * time.Second
	for range 50 {
		do(read())
	}
	if got := p0.SilentAfter(); got != mpath.SilentReadMax {
		t.Errorf("after 2 s reads: SilentAfter %v, want the cap %v", got, mpath.SilentReadMax)
	}
	// With the other path unusable a read waits: nowhere to re-send it.
	d1.SetDisabled(true)
	service = 0
	if got := do(read()); got != 0 {
		t.Errorf("read with no other usable path: SilentAfter %v, want 0", got)
	}
}

// A read the driver gives up on a silent path (ActionFailover) is re-sent
// on the other path and counted as a failover of the silent one; it is
// not fenced (only writes are).
func TestSilentReadFailsOver(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	_, d1 := f.add(t, 1, mpath.NewController("1", 0))
	silent := errors.New("silent")
	d0.FailNext(1, mpath.Verdict{Action: mpath.ActionFailover, InDoubt: true}, silent)
	d0.SubmitHook = func(ctx context.Context, req *mpath.Request) error {
		if req.SilentAfter == 0 {
			t.Errorf("read on p0 without a silence deadline")
		}
		d0.SetDisabled(true) // the driver marks a silent controller disabled
		return nil
	}
	if err := p0.Head().Do(context.Background(), read()); err != nil {
		t.Fatal(err)
	}
	if d1.Successes() != 1 || p0.Counters().FailoverCount != 1 {
		t.Errorf("p1 successes %d, p0 failovers %d; want 1, 1", d1.Successes(), p0.Counters().FailoverCount)
	}
	if d0.Fences() != 0 {
		t.Errorf("a read was fenced")
	}
}
