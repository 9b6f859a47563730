package mpath_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/mpath/mpathtest"
)

// world tracks, for the randomized test, when each path was usable. A transition
// takes two epochs: during the first the path counts as usable if it was usable
// before, after, or in the intermediate state (the driver's fields change one at a
// time, and a selector may see any of them), from the second on only the new
// state counts. Selections are checked against the epochs they spanned.
type world struct {
	epoch atomic.Uint64
	mu    sync.RWMutex
	hist  [][]histEntry // per path
	index map[*mpath.Path]int
}

type histEntry struct {
	epoch  uint64
	usable bool
}

func (w *world) usableDuring(i int, from, to uint64) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	h := w.hist[i]
	// The entry in effect at `from` and every entry up to `to`.
	for k := len(h) - 1; k >= 0; k-- {
		if h[k].epoch <= to && h[k].usable {
			return true
		}
		if h[k].epoch <= from {
			break
		}
	}
	return false
}

// reqState is a randomized-test request's bookkeeping (Request.Arg).
type reqState struct {
	successes  atomic.Int32
	needFence  atomic.Bool // failed over in doubt, not fenced yet
	selectFrom atomic.Uint64
	violations atomic.Int32
}

func TestRandomizedFailover(t *testing.T) {
	for p := mpath.PolicyNUMA; p <= mpath.PolicyServiceTime; p++ {
		t.Run(p.String(), func(t *testing.T) { randomizedFailover(t, p) })
	}
}

