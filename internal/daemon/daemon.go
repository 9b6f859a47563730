// Package daemon assembles mpathfs: it connects NVMe/TCP controllers
// (nvme/host), groups their namespaces into multipath heads (mpath, through
// the NVMe driver in nvme/multipath), publishes subsystems, controllers,
// heads and paths in the sysfs-like tree (sysfsview) and one block device
// per head for the FUSE layer (fusefs). Names follow the kernel:
// nvme-subsys<S>, controllers nvme<C>, heads nvme<S>n<H>, paths
// nvme<S>c<C>n<H>, where S is the instance of the subsystem's first
// controller.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/config"
	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/host"
	"github.com/mpathfs/mpathfs/nvme/multipath"
	"github.com/mpathfs/mpathfs/sysfsview"
)

// HeadListener is told when a multipath namespace appears or goes; the
// FUSE layer adds and removes the namespace file.
type HeadListener interface {
	HeadAdded(name string, dev *Device)
	HeadRemoved(name string)
}

// Daemon is one running mpathfs instance.
type Daemon struct {
	cfg      *config.Config
	log      hclog.Logger
	hostOpts []host.Option
	tree     *sysfsview.Tree

	mu        sync.Mutex
	listener  HeadListener
	subsys    map[string]*subsystem // by NQN
	ctrls     map[int]*controller   // by instance
	devices   map[string]*Device    // by head name
	reserved  map[int]bool          // controller instances being connected
	closed    bool
	closeOnce sync.Once

	discovery []*host.Controller // persistent discovery controllers
	fabrics   *fabricsDev        // dev/nvme-fabrics

	stop     chan struct{} // closed by Close: background reconnects end
	stopOnce sync.Once
	bg       sync.WaitGroup
}

type subsystem struct {
	name     string
	inst     int
	nqn      string
	mp       *mpath.Subsystem
	headInst map[uint32]int // NSID -> head instance
	nextHead int
	pending  map[uint32]string   // NSID -> name for mpath's HeadName callback
	geo      map[uint32]geometry // NSID -> geometry of the path creating the head
}

type controller struct {
	name  string
	inst  int
	hc    *host.Controller
	mc    *mpath.Controller
	sub   *subsystem
	paths map[uint32]*path // by NSID
	unsub func()
	stats ctrlStats
}

// ctrlStats count a controller's state changes as its events report them.
type ctrlStats struct {
	stateChanges atomic.Uint64 // every StateChanged event
	resets       atomic.Uint64 // transitions into resetting
	reconnects   atomic.Uint64 // connecting -> live (a recovered association)
	// recovering is set by resetting and cleared by the next live: only
	// that live is a reconnect, never the first connect (whose
	// connecting -> live event may reach a subscriber that came after it).
	recovering atomic.Bool
}

func (s *ctrlStats) observe(ev host.Event) {
	if ev.Kind != host.StateChanged || ev.Old == ev.New {
		return
	}
	s.stateChanges.Add(1)
	switch {
	case ev.New == host.StateResetting:
		s.resets.Add(1)
		s.recovering.Store(true)
	case ev.Old == host.StateConnecting && ev.New == host.StateLive:
		if s.recovering.Swap(false) {
			s.reconnects.Add(1)
		}
	}
}

type path struct {
	name string
	drv  *multipath.Path
	mp   *mpath.Path
}

// New returns a daemon with no controllers. hostOpts are passed to every
// host.Connect (tests shorten timeouts with them).
func New(cfg *config.Config, log hclog.Logger, hostOpts ...host.Option) *Daemon {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	d := &Daemon{
		cfg:      cfg,
		log:      log,
		hostOpts: hostOpts,
		tree:     sysfsview.NewTree(log.Named("sysfs")),
		subsys:   map[string]*subsystem{},
		ctrls:    map[int]*controller{},
		devices:  map[string]*Device{},
		reserved: map[int]bool{},
		stop:     make(chan struct{}),
	}
	d.fabrics = &fabricsDev{d: d}
	if err := d.tree.AddDevice(FabricsDevice, 0o600, d.fabrics.open); err != nil {
		log.Error("sysfs: add dev/nvme-fabrics", "error", err)
	}
	return d
}

// Tree is the sysfs-like attribute tree.
func (d *Daemon) Tree() *sysfsview.Tree { return d.tree }

// SetListener registers the FUSE layer and replays the existing heads.
func (d *Daemon) SetListener(l HeadListener) {
	d.mu.Lock()
	d.listener = l
	devs := make(map[string]*Device, len(d.devices))
	for k, v := range d.devices {
		devs[k] = v
	}
	d.mu.Unlock()
	for name, dev := range devs {
		l.HeadAdded(name, dev)
	}
}

