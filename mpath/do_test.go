package mpath_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/mpath/mpathtest"
)

type fixture struct {
	clock          *mpathtest.Clock
	log            *logSink
	s              *mpath.Subsystem
	added, removed chan *mpath.Head
}

func newFixture(t testing.TB, policy mpath.IOPolicy) *fixture {
	t.Helper()
	f := &fixture{
		clock:   mpathtest.NewClock(),
		log:     newLogSink(),
		added:   make(chan *mpath.Head, 16),
		removed: make(chan *mpath.Head, 16),
	}
	cfg := mpath.DefaultSubsystemConfig("nqn.2026-01.io.mpathfs:fx")
	cfg.Policy = policy
	cfg.Clock = f.clock
	cfg.Logger = f.log.logger()
	cfg.HeadName = func(id mpath.Identity) string { return fmt.Sprintf("nvme0n%d", id.NSID) }
	cfg.OnHeadAdded = func(h *mpath.Head) { f.added <- h }
	cfg.OnHeadRemoved = func(h *mpath.Head) { f.removed <- h }
	f.s = mpath.NewSubsystem(cfg)
	return f
}

func (f *fixture) add(t testing.TB, nsid uint32, ctrl *mpath.Controller) (*mpath.Path, *mpathtest.Driver) {
	t.Helper()
	name := fmt.Sprintf("nvme0c%sn%d", ctrl.Name(), nsid)
	d := mpathtest.NewDriver(name)
	p, err := f.s.AddPath(mpath.Identity{NSID: nsid, CSI: 0}, testInfo, name, ctrl, d)
	if err != nil {
		t.Fatal(err)
	}
	d.Bind(p)
	return p, d
}

func write() *mpath.Request {
	return &mpath.Request{Op: mpath.OpWrite, Length: 4096, Buf: make([]byte, 4096), Node: 0}
}

func read() *mpath.Request {
	return &mpath.Request{Op: mpath.OpRead, Length: 4096, Buf: make([]byte, 4096), Node: 0}
}

func do(h *mpath.Head, req *mpath.Request) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- h.Do(context.Background(), req) }()
	return ch
}

func TestRetryWaitsRetryDelayOnTheSamePath(t *testing.T) {
	f := newFixture(t, mpath.PolicyRoundRobin)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	_, d1 := f.add(t, 1, mpath.NewController("1", 0))
	d0.FailNext(3, mpath.Verdict{Action: mpath.ActionRetry, RetryDelay: 100 * time.Millisecond}, nil)
	h := p0.Head()
	done := do(h, write())
	for i := 0; i < 3; i++ {
		f.clock.WaitPending(1)
		pending(t, done)
		f.clock.Advance(100 * time.Millisecond)
	}
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	if d0.Submits() != 4 || d1.Submits() != 0 {
		t.Errorf("submits p0=%d p1=%d, want 4 and 0 (all retries on the same path)", d0.Submits(), d1.Submits())
	}
	if c := p0.Counters(); c.RetryCount != 3 || c.ErrorCount != 0 || c.FailoverCount != 0 {
		t.Errorf("path counters %+v", c)
	}
	if c := h.Counters(); c.RetryCount != 3 {
		t.Errorf("head counters %+v", c)
	}
}

func TestRetryStopsAtMaxRetries(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	cause := errors.New("media error")
	d0.FailNext(100, mpath.Verdict{Action: mpath.ActionRetry}, cause)
	err := p0.Head().Do(context.Background(), read())
	if !errors.Is(err, cause) {
		t.Fatalf("err = %v, want the driver's error", err)
	}
	if got := d0.Submits(); got != 1+mpath.MaxRetries {
		t.Errorf("submits = %d, want %d", got, 1+mpath.MaxRetries)
	}
	if c := p0.Counters(); c.RetryCount != mpath.MaxRetries || c.ErrorCount != 1 {
		t.Errorf("path counters %+v", c)
	}
	if c := p0.Head().Counters(); c.ErrorCount != 1 || c.RetryCount != mpath.MaxRetries {
		t.Errorf("head counters %+v", c)
	}
}

