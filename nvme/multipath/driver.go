// Package multipath plugs the NVMe host into the generic multipath library
// (package mpath), as Linux's drivers/nvme/host/multipath.c plugs NVMe into
// libmultipath: one Path per (controller, namespace) answers mpath's
// questions (submit, classify a failure, access state, disabled,
// available), and NVMe specifics stay here: the ANA state mapping,
// nvme_decide_disposition with the CRD delays, the ANA log re-read after an
// ANA error, and the write fence after a connection loss (KATO, or the
// controller's Command Quiesce Time).
//
// Core owns the path and namespace lifecycle the kernel keeps beside the
// NVMe core: subsystems, controller instances, head instances, paths added,
// revalidated and removed as the host's events (scans, ANA log reads,
// state changes) say, and delete_controller's drain. An assembly (the
// daemon) publishes what Core reports through a Listener.
package multipath

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/clock"
	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/host"
)

// Controller is what a Path needs from an NVMe host controller; it is
// implemented by *host.Controller.
type Controller interface {
	State() host.State
	Available() bool
	Identify() *nvme.IdentifyController
	Namespace(nsid uint32) (host.Namespace, bool)
	Read(ctx context.Context, nsid uint32, slba uint64, buf []byte) error
	Write(ctx context.Context, nsid uint32, slba uint64, buf []byte) error
	Flush(ctx context.Context, nsid uint32) error
	WriteZeroes(ctx context.Context, nsid uint32, slba, nlb uint64) error
	Deallocate(ctx context.Context, nsid uint32, slba, nlb uint64) error
	Exec(ctx context.Context, cmd *nvme.Command, data []byte) (nvme.Completion, error)
	// QueueANARead schedules the controller's one coalescing ANA log
	// re-read (ana_work); its result arrives as a host.ANAChanged event.
	QueueANARead()
}

var _ Controller = (*host.Controller)(nil)

// Path is the NVMe driver of one multipath path: controller ctrl's view of
// namespace nsid. It implements mpath.PathDriver, mpath.ANARefresher and
// mpath.Fencer. Its hot-path answers read atomics that Refresh updates from
// controller events, so path selection never takes a controller lock.
type Path struct {
	ctrl  Controller
	nsid  uint32
	shift atomic.Uint32 // log2(block size)
	log   hclog.Logger
	clk   clock.Clock

	// Lifecycle (set by Core before the path is published).
	name  string
	owner *Ctrl
	id    mpath.Identity

	// Submissions in flight, for the drain of delete_controller.
	inflight atomic.Int64
	draining atomic.Bool
	drained  chan struct{}

	mp         atomic.Pointer[mpath.Path]
	access     atomic.Uint32 // mpath.AccessState
	ana        atomic.Uint32 // nvme.ANAState, for sysfs
	anaChanges atomic.Uint64 // ANA state transitions
	group      atomic.Uint32 // ANA group ID
	crdt       [3]time.Duration

	starts sync.Pool // *startedIO
}

var (
	_ mpath.PathDriver      = (*Path)(nil)
	_ mpath.ANARefresher    = (*Path)(nil)
	_ mpath.Fencer          = (*Path)(nil)
	_ mpath.AsyncPathDriver = (*Path)(nil)
)

// NewPath returns the driver of namespace ns seen through ctrl.
func NewPath(ctrl Controller, ns host.Namespace, log hclog.Logger) *Path {
	p := &Path{ctrl: ctrl, nsid: ns.NSID, log: log, clk: clock.System(), drained: make(chan struct{}, 1)}
	p.setGeometry(ns)
	if id := ctrl.Identify(); id != nil {
		for i, v := range id.CRDT {
			p.crdt[i] = time.Duration(v) * 100 * time.Millisecond
		}
	}
	p.ana.Store(uint32(ns.ANAState)) // the initial state is no transition
	p.setANA(ns.ANAGroup, ns.ANAState)
	return p
}

// setGeometry records the namespace's block size (after a revalidation).
func (p *Path) setGeometry(ns host.Namespace) {
	var shift uint32
	for bs := ns.BlockSize; bs > 1; bs >>= 1 {
		shift++
	}
	p.shift.Store(shift)
}

// Name is the path's name, nvme<S>c<C>n<H> (set by Core).
func (p *Path) Name() string { return p.name }

// Ctrl is the lifecycle controller of the path (set by Core).
func (p *Path) Ctrl() *Ctrl { return p.owner }

// Bind attaches the mpath path this driver serves, for Changed calls.
func (p *Path) Bind(mp *mpath.Path) { p.mp.Store(mp) }

// MPath returns the bound mpath path (nil before Bind).
func (p *Path) MPath() *mpath.Path { return p.mp.Load() }

// NSID is the namespace ID.
func (p *Path) NSID() uint32 { return p.nsid }

// Controller is the host controller of this path.
func (p *Path) Controller() Controller { return p.ctrl }

// ANAState is the last known ANA state of the path's group.
func (p *Path) ANAState() nvme.ANAState { return nvme.ANAState(p.ana.Load()) }

// ANAGroup is the namespace's ANA group ID.
func (p *Path) ANAGroup() uint32 { return p.group.Load() }

