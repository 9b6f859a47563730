package daemon

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mpathfs/mpathfs/fusefs"
	"github.com/mpathfs/mpathfs/internal/plug"
	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/host"
	"github.com/mpathfs/mpathfs/nvme/multipath"
	"github.com/mpathfs/mpathfs/sysfsview"
)

// triggerTimeout bounds a sysfs trigger (reset_controller, ...).
const triggerTimeout = 60 * time.Second

// subsysSource backs nvme-subsysN/iopolicy.
type subsysSource struct{ mp *mpath.Subsystem }

func (s *subsysSource) IOPolicy() string { return s.mp.IOPolicy().String() }

func (s *subsysSource) SetIOPolicy(name string) error {
	p, err := mpath.ParseIOPolicy(name)
	if err != nil {
		return err
	}
	s.mp.SetIOPolicy(p)
	return nil
}

// ctrlSource backs sys/class/nvme/nvmeX.
type ctrlSource struct {
	c  *multipath.Ctrl
	hc *host.Controller
	d  *Daemon
}

var (
	_ sysfsview.ControllerSource = (*ctrlSource)(nil)
	_ sysfsview.Resetter         = (*ctrlSource)(nil)
	_ sysfsview.Rescanner        = (*ctrlSource)(nil)
	_ sysfsview.Deleter          = (*ctrlSource)(nil)
)

func (s *ctrlSource) State() string       { return s.hc.State().String() }
func (s *ctrlSource) Address() string     { return s.hc.Address() }
func (s *ctrlSource) CNTLID() uint16      { return s.hc.CNTLID() }
func (s *ctrlSource) NUMANode() int       { return -1 }
func (s *ctrlSource) QueueCount() int     { return s.hc.QueueCount() }
func (s *ctrlSource) SQSize() int         { return s.hc.SQSize() }
func (s *ctrlSource) KATO() time.Duration { return s.hc.KATO() }

var _ sysfsview.CommandTimeouts = (*ctrlSource)(nil)
var _ fusefs.AsyncBlockDevice = (*Device)(nil)

func (s *ctrlSource) AdminTimeout() time.Duration { return s.hc.AdminTimeout() }
func (s *ctrlSource) IOTimeout() time.Duration    { return s.hc.IOTimeout() }

// The fabrics timeouts and command timeouts are writable, with the
// host's (the kernel's) semantics.
var (
	_ sysfsview.TimeoutSetter        = (*ctrlSource)(nil)
	_ sysfsview.CommandTimeoutSetter = (*ctrlSource)(nil)
)

func (s *ctrlSource) SetCtrlLossTmo(d time.Duration) error { s.hc.SetCtrlLossTmo(d); return nil }
func (s *ctrlSource) SetReconnectDelay(d time.Duration) error {
	s.hc.SetReconnectDelay(d)
	return nil
}
func (s *ctrlSource) SetFastIOFailTmo(d time.Duration) error { s.hc.SetFastIOFailTmo(d); return nil }
func (s *ctrlSource) SetAdminTimeout(d time.Duration) error  { s.hc.SetAdminTimeout(d); return nil }
func (s *ctrlSource) SetIOTimeout(d time.Duration) error     { s.hc.SetIOTimeout(d); return nil }

var _ sysfsview.DHCHAPSecrets = (*ctrlSource)(nil)

func (s *ctrlSource) DHCHAPSecret() string               { return s.hc.DHCHAPSecret() }
func (s *ctrlSource) DHCHAPCtrlSecret() string           { return s.hc.DHCHAPCtrlSecret() }
func (s *ctrlSource) SetDHCHAPSecret(v string) error     { return s.hc.SetDHCHAPSecret(v) }
func (s *ctrlSource) SetDHCHAPCtrlSecret(v string) error { return s.hc.SetDHCHAPCtrlSecret(v) }

