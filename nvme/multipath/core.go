package multipath

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/clock"
	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/host"
)

// HostController is what the path and namespace lifecycle needs of an NVMe
// host controller; *host.Controller implements it.
type HostController interface {
	Controller
	Subscribe(fn func(host.Event)) (cancel func())
	Namespaces() []host.Namespace
	Options() fabrics.Options
	CNTLID() uint16
	Rescan(ctx context.Context) error
	Close(ctx context.Context) error
}

var _ HostController = (*host.Controller)(nil)

// Listener is told of lifecycle changes so the assembly can publish them
// (sysfs tree, namespace files). Calls are serialized per subsystem and
// made without the Core's lock held; a Listener must not call back into
// AddController or DeleteController.
type Listener interface {
	SubsystemAdded(s *Subsystem, id *nvme.IdentifyController)
	ControllerAdded(c *Ctrl) error
	ControllerRemoved(c *Ctrl)
	HeadAdded(s *Subsystem, h *mpath.Head)
	HeadRemoved(s *Subsystem, h *mpath.Head)
	PathAdded(p *Path, head string)
	PathRemoved(p *Path)
}

// Config configures a Core.
type Config struct {
	IOPolicy           mpath.IOPolicy
	FenceWrites        bool
	DelayedRemovalSecs uint32
	// Clock drives mpath's timers and the write fence (nil: system).
	Clock    clock.Clock
	Log      hclog.Logger
	Listener Listener
}

// Core owns the NVMe multipath lifecycle, as drivers/nvme/host/core.c and
// multipath.c do in Linux: it groups controllers by subsystem, follows each
// controller's events (state changes, ANA log reads, namespace scans after
// a Namespace Attribute AEN, rescan_controller or a reconnect), adds,
// revalidates and removes paths, names heads with the lowest free
// instance, and removes a controller's paths when it goes away. Names
// follow the kernel: nvme-subsys<S>, nvme<C>, heads nvme<S>n<H>, paths
// nvme<S>c<C>n<H>.
type Core struct {
	cfg Config
	log hclog.Logger

	mu       sync.Mutex
	subsys   map[string]*Subsystem // by NQN
	ctrls    map[int]*Ctrl         // by instance
	reserved map[int]bool          // instances being connected
}

// Subsystem is one NVM subsystem: its mpath subsystem and head instances.
type Subsystem struct {
	name string
	inst int
	nqn  string
	mp   *mpath.Subsystem

	// lifeMu serializes path additions and removals of the subsystem (the
	// unshared-namespace check and head instance allocation); mu guards
	// the maps (OnHeadRemoved may run under lifeMu).
	lifeMu   sync.Mutex
	mu       sync.Mutex
	headInst map[uint32]int  // NSID -> instance of the live head
	shared   map[uint32]bool // NSID -> the head's namespace is shared (NMIC bit 0)
	pending  map[uint32]string
}

// Name is nvme-subsys<S>.
func (s *Subsystem) Name() string { return s.name }

// NQN is the subsystem NQN.
func (s *Subsystem) NQN() string { return s.nqn }

// MPath is the multipath library's subsystem.
func (s *Subsystem) MPath() *mpath.Subsystem { return s.mp }

// Ctrl is one controller in the lifecycle: the host controller, its mpath
// controller and its paths.
type Ctrl struct {
	core  *Core
	name  string
	inst  int
	hc    HostController
	mc    *mpath.Controller
	sub   *Subsystem
	log   hclog.Logger
	unsub func()

	recMu    sync.Mutex // one reconcile at a time
	mu       sync.Mutex // paths, gone
	paths    map[uint32]*Path
	gone     bool
	deleting bool
}

// Name is nvme<C>.
func (c *Ctrl) Name() string { return c.name }

// Instance is C of nvme<C>.
func (c *Ctrl) Instance() int { return c.inst }

// Host is the NVMe host controller.
func (c *Ctrl) Host() HostController { return c.hc }

// MPath is the multipath library's controller.
func (c *Ctrl) MPath() *mpath.Controller { return c.mc }

// Subsystem is the controller's subsystem.
func (c *Ctrl) Subsystem() *Subsystem { return c.sub }

// Deleting reports that delete_controller (or shutdown) started on it.
func (c *Ctrl) Deleting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deleting
}

// Paths returns the controller's paths by NSID order.
func (c *Ctrl) Paths() []*Path {
	c.mu.Lock()
	out := make([]*Path, 0, len(c.paths))
	for _, p := range c.paths {
		out = append(out, p)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].nsid < out[j].nsid })
	return out
}

