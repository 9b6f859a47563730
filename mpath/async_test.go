package mpath_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/plug"
	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/mpath/mpathtest"
)

// asyncDriver adds AsyncPathDriver to the test driver: the attempt runs as
// Submit on a goroutine of its own, unless decline is set.
type asyncDriver struct {
	*mpathtest.Driver
	decline bool
}

func (d *asyncDriver) SubmitAsync(req *mpath.Request, done mpath.Completer) bool {
	if d.decline {
		return false
	}
	go func() { done.Complete(d.Submit(context.Background(), req)) }()
	return true
}

func (f *fixture) addAsync(t testing.TB, nsid uint32, ctrl *mpath.Controller) (*mpath.Path, *asyncDriver) {
	t.Helper()
	d := &asyncDriver{Driver: mpathtest.NewDriver("nvme0c" + ctrl.Name() + "n1")}
	p, err := f.s.AddPath(mpath.Identity{NSID: nsid}, testInfo, "nvme0c"+ctrl.Name()+"n1", ctrl, d)
	if err != nil {
		t.Fatal(err)
	}
	d.Bind(p)
	return p, d
}

type chanCompleter chan error

func (c chanCompleter) Complete(err error) { c <- err }

func start(t *testing.T, h *mpath.Head, req *mpath.Request) <-chan error {
	t.Helper()
	ch := make(chanCompleter, 1)
	if !h.Start(context.Background(), req, ch) {
		t.Fatal("Start declined")
	}
	return ch
}

// TestStartCompletesAndAccounts: a started read completes through the
// Completer and is accounted once, as Do's would be; one the driver
// declines is sent with Submit on the same path.
func TestStartCompletesAndAccounts(t *testing.T) {
	f := newFixture(t, mpath.PolicyQueueDepth)
	p0, d0 := f.addAsync(t, 1, mpath.NewController("0", 0))
	h := p0.Head()
	if err := result(t, start(t, h, read())); err != nil {
		t.Fatal(err)
	}
	d0.decline = true
	if err := result(t, start(t, h, write())); err != nil {
		t.Fatal(err)
	}
	if d0.Successes() != 2 {
		t.Fatalf("driver successes %d, want 2", d0.Successes())
	}
	st := h.Stats()
	if st.ReadIOs != 1 || st.WriteIOs != 1 || st.InFlight != 0 {
		t.Fatalf("head stats %+v, want one read, one write, none in flight", st)
	}
	if ps := p0.Stats(); ps.ReadIOs != 1 || ps.WriteIOs != 1 || ps.InFlight != 0 {
		t.Fatalf("path stats %+v", ps)
	}
	if n := p0.Controller().Inflight(); n != 0 {
		t.Fatalf("controller in flight %d after completion (queue-depth accounting)", n)
	}
}

// TestStartDeclinesWithoutAPath: with no usable path Start does nothing
// and reports false (the caller waits in Do).
func TestStartDeclinesWithoutAPath(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.addAsync(t, 1, mpath.NewController("0", 0))
	d0.SetDisabled(true)
	if p0.Head().Start(context.Background(), read(), make(chanCompleter, 1)) {
		t.Fatal("started with no usable path")
	}
	if st := p0.Head().Stats(); st.InFlight != 0 || st.ReadIOs != 0 {
		t.Fatalf("stats %+v after a declined Start", st)
	}
}

// TestStartFailoverKeepsTheFence: a started write whose attempt is lost in
// doubt continues as Do does: the fence, then the other path.
func TestStartFailoverKeepsTheFence(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.addAsync(t, 1, mpath.NewController("0", 0))
	_, d1 := f.addAsync(t, 1, mpath.NewController("1", 0))
	d0.SubmitHook = func(context.Context, *mpath.Request) error {
		d0.SetDisabled(true)
		return &mpathtest.Fault{Verdict: mpath.Verdict{Action: mpath.ActionFailover, InDoubt: true}}
	}
	var resentBeforeFence uint64 = 99
	d0.FenceHook = func(context.Context, error) error {
		resentBeforeFence = d1.Submits()
		f.clock.Advance(5 * time.Second)
		return nil
	}
	h := p0.Head()
	if err := result(t, start(t, h, write())); err != nil {
		t.Fatal(err)
	}
	if d0.Fences() != 1 || resentBeforeFence != 0 || d1.Successes() != 1 {
		t.Fatalf("fences %d, resent before the fence %d, successes on p1 %d", d0.Fences(), resentBeforeFence, d1.Successes())
	}
	if c := p0.Counters(); c.FailoverCount != 1 {
		t.Fatalf("p0 counters %+v", c)
	}
	if st := h.Stats(); st.WriteIOs != 1 || st.InFlight != 0 {
		t.Fatalf("head stats %+v, want the write counted once", st)
	}
}

// noFlush is a Flusher with nothing to send: holding it lets a test end a
// plug's batch (Unplug counts only batches that held something).
type noFlush struct{}

func (noFlush) Flush() {}

// TestStartRoundRobinPerBatch: under round-robin the requests started
// with one plug, before it is unplugged, go to one path; the next batch
// goes to the next path; requests without a plug rotate per I/O; a batch
// leaves its path once that is no longer optimized.
func TestStartRoundRobinPerBatch(t *testing.T) {
	f := newFixture(t, mpath.PolicyRoundRobin)
	p0, d0 := f.addAsync(t, 1, mpath.NewController("0", 0))
	p1, d1 := f.addAsync(t, 1, mpath.NewController("1", 0))
	h := p0.Head()
	var pl plug.Plug
	reads := func() (n0, n1 uint64) { return p0.Stats().ReadIOs, p1.Stats().ReadIOs }
	batch := func(n int) (on0, on1 uint64) {
		t.Helper()
		a0, a1 := reads()
		for range n {
			req := read()
			req.Plug = &pl
			if err := result(t, start(t, h, req)); err != nil {
				t.Fatal(err)
			}
		}
		b0, b1 := reads()
		pl.Hold(noFlush{})
		pl.Unplug()
		return b0 - a0, b1 - a1
	}
	first0, first1 := batch(4)
	if !(first0 == 4 && first1 == 0 || first0 == 0 && first1 == 4) {
		t.Fatalf("one batch of 4 went %d/%d over the paths, want all on one", first0, first1)
	}
	if n0, n1 := batch(4); n0 != first1 || n1 != first0 {
		t.Fatalf("the next batch went %d/%d, want all on the other path", n0, n1)
	}
	a0, a1 := reads()
	for range 4 {
		if err := result(t, start(t, h, read())); err != nil {
			t.Fatal(err)
		}
	}
	if b0, b1 := reads(); b0-a0 != 2 || b1-a1 != 2 {
		t.Fatalf("4 unplugged reads went %d/%d, want 2/2 (per I/O)", b0-a0, b1-a1)
	}
	// A batch whose path becomes non-optimized moves to the other path.
	plugged := func() {
		t.Helper()
		req := read()
		req.Plug = &pl
		if err := result(t, start(t, h, req)); err != nil {
			t.Fatal(err)
		}
	}
	a0, a1 = reads()
	plugged()
	on, other := d0, p1
	if b0, _ := reads(); b0 == a0 {
		on, other = d1, p0
	}
	on.SetAccessState(mpath.StateNonOptimized)
	before := other.Stats().ReadIOs
	plugged()
	if other.Stats().ReadIOs != before+1 {
		t.Fatal("a batch stayed on a path that became non-optimized")
	}
}