func TestRetryReselectsWhenThePathBecameUnusable(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	_, d1 := f.add(t, 1, mpath.NewController("1", 0))
	d0.SubmitHook = func(context.Context, *mpath.Request) error {
		d0.SetDisabled(true)
		return &mpathtest.Fault{Verdict: mpath.Verdict{Action: mpath.ActionRetry}}
	}
	if err := p0.Head().Do(context.Background(), read()); err != nil {
		t.Fatal(err)
	}
	if d0.Submits() != 1 || d1.Successes() != 1 {
		t.Errorf("submits p0=%d, successes p1=%d", d0.Submits(), d1.Successes())
	}
}

func TestCompleteReturnsTheDriverError(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	_, d1 := f.add(t, 1, mpath.NewController("1", 0))
	d0.FailNext(1, mpath.Verdict{Action: mpath.ActionComplete}, syscall.ENOSPC)
	err := p0.Head().Do(context.Background(), write())
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v", err)
	}
	if d1.Submits() != 0 {
		t.Error("a completed error was failed over")
	}
	if p0.Counters().ErrorCount != 1 || p0.Head().Counters().ErrorCount != 1 {
		t.Errorf("error counters %+v %+v", p0.Counters(), p0.Head().Counters())
	}
}

func TestFailoverResubmitsOnAnotherPath(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	_, d1 := f.add(t, 1, mpath.NewController("1", 1))
	h := p0.Head()
	if h.FindPath(0) != p0 {
		t.Fatal("setup: p0 is not node 0's path")
	}
	d0.SubmitHook = func(context.Context, *mpath.Request) error {
		d0.SetDisabled(true) // transport loss: the controller starts resetting
		return &mpathtest.Fault{Verdict: mpath.Verdict{Action: mpath.ActionFailover}}
	}
	if err := h.Do(context.Background(), read()); err != nil {
		t.Fatal(err)
	}
	if d1.Successes() != 1 {
		t.Errorf("p1 successes = %d", d1.Successes())
	}
	if c := p0.Counters(); c.FailoverCount != 1 || c.ErrorCount != 0 {
		t.Errorf("p0 counters %+v", c)
	}
	if mpath.Current(h, 0) == p0 {
		t.Error("the failed path is still node 0's current path")
	}
}

func TestANAErrorMarksPendingAndRefreshesANA(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	p1, d1 := f.add(t, 1, mpath.NewController("1", 1))
	d1.SetAccessState(mpath.StateNonOptimized)
	h := p0.Head()
	d0.FailNext(1, mpath.Verdict{Action: mpath.ActionFailover, ANA: true}, nil)
	if err := h.Do(context.Background(), read()); err != nil {
		t.Fatal(err)
	}
	if d0.ANARefreshes() != 1 {
		t.Errorf("RefreshANA calls = %d", d0.ANARefreshes())
	}
	if d1.Successes() != 1 {
		t.Errorf("the request did not move to the non-optimized path")
	}
	if !p0.ANAPending() || p0.Usable() {
		t.Fatal("p0 not ANA-pending after an ANA error")
	}
	if got := h.FindPath(0); got != p1 {
		t.Fatalf("while ANA-pending selection returned %v, want p1", got.Name())
	}
	// The driver read the log: the group is still optimized.
	d0.SetAccessState(mpath.StateOptimized)
	if p0.ANAPending() || h.FindPath(0) != p0 {
		t.Fatal("Changed did not clear ANA-pending")
	}
}

func TestANATransitionsMoveIO(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	p1, d1 := f.add(t, 1, mpath.NewController("1", 0))
	h := p0.Head()
	steps := []struct {
		name   string
		s0, s1 mpath.AccessState
		want   *mpath.Path
	}{
		{"both optimized: first", mpath.StateOptimized, mpath.StateOptimized, p0},
		{"p0 non-optimized: p1", mpath.StateNonOptimized, mpath.StateOptimized, p1},
		{"p0 optimized again, p1 cached and optimized: p1 stays", mpath.StateOptimized, mpath.StateOptimized, p1},
		{"p1 changes: p0", mpath.StateOptimized, mpath.StateOther, p0},
		{"p0 inaccessible, p1 non-optimized: p1", mpath.StateOther, mpath.StateNonOptimized, p1},
		{"both inaccessible: nothing", mpath.StateOther, mpath.StateOther, nil},
	}
	for _, st := range steps {
		d0.SetAccessState(st.s0)
		d1.SetAccessState(st.s1)
		if st.name == "p0 optimized again, p1 cached and optimized: p1 stays" {
			// Changed() dropped the cache; re-establish p1 as current path.
			mpath.SetCurrent(h, 0, p1)
		}
		if got := h.FindPath(0); got != st.want {
			t.Errorf("%s: got %v", st.name, got)
		}
	}
}