func (s *ctrlSource) Timeouts() sysfsview.Timeouts {
	o := s.hc.Options()
	t := sysfsview.Timeouts{CtrlLoss: o.CtrlLossTmo, ReconnectDelay: o.ReconnectDelay, FastIOFail: o.FastIOFailTmo}
	if t.CtrlLoss >= 0 && o.ReconnectDelay > 0 {
		// The kernel shows max_reconnects * reconnect_delay.
		n := (t.CtrlLoss + o.ReconnectDelay - 1) / o.ReconnectDelay
		t.CtrlLoss = n * o.ReconnectDelay
	}
	return t
}

// The optional sources other packages probe for (metrics): a renamed
// method fails the build.
var (
	_ interface{ StateChanges() uint64 }       = (*ctrlSource)(nil)
	_ interface{ Latencies() mpath.Latencies } = (*headSource)(nil)
	_ interface{ Latencies() mpath.Latencies } = (*pathSource)(nil)
	_ interface{ ANATransitions() uint64 }     = (*pathSource)(nil)
)

// Counters are the host controller's diag/ counters.
var _ sysfsview.CounterSetter = (*ctrlSource)(nil)

func (s *ctrlSource) SetCounter(name string, v uint64) bool { return s.hc.SetCounter(name, v) }

func (s *ctrlSource) Counters() sysfsview.ControllerCounters {
	c := s.hc.Counters()
	return sysfsview.ControllerCounters{CommandErrors: c.CommandErrors, Resets: c.Resets, Reconnects: c.Reconnects,
		ResvNotifications: s.hc.ReservationNotifications()}
}

// StateChanges is the number of controller state transitions.
func (s *ctrlSource) StateChanges() uint64 { return s.hc.Counters().StateChanges }

func (s *ctrlSource) Reset() error {
	ctx, cancel := context.WithTimeout(context.Background(), triggerTimeout)
	defer cancel()
	return s.hc.Reset(ctx)
}

func (s *ctrlSource) Rescan() error {
	ctx, cancel := context.WithTimeout(context.Background(), triggerTimeout)
	defer cancel()
	return s.c.Rescan(ctx)
}

func (s *ctrlSource) Delete() error {
	// Like the kernel's delete_controller, the work runs asynchronously: the
	// writer of the trigger must not wait for the tree it writes into.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), triggerTimeout)
		defer cancel()
		if err := s.d.core.DeleteController(ctx, s.c); err != nil {
			s.d.log.Warn("delete_controller", "name", s.c.Name(), "error", err)
		}
	}()
	return nil
}

// headSource backs sys/block/nvmeNnM.
type headSource struct {
	h    *mpath.Head
	last atomic.Pointer[geometry] // while the head has no path
}

// geometry is the head's namespace geometry through its first path (the
// head takes the geometry of the path revalidated last; its paths agree).
func (s *headSource) geometry() geometry {
	for _, p := range s.h.Paths() {
		if d, ok := p.Driver().(*multipath.Path); ok {
			g := pathGeometry(d)
			s.last.Store(&g)
			return g
		}
	}
	if g := s.last.Load(); g != nil {
		return *g
	}
	return geometry{}
}

// geometry is a namespace's block-device view, from Identify.
type geometry struct {
	lim  sysfsview.QueueLimits
	nuse uint64
}

func newGeometry(id *nvme.IdentifyController, ns host.Namespace) geometry {
	if id == nil || ns.Info == nil {
		return geometry{lim: sysfsview.QueueLimits{LogicalBlockSize: ns.BlockSize, PhysicalBlockSize: ns.BlockSize}}
	}
	return geometry{lim: nvme.Limits(id, ns.Info), nuse: ns.Info.NUSE}
}

func (s *headSource) Sectors() uint64        { return uint64(s.h.Info().Capacity) / 512 }
func (s *headSource) Stat() sysfsview.IOStat { return s.h.Stats() }

// Latencies are the head's latency histograms (metrics).
func (s *headSource) Latencies() mpath.Latencies { return s.h.Latencies() }
func (s *headSource) DelayedRemovalSecs() uint32 { return s.h.DelayedRemovalSecs() }