// Devices returns the current block devices by head name.
func (d *Daemon) Devices() map[string]*Device {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]*Device, len(d.devices))
	for k, v := range d.devices {
		out[k] = v
	}
	return out
}

// ConnectAll connects every controller and discovery entry of the
// configuration. A controller that cannot be reached now does not stop the
// others: it is retried in the background every reconnect_delay until
// ctrl_loss_tmo, as the kernel retries a lost controller. It is an error
// only when nothing at all could be connected.
func (d *Daemon) ConnectAll(ctx context.Context) error {
	var errs []error
	for _, o := range d.cfg.Controllers {
		if err := d.Connect(ctx, o); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.log.Error("connect failed; retrying in the background", "address", o.Address(), "nqn", o.SubsysNQN,
				"reconnect_delay", o.ReconnectDelay, "ctrl_loss_tmo", o.CtrlLossTmo, "error", err)
			d.bg.Add(1)
			go d.retryConnect(o)
		}
	}
	for _, disc := range d.cfg.Discovery {
		if err := d.ConnectDiscovered(ctx, disc); err != nil {
			errs = append(errs, err)
		}
	}
	d.mu.Lock()
	n := len(d.ctrls)
	d.mu.Unlock()
	if n == 0 && len(errs) > 0 {
		d.stopRetries()
		return errors.Join(errs...)
	}
	return nil
}

// retryConnect keeps trying to connect o until it works, ctrl_loss_tmo
// runs out or the daemon closes.
func (d *Daemon) retryConnect(o fabrics.Options) {
	defer d.bg.Done()
	delay := o.ReconnectDelay
	if delay <= 0 {
		delay = fabrics.DefaultReconnectDelay
	}
	var deadline time.Time
	if o.CtrlLossTmo >= 0 {
		deadline = time.Now().Add(o.CtrlLossTmo)
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		go func() {
			select {
			case <-d.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := d.Connect(ctx, o)
		cancel()
		if err == nil {
			return
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			d.log.Error("giving up on controller: ctrl_loss_tmo expired", "address", o.Address(), "nqn", o.SubsysNQN, "error", err)
			return
		}
		d.log.Debug("reconnect attempt failed", "address", o.Address(), "error", err)
		t.Reset(delay)
	}
}

func (d *Daemon) stopRetries() {
	d.stopOnce.Do(func() { close(d.stop) })
	d.bg.Wait()
}

// ConnectDiscovered reads a discovery log and connects every NVM subsystem
// entry in it, like `nvme connect-all`. A persistent entry keeps the
// discovery controller connected and connects what a discovery-log-change
// AEN adds (entries that disappear are left to their controllers' own loss
// handling, as the kernel does).
func (d *Daemon) ConnectDiscovered(ctx context.Context, disc config.Discovery) error {
	log := d.log.Named("discovery")
	if !disc.Persistent {
		dl, err := host.Discover(ctx, disc.Options, log)
		if err != nil {
			return fmt.Errorf("discovery %s: %w", disc.Options.Address(), err)
		}
		d.connectEntries(ctx, dl, disc)
		return nil
	}
	var first atomic.Bool // the log read at connect, vs. later AENs
	first.Store(true)
	dc, err := host.DiscoverPersistent(ctx, disc.Options, log, func(dl *nvme.DiscoveryLog, err error) {
		if err != nil {
			log.Error("reading the discovery log failed", "address", disc.Options.Address(), "error", err)
			return
		}
		if first.CompareAndSwap(true, false) {
			d.connectEntries(ctx, dl, disc)
			return
		}
		// A discovery-log-change AEN: runs on the discovery controller's
		// goroutine, bounded by the daemon's life.
		actx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		go func() {
			select {
			case <-d.stop:
				cancel()
			case <-actx.Done():
			}
		}()
		log.Info("discovery log changed", "generation", dl.GenCtr, "entries", len(dl.Entries))
		d.connectEntries(actx, dl, disc)
	}, d.hostOpts...)
	if err != nil {
		return fmt.Errorf("discovery %s: %w", disc.Options.Address(), err)
	}
	d.mu.Lock()
	d.discovery = append(d.discovery, dc)
	d.mu.Unlock()
	return nil
}

// connectEntries connects the NVM subsystem entries of a discovery log
// that are not connected yet.
func (d *Daemon) connectEntries(ctx context.Context, dl *nvme.DiscoveryLog, disc config.Discovery) {
	n := 0
	for _, e := range dl.Entries {
		if e.SubType != 2 || e.TrType != 3 { // NVM subsystem over TCP
			continue
		}
		o := disc.Options
		o.Discovery = false
		o.SubsysNQN = e.SubNQN
		o.TrAddr = e.TrAddr
		if m, ok := disc.TrAddrMap[e.TrAddr]; ok {
			o.TrAddr = m
		}
		o.TrSvcID = e.TrSvcID
		if o.KeepAliveTmo == 0 {
			o.KeepAliveTmo = fabrics.DefaultKATO
		}
		if o.NrIOQueues == 0 {
			o.NrIOQueues = fabrics.DefaultOptions().NrIOQueues
		}
		if d.connected(o) {
			continue
		}
		if err := d.Connect(ctx, o); err != nil {
			d.log.Error("connect to discovered controller failed", "address", o.Address(), "nqn", o.SubsysNQN, "error", err)
			continue
		}
		n++
	}
	d.log.Info("discovery log processed", "entries", len(dl.Entries), "connected", n)
}

// connected reports a live controller with the same address and NQN
// (nvmf_ip_options_match), so connect-all does not duplicate it.
func (d *Daemon) connected(o fabrics.Options) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.ctrls {
		co := c.hc.Options()
		if co.TrAddr == o.TrAddr && co.TrSvcID == o.TrSvcID && co.SubsysNQN == o.SubsysNQN && co.HostTrAddr == o.HostTrAddr {
			return true
		}
	}
	return false
}

// Connect connects one controller and adds its namespaces as paths.
func (d *Daemon) Connect(ctx context.Context, o fabrics.Options) error {
	_, err := d.connect(ctx, o)
	return err
}

func (d *Daemon) connect(ctx context.Context, o fabrics.Options) (*controller, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errors.New("daemon closed")
	}
	inst := 0
	for d.ctrls[inst] != nil || d.reserved[inst] {
		inst++ // the lowest free instance, like the kernel's ida
	}
	d.reserved[inst] = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.reserved, inst)
		d.mu.Unlock()
	}()
	name := fmt.Sprintf("nvme%d", inst)
	clog := d.log.Named(name)
	hc, err := host.Connect(ctx, o, clog, d.hostOpts...)
	if err != nil {
		return nil, fmt.Errorf("%s: connect %s nqn %s: %w", name, o.Address(), o.SubsysNQN, err)
	}
	c := &controller{name: name, inst: inst, hc: hc, mc: mpath.NewController(name, mpath.NoNode), paths: map[uint32]*path{}}
	if err := d.attach(c); err != nil {
		_ = hc.Close(context.Background())
		return nil, err
	}
	clog.Info("new ctrl", "nqn", o.SubsysNQN, "address", hc.Address(), "cntlid", hc.CNTLID())
	c.unsub = hc.Subscribe(func(ev host.Event) { d.onEvent(c, ev) })
	d.reconcile(c)
	return c, nil
}

