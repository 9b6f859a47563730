package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/clock"
	"github.com/mpathfs/mpathfs/internal/ratelog"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// Defaults of the knobs that are nvme_core module parameters in Linux
// rather than connect options.
const (
	DefaultIOTimeout       = 30 * time.Second // nvme_core.io_timeout
	DefaultAdminTimeout    = 60 * time.Second // nvme_core.admin_timeout
	DefaultShutdownTimeout = 5 * time.Second  // nvme_core.shutdown_timeout
	// DefaultMaxTransfer caps one command's data even when MDTS is 0.
	DefaultMaxTransfer = 4 << 20
	// DefaultDiscoveryPort is the trsvcid used when none is given.
	DefaultDiscoveryPort = "8009"
	// readyPoll is the CSTS poll interval (Linux polls every 1-2 ms).
	readyPoll = 2 * time.Millisecond
	// maxNSIDsPerPage is the capacity of one Active NS list page.
	maxNSIDsPerPage = nvme.IdentifyDataSize / 4
)

// Option tunes a controller beyond the fabrics connect options.
type Option func(*config)

type config struct {
	clock           Clock
	transport       Transport
	ioTimeout       time.Duration
	adminTimeout    time.Duration
	shutdownTimeout time.Duration
	maxTransfer     int
}

// WithClock injects the clock used for keep-alive, reconnect and
// fast_io_fail timers and register polling.
func WithClock(c Clock) Option { return func(o *config) { o.clock = c } }

// ClockOf returns the clock options o select (WithClock), else the system
// clock, so an assembly can give the layers above the host the same clock.
func ClockOf(o ...Option) Clock {
	cfg := config{clock: clock.System()}
	for _, f := range o {
		f(&cfg)
	}
	return cfg.clock
}

// WithTransport gives the transport queues are dialled with
// (nvme/tcp.Transport for transport=tcp); a controller needs one.
func WithTransport(t Transport) Option { return func(o *config) { o.transport = t } }

// WithIOTimeout sets the per-command I/O timeout (nvme_core.io_timeout,
// default 30 s); a timeout starts error recovery.
func WithIOTimeout(d time.Duration) Option { return func(o *config) { o.ioTimeout = d } }

// WithAdminTimeout sets the admin command timeout (default 60 s).
func WithAdminTimeout(d time.Duration) Option { return func(o *config) { o.adminTimeout = d } }

// WithShutdownTimeout bounds the wait for CSTS.SHST on Close (default 5 s).
func WithShutdownTimeout(d time.Duration) Option { return func(o *config) { o.shutdownTimeout = d } }

// WithMaxTransfer caps the data of one command (the I/O helpers split
// larger transfers); MDTS caps it further (default 4 MiB).
func WithMaxTransfer(n int) Option { return func(o *config) { o.maxTransfer = n } }

// Namespace is one active namespace as seen through this controller.
type Namespace struct {
	NSID      uint32
	IDs       nvme.NamespaceIDs
	Info      *nvme.IdentifyNamespace
	BlockSize uint32
	Blocks    uint64 // NSZE; 0 for a metadata-formatted namespace (not usable over TCP)
	ANAGroup  uint32
	// ANAState is the state of ANAGroup, or ANAOptimized when the
	// controller does not report ANA (as Linux assumes).
	ANAState nvme.ANAState
	// ANAListed: the last ANA log read listed the namespace (always true
	// when the controller does not report ANA). Only such a read clears a
	// path's ANA-pending mark.
	ANAListed bool
	Shared    bool // NMIC bit 0
}

// nsGeom is what the I/O helpers need, published atomically.
type nsGeom struct {
	bs     uint32
	blocks uint64
}

// Controller is one NVMe-oF controller (one path) with its admin queue and
// I/O queues, kept alive and reconnected across transport failures. The
// Controller object survives reconnects; each successful (re)connect is a
// new association with the target (a new controller ID there).
type Controller struct {
	opts      fabrics.Options
	cfg       config
	log       hclog.Logger
	rlog      *ratelog.Logger // for lines a target can repeat at will
	clk       Clock
	tr        Transport
	discovery bool

	// mu guards state, assoc, namespaces, ana, failfast timer, closing.
	mu         sync.Mutex
	stateCond  *sync.Cond
	state      State
	assoc      *assoc
	namespaces []Namespace
	ana        map[uint32]nvme.ANAState
	failfast   Timer
	ffGen      uint64 // generation of the fast_io_fail timer
	closing    bool

	// Hot-path mirrors, written under mu.
	stateA          atomic.Uint32
	cur             atomic.Pointer[assoc]
	geom            atomic.Pointer[map[uint32]nsGeom]
	failfastExpired atomic.Bool
	resvNotices     atomic.Uint64 // Reservation Notification log pages read
	rr              atomic.Uint32
	// silent: a read got nothing back within its silence bound on the
	// current association, and no keep-alive probe has answered since.
	silent atomic.Bool

	// diag/ counters.
	resets, reconnects, cmdErrors, stateChanges, fwActivations atomic.Uint64

	events    *eventQueue
	stop      chan struct{} // closed by Close
	bg        sync.WaitGroup
	scanMu    sync.Mutex // one scan / ANA read at a time
	closeOnce sync.Once
	closeErr  error
	ioPool    sync.Pool // *ioCmd

	onDiscovery func() // persistent discovery: called on a discovery-change AEN

	auth dhchap // DH-HMAC-CHAP secrets and counters

	tunMu sync.Mutex // serializes tunable updates
	tun   atomic.Pointer[tunables]
}

