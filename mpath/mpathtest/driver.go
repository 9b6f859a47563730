package mpathtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpathfs/mpathfs/mpath"
)

// Fault is the error a scripted failure returns; Classify answers with its Verdict.
type Fault struct {
	Path    string
	Verdict mpath.Verdict
	Err     error // optional cause
	Req     *mpath.Request
}

func (f *Fault) Error() string {
	msg := fmt.Sprintf("mpathtest: %s: injected %s", f.Path, f.Verdict.Action)
	if f.Err != nil {
		msg += ": " + f.Err.Error()
	}
	return msg
}

func (f *Fault) Unwrap() error { return f.Err }

type script struct {
	n   int
	v   mpath.Verdict
	err error
}

// Driver is a fake path. The zero value is not usable; use NewDriver. All setters
// call Path.Changed on the bound path, as a real driver must.
type Driver struct {
	name      string
	state     atomic.Uint32
	disabled  atomic.Bool
	available atomic.Bool
	latency   atomic.Int64
	path      atomic.Pointer[mpath.Path]
	pending   atomic.Int32 // scripted faults left (fast check)

	mu      sync.Mutex
	scripts []script

	submits      atomic.Uint64
	successes    atomic.Uint64
	anaRefreshes atomic.Uint64
	fences       atomic.Uint64

	// Store, if set, backs reads and writes: a RAM disk (copies Buf at Offset).
	Store []byte
	// SubmitHook, if set, runs first in every Submit; a non-nil error fails the
	// submission with that error (classified as ActionComplete unless it is a *Fault).
	SubmitHook func(ctx context.Context, req *mpath.Request) error
	// ANAHook, if set, runs in RefreshANA (e.g. to set the new state).
	ANAHook func()
	// FenceHook, if set, implements Fence; the default returns at once.
	FenceHook func(ctx context.Context, err error) error
}

var (
	_ mpath.PathDriver   = (*Driver)(nil)
	_ mpath.ANARefresher = (*Driver)(nil)
	_ mpath.Fencer       = (*Driver)(nil)
)

// NewDriver returns an optimized, enabled, available driver.
func NewDriver(name string) *Driver {
	d := &Driver{name: name}
	d.available.Store(true)
	return d
}

// Bind records the path the driver serves (the result of Subsystem.AddPath), so
// setters can call Changed.
func (d *Driver) Bind(p *mpath.Path) { d.path.Store(p) }

func (d *Driver) changed() {
	if p := d.path.Load(); p != nil {
		p.Changed()
	}
}

// SetAccessState sets the access state and calls Changed.
func (d *Driver) SetAccessState(s mpath.AccessState) {
	d.state.Store(uint32(s))
	d.changed()
}

// SetDisabled sets Disabled and calls Changed.
func (d *Driver) SetDisabled(v bool) {
	d.disabled.Store(v)
	d.changed()
}

// SetAvailable sets Available and calls Changed.
func (d *Driver) SetAvailable(v bool) {
	d.available.Store(v)
	d.changed()
}

// SetLatency makes every Submit sleep d.
func (d *Driver) SetLatency(l time.Duration) { d.latency.Store(int64(l)) }

// FailNext makes the next n submissions fail with a *Fault carrying v (and err as
// its cause). Scripts queue up in order.
func (d *Driver) FailNext(n int, v mpath.Verdict, err error) {
	if n <= 0 {
		return
	}
	d.mu.Lock()
	d.scripts = append(d.scripts, script{n, v, err})
	d.mu.Unlock()
	d.pending.Add(int32(n))
}

func (d *Driver) nextFault() (script, bool) {
	if d.pending.Load() <= 0 {
		return script{}, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.scripts) == 0 {
		return script{}, false
	}
	s := d.scripts[0]
	d.scripts[0].n--
	if d.scripts[0].n == 0 {
		d.scripts = d.scripts[1:]
	}
	d.pending.Add(-1)
	return s, true
}

// Submit implements mpath.PathDriver.
func (d *Driver) Submit(ctx context.Context, req *mpath.Request) error {
	d.submits.Add(1)
	if h := d.SubmitHook; h != nil {
		if err := h(ctx, req); err != nil {
			return err
		}
	}
	if l := d.latency.Load(); l > 0 {
		time.Sleep(time.Duration(l))
	}
	if s, ok := d.nextFault(); ok {
		return &Fault{Path: d.name, Verdict: s.v, Err: s.err, Req: req}
	}
	if d.Store != nil && req.Offset >= 0 && req.Offset+int64(len(req.Buf)) <= int64(len(d.Store)) {
		switch req.Op {
		case mpath.OpRead:
			copy(req.Buf, d.Store[req.Offset:])
		case mpath.OpWrite:
			copy(d.Store[req.Offset:], req.Buf)
		}
	}
	d.successes.Add(1)
	return nil
}

// Classify implements mpath.PathDriver: a *Fault yields its Verdict (a retry at the
// cap becomes ActionComplete, like nvme_decide_disposition); any other error completes.
func (d *Driver) Classify(err error, retries int) mpath.Verdict {
	var f *Fault
	if !errors.As(err, &f) {
		return mpath.Verdict{Action: mpath.ActionComplete}
	}
	if f.Verdict.Action == mpath.ActionRetry && retries >= mpath.MaxRetries {
		return mpath.Verdict{Action: mpath.ActionComplete}
	}
	return f.Verdict
}

// AccessState implements mpath.PathDriver.
func (d *Driver) AccessState() mpath.AccessState { return mpath.AccessState(d.state.Load()) }

// Disabled implements mpath.PathDriver.
func (d *Driver) Disabled() bool { return d.disabled.Load() }

// Available implements mpath.PathDriver.
func (d *Driver) Available() bool { return d.available.Load() }

// RefreshANA implements mpath.ANARefresher: it counts and runs ANAHook.
func (d *Driver) RefreshANA() {
	d.anaRefreshes.Add(1)
	if h := d.ANAHook; h != nil {
		h()
	}
}

// Fence implements mpath.Fencer: it counts and runs FenceHook.
func (d *Driver) Fence(ctx context.Context, err error) error {
	d.fences.Add(1)
	if h := d.FenceHook; h != nil {
		return h(ctx, err)
	}
	return nil
}

// Submits returns the number of Submit calls.
func (d *Driver) Submits() uint64 { return d.submits.Load() }

// Successes returns the number of successful submissions.
func (d *Driver) Successes() uint64 { return d.successes.Load() }

// ANARefreshes returns the number of RefreshANA calls.
func (d *Driver) ANARefreshes() uint64 { return d.anaRefreshes.Load() }

// Fences returns the number of Fence calls.
func (d *Driver) Fences() uint64 { return d.fences.Load() }

// Name returns the driver's name.
func (d *Driver) Name() string { return d.name }