// NewCore returns an empty Core.
func NewCore(cfg Config) *Core {
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System()
	}
	return &Core{cfg: cfg, log: cfg.Log, subsys: map[string]*Subsystem{}, ctrls: map[int]*Ctrl{}, reserved: map[int]bool{}}
}

// Reserve takes the lowest free controller instance (the kernel's ida)
// for a controller about to connect; give it to AddController or back with
// Release.
func (m *Core) Reserve() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	inst := 0
	for m.ctrls[inst] != nil || m.reserved[inst] {
		inst++
	}
	m.reserved[inst] = true
	return inst
}

// Release returns a reserved instance that was not used.
func (m *Core) Release(inst int) {
	m.mu.Lock()
	delete(m.reserved, inst)
	m.mu.Unlock()
}

// ControllerOptions lists the connect options of every controller not
// being deleted (for fabrics.CheckDuplicate).
func (m *Core) ControllerOptions() []fabrics.Options {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]fabrics.Options, 0, len(m.ctrls))
	for _, c := range m.ctrls {
		switch c.hc.State() {
		case host.StateDeleting, host.StateDeletingNoIO, host.StateDead:
			continue // being deleted: not a duplicate
		}
		out = append(out, c.hc.Options())
	}
	return out
}

// Controllers returns the controllers by instance.
func (m *Core) Controllers() []*Ctrl {
	m.mu.Lock()
	out := make([]*Ctrl, 0, len(m.ctrls))
	for _, c := range m.ctrls {
		out = append(out, c)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].inst < out[j].inst })
	return out
}

// Controller returns the controller named name (nvme<C>), or nil.
func (m *Core) Controller(name string) *Ctrl {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.ctrls {
		if c.name == name {
			return c
		}
	}
	return nil
}

// AddController adds a connected host controller under the reserved
// instance inst: it joins (or creates) its subsystem, is announced to the
// Listener, follows the controller's events and adds a path per
// namespace.
func (m *Core) AddController(inst int, hc HostController, log hclog.Logger) (*Ctrl, error) {
	defer m.Release(inst)
	if log == nil {
		log = m.log.Named(fmt.Sprintf("nvme%d", inst))
	}
	id := hc.Identify()
	if id == nil {
		return nil, errors.New("nvme multipath: controller has no Identify data")
	}
	nqn := strings.TrimRight(id.SubNQN, "\x00 ")
	if nqn == "" {
		nqn = hc.Options().SubsysNQN
	}
	c := &Ctrl{core: m, name: fmt.Sprintf("nvme%d", inst), inst: inst, hc: hc, log: log, paths: map[uint32]*Path{}}
	c.mc = mpath.NewController(c.name, mpath.NoNode)
	m.mu.Lock()
	s, created := m.subsys[nqn], false
	if s == nil {
		s = m.newSubsystemLocked(nqn, inst)
		created = true
	}
	c.sub = s
	m.ctrls[inst] = c
	m.mu.Unlock()
	l := m.cfg.Listener
	if created && l != nil {
		l.SubsystemAdded(s, id)
	}
	if l != nil {
		if err := l.ControllerAdded(c); err != nil {
			m.mu.Lock()
			delete(m.ctrls, inst)
			m.mu.Unlock()
			return nil, err
		}
	}
	c.unsub = hc.Subscribe(func(ev host.Event) { m.onEvent(c, ev) })
	m.reconcile(c)
	return c, nil
}

func (m *Core) newSubsystemLocked(nqn string, inst int) *Subsystem {
	// The kernel names a subsystem after its first controller's instance;
	// instances are reused, so keep the name unique among live subsystems.
	for taken := true; taken; {
		taken = false
		for _, o := range m.subsys {
			if o.inst == inst {
				taken = true
				inst++
			}
		}
	}
	s := &Subsystem{name: fmt.Sprintf("nvme-subsys%d", inst), inst: inst, nqn: nqn,
		headInst: map[uint32]int{}, shared: map[uint32]bool{}, pending: map[uint32]string{}}
	cfg := mpath.DefaultSubsystemConfig(nqn)
	cfg.Policy = m.cfg.IOPolicy
	cfg.FenceWrites = m.cfg.FenceWrites
	cfg.Clock = m.cfg.Clock
	cfg.Logger = m.log.Named(s.name)
	cfg.HeadName = func(id mpath.Identity) string {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.pending[id.NSID]
	}
	cfg.OnHeadAdded = func(h *mpath.Head) {
		h.SetDelayedRemovalSecs(m.cfg.DelayedRemovalSecs)
		if l := m.cfg.Listener; l != nil {
			l.HeadAdded(s, h)
		}
	}
	cfg.OnHeadRemoved = func(h *mpath.Head) {
		// The head's instance is free again (nvme_free_ns_head's
		// ida_free); a later head takes the lowest free one.
		s.mu.Lock()
		if s.headName(h.Identity().NSID) == h.Name() {
			delete(s.headInst, h.Identity().NSID)
			delete(s.shared, h.Identity().NSID)
		}
		s.mu.Unlock()
		if l := m.cfg.Listener; l != nil {
			l.HeadRemoved(s, h)
		}
	}
	s.mp = mpath.NewSubsystem(cfg)
	m.subsys[nqn] = s
	return s
}