func TestFenceBeforeResubmittingAnInDoubtWrite(t *testing.T) {
	cases := []struct {
		name      string
		op        mpath.Op
		inDoubt   bool
		fenceOn   bool
		wantFence bool
	}{
		{"in-doubt write waits for the fence", mpath.OpWrite, true, true, true},
		{"in-doubt write-zeroes waits for the fence", mpath.OpWriteZeroes, true, true, true},
		{"in-doubt discard waits for the fence", mpath.OpDiscard, true, true, true},
		{"in-doubt other command waits for the fence", mpath.OpOther, true, true, true},
		{"in-doubt read does not wait", mpath.OpRead, true, true, false},
		{"in-doubt flush does not wait", mpath.OpFlush, true, true, false},
		{"write that surely did not execute does not wait", mpath.OpWrite, false, true, false},
		{"FenceWrites off: no wait", mpath.OpWrite, true, false, false},
		{"in-doubt write retried on the same controller waits for the fence", mpath.OpWrite, true, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, mpath.PolicyNUMA)
			f.s.SetFenceWrites(tc.fenceOn)
			p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
			_, d1 := f.add(t, 1, mpath.NewController("1", 0))
			d0.SubmitHook = func(context.Context, *mpath.Request) error {
				d0.SetDisabled(true) // the connection died
				action := mpath.ActionFailover
				if strings.Contains(tc.name, "retried") {
					action = mpath.ActionRetry
				}
				return &mpathtest.Fault{Verdict: mpath.Verdict{Action: action, InDoubt: tc.inDoubt}}
			}
			var submitsAtFence uint64 = 99
			d0.FenceHook = func(ctx context.Context, err error) error {
				var fault *mpathtest.Fault
				if !errors.As(err, &fault) {
					t.Errorf("Fence got %v, want the failed command's error", err)
				}
				submitsAtFence = d1.Submits()
				f.clock.Advance(5 * time.Second) // KATO
				return nil
			}
			req := &mpath.Request{Op: tc.op, Length: 4096, Buf: make([]byte, 4096)}
			if err := p0.Head().Do(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			c := p0.Head().Counters()
			if !tc.wantFence {
				if d0.Fences() != 0 || c.FenceWaits != 0 {
					t.Fatalf("fenced: calls=%d counters=%+v", d0.Fences(), c)
				}
				return
			}
			if d0.Fences() != 1 || submitsAtFence != 0 {
				t.Fatalf("fence calls=%d, resubmissions before the fence ended=%d", d0.Fences(), submitsAtFence)
			}
			if c.FenceWaits != 1 || c.FenceWaitTotal != 5*time.Second {
				t.Fatalf("counters %+v, want 1 wait of 5s", c)
			}
			if d1.Successes() != 1 {
				t.Fatal("write not resubmitted after the fence")
			}
		})
	}
}

func TestFenceFailureFailsTheWrite(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	_, d1 := f.add(t, 1, mpath.NewController("1", 0))
	d0.FailNext(1, mpath.Verdict{Action: mpath.ActionFailover, InDoubt: true}, nil)
	d0.FenceHook = func(ctx context.Context, err error) error { return context.DeadlineExceeded }
	err := p0.Head().Do(context.Background(), write())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if d1.Submits() != 0 {
		t.Fatal("write resubmitted although the fence failed")
	}
}

