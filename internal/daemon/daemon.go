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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/clock"
	"github.com/mpathfs/mpathfs/config"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/host"
	"github.com/mpathfs/mpathfs/nvme/multipath"
	"github.com/mpathfs/mpathfs/nvme/tcp"
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
	core     *multipath.Core
	clk      clock.Clock // the hosts' clock, shared with mpath and the fence

	mu        sync.Mutex
	listener  HeadListener
	devices   map[string]*Device       // by head name
	hosts     map[int]*host.Controller // by instance, while being added
	closed    bool
	closeOnce sync.Once

	discovery []*host.Controller // persistent discovery controllers
	fabrics   *fabricsDev        // dev/nvme-fabrics

	stop     chan struct{} // closed by Close: background reconnects end
	stopOnce sync.Once
	bg       sync.WaitGroup
}

// New returns a daemon with no controllers. hostOpts are passed to every
// host.Connect after the NVMe/TCP transport (tests shorten timeouts, or
// inject a clock, with them).
func New(cfg *config.Config, log hclog.Logger, hostOpts ...host.Option) *Daemon {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	hostOpts = append([]host.Option{host.WithTransport(tcp.Transport{})}, hostOpts...)
	d := &Daemon{
		clk:      host.ClockOf(hostOpts...),
		cfg:      cfg,
		log:      log,
		hostOpts: hostOpts,
		tree:     sysfsview.NewTree(log.Named("sysfs")),
		devices:  map[string]*Device{},
		hosts:    map[int]*host.Controller{},
		stop:     make(chan struct{}),
	}
	d.core = multipath.NewCore(multipath.Config{
		IOPolicy:           cfg.Multipath.IOPolicy,
		FenceWrites:        cfg.Multipath.FenceWrites,
		DelayedRemovalSecs: cfg.Multipath.DelayedRemovalSecs,
		Clock:              d.clk,
		Log:                log,
		Listener:           publisher{d},
	})
	d.fabrics = &fabricsDev{d: d}
	if err := d.tree.AddDevice(FabricsDevice, 0o600, d.fabrics.open); err != nil {
		log.Error("sysfs: add dev/nvme-fabrics", "error", err)
	}
	return d
}

// Tree is the sysfs-like attribute tree.
func (d *Daemon) Tree() *sysfsview.Tree { return d.tree }

// Core is the NVMe multipath lifecycle (subsystems, controllers, paths).
func (d *Daemon) Core() *multipath.Core { return d.core }

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
			if errors.Is(err, syscall.EKEYREJECTED) {
				// nvmf_should_reconnect: a refused authentication is final.
				d.log.Error("connect failed: authentication refused, not retrying", "address", o.Address(), "nqn", o.SubsysNQN, "error", err)
				continue
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
	if len(d.core.Controllers()) == 0 && len(errs) > 0 {
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
		delay = fabrics.DefaultReconnectDelay // the first connect was never made: no 1 s floor
	}
	var deadline time.Time
	if o.CtrlLossTmo >= 0 {
		deadline = d.clk.Now().Add(o.CtrlLossTmo)
	}
	for {
		t := clock.NewTimer(d.clk, delay)
		select {
		case <-d.stop:
			t.Stop()
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
		if !deadline.IsZero() && d.clk.Now().After(deadline) {
			d.log.Error("giving up on controller: ctrl_loss_tmo expired", "address", o.Address(), "nqn", o.SubsysNQN, "error", err)
			return
		}
		if errors.Is(err, syscall.EKEYREJECTED) {
			d.log.Error("giving up on controller: authentication refused", "address", o.Address(), "nqn", o.SubsysNQN, "error", err)
			return
		}
		d.log.Debug("reconnect attempt failed", "address", o.Address(), "error", err)
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
		dl, err := host.Discover(ctx, disc.Options, log, d.hostOpts...)
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

// connected reports a controller with the same address and NQN
// (fabrics.Options.SameController), so connect-all does not duplicate it.
func (d *Daemon) connected(o fabrics.Options) bool {
	o.DuplicateConnect = false
	return fabrics.CheckDuplicate(o, d.core.ControllerOptions()) != nil
}

// Connect connects one controller and adds its namespaces as paths. A
// controller already connected is refused with EALREADY unless o has
// duplicate_connect, as the kernel refuses it.
func (d *Daemon) Connect(ctx context.Context, o fabrics.Options) error {
	_, err := d.connect(ctx, o)
	return err
}

func (d *Daemon) connect(ctx context.Context, o fabrics.Options) (*multipath.Ctrl, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, errors.New("daemon closed")
	}
	if err := fabrics.CheckDuplicate(o, d.core.ControllerOptions()); err != nil {
		d.log.Warn(err.Error())
		return nil, err
	}
	inst := d.core.Reserve()
	name := fmt.Sprintf("nvme%d", inst)
	clog := d.log.Named(name)
	hc, err := host.Connect(ctx, o, clog, d.hostOpts...)
	if err != nil {
		d.core.Release(inst)
		return nil, fmt.Errorf("%s: connect %s nqn %s: %w", name, o.Address(), o.SubsysNQN, err)
	}
	d.mu.Lock()
	d.hosts[inst] = hc
	d.mu.Unlock()
	c, err := d.core.AddController(inst, hc, clog)
	d.mu.Lock()
	delete(d.hosts, inst)
	d.mu.Unlock()
	if err != nil {
		_ = hc.Close(context.Background())
		return nil, err
	}
	clog.Info("new ctrl", "nqn", o.SubsysNQN, "address", hc.Address(), "cntlid", hc.CNTLID())
	return c, nil
}

// DeleteController deletes one controller (sysfs delete_controller): its
// paths drain and leave their heads, then it is shut down.
func (d *Daemon) DeleteController(ctx context.Context, name string) error {
	c := d.core.Controller(name)
	if c == nil {
		return fmt.Errorf("%s: no such controller", name)
	}
	return d.core.DeleteController(ctx, c)
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
		d.mu.Unlock()
		if err := d.core.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	})
	return errors.Join(errs...)
}