// headName is the name of the live head of nsid ("" if none); mu held.
func (s *Subsystem) headName(nsid uint32) string {
	inst, ok := s.headInst[nsid]
	if !ok {
		return ""
	}
	return fmt.Sprintf("nvme%dn%d", s.inst, inst)
}

// allocHead takes the lowest free head instance >= 1 (ida_alloc_min); mu
// held.
func (s *Subsystem) allocHead(nsid uint32) int {
	used := make(map[int]bool, len(s.headInst))
	for _, i := range s.headInst {
		used[i] = true
	}
	inst := 1
	for used[inst] {
		inst++
	}
	s.headInst[nsid] = inst
	return inst
}

// onEvent runs on the controller's event goroutine.
func (m *Core) onEvent(c *Ctrl, ev host.Event) {
	switch ev.Kind {
	case host.NamespacesChanged:
		m.reconcile(c)
		return
	case host.StateChanged:
		if ev.New == host.StateDead || ev.New == host.StateDeletingNoIO {
			m.detach(c)
			return
		}
	}
	for _, p := range c.Paths() {
		if ev.Kind == host.ANAChanged {
			p.ANARead()
		} else {
			p.Refresh()
		}
	}
}

// Rescan re-scans the controller's namespaces (sysfs rescan_controller).
// Like nvme_queue_scan it is not an error on a controller that is not
// live: the scan then runs when it is live again.
func (c *Ctrl) Rescan(ctx context.Context) error {
	if err := c.hc.Rescan(ctx); err != nil {
		if errors.Is(err, nvme.StatusHostPathError) {
			return nil
		}
		return err
	}
	// The scan reports no change when the list equals the last one, but a
	// namespace removed for changed identifiers comes back as new.
	c.core.reconcile(c)
	return nil
}

// reconcile makes the controller's paths match its namespace list
// (nvme_scan_ns / nvme_validate_ns): a new namespace gets a path, a
// namespace whose identifiers changed loses its path ("identifiers changed
// for nsid %d"), a resized one updates its geometry (head size, file size
// and I/O bound), and a namespace gone from the list loses its path.
func (m *Core) reconcile(c *Ctrl) {
	c.recMu.Lock()
	defer c.recMu.Unlock()
	nss := c.hc.Namespaces()
	seen := map[uint32]bool{}
	for _, ns := range nss {
		seen[ns.NSID] = true
		c.mu.Lock()
		p, ok := c.paths[ns.NSID]
		gone := c.gone
		c.mu.Unlock()
		if gone {
			return
		}
		if !ok {
			m.addPath(c, ns)
			continue
		}
		if identity(ns) != p.id {
			c.log.Error(fmt.Sprintf("identifiers changed for nsid %d", ns.NSID))
			m.removePaths(c, p)
			continue
		}
		if info := headInfo(ns); info != p.MPath().Info() {
			c.log.Info("namespace revalidated", "nsid", ns.NSID, "bytes", info.Capacity, "block_size", info.BlockSize)
			p.setGeometry(ns)
			p.MPath().UpdateInfo(info)
		}
		p.Refresh()
	}
	var gone []*Path
	c.mu.Lock()
	for nsid, p := range c.paths {
		if !seen[nsid] {
			gone = append(gone, p)
		}
	}
	c.mu.Unlock()
	m.removePaths(c, gone...)
}

func identity(ns host.Namespace) mpath.Identity {
	return mpath.Identity{NSID: ns.NSID, UUID: ns.IDs.UUID, NGUID: ns.IDs.NGUID, EUI64: ns.IDs.EUI64, CSI: ns.IDs.CSI}
}

func headInfo(ns host.Namespace) mpath.HeadInfo {
	return mpath.HeadInfo{Capacity: int64(ns.Blocks) * int64(ns.BlockSize), BlockSize: ns.BlockSize}
}