func TestNoUsablePathQueuesUntilAPathReturns(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	h := p0.Head()
	nilSelections := make(chan struct{}, 64)
	mpath.SetSelectHooks(h, nil, func(_ *mpath.Request, p *mpath.Path) {
		if p == nil {
			nilSelections <- struct{}{}
		}
	})
	d0.SetDisabled(true) // resetting: not usable, still available
	done1 := do(h, read())
	f.log.waitFor(t, "nvme0n1: no usable path - requeuing I/O")
	if c := h.Counters(); c.RequeueNoUsablePath != 1 {
		t.Fatalf("counters %+v", c)
	}
	for len(nilSelections) > 0 {
		<-nilSelections
	}
	done2 := do(h, write())
	<-nilSelections // fast-path look
	<-nilSelections // look after arming the wait: a wake can no longer be lost
	pending(t, done1)
	pending(t, done2)
	d0.SetDisabled(false) // live again: Changed wakes the queue
	if err := result(t, done1); err != nil {
		t.Fatal(err)
	}
	if err := result(t, done2); err != nil {
		t.Fatal(err)
	}
	if n := f.log.count("no usable path - requeuing I/O"); n != 1 {
		t.Errorf("logged %d times, want once per episode", n)
	}
	if d0.Successes() != 2 {
		t.Errorf("successes = %d", d0.Successes())
	}
	// A new episode logs again.
	d0.SetDisabled(true)
	done3 := do(h, read())
	f.log.waitFor(t, "no usable path - requeuing I/O")
	d0.SetDisabled(false)
	if err := result(t, done3); err != nil {
		t.Fatal(err)
	}
}

func TestNoAvailablePathFailsWithEIO(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	d0.SetDisabled(true)
	d0.SetAvailable(false) // ctrl_loss_tmo or fast_io_fail_tmo expired
	h := p0.Head()
	for i := 0; i < 2; i++ {
		err := h.Do(context.Background(), read())
		if !errors.Is(err, mpath.ErrNoPath) {
			t.Fatalf("err = %v, want ErrNoPath", err)
		}
		var en interface{ Errno() syscall.Errno }
		if !errors.As(err, &en) || en.Errno() != syscall.EIO {
			t.Fatalf("errno of %v is not EIO", err)
		}
	}
	if c := h.Counters(); c.FailNoAvailablePath != 2 || c.RequeueNoUsablePath != 0 {
		t.Errorf("counters %+v", c)
	}
	if n := f.log.count("nvme0n1: no available path - failing I/O"); n != 1 {
		t.Errorf("logged %d times, want once per episode:\n%s", n, f.log)
	}
	h.ResetNoPathCounters()
	if c := h.Counters(); c.FailNoAvailablePath != 0 {
		t.Errorf("reset left %+v", c)
	}
}

func TestQueuedRequestFailsWhenThePathsGiveUp(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	d0.SetDisabled(true)
	done := do(p0.Head(), read())
	f.log.waitFor(t, "no usable path - requeuing I/O")
	d0.SetAvailable(false)
	if err := result(t, done); !errors.Is(err, mpath.ErrNoPath) {
		t.Fatalf("err = %v", err)
	}
}

func TestQueuedRequestHonoursContext(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	d0.SetDisabled(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p0.Head().Do(ctx, read()) }()
	f.log.waitFor(t, "no usable path - requeuing I/O")
	cancel()
	err := result(t, done)
	var me *mpath.Error
	if !errors.Is(err, context.Canceled) || !errors.As(err, &me) || me.Errno() != syscall.EINTR {
		t.Fatalf("err = %v", err)
	}
}

func TestDelayedRemovalQueuesThenFails(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	h := <-f.added
	h.SetDelayedRemovalSecs(5)
	d0.SetAvailable(false)
	d0.SetDisabled(true)
	f.s.RemovePath(p0)
	if h.Removed() || len(f.s.Heads()) != 1 {
		t.Fatal("head removed before delayed_removal_secs")
	}
	done := do(h, read())
	f.log.waitFor(t, "no usable path - requeuing I/O")
	f.clock.Advance(4 * time.Second)
	pending(t, done)
	f.clock.Advance(time.Second)
	if got := <-f.removed; got != h {
		t.Fatal("OnHeadRemoved got another head")
	}
	if err := result(t, done); !errors.Is(err, mpath.ErrNoPath) {
		t.Fatalf("err = %v, want ErrNoPath", err)
	}
	if !h.Removed() || len(f.s.Heads()) != 0 {
		t.Fatal("head not removed")
	}
}

func TestReturningPathCancelsDelayedRemoval(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, _ := f.add(t, 1, mpath.NewController("0", 0))
	h := <-f.added
	h.SetDelayedRemovalSecs(5)
	f.s.RemovePath(p0)
	done := do(h, write())
	f.log.waitFor(t, "no usable path - requeuing I/O")
	f.clock.Advance(3 * time.Second)
	p1, d1 := f.add(t, 1, mpath.NewController("1", 0)) // the controller reconnected
	if p1.Head() != h {
		t.Fatal("the returning path made a new head")
	}
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	if d1.Successes() != 1 {
		t.Fatal("queued request not re-driven on the returning path")
	}
	f.clock.Advance(time.Minute)
	if h.Removed() || len(f.removed) != 0 || f.clock.Pending() != 0 {
		t.Fatal("removal not cancelled")
	}
}