// ioCmd is a pooled command plus room for small command data (DSM ranges,
// reservation keys), so helpers do not allocate per call.
type ioCmd struct {
	cmd nvme.Command
	buf [64]byte

	// StartIO's command: where its completion goes.
	c      *Controller
	a      *assoc
	within time.Duration
	up     Completer
}

// Connect creates a controller and connects it: admin queue, Connect,
// enable, Identify, ANA log, I/O queues, AEN configuration, namespace scan.
// It returns once the controller is LIVE, or the error of the first
// attempt (no retry: like `nvme connect`). Host NQN and host ID come from
// opts, else from fabrics.DefaultHostIdentity.
func Connect(ctx context.Context, opts fabrics.Options, log hclog.Logger, o ...Option) (*Controller, error) {
	c, err := newController(opts, log, o)
	if err != nil {
		return nil, err
	}
	if err := c.connectFirst(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// connectFirst runs the first association of a new controller: NEW ->
// CONNECTING -> LIVE, or an error (the controller is then unusable).
func (c *Controller) connectFirst(ctx context.Context) error {
	if !c.changeState(StateConnecting, nil, nil) {
		return fmt.Errorf("nvme host: cannot connect from state %s", c.State())
	}
	a, err := c.setupAssoc(ctx)
	if err != nil {
		c.events.close()
		return err
	}
	if !c.goLive(a) {
		a.teardown()
		c.events.close()
		return ErrClosed
	}
	return nil
}

func newController(opts fabrics.Options, log hclog.Logger, o []Option) (*Controller, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	cfg := config{
		clock:           clock.System(),
		ioTimeout:       DefaultIOTimeout,
		adminTimeout:    DefaultAdminTimeout,
		shutdownTimeout: DefaultShutdownTimeout,
		maxTransfer:     DefaultMaxTransfer,
	}
	for _, f := range o {
		f(&cfg)
	}
	if cfg.transport == nil || (opts.Transport != "" && opts.Transport != "tcp") {
		// nvmf_create_ctrl's message.
		return nil, fmt.Errorf("nvme host: no handler found for transport %s: %w", opts.Transport, syscall.EINVAL)
	}
	if opts.TrAddr == "" {
		return nil, fmt.Errorf("nvme host: traddr is required")
	}
	if opts.SubsysNQN == "" {
		return nil, fmt.Errorf("nvme host: nqn is required")
	}
	discovery := opts.Discovery || opts.SubsysNQN == nvme.DiscoveryNQN
	if opts.TrSvcID == "" {
		if !discovery {
			return nil, fmt.Errorf("nvme host: trsvcid is required")
		}
		opts.TrSvcID = DefaultDiscoveryPort
	}
	if opts.HostNQN == "" || opts.HostID == ([16]byte{}) {
		nqn, id, err := fabrics.DefaultHostIdentity()
		if err != nil {
			return nil, fmt.Errorf("nvme host: host identity: %w", err)
		}
		if opts.HostNQN == "" {
			opts.HostNQN = nqn
		}
		if opts.HostID == ([16]byte{}) {
			opts.HostID = id
		}
	}
	if opts.KeepAliveTmo < 0 {
		opts.KeepAliveTmo = 0
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = fabrics.DefaultQueueSize
	}
	if opts.NrIOQueues <= 0 {
		opts.NrIOQueues = runtime.NumCPU()
	}
	c := &Controller{
		opts:      opts,
		cfg:       cfg,
		log:       log,
		clk:       cfg.clock,
		tr:        cfg.transport,
		discovery: discovery,
		ana:       map[uint32]nvme.ANAState{},
		events:    newEventQueue(),
		stop:      make(chan struct{}),
	}
	c.tun.Store(newTunables(opts, cfg))
	c.rlog = ratelog.New(log, c.clk.Now)
	c.auth.hostKey, c.auth.ctrlKey = opts.DHCHAPSecret, opts.DHCHAPCtrlSecret
	c.stateCond = sync.NewCond(&c.mu)
	c.ioPool.New = func() any { return new(ioCmd) }
	empty := map[uint32]nsGeom{}
	c.geom.Store(&empty)
	return c, nil
}

// goLive installs a as the current association and moves CONNECTING ->
// LIVE, then starts keep-alive, the AER, the queue watchers and the admin
// worker. It returns false (a not installed) if the controller is closing.
func (c *Controller) goLive(a *assoc) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	old := c.assoc
	c.assoc = a
	c.cur.Store(a)
	c.silent.Store(false) // a new association answered its setup
	nsChanged := c.installNamespacesLocked(a.ns, a.anaStates)
	// The log read by the new association counts as an ANA log read
	// even when nothing changed: it may clear ANA-pending marks.
	anaChanged := a.anaUsed
	c.updateANATTLocked(a)
	c.mu.Unlock()
	if old != nil && old != a {
		old.teardown()
	}
	if old != nil {
		c.reconnects.Add(1) // a recovered association, not the first connect
	}
	if !c.changeState(StateLive, a, nil) {
		return false
	}
	if nsChanged && old != nil {
		c.pushEvent(NamespacesChanged)
	}
	if anaChanged && old != nil {
		c.pushEvent(ANAChanged)
	}
	a.start()
	return true
}

func (c *Controller) pushEvent(k EventKind) {
	s := c.State()
	c.events.push(Event{Kind: k, Old: s, New: s})
}

// State returns the current state.
func (c *Controller) State() State { return State(c.stateA.Load()) }

// Subscribe registers fn for every later event; events are delivered in
// order from one goroutine (fn must not block for long). cancel stops
// delivery to fn.
func (c *Controller) Subscribe(fn func(Event)) (cancel func()) { return c.events.subscribe(fn) }

// Options returns the connect options in effect (host NQN/ID resolved).
//
// The run-time tunables are the current ones: CtrlLossTmo reads back as
// max_reconnects * reconnect_delay (fabrics.Off: forever), as sysfs shows it.
func (c *Controller) Options() fabrics.Options {
	o := c.opts
	t := c.tunable()
	o.ReconnectDelay, o.FastIOFailTmo = t.reconnectDelay, t.fastIOFail
	o.CtrlLossTmo = fabrics.Off
	if t.maxReconnects >= 0 {
		o.CtrlLossTmo = time.Duration(t.maxReconnects) * t.reconnectDelay
	}
	return o
}

// ReservationNotifications is the number of Reservation Notification log
// pages read (diag/reservation_notification_count).
func (c *Controller) ReservationNotifications() uint64 { return c.resvNotices.Load() }

// HostID is the Host Identifier sent in Connect: reservations belong to it.
func (c *Controller) HostID() [16]byte { return c.opts.HostID }

// Discovery reports a discovery controller.
func (c *Controller) Discovery() bool {
	if a := c.cur.Load(); a != nil {
		return a.discovery
	}
	return c.discovery
}

// Identify returns the Identify Controller data of the current
// association (nil before the first connect).
func (c *Controller) Identify() *nvme.IdentifyController {
	if a := c.cur.Load(); a != nil {
		return a.id
	}
	return nil
}

// CNTLID returns the controller ID of the current association.
func (c *Controller) CNTLID() uint16 {
	if a := c.cur.Load(); a != nil {
		return a.cntlid
	}
	return 0
}

// CQT returns the Command Quiesce Time the controller reports (0: none).
func (c *Controller) CQT() time.Duration {
	if a := c.cur.Load(); a != nil {
		return a.cqt
	}
	return 0
}

// Address returns the kernel sysfs 'address':
// "traddr=..,trsvcid=..[,host_traddr=..][,host_iface=..]" plus
// ",src_addr=<local IP>" while the admin queue is live.
func (c *Controller) Address() string {
	s := c.opts.Address()
	if c.State() != StateLive {
		return s
	}
	if a := c.cur.Load(); a != nil && a.admin != nil {
		if ta, ok := a.admin.LocalAddr().(*net.TCPAddr); ok && ta != nil {
			s += ",src_addr=" + ta.IP.String()
		}
	}
	return s
}

// QueueCount returns the kernel's queue_count: I/O queues + 1 (admin).
func (c *Controller) QueueCount() int {
	if a := c.cur.Load(); a != nil {
		return len(a.io) + 1
	}
	return 0
}

// SQSize returns the kernel's sqsize: the 0's based I/O submission queue
// size used in Connect.
func (c *Controller) SQSize() int {
	if a := c.cur.Load(); a != nil {
		return a.sqsize
	}
	return 0
}

// KATO returns the keep-alive timeout (0: keep-alive off).
func (c *Controller) KATO() time.Duration { return c.opts.KeepAliveTmo }

// MaxTransfer returns the largest data transfer of one command.
func (c *Controller) MaxTransfer() int {
	if a := c.cur.Load(); a != nil {
		return a.maxXfer
	}
	return 0
}

// Counters are the controller's diag/ counters.
type Counters struct {
	CommandErrors uint64 // commands completed with an error status
	Resets        uint64 // entries into RESETTING (reset_controller, error recovery)
	Reconnects    uint64 // associations re-established after a reset or a loss
	StateChanges  uint64 // state transitions (metrics)
	FWActivations uint64 // firmware activations completed (notice handled)
}

// SetCounter sets one diag/ counter by its sysfs name (command_error_count,
// reset_count, reconnect_count, reservation_notification_count), as
// writing the file does in Linux; it reports false for another name.
func (c *Controller) SetCounter(name string, v uint64) bool {
	switch name {
	case "command_error_count":
		c.cmdErrors.Store(v)
	case "reset_count":
		c.resets.Store(v)
	case "reconnect_count":
		c.reconnects.Store(v)
	case "reservation_notification_count":
		c.resvNotices.Store(v)
	default:
		return false
	}
	return true
}

// Counters returns the diag/ counters.
func (c *Controller) Counters() Counters {
	return Counters{CommandErrors: c.cmdErrors.Load(), Resets: c.resets.Load(), Reconnects: c.reconnects.Load(),
		StateChanges: c.stateChanges.Load(), FWActivations: c.fwActivations.Load()}
}

// FastFailExpired reports that fast_io_fail_tmo ran out in CONNECTING
// (NVME_CTRL_FAILFAST_EXPIRED); cleared on LIVE.
func (c *Controller) FastFailExpired() bool { return c.failfastExpired.Load() }

// Available reports whether I/O queued for this path may still succeed
// later (nvme_available_path): LIVE, RESETTING or CONNECTING and
// fast_io_fail not expired.
func (c *Controller) Available() bool {
	if c.failfastExpired.Load() {
		return false
	}
	switch c.State() {
	case StateLive, StateResetting, StateConnecting:
		return true
	}
	return false
}

// Namespaces returns a copy of the active namespaces, by NSID.
func (c *Controller) Namespaces() []Namespace {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Namespace(nil), c.namespaces...)
}