// ANATransitions counts the ANA state changes seen on the path.
func (p *Path) ANATransitions() uint64 { return p.anaChanges.Load() }

func (p *Path) setANA(group uint32, st nvme.ANAState) {
	p.group.Store(group)
	if old := p.ana.Swap(uint32(st)); old != uint32(st) {
		p.anaChanges.Add(1)
	}
	a := mpath.StateOther
	switch st {
	case nvme.ANAOptimized:
		a = mpath.StateOptimized
	case nvme.ANANonOptimized:
		a = mpath.StateNonOptimized
	}
	p.access.Store(uint32(a))
}

// Refresh re-reads the namespace's ANA state and group from the controller
// and tells mpath (which re-drives queued I/O) after a controller state
// change. It does not clear an ANA-pending mark (only ANARead does). A
// reports false if the namespace is gone from the controller.
func (p *Path) Refresh() bool { return p.refresh(false) }

// ANARead is Refresh after an ANA log read: it clears the ANA-pending mark
// if the log listed the namespace (nvme_update_ns_ana_state).
func (p *Path) ANARead() bool { return p.refresh(true) }

func (p *Path) refresh(anaRead bool) bool {
	ns, ok := p.ctrl.Namespace(p.nsid)
	if ok {
		p.setANA(ns.ANAGroup, ns.ANAState)
	}
	mp := p.mp.Load()
	if mp == nil {
		return ok
	}
	if ok && anaRead && ns.ANAListed && ns.ANAState != 0 {
		mp.Changed()
	} else {
		mp.Refreshed()
	}
	return ok
}

// added runs once the path joined its head: a namespace whose ANA group the
// log does not describe is marked ANA-pending and the log re-read
// (nvme_mpath_add_ns).
func (p *Path) added() {
	mp := p.mp.Load()
	if ns, ok := p.ctrl.Namespace(p.nsid); ok && ns.ANAState == 0 && mp != nil {
		p.log.Debug("ANA group missing from the log, re-reading it", "nsid", p.nsid, "group", ns.ANAGroup)
		mp.SetANAPending()
		p.ctrl.QueueANARead()
	}
	p.Refresh()
}

func (p *Path) slba(off int64) uint64 { return uint64(off) >> p.shift.Load() }

func (p *Path) nlb(n int64) uint64 { return uint64(n) >> p.shift.Load() }

// Submit sends the request whole on this path. Reads and writes larger than
// the controller's transfer limit are split by the host into several
// commands; each is whole, and a failed request is re-sent whole.
func (p *Path) Submit(ctx context.Context, req *mpath.Request) error {
	p.inflight.Add(1)
	defer p.done()
	if p.draining.Load() {
		// Removed by delete_controller after this request chose it: the
		// command was not sent, another path takes it.
		return nvme.StatusHostPathError
	}
	switch req.Op {
	case mpath.OpRead:
		if req.SilentAfter > 0 {
			if r, ok := p.ctrl.(silentReader); ok {
				return r.ReadWithin(ctx, p.nsid, p.slba(req.Offset), req.Buf[:req.Length], req.SilentAfter)
			}
		}
		return p.ctrl.Read(ctx, p.nsid, p.slba(req.Offset), req.Buf[:req.Length])
	case mpath.OpWrite:
		return p.ctrl.Write(ctx, p.nsid, p.slba(req.Offset), req.Buf[:req.Length])
	case mpath.OpFlush:
		return p.ctrl.Flush(ctx, p.nsid)
	case mpath.OpWriteZeroes:
		return p.ctrl.WriteZeroes(ctx, p.nsid, p.slba(req.Offset), p.nlb(req.Length))
	case mpath.OpDiscard:
		return p.ctrl.Deallocate(ctx, p.nsid, p.slba(req.Offset), p.nlb(req.Length))
	case mpath.OpOther, mpath.OpOtherRead:
		switch r := req.Arg.(type) {
		case *resvCmd:
			return p.submitResv(ctx, r, req.Buf)
		case *reportReq:
			b, err := p.reportRaw(ctx)
			r.buf = b
			return err
		}
		cmd, ok := req.Arg.(*nvme.Command)
		if !ok {
			return errors.New("nvme multipath: OpOther needs an *nvme.Command in Arg")
		}
		c := *cmd
		c.NSID = p.nsid
		_, err := p.ctrl.Exec(ctx, &c, req.Buf)
		return err
	}
	return errors.New("nvme multipath: unknown request op")
}

func (p *Path) done() {
	if p.inflight.Add(-1) == 0 && p.draining.Load() {
		select {
		case p.drained <- struct{}{}:
		default:
		}
	}
}