func TestLastPathRemovedWithoutDelayRemovesHeadAtOnce(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, _ := f.add(t, 1, mpath.NewController("0", 0))
	p1, _ := f.add(t, 1, mpath.NewController("1", 0))
	h := <-f.added
	f.s.RemovePath(p0)
	if h.Removed() || len(h.Paths()) != 1 {
		t.Fatal("head removed with a path left")
	}
	f.s.RemovePath(p1)
	f.s.RemovePath(p1) // idempotent
	if got := <-f.removed; got != h || !h.Removed() {
		t.Fatal("head not removed")
	}
	if err := h.Do(context.Background(), read()); !errors.Is(err, mpath.ErrNoPath) {
		t.Fatalf("I/O to a removed head: %v", err)
	}
	// The NSID can come back as a new head.
	p2, _ := f.add(t, 1, mpath.NewController("2", 0))
	if p2.Head() == h || <-f.added != p2.Head() {
		t.Fatal("no new head for a returning NSID")
	}
}

func TestClearingDelayedRemovalFailsQueuedIO(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	h := p0.Head()
	h.SetDelayedRemovalSecs(30)
	d0.SetDisabled(true)
	d0.SetAvailable(false) // only delayed_removal_secs keeps the I/O queued
	done := do(h, read())
	f.log.waitFor(t, "no usable path - requeuing I/O")
	h.SetDelayedRemovalSecs(0)
	if err := result(t, done); !errors.Is(err, mpath.ErrNoPath) {
		t.Fatalf("err = %v", err)
	}
	if c := h.Counters(); c.RequeueNoUsablePath != 1 || c.FailNoAvailablePath != 1 {
		t.Errorf("counters %+v", c)
	}
}

func TestRetryDelayHonoursContext(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	d0.FailNext(1, mpath.Verdict{Action: mpath.ActionRetry, RetryDelay: time.Hour}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p0.Head().Do(ctx, write()) }()
	f.clock.WaitPending(1)
	cancel()
	if err := result(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if d0.Submits() != 1 {
		t.Fatal("retried after cancellation")
	}
}

func TestServiceTimeProbesAnIdlePathWithAStaleEstimate(t *testing.T) {
	th := newTestHead(t, mpath.PolicyServiceTime, []pathSpec{opt(0).st(8<<10, 100), opt(0).st(0, 100000)})
	if got := th.index(mpath.Select(th.h, 0, 4096, 1e8)); got != 0 {
		t.Fatalf("fresh estimates: path %d, want the fast one", got)
	}
	// Two seconds without a completion on the idle slow path: it is probed again.
	if got := th.index(mpath.Select(th.h, 0, 4096, 2e9)); got != 1 {
		t.Fatalf("stale estimate: path %d, want the idle path probed", got)
	}
}

func TestServiceTimeLearnsFromCompletions(t *testing.T) {
	f := newFixture(t, mpath.PolicyServiceTime)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	p1, d1 := f.add(t, 1, mpath.NewController("1", 0))
	d0.SubmitHook = func(context.Context, *mpath.Request) error { f.clock.Advance(5 * time.Millisecond); return nil }
	d1.SubmitHook = func(context.Context, *mpath.Request) error { f.clock.Advance(100 * time.Microsecond); return nil }
	h := p0.Head()
	for i := 0; i < 20; i++ {
		if err := h.Do(context.Background(), read()); err != nil {
			t.Fatal(err)
		}
	}
	e0, e1 := mpath.ServiceEstimate(p0.Controller()), mpath.ServiceEstimate(p1.Controller())
	if e0 != 5e6/4 || e1 != 1e5/4 {
		t.Errorf("estimates %d and %d ns/KiB, want %d and %d", e0, e1, int64(5e6/4), int64(1e5/4))
	}
	if d0.Submits() != 1 || d1.Submits() != 19 {
		t.Errorf("submits slow=%d fast=%d, want 1 probe of the slow path", d0.Submits(), d1.Submits())
	}
}