func (m *Core) addPath(c *Ctrl, ns host.Namespace) {
	s := c.sub
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	s.mu.Lock()
	head := s.headName(ns.NSID)
	newHead := head == ""
	if !newHead {
		// nvme_init_ns_head: a namespace that is not shared never joins
		// another controller's head, nor does any namespace join an
		// unshared one.
		if !ns.Shared || !s.shared[ns.NSID] {
			if h := s.mp.Head(ns.NSID); h != nil && len(h.Paths()) > 0 {
				s.mu.Unlock()
				c.log.Error(fmt.Sprintf("Duplicate unshared namespace %d", ns.NSID))
				return
			}
		}
	} else {
		s.allocHead(ns.NSID)
		s.shared[ns.NSID] = ns.Shared
		head = s.headName(ns.NSID)
	}
	inst := s.headInst[ns.NSID]
	s.pending[ns.NSID] = head
	s.mu.Unlock()
	name := fmt.Sprintf("nvme%dc%dn%d", s.inst, c.inst, inst)
	drv := NewPath(c.hc, ns, c.log.Named(name))
	drv.clk = m.cfg.Clock
	drv.name, drv.owner, drv.id = name, c, identity(ns)
	mp, err := s.mp.AddPath(drv.id, headInfo(ns), name, c.mc, drv)
	s.mu.Lock()
	delete(s.pending, ns.NSID)
	if err != nil && newHead {
		delete(s.headInst, ns.NSID)
		delete(s.shared, ns.NSID)
	}
	s.mu.Unlock()
	if err != nil {
		// mpath logged the kernel's message ("IDs don't match for shared
		// namespace 1").
		return
	}
	drv.Bind(mp)
	c.mu.Lock()
	c.paths[ns.NSID] = drv
	c.mu.Unlock()
	if l := m.cfg.Listener; l != nil {
		l.PathAdded(drv, head)
	}
	drv.added()
}

// removePaths takes paths out of their heads (and the controller).
func (m *Core) removePaths(c *Ctrl, paths ...*Path) {
	sort.Slice(paths, func(i, j int) bool { return paths[i].nsid < paths[j].nsid })
	for _, p := range paths {
		c.mu.Lock()
		if c.paths[p.nsid] != p {
			c.mu.Unlock()
			continue
		}
		delete(c.paths, p.nsid)
		c.mu.Unlock()
		if l := m.cfg.Listener; l != nil {
			l.PathRemoved(p)
		}
		c.sub.lifeMu.Lock()
		c.sub.mp.RemovePath(p.MPath())
		c.sub.lifeMu.Unlock()
	}
}

// detach removes a controller that is gone for good (ctrl_loss_tmo ran
// out, or it was deleted): its paths leave their heads, and it is
// announced removed, as the kernel deletes the controller device.
func (m *Core) detach(c *Ctrl) {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return
	}
	c.gone = true
	c.mu.Unlock()
	m.mu.Lock()
	if m.ctrls[c.inst] == c {
		delete(m.ctrls, c.inst)
	}
	m.mu.Unlock()
	m.removePaths(c, c.Paths()...)
	if l := m.cfg.Listener; l != nil {
		l.ControllerRemoved(c)
	}
	c.log.Info("controller removed")
}

// DeleteController deletes c (sysfs delete_controller), as
// nvme_delete_ctrl does: the namespaces are removed first
// (nvme_remove_namespaces: their heads stop choosing this path and the
// I/O in flight on it completes), then the controller is shut down. I/O
// running during the delete therefore drains to the other paths without a
// failover and without a write fence wait.
func (m *Core) DeleteController(ctx context.Context, c *Ctrl) error {
	c.mu.Lock()
	c.deleting = true
	c.mu.Unlock()
	paths := c.Paths()
	for _, p := range paths {
		p.Refresh() // the numa cache drops a path of a deleting controller
	}
	if c.unsub != nil {
		c.unsub()
	}
	m.detach(c) // the heads stop choosing its paths
	for _, p := range paths {
		if err := p.drain(ctx); err != nil {
			c.log.Warn("delete_controller: I/O still in flight", "path", p.name, "error", err)
		}
	}
	return c.hc.Close(ctx)
}

// Close shuts every controller down (CC.SHN), in parallel, and removes
// them. In-flight I/O must have finished.
func (m *Core) Close(ctx context.Context) error {
	ctrls := m.Controllers()
	var wg sync.WaitGroup
	var emu sync.Mutex
	var errs []error
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
		m.detach(c)
	}
	return errors.Join(errs...)
}