// drain stops new submissions on the path and waits until those in
// flight completed (or ctx ends), as del_gendisk drains a path's queue
// before the controller is torn down.
func (p *Path) drain(ctx context.Context) error {
	p.draining.Store(true)
	for p.inflight.Load() > 0 {
		select {
		case <-p.drained:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Classify applies nvme_decide_disposition: commands cancelled by error
// recovery (no completion) fail over and are in doubt; a path status
// without DNR fails over (ANA statuses also re-read the ANA log); other
// errors are retried on this path after the CRD delay, up to 5 times; DNR
// or an exhausted retry count completes with the error.
func (p *Path) Classify(err error, retries int) mpath.Verdict {
	var fin *finalStatus
	if errors.As(err, &fin) {
		return mpath.Verdict{Action: mpath.ActionComplete}
	}
	var ab *host.AbortedError
	if errors.As(err, &ab) {
		return mpath.Verdict{Action: mpath.ActionFailover, InDoubt: true}
	}
	if errors.Is(err, host.ErrSilent) {
		// A read given up on a silent path: re-send it on a live one. It
		// may still execute here, which a read may (never a write: they
		// have no silence bound).
		return mpath.Verdict{Action: mpath.ActionFailover, InDoubt: true}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return mpath.Verdict{Action: mpath.ActionComplete}
	}
	var st nvme.Status
	if !errors.As(err, &st) {
		// A host-side failure without a status (closed controller, transport
		// trouble): another path may do; we cannot know whether it ran.
		return mpath.Verdict{Action: mpath.ActionFailover, InDoubt: true}
	}
	switch nvme.DecideDisposition(st, retries, false, true) {
	case nvme.Failover:
		return mpath.Verdict{Action: mpath.ActionFailover, ANA: st.IsANAError()}
	case nvme.Authenticate:
		// nvme_decide_disposition's AUTHENTICATE: re-authenticate the
		// controller in the background and retry the command.
		if r, ok := p.ctrl.(reauther); ok {
			r.RequestReauth()
		}
		return mpath.Verdict{Action: mpath.ActionRetry}
	case nvme.Retry:
		var d time.Duration
		if crd := st.CRD(); crd > 0 {
			d = p.crdt[crd-1]
		}
		return mpath.Verdict{Action: mpath.ActionRetry, RetryDelay: d}
	}
	return mpath.Verdict{Action: mpath.ActionComplete}
}

// AccessState maps the ANA state: optimized, non-optimized, or other.
// A controller being deleted is at best non-optimized, as
// nvme_path_is_optimized requires LIVE: the numa cache drops it and the
// selection prefers another optimized path, falling back to it only if
// nothing else is left (DELETING is not disabled).
func (p *Path) AccessState() mpath.AccessState {
	a := mpath.AccessState(p.access.Load())
	if a == mpath.StateOptimized && p.ctrl.State() == host.StateDeleting {
		return mpath.StateNonOptimized
	}
	return a
}

// Disabled reports a controller that is not LIVE or DELETING (Linux's
// nvme_path_is_disabled; ANA-pending and not-ready are tracked by mpath),
// or one that is Silent (beyond Linux).
func (p *Path) Disabled() bool {
	switch p.ctrl.State() {
	case host.StateLive, host.StateDeleting:
		if s, ok := p.ctrl.(silencer); ok && s.Silent() {
			return true // not answering: no new I/O until a probe answers
		}
		return false
	}
	return true
}

// silentReader and silencer are the optional Controller capabilities of
// the read failover on a silent path (*host.Controller has them).
type silentReader interface {
	ReadWithin(ctx context.Context, nsid uint32, slba uint64, buf []byte, within time.Duration) error
}

type silencer interface{ Silent() bool }

// reauther and hostIdentified are the optional Controller capabilities of
// re-authentication (nvme_decide_disposition's AUTHENTICATE) and of the
// in-doubt reservation rule (the Host Identifier a report is matched with).
type (
	reauther       interface{ RequestReauth() }
	hostIdentified interface{ HostID() [16]byte }
)

// *host.Controller has every optional capability: a renamed method fails
// the build instead of silently disabling the feature.
var (
	_ silentReader   = (*host.Controller)(nil)
	_ silencer       = (*host.Controller)(nil)
	_ reauther       = (*host.Controller)(nil)
	_ hostIdentified = (*host.Controller)(nil)
)

// Available reports a controller that may come back (nvme_available_path).
func (p *Path) Available() bool { return p.ctrl.Available() }

// RefreshANA schedules the controller's one coalescing ANA log re-read
// after an ANA error (nvme_failover_req queues ana_work): however many
// requests failed, one read runs, and its ANAChanged event refreshes the
// paths, which clears mpath's ANA-pending mark for the namespaces the log
// lists.
func (p *Path) RefreshANA() { p.ctrl.QueueANARead() }

// Fence blocks until a command that failed with err can no longer execute
// on the old controller: the keep-alive timeout after the loss (the target
// tears the association down when its keep-alive timer expires), plus the
// Command Quiesce Time when the controller reports one.
func (p *Path) Fence(ctx context.Context, err error) error {
	var ab *host.AbortedError
	if !errors.As(err, &ab) {
		return nil
	}
	wait := ab.LostAt.Add(ab.KATO + ab.CQT).Sub(p.clk.Now())
	if wait <= 0 {
		return nil
	}
	p.log.Debug("fencing failed-over write until the old controller has quiesced", "nsid", p.nsid, "wait", wait)
	return clock.Sleep(ctx, p.clk, wait)
}