func (s *headSource) Counters() sysfsview.HeadCounters {
	return s.h.Counters()
}

var (
	_ sysfsview.BlockGeometry = (*headSource)(nil)
	_ sysfsview.CounterSetter = (*headSource)(nil)
)

// ReservationReport is resv_report: the head's Reservation Report data.
func (s *headSource) ReservationReport(ctx context.Context) ([]byte, error) {
	return multipath.NewReservations(s.h).Report(ctx)
}

// ReservationCommand is resv_command: "OP ACTION RTYPE IEKEY CRKEY KEY2".
func (s *headSource) ReservationCommand(line string) error {
	c, err := multipath.ParseResvCommand(line)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), triggerTimeout)
	defer cancel()
	sts, err := multipath.NewReservations(s.h).Command(ctx, c)
	if err != nil {
		return err
	}
	switch sts {
	case 0:
		return nil
	case multipath.PRStatusReservationConflict:
		return syscall.EBADE
	case multipath.PRStatusPathFailed:
		return syscall.ENOLINK
	}
	return syscall.EIO
}

// Limits are those of the namespace that created the head (the kernel
// stacks the paths' limits; paths of one namespace agree).
func (s *headSource) Limits() sysfsview.QueueLimits { return s.geometry().lim }

// NUse is NUSE as the namespace that created the head reported it.
func (s *headSource) NUse() uint64 { return s.geometry().nuse }

func (s *headSource) SetCounter(name string, v uint64) bool { return s.h.SetCounter(name, v) }

func (s *headSource) SetDelayedRemovalSecs(v uint32) error {
	s.h.SetDelayedRemovalSecs(v)
	return nil
}

// pathSource backs sys/block/nvmeNcXnM.
type pathSource struct {
	p *multipath.Path
	c *multipath.Ctrl
}

var (
	_ sysfsview.BlockGeometry = (*pathSource)(nil)
	_ sysfsview.CounterSetter = (*pathSource)(nil)
)

func (s *pathSource) Limits() sysfsview.QueueLimits         { return pathGeometry(s.p).lim }
func (s *pathSource) NUse() uint64                          { return pathGeometry(s.p).nuse }
func (s *pathSource) SetCounter(name string, v uint64) bool { return s.p.MPath().SetCounter(name, v) }

// pathGeometry is the path's namespace geometry as the controller reports
// it now (after a revalidation too).
func pathGeometry(p *multipath.Path) geometry {
	c := p.Ctrl().Host()
	ns, _ := c.Namespace(p.NSID())
	return newGeometry(c.Identify(), ns)
}

func (s *pathSource) UsesANA() bool {
	id := s.c.Host().Identify()
	return id != nil && id.CMIC&nvme.CMICANA != 0
}

func (s *pathSource) ANAState() string { return s.p.ANAState().String() }
func (s *pathSource) ANAGroup() uint32 { return s.p.ANAGroup() }
func (s *pathSource) QueueDepth() int  { return int(s.c.MPath().Inflight()) }
func (s *pathSource) Sectors() uint64  { return uint64(s.p.MPath().Info().Capacity) / 512 }

func (s *pathSource) Stat() sysfsview.IOStat { return s.p.MPath().Stats() }

// Latencies are the path's latency histograms (metrics).
func (s *pathSource) Latencies() mpath.Latencies { return s.p.MPath().Latencies() }

// ANATransitions counts the path's ANA state changes (metrics).
func (s *pathSource) ANATransitions() uint64 { return s.p.ANATransitions() }

func (s *pathSource) Counters() sysfsview.PathCounters {
	return s.p.MPath().Counters()
}

// NUMANodes lists the nodes whose current path this is (numa policy).
func (s *pathSource) NUMANodes() []int { return s.p.MPath().NUMANodes() }