func randomizedFailover(t *testing.T, policy mpath.IOPolicy) {
	const (
		nPaths    = 4
		workers   = 16
		perWorker = 250
	)
	if testing.Short() {
		t.Skip("randomized test skipped in -short mode")
	}
	cfg := mpath.DefaultSubsystemConfig("nqn.2026-01.io.mpathfs:random")
	cfg.Policy = policy
	s := mpath.NewSubsystem(cfg)
	w := &world{hist: make([][]histEntry, nPaths), index: map[*mpath.Path]int{}}
	drvs := make([]*mpathtest.Driver, nPaths)
	var h *mpath.Head
	var badSubmits, unfencedWrites atomic.Int32
	for i := range drvs {
		d := mpathtest.NewDriver(fmt.Sprintf("p%d", i))
		rng := rand.New(rand.NewPCG(uint64(i), uint64(policy)))
		var rngMu sync.Mutex
		d.SubmitHook = func(ctx context.Context, req *mpath.Request) error {
			rs := req.Arg.(*reqState)
			if req.Op.IsWrite() && rs.needFence.Load() {
				unfencedWrites.Add(1)
			}
			if d.AccessState() == mpath.StateOther || d.Disabled() {
				// The state changed after selection: a real controller that is not
				// live fails the command with a host path error without sending it.
				return &mpathtest.Fault{Verdict: mpath.Verdict{Action: mpath.ActionFailover}, Req: req}
			}
			rngMu.Lock()
			x := rng.IntN(100)
			rngMu.Unlock()
			switch {
			case x < 4: // connection lost: in doubt
				return &mpathtest.Fault{Verdict: mpath.Verdict{Action: mpath.ActionFailover, InDoubt: true}, Req: req}
			case x < 7: // ANA transition
				return &mpathtest.Fault{Verdict: mpath.Verdict{Action: mpath.ActionFailover, ANA: true}, Req: req}
			case x < 10:
				return &mpathtest.Fault{Verdict: mpath.Verdict{Action: mpath.ActionRetry, RetryDelay: time.Duration(x) * time.Microsecond}, Req: req}
			}
			return nil
		}
		d.FenceHook = func(ctx context.Context, err error) error {
			var f *mpathtest.Fault
			if !errors.As(err, &f) || f.Req == nil {
				t.Errorf("Fence got %v", err)
				return nil
			}
			time.Sleep(20 * time.Microsecond) // "KATO"
			f.Req.Arg.(*reqState).needFence.Store(false)
			return nil
		}
		p, err := s.AddPath(mpath.Identity{NSID: 1}, testInfo, d.Name(), mpath.NewController(d.Name(), i%2), d)
		if err != nil {
			t.Fatal(err)
		}
		d.Bind(p)
		d.ANAHook = func() { go p.Changed() } // the ANA log was re-read: no change
		drvs[i] = d
		w.index[p] = i
		w.hist[i] = []histEntry{{0, true}}
		h = p.Head()
	}
	kick := make(chan struct{}, 1)
	var submits atomic.Int64
	// Mark in-doubt writes as needing the fence: wrap Classify via SubmitHook's
	// fault (the fake's Classify returns the verdict) — record it here instead.
	for _, d := range drvs {
		inner := d.SubmitHook
		d.SubmitHook = func(ctx context.Context, req *mpath.Request) error {
			err := inner(ctx, req)
			var f *mpathtest.Fault
			if errors.As(err, &f) && f.Verdict.InDoubt && req.Op.IsWrite() {
				req.Arg.(*reqState).needFence.Store(true)
			}
			if err == nil {
				req.Arg.(*reqState).successes.Add(1)
			}
			if submits.Add(1)%4 == 0 {
				select {
				case kick <- struct{}{}:
				default:
				}
			}
			return err
		}
	}
	mpath.SetSelectHooks(h,
		func(req *mpath.Request) { req.Arg.(*reqState).selectFrom.Store(w.epoch.Load()) },
		func(req *mpath.Request, p *mpath.Path) {
			if p == nil {
				return
			}
			to := w.epoch.Load()
			rs := req.Arg.(*reqState)
			if !w.usableDuring(w.index[p], rs.selectFrom.Load(), to) {
				rs.violations.Add(1)
				badSubmits.Add(1)
			}
		})

	// The mutator: random ANA / controller-state changes, paced, until the workers end.
	stop := make(chan struct{})
	mutatorDone := make(chan struct{})
	var mutations atomic.Int64
	ticker := time.NewTicker(200 * time.Microsecond)
	defer ticker.Stop()
	go func() {
		defer close(mutatorDone)
		rng := rand.New(rand.NewPCG(99, uint64(policy)))
		states := []mpath.AccessState{mpath.StateOptimized, mpath.StateNonOptimized, mpath.StateOther}
		cur := make([]struct {
			st  mpath.AccessState
			dis bool
		}, nPaths)
		set := func(i int, st mpath.AccessState, dis bool) {
			oldU := cur[i].st != mpath.StateOther && !cur[i].dis
			newU := st != mpath.StateOther && !dis
			midU := st != mpath.StateOther && !cur[i].dis // new state, old disabled flag
			w.mu.Lock()
			w.hist[i] = append(w.hist[i], histEntry{w.epoch.Add(1), oldU || midU || newU})
			w.mu.Unlock()
			drvs[i].SetAccessState(st)
			drvs[i].SetDisabled(dis)
			w.mu.Lock()
			w.hist[i] = append(w.hist[i], histEntry{w.epoch.Add(1), newU})
			w.mu.Unlock()
			cur[i].st, cur[i].dis = st, dis
			mutations.Add(1)
		}
		for {
			select {
			case <-stop:
				for i := range drvs { // every path returns: nothing may stay queued
					set(i, mpath.StateOptimized, false)
				}
				return
			default:
			}
			i := rng.IntN(nPaths)
			set(i, states[rng.IntN(len(states))], rng.IntN(4) == 0)
			// Pace: the next mutation after a few submissions, or after a tick when
			// everything is queued.
			select {
			case <-kick:
			case <-ticker.C:
			case <-stop:
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var completed, failed atomic.Int64
	var lost atomic.Int32
	errs := make(chan error, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]byte, 4096)
			for k := 0; k < perWorker; k++ {
				rs := &reqState{}
				op := mpath.OpRead
				if k%2 == 0 {
					op = mpath.OpWrite
				}
				req := &mpath.Request{Op: op, Length: 4096, Buf: buf, Node: g % 2, Arg: rs}
				err := h.Do(ctx, req)
				completed.Add(1)
				switch {
				case err == nil && rs.successes.Load() != 1:
					errs <- fmt.Errorf("request succeeded with %d successful submissions", rs.successes.Load())
					return
				case err != nil && rs.successes.Load() != 0:
					errs <- fmt.Errorf("request failed (%v) after a successful submission", err)
					return
				case err != nil && errors.Is(err, context.DeadlineExceeded):
					lost.Add(1)
				case err != nil:
					failed.Add(1)
					errs <- fmt.Errorf("request failed while paths may return: %v", err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	<-mutatorDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := completed.Load(); n != workers*perWorker {
		t.Errorf("%d of %d requests completed", n, workers*perWorker)
	}
	if lost.Load() != 0 {
		t.Errorf("%d requests never completed (lost in the queue)", lost.Load())
	}
	if n := badSubmits.Load(); n != 0 {
		t.Errorf("%d selections of a path that was unusable throughout the selection", n)
	}
	if n := unfencedWrites.Load(); n != 0 {
		t.Errorf("%d in-doubt writes resubmitted before the fence", n)
	}
	c := h.Counters()
	var fo uint64
	for _, p := range h.Paths() {
		fo += p.Counters().FailoverCount
	}
	t.Logf("%s: %d requests, %d mutations, failovers %d, retries %d, requeues %d, fence waits %d (%v)",
		policy, completed.Load(), mutations.Load(), fo, c.RetryCount, c.RequeueNoUsablePath, c.FenceWaits, c.FenceWaitTotal)
	if c.FenceWaits == 0 || fo == 0 || c.RetryCount == 0 {
		t.Errorf("the random run did not exercise failover/fence/retry: %+v", c)
	}
	if st := h.Stats(); st.InFlight != 0 || st.ReadIOs+st.WriteIOs != workers*perWorker {
		t.Errorf("head stats %+v", st)
	}
}

// TestRandomizedPathChurn removes and adds paths (new controllers) at random under
// I/O from many goroutines: the snapshot publication is race-free, no selection
// that began after a RemovePath returned picks the removed path, and with
// delayed_removal_secs set every request completes once a path is back.
func TestRandomizedPathChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("randomized test skipped in -short mode")
	}
	for _, policy := range policies {
		t.Run(policy.String(), func(t *testing.T) {
			cfg := mpath.DefaultSubsystemConfig("nqn.2026-01.io.mpathfs:churn")
			cfg.Policy = policy
			s := mpath.NewSubsystem(cfg)
			var epoch atomic.Uint64
			var mu sync.Mutex
			removedAt := map[*mpath.Path]uint64{}
			var bad atomic.Int32
			serial := 0
			add := func() *mpath.Path {
				serial++
				name := fmt.Sprintf("p%d", serial)
				d := mpathtest.NewDriver(name)
				d.SubmitHook = func(context.Context, *mpath.Request) error { runtime.Gosched(); return nil }
				p, err := s.AddPath(mpath.Identity{NSID: 1}, testInfo, name, mpath.NewController(name, serial%2), d)
				if err != nil {
					t.Fatal(err)
				}
				d.Bind(p)
				return p
			}
			live := []*mpath.Path{add(), add()}
			h := live[0].Head()
			h.SetDelayedRemovalSecs(3600)
			mpath.SetSelectHooks(h,
				func(req *mpath.Request) { req.Arg.(*reqState).selectFrom.Store(epoch.Load()) },
				func(req *mpath.Request, p *mpath.Path) {
					if p == nil {
						return
					}
					mu.Lock()
					at, gone := removedAt[p]
					mu.Unlock()
					if gone && req.Arg.(*reqState).selectFrom.Load() >= at {
						bad.Add(1)
					}
				})
			stop := make(chan struct{})
			churnDone := make(chan struct{})
			go func() {
				defer close(churnDone)
				rng := rand.New(rand.NewPCG(7, uint64(policy)))
				for {
					select {
					case <-stop:
						return
					default:
					}
					if len(live) > 0 && (len(live) > 3 || rng.IntN(2) == 0) {
						i := rng.IntN(len(live))
						p := live[i]
						live = append(live[:i], live[i+1:]...)
						s.RemovePath(p)
						e := epoch.Add(1)
						mu.Lock()
						removedAt[p] = e
						mu.Unlock()
					} else {
						live = append(live, add())
					}
					runtime.Gosched()
				}
			}()
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := 0; k < 500; k++ {
						req := &mpath.Request{Op: mpath.OpWrite, Length: 512, Node: k % 2, Arg: &reqState{}}
						ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
						err := h.Do(ctx, req)
						cancel()
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(stop)
			<-churnDone
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if n := bad.Load(); n != 0 {
				t.Errorf("%d selections of a path removed before the selection began", n)
			}
			if h.Removed() || len(s.Heads()) != 1 {
				t.Error("head removed despite delayed_removal_secs")
			}
			t.Logf("%s: %d paths added, %d left, %d requeues", policy, serial, len(live), h.Counters().RequeueNoUsablePath)
		})
	}
}
