package host

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/mpath/mpathtest"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// refusingTransport fails every dial at once, like a port nobody listens on.
type refusingTransport struct{ dials atomic.Int32 }

func (r *refusingTransport) Dial(ctx context.Context, cfg QueueConfig) (Queue, error) {
	r.dials.Add(1)
	return nil, syscall.ECONNREFUSED
}

// reconnecting is a controller on a manual clock whose every dial is
// refused, caught in its reconnect loop; done is closed when resetWork ends.
type reconnecting struct {
	clk  *mpathtest.Clock
	tr   *refusingTransport
	c    *Controller
	ev   *events
	done chan struct{}
}

// startReconnecting makes a controller with o (address and identity filled
// in) and pretends a live association just failed: NEW -> RESETTING ->
// CONNECTING, with the reconnect loop running.
func startReconnecting(t *testing.T, o fabrics.Options) *reconnecting {
	t.Helper()
	r := &reconnecting{clk: mpathtest.NewClock(), tr: &refusingTransport{}, done: make(chan struct{})}
	o.TrAddr, o.TrSvcID, o.SubsysNQN = "127.0.0.1", "4420", "nqn.test"
	o.HostNQN, o.HostID = "nqn.host", [16]byte{1}
	c, err := newController(o, nil, []Option{WithClock(r.clk), WithTransport(r.tr)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.events.close)
	r.c, r.ev = c, record(c)
	if !c.changeState(StateResetting, nil, errors.New("test")) {
		t.Fatal("cannot enter resetting")
	}
	go func() {
		defer close(r.done)
		c.resetWork(&assoc{c: c, ctx: context.Background(), cancel: func() {}}, errors.New("test"), false, nil)
	}()
	r.ev.waitState(t, StateConnecting)
	return r
}

// TestReconnectScheduleFakeClock drives the reconnect loop with a manual
// clock: one attempt per reconnect_delay, ceil(ctrl_loss_tmo /
// reconnect_delay) attempts, then deleting -> dead; fast_io_fail expires
// at its own time while connecting. No real time passes between attempts.
func TestReconnectScheduleFakeClock(t *testing.T) {
	o := fabrics.DefaultOptions()
	o.ReconnectDelay = 10 * time.Second
	o.CtrlLossTmo = 35 * time.Second // 4 attempts
	o.FastIOFailTmo = 15 * time.Second
	r := startReconnecting(t, o)
	clk, tr, c, ev, done := r.clk, r.tr, r.c, r.ev, r.done
	for i := 1; i <= 4; i++ {
		// The reconnect_delay timer, plus fast_io_fail's until it fired.
		want := 1
		if i <= 2 {
			want = 2
		}
		clk.WaitPending(want)
		if got := tr.dials.Load(); got != int32(i-1) {
			t.Fatalf("before attempt %d: %d dials", i, got)
		}
		clk.Advance(o.ReconnectDelay)
		if i == 2 {
			// 20 s in CONNECTING > fast_io_fail_tmo 15 s (the AfterFunc ran
			// synchronously inside Advance).
			if !c.FastFailExpired() || c.Available() {
				t.Fatal("fast_io_fail did not expire after 15 s")
			}
		}
	}
	ev.waitState(t, StateDeleting)
	dead := ev.waitState(t, StateDead)
	<-done
	if got := tr.dials.Load(); got != 4 {
		t.Fatalf("%d attempts, want 4 = ceil(35s/10s)", got)
	}
	if !errors.Is(dead.Err, ErrCtrlLoss) {
		t.Fatalf("dead cause %v", dead.Err)
	}
	if c.FastFailExpired() {
		t.Error("failfast flag kept after deleting")
	}
}

// TestTunablesFakeClock: ctrl_loss_tmo and reconnect_delay written while
// the controller reconnects take effect at the next attempt, with Linux's
// arithmetic: ctrl_loss_tmo 25 s over a 10 s delay is 3 attempts, and a new
// 3 s delay keeps the 3 attempts, so it reads back as 9 s.
func TestTunablesFakeClock(t *testing.T) {
	o := fabrics.DefaultOptions()
	o.FastIOFailTmo = fabrics.Off
	r := startReconnecting(t, o)
	clk, tr, c, ev, done := r.clk, r.tr, r.c, r.ev, r.done
	clk.WaitPending(1) // the first 10 s delay
	c.SetCtrlLossTmo(25 * time.Second)
	c.SetReconnectDelay(3 * time.Second)
	c.SetFastIOFailTmo(-5 * time.Second)
	got := c.Options()
	if got.CtrlLossTmo != 9*time.Second || got.ReconnectDelay != 3*time.Second || got.FastIOFailTmo != fabrics.Off {
		t.Fatalf("options now ctrl_loss %s, reconnect_delay %s, fast_io_fail %s; want 9s, 3s, off", got.CtrlLossTmo, got.ReconnectDelay, got.FastIOFailTmo)
	}
	clk.Advance(10 * time.Second) // attempt 1 (the timer armed before the change)
	for i := 2; i <= 3; i++ {
		clk.WaitPending(1)
		if n := tr.dials.Load(); n != int32(i-1) {
			t.Fatalf("before attempt %d: %d dials", i, n)
		}
		clk.Advance(3 * time.Second)
	}
	dead := ev.waitState(t, StateDead)
	<-done
	if n := tr.dials.Load(); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	if !errors.Is(dead.Err, ErrCtrlLoss) {
		t.Fatalf("dead cause %v", dead.Err)
	}
	c.SetCtrlLossTmo(-1)
	if c.Options().CtrlLossTmo != fabrics.Off {
		t.Errorf("ctrl_loss_tmo -1 reads %s, want off", c.Options().CtrlLossTmo)
	}
}