// Device is a multipath namespace as a block device: every request goes
// through the head's path selection and failover. It implements the FUSE
// layer's block device interface.
type Device struct {
	h    *mpath.Head
	pr   *multipath.Reservations
	reqs sync.Pool // *mpath.Request
	ios  sync.Pool // *deviceIO

	started atomic.Uint64 // I/Os begun with StartIO
}

func newDevice(h *mpath.Head) *Device {
	return &Device{h: h, pr: multipath.NewReservations(h), reqs: sync.Pool{New: func() any { return new(mpath.Request) }}}
}

// PROps is the head's persistent-reservation operations (the namespace
// file's PR ioctls, the resv_report attribute).
func (v *Device) PROps() fusefs.PROps { return v.pr }

// Reservations is PROps with the NVMe-level extras (Report, Acquire, Unregister).
func (v *Device) Reservations() *multipath.Reservations { return v.pr }

// Head is the multipath head behind the device.
func (v *Device) Head() *mpath.Head { return v.h }

// Size is the capacity in bytes.
func (v *Device) Size() int64 { return v.h.Info().Capacity }

// BlockSize is the logical block size in bytes.
func (v *Device) BlockSize() int { return int(v.h.Info().BlockSize) }

func (v *Device) do(ctx context.Context, op mpath.Op, off, n int64, buf []byte) error {
	r := v.reqs.Get().(*mpath.Request)
	// Userspace does not know the submitting CPU's node; like the kernel on
	// a one-node machine, every request counts as node 0.
	*r = mpath.Request{Op: op, Offset: off, Length: n, Buf: buf, Node: 0}
	err := v.h.Do(ctx, r)
	*r = mpath.Request{}
	v.reqs.Put(r)
	return err
}

// deviceIO is one StartIO in flight: its request and where the result goes.
type deviceIO struct {
	req  mpath.Request
	v    *Device
	done fusefs.Completer
}

// Complete implements mpath.Completer.
func (x *deviceIO) Complete(err error) {
	v, done := x.v, x.done
	x.req, x.done = mpath.Request{}, nil
	v.ios.Put(x)
	done.Complete(err)
}

// StartIO implements fusefs.AsyncBlockDevice through mpath.Head.Start.
func (v *Device) StartIO(ctx context.Context, write bool, p []byte, off int64, done fusefs.Completer, pl *plug.Plug) bool {
	x, _ := v.ios.Get().(*deviceIO)
	if x == nil {
		x = &deviceIO{v: v}
	}
	op := mpath.OpRead
	if write {
		op = mpath.OpWrite
	}
	x.req = mpath.Request{Op: op, Offset: off, Length: int64(len(p)), Buf: p, Node: 0, Plug: pl}
	x.done = done
	if !v.h.Start(ctx, &x.req, x) {
		x.req, x.done = mpath.Request{}, nil
		v.ios.Put(x)
		return false
	}
	v.started.Add(1)
	return true
}

// Started is the number of I/Os begun asynchronously (StartIO).
func (v *Device) Started() uint64 { return v.started.Load() }

// ReadAt reads len(p) bytes at off; both are block aligned.
func (v *Device) ReadAt(ctx context.Context, p []byte, off int64) error {
	return v.do(ctx, mpath.OpRead, off, int64(len(p)), p)
}

// WriteAt writes p at off; both are block aligned.
func (v *Device) WriteAt(ctx context.Context, p []byte, off int64) error {
	return v.do(ctx, mpath.OpWrite, off, int64(len(p)), p)
}

// Flush commits the volatile write cache.
func (v *Device) Flush(ctx context.Context) error { return v.do(ctx, mpath.OpFlush, 0, 0, nil) }

// WriteZeroes zeroes length bytes at off (block aligned).
func (v *Device) WriteZeroes(ctx context.Context, off, length int64) error {
	return v.do(ctx, mpath.OpWriteZeroes, off, length, nil)
}

// Deallocate discards length bytes at off (block aligned).
func (v *Device) Deallocate(ctx context.Context, off, length int64) error {
	return v.do(ctx, mpath.OpDiscard, off, length, nil)
}
