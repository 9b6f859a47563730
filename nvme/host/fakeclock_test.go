package host

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// fakeClock is a manual clock: timers fire only on Advance. created
// receives a value whenever a timer or ticker is made, so a test can wait
// for the code under test to arm one instead of sleeping.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	created chan struct{}
}

type fakeTimer struct {
	c      *fakeClock
	when   time.Time
	period time.Duration // tickers
	ch     chan time.Time
	f      func()
	active bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_800_000_000, 0), created: make(chan struct{}, 1024)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration, period time.Duration, f func()) *fakeTimer {
	c.mu.Lock()
	t := &fakeTimer{c: c, when: c.now.Add(d), period: period, ch: make(chan time.Time, 1), f: f, active: true}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	c.created <- struct{}{}
	return t
}

func (c *fakeClock) NewTimer(d time.Duration) Timer   { return c.add(d, 0, nil) }
func (c *fakeClock) NewTicker(d time.Duration) Ticker { return fakeTicker{c.add(d, d, nil)} }
func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	return c.add(d, 0, f)
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

type fakeTicker struct{ t *fakeTimer }

func (t fakeTicker) C() <-chan time.Time { return t.t.ch }
func (t fakeTicker) Stop()               { t.t.Stop() }

// Advance moves time forward and fires what is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var fire []func()
	for _, t := range c.timers {
		for t.active && !t.when.After(c.now) {
			if t.f != nil {
				fire = append(fire, t.f)
			} else {
				select {
				case t.ch <- c.now:
				default:
				}
			}
			if t.period == 0 {
				t.active = false
			} else {
				t.when = t.when.Add(t.period)
			}
		}
	}
	c.mu.Unlock()
	for _, f := range fire {
		f()
	}
}

func (c *fakeClock) waitCreated(t *testing.T) {
	t.Helper()
	select {
	case <-c.created:
	case <-time.After(failAfter):
		t.Fatal("no timer armed")
	}
}

// refusingTransport fails every dial at once, like a port nobody listens on.
type refusingTransport struct{ dials atomic.Int32 }

func (r *refusingTransport) Dial(ctx context.Context, cfg QueueConfig) (Queue, error) {
	r.dials.Add(1)
	return nil, syscall.ECONNREFUSED
}

// TestReconnectScheduleFakeClock drives the reconnect loop with a manual
// clock: one attempt per reconnect_delay, ceil(ctrl_loss_tmo /
// reconnect_delay) attempts, then deleting -> dead; fast_io_fail expires
// at its own time while connecting. No real time passes between attempts.
func TestReconnectScheduleFakeClock(t *testing.T) {
	clk := newFakeClock()
	tr := &refusingTransport{}
	o := fabrics.DefaultOptions()
	o.TrAddr, o.TrSvcID, o.SubsysNQN = "127.0.0.1", "4420", "nqn.test"
	o.HostNQN, o.HostID = "nqn.host", [16]byte{1}
	o.ReconnectDelay = 10 * time.Second
	o.CtrlLossTmo = 35 * time.Second // 4 attempts
	o.FastIOFailTmo = 15 * time.Second
	c, err := newController(o, nil, []Option{WithClock(clk), WithTransport(tr)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.events.close()
	ev := record(c)
	// Pretend a live association just failed: NEW -> RESETTING -> CONNECTING.
	if !c.changeState(StateResetting, nil, errors.New("test")) {
		t.Fatal("cannot enter resetting")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.resetWork(&assoc{c: c, ctx: context.Background(), cancel: func() {}}, errors.New("test"), false, nil)
	}()
	ev.waitState(t, StateConnecting)
	clk.waitCreated(t) // fast_io_fail timer
	for i := 1; i <= 4; i++ {
		clk.waitCreated(t) // reconnect_delay timer
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
	clk := newFakeClock()
	tr := &refusingTransport{}
	o := fabrics.DefaultOptions()
	o.TrAddr, o.TrSvcID, o.SubsysNQN = "127.0.0.1", "4420", "nqn.test"
	o.HostNQN, o.HostID = "nqn.host", [16]byte{1}
	o.FastIOFailTmo = fabrics.Off
	c, err := newController(o, nil, []Option{WithClock(clk), WithTransport(tr)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.events.close()
	ev := record(c)
	if !c.changeState(StateResetting, nil, errors.New("test")) {
		t.Fatal("cannot enter resetting")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.resetWork(&assoc{c: c, ctx: context.Background(), cancel: func() {}}, errors.New("test"), false, nil)
	}()
	ev.waitState(t, StateConnecting)
	clk.waitCreated(t) // the first 10 s delay
	c.SetCtrlLossTmo(25 * time.Second)
	c.SetReconnectDelay(3 * time.Second)
	c.SetFastIOFailTmo(-5 * time.Second)
	got := c.Options()
	if got.CtrlLossTmo != 9*time.Second || got.ReconnectDelay != 3*time.Second || got.FastIOFailTmo != fabrics.Off {
		t.Fatalf("options now ctrl_loss %s, reconnect_delay %s, fast_io_fail %s; want 9s, 3s, off", got.CtrlLossTmo, got.ReconnectDelay, got.FastIOFailTmo)
	}
	clk.Advance(10 * time.Second) // attempt 1 (the timer armed before the change)
	for i := 2; i <= 3; i++ {
		clk.waitCreated(t)
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