// attach registers the controller with its subsystem (creating it) and in
// the tree.
func (d *Daemon) attach(c *controller) error {
	id := c.hc.Identify()
	nqn := strings.TrimRight(id.SubNQN, "\x00 ")
	if nqn == "" {
		nqn = c.hc.Options().SubsysNQN
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.subsys[nqn]
	if !ok {
		s = d.newSubsystem(nqn, c.inst, id)
	}
	c.sub = s
	d.ctrls[c.inst] = c
	o := c.hc.Options()
	info := sysfsview.ControllerInfo{
		Transport: "tcp", SubsysNQN: nqn, HostNQN: o.HostNQN, HostID: o.HostID,
		Model: id.ModelNumber, Serial: id.SerialNumber, FirmwareRev: id.FirmwareRev,
		CntrlType: id.CNTRLTYPE,
	}
	return d.tree.AddController(c.name, s.name, info, &ctrlSource{c: c, d: d})
}

func (d *Daemon) newSubsystem(nqn string, inst int, id *nvme.IdentifyController) *subsystem {
	// The kernel names a subsystem after its first controller's instance;
	// instances are reused, so keep the name unique among live subsystems.
	for taken := true; taken; {
		taken = false
		for _, o := range d.subsys {
			if o.inst == inst {
				taken = true
				inst++
			}
		}
	}
	s := &subsystem{name: fmt.Sprintf("nvme-subsys%d", inst), inst: inst, nqn: nqn,
		headInst: map[uint32]int{}, nextHead: 1, pending: map[uint32]string{}, geo: map[uint32]geometry{}}
	cfg := mpath.DefaultSubsystemConfig(nqn)
	cfg.Policy = d.cfg.Multipath.IOPolicy
	cfg.FenceWrites = d.cfg.Multipath.FenceWrites
	cfg.Logger = d.log.Named(s.name)
	cfg.HeadName = func(id mpath.Identity) string {
		d.mu.Lock()
		defer d.mu.Unlock()
		return s.pending[id.NSID]
	}
	cfg.OnHeadAdded = func(h *mpath.Head) { d.headAdded(s, h) }
	cfg.OnHeadRemoved = func(h *mpath.Head) { d.headRemoved(s, h) }
	s.mp = mpath.NewSubsystem(cfg)
	d.subsys[nqn] = s
	subtype := "nvm"
	if id.CNTRLTYPE == 2 {
		subtype = "discovery"
	}
	err := d.tree.AddSubsystem(s.name, sysfsview.SubsystemInfo{
		NQN: nqn, Model: id.ModelNumber, Serial: id.SerialNumber, FirmwareRev: id.FirmwareRev,
		VID: id.VID, Type: subtype,
		IOPolicies: []string{"numa", "round-robin", "queue-depth", "service-time"},
	}, &subsysSource{mp: s.mp})
	if err != nil {
		d.log.Error("sysfs: add subsystem", "name", s.name, "error", err)
	}
	return s
}

// headName returns (allocating) the name of the head for nsid; d.mu held.
func (s *subsystem) headName(nsid uint32) (string, int) {
	inst, ok := s.headInst[nsid]
	if !ok {
		inst = s.nextHead
		s.nextHead++
		s.headInst[nsid] = inst
	}
	return fmt.Sprintf("nvme%dn%d", s.inst, inst), inst
}

// reconcile makes the controller's paths match its namespace list: adds a
// path per new namespace (joining or creating the head) and removes paths
// whose namespace went away; every remaining path refreshes its state.
func (d *Daemon) reconcile(c *controller) {
	nss := c.hc.Namespaces()
	seen := map[uint32]bool{}
	for _, ns := range nss {
		seen[ns.NSID] = true
		d.mu.Lock()
		p, ok := c.paths[ns.NSID]
		d.mu.Unlock()
		if ok {
			p.drv.Refresh()
			continue
		}
		d.addPath(c, ns)
	}
	d.mu.Lock()
	var gone []*path
	for nsid, p := range c.paths {
		if !seen[nsid] {
			gone = append(gone, p)
			delete(c.paths, nsid)
		}
	}
	d.mu.Unlock()
	for _, p := range gone {
		d.removePath(c, p)
	}
}

func (d *Daemon) addPath(c *controller, ns host.Namespace) {
	s := c.sub
	d.mu.Lock()
	headName, headInst := s.headName(ns.NSID)
	s.pending[ns.NSID] = headName
	geo := newGeometry(c.hc.Identify(), ns)
	s.geo[ns.NSID] = geo
	d.mu.Unlock()
	name := fmt.Sprintf("nvme%dc%dn%d", s.inst, c.inst, headInst)
	drv := multipath.NewPath(c.hc, ns, d.log.Named(name))
	id := mpath.Identity{NSID: ns.NSID, UUID: ns.IDs.UUID, NGUID: ns.IDs.NGUID, EUI64: ns.IDs.EUI64, CSI: ns.IDs.CSI}
	info := mpath.HeadInfo{Capacity: int64(ns.Blocks) * int64(ns.BlockSize), BlockSize: ns.BlockSize}
	mp, err := s.mp.AddPath(id, info, name, c.mc, drv)
	if err != nil {
		// The kernel's message, e.g. "IDs don't match for shared namespace 1".
		d.log.Named(c.name).Error(err.Error())
		return
	}
	drv.Bind(mp)
	p := &path{name: name, drv: drv, mp: mp}
	d.mu.Lock()
	c.paths[ns.NSID] = p
	d.mu.Unlock()
	if err := d.tree.AddPath(name, headName, c.name, &pathSource{p: p, c: c, geo: geo}); err != nil {
		d.log.Error("sysfs: add path", "name", name, "error", err)
	}
	mp.Changed()
}

func (d *Daemon) removePath(c *controller, p *path) {
	if err := d.tree.RemovePath(p.name); err != nil {
		d.log.Debug("sysfs: remove path", "name", p.name, "error", err)
	}
	c.sub.mp.RemovePath(p.mp)
}

func (d *Daemon) headAdded(s *subsystem, h *mpath.Head) {
	info := h.Info()
	id := h.Identity()
	dev := newDevice(h)
	d.mu.Lock()
	geo := s.geo[id.NSID]
	d.mu.Unlock()
	err := d.tree.AddHead(h.Name(), s.name, sysfsview.HeadInfo{NSID: id.NSID, UUID: id.UUID, NGUID: id.NGUID, EUI64: id.EUI64, CSI: id.CSI}, &headSource{h: h, geo: geo})
	if err != nil {
		d.log.Error("sysfs: add head", "name", h.Name(), "error", err)
	}
	h.SetDelayedRemovalSecs(d.cfg.Multipath.DelayedRemovalSecs)
	d.mu.Lock()
	d.devices[h.Name()] = dev
	l := d.listener
	d.mu.Unlock()
	d.log.Info("new multipath namespace", "name", h.Name(), "nsid", id.NSID, "bytes", info.Capacity, "block_size", info.BlockSize)
	if l != nil {
		l.HeadAdded(h.Name(), dev)
	}
}

func (d *Daemon) headRemoved(s *subsystem, h *mpath.Head) {
	_ = d.tree.RemoveHead(h.Name())
	d.mu.Lock()
	delete(d.devices, h.Name())
	l := d.listener
	d.mu.Unlock()
	d.log.Info("multipath namespace removed", "name", h.Name())
	if l != nil {
		l.HeadRemoved(h.Name())
	}
}

// onEvent runs on the controller's event goroutine.
func (d *Daemon) onEvent(c *controller, ev host.Event) {
	c.stats.observe(ev)
	switch ev.Kind {
	case host.NamespacesChanged:
		d.reconcile(c)
		return
	case host.StateChanged:
		if ev.New == host.StateDead || ev.New == host.StateDeletingNoIO {
			d.detach(c)
			return
		}
	}
	d.mu.Lock()
	paths := make([]*path, 0, len(c.paths))
	for _, p := range c.paths {
		paths = append(paths, p)
	}
	d.mu.Unlock()
	for _, p := range paths {
		p.drv.Refresh()
	}
}

// detach removes a controller that is gone for good (ctrl_loss_tmo ran
// out, or it was deleted): its paths leave their heads, and it leaves the
// tree, as the kernel deletes the controller device.
func (d *Daemon) detach(c *controller) {
	d.mu.Lock()
	if _, ok := d.ctrls[c.inst]; !ok {
		d.mu.Unlock()
		return
	}
	delete(d.ctrls, c.inst)
	paths := c.paths
	c.paths = map[uint32]*path{}
	d.mu.Unlock()
	nsids := make([]uint32, 0, len(paths))
	for nsid := range paths {
		nsids = append(nsids, nsid)
	}
	sort.Slice(nsids, func(i, j int) bool { return nsids[i] < nsids[j] })
	for _, nsid := range nsids {
		d.removePath(c, paths[nsid])
	}
	_ = d.tree.RemoveController(c.name)
	d.log.Named(c.name).Info("controller removed")
}

// DeleteController deletes one controller (sysfs delete_controller).
func (d *Daemon) DeleteController(ctx context.Context, name string) error {
	d.mu.Lock()
	var c *controller
	for _, x := range d.ctrls {
		if x.name == name {
			c = x
		}
	}
	d.mu.Unlock()
	if c == nil {
		return fmt.Errorf("%s: no such controller", name)
	}
	err := c.hc.Close(ctx)
	d.detach(c)
	return err
}

// FlushAll sends Flush to every head (clean shutdown).
func (d *Daemon) FlushAll(ctx context.Context) {
	for name, dev := range d.Devices() {
		if err := dev.Flush(ctx); err != nil {
			d.log.Warn("flush on shutdown failed", "name", name, "error", err)
		}
	}
}

// Close flushes every head, shuts every controller down (CC.SHN) and
// empties the tree. In-flight I/O must have finished (unmount first).
func (d *Daemon) Close(ctx context.Context) error {
	var errs []error
	d.closeOnce.Do(func() {
		d.stopRetries()
		d.mu.Lock()
		discs := d.discovery
		d.discovery = nil
		d.mu.Unlock()
		for _, dc := range discs {
			_ = dc.Close(ctx)
		}
		d.FlushAll(ctx)
		d.mu.Lock()
		d.closed = true
		ctrls := make([]*controller, 0, len(d.ctrls))
		for _, c := range d.ctrls {
			ctrls = append(ctrls, c)
		}
		d.mu.Unlock()
		sort.Slice(ctrls, func(i, j int) bool { return ctrls[i].inst < ctrls[j].inst })
		var wg sync.WaitGroup
		var emu sync.Mutex
		for _, c := range ctrls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if c.unsub != nil {
					c.unsub()
				}
				if err := c.hc.Close(ctx); err != nil {
					emu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
					emu.Unlock()
				}
			}()
		}
		wg.Wait()
		for _, c := range ctrls {
			d.detach(c)
		}
	})
	return errors.Join(errs...)
}