// Namespace returns one namespace.
func (c *Controller) Namespace(nsid uint32) (Namespace, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.namespaces {
		if n.NSID == nsid {
			return n, true
		}
	}
	return Namespace{}, false
}

// ANAState returns the last known state of an ANA group (0, "invalid
// state", if unknown; ANAOptimized for every group if the controller does
// not report ANA).
func (c *Controller) ANAState(group uint32) nvme.ANAState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.assoc; a != nil && !a.anaUsed {
		return nvme.ANAOptimized
	}
	return c.ana[group]
}

// installNamespacesLocked replaces the namespace list (applying the ANA
// states) and reports whether it differs from the previous one.
func (c *Controller) installNamespacesLocked(list []Namespace, ana map[uint32]nvme.ANAState) bool {
	if ana != nil {
		c.ana = ana
	}
	anaUsed := c.assoc == nil || c.assoc.anaUsed
	for i := range list {
		list[i].ANAState = c.anaOfLocked(list[i].ANAGroup)
		if !anaUsed {
			list[i].ANAListed = true
		}
	}
	changed := !sameNamespaces(c.namespaces, list)
	c.namespaces = list
	g := make(map[uint32]nsGeom, len(list))
	for _, n := range list {
		g[n.NSID] = nsGeom{bs: n.BlockSize, blocks: n.Blocks}
	}
	c.geom.Store(&g)
	return changed
}

func (c *Controller) anaOfLocked(group uint32) nvme.ANAState {
	if a := c.assoc; a != nil && !a.anaUsed {
		return nvme.ANAOptimized
	}
	if s, ok := c.ana[group]; ok {
		return s
	}
	return 0
}

func sameNamespaces(a, b []Namespace) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.NSID != y.NSID || x.IDs != y.IDs || x.BlockSize != y.BlockSize || x.Blocks != y.Blocks ||
			x.ANAGroup != y.ANAGroup || x.Shared != y.Shared {
			return false
		}
	}
	return true
}

// String names the controller for logs.
func (c *Controller) String() string {
	return fmt.Sprintf("nvme %s %s", c.opts.SubsysNQN, c.opts.Address())
}

func statusWithDNR(err error) bool {
	var st nvme.Status
	return errors.As(err, &st) && st.DNR()
}

func trimID(s string) string { return strings.TrimRight(s, " \x00") }
