package mpath_test

import (
	"context"
	"testing"
	"time"

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
