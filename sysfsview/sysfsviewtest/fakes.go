// Package sysfsviewtest has fake sources for sysfsview trees, for tests.
package sysfsviewtest

import (
	"sync"
	"time"

	"github.com/mpathfs/mpathfs/sysfsview"
)

// Subsystem is a fake sysfsview.SubsystemSource.
type Subsystem struct {
	mu     sync.Mutex
	policy string
}

// NewSubsystem returns a fake subsystem with the given iopolicy.
func NewSubsystem(policy string) *Subsystem { return &Subsystem{policy: policy} }

// IOPolicy implements sysfsview.SubsystemSource.
func (s *Subsystem) IOPolicy() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policy
}

// SetIOPolicy implements sysfsview.SubsystemSource.
func (s *Subsystem) SetIOPolicy(p string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy = p
	return nil
}

// Controller is a fake sysfsview.ControllerSource with timeouts and triggers.
type Controller struct {
	mu       sync.Mutex
	state    string
	address  string
	counters sysfsview.ControllerCounters
	tmo      sysfsview.Timeouts
	resets   int
	rescans  int
	deletes  int
}

// NewController returns a live fake controller at address.
func NewController(address string) *Controller {
	return &Controller{state: "live", address: address,
		tmo: sysfsview.Timeouts{CtrlLoss: 600 * time.Second, ReconnectDelay: 10 * time.Second, FastIOFail: -1}}
}

// SetState changes what State returns.
func (c *Controller) SetState(s string) { c.mu.Lock(); c.state = s; c.mu.Unlock() }

// SetCounters changes what Counters returns.
func (c *Controller) SetCounters(v sysfsview.ControllerCounters) {
	c.mu.Lock()
	c.counters = v
	c.mu.Unlock()
}

// State implements sysfsview.ControllerSource.
func (c *Controller) State() string { c.mu.Lock(); defer c.mu.Unlock(); return c.state }

// Address implements sysfsview.ControllerSource.
func (c *Controller) Address() string { c.mu.Lock(); defer c.mu.Unlock(); return c.address }

// CNTLID implements sysfsview.ControllerSource.
func (c *Controller) CNTLID() uint16 { return 1 }

// NUMANode implements sysfsview.ControllerSource.
func (c *Controller) NUMANode() int { return -1 }

// QueueCount implements sysfsview.ControllerSource.
func (c *Controller) QueueCount() int { return 3 }

// SQSize implements sysfsview.ControllerSource.
func (c *Controller) SQSize() int { return 127 }

// KATO implements sysfsview.ControllerSource.
func (c *Controller) KATO() time.Duration { return 5 * time.Second }

// Timeouts implements sysfsview.ControllerSource.
func (c *Controller) Timeouts() sysfsview.Timeouts { c.mu.Lock(); defer c.mu.Unlock(); return c.tmo }

// Counters implements sysfsview.ControllerSource.
func (c *Controller) Counters() sysfsview.ControllerCounters {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counters
}

// SetCtrlLossTmo implements sysfsview.TimeoutSetter.
func (c *Controller) SetCtrlLossTmo(d time.Duration) error {
	c.mu.Lock()
	c.tmo.CtrlLoss = d
	c.mu.Unlock()
	return nil
}

// SetReconnectDelay implements sysfsview.TimeoutSetter.
func (c *Controller) SetReconnectDelay(d time.Duration) error {
	c.mu.Lock()
	c.tmo.ReconnectDelay = d
	c.mu.Unlock()
	return nil
}

// SetFastIOFailTmo implements sysfsview.TimeoutSetter.
func (c *Controller) SetFastIOFailTmo(d time.Duration) error {
	c.mu.Lock()
	c.tmo.FastIOFail = d
	c.mu.Unlock()
	return nil
}

// Reset implements sysfsview.Resetter.
func (c *Controller) Reset() error { c.mu.Lock(); c.resets++; c.mu.Unlock(); return nil }

// Rescan implements sysfsview.Rescanner.
func (c *Controller) Rescan() error { c.mu.Lock(); c.rescans++; c.mu.Unlock(); return nil }

// Delete implements sysfsview.Deleter.
func (c *Controller) Delete() error { c.mu.Lock(); c.deletes++; c.mu.Unlock(); return nil }

// Triggered returns how often each trigger ran.
func (c *Controller) Triggered() (resets, rescans, deletes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resets, c.rescans, c.deletes
}

// Head is a fake sysfsview.HeadSource.
type Head struct {
	mu       sync.Mutex
	sectors  uint64
	stat     sysfsview.IOStat
	counters sysfsview.HeadCounters
	delayed  uint32
}

// NewHead returns a fake head of the given size in bytes.
func NewHead(size int64) *Head { return &Head{sectors: uint64(size) / 512} }

// SetStat changes what Stat returns.
func (h *Head) SetStat(s sysfsview.IOStat) { h.mu.Lock(); h.stat = s; h.mu.Unlock() }

// SetCounters changes what Counters returns.
func (h *Head) SetCounters(c sysfsview.HeadCounters) { h.mu.Lock(); h.counters = c; h.mu.Unlock() }

// Sectors implements sysfsview.HeadSource.
func (h *Head) Sectors() uint64 { h.mu.Lock(); defer h.mu.Unlock(); return h.sectors }

// Stat implements sysfsview.HeadSource.
func (h *Head) Stat() sysfsview.IOStat { h.mu.Lock(); defer h.mu.Unlock(); return h.stat }

// Counters implements sysfsview.HeadSource.
func (h *Head) Counters() sysfsview.HeadCounters { h.mu.Lock(); defer h.mu.Unlock(); return h.counters }

// DelayedRemovalSecs implements sysfsview.HeadSource.
func (h *Head) DelayedRemovalSecs() uint32 { h.mu.Lock(); defer h.mu.Unlock(); return h.delayed }

// SetDelayedRemovalSecs implements sysfsview.HeadSource.
func (h *Head) SetDelayedRemovalSecs(v uint32) error {
	h.mu.Lock()
	h.delayed = v
	h.mu.Unlock()
	return nil
}

// Path is a fake sysfsview.PathSource.
type Path struct {
	mu       sync.Mutex
	ana      bool
	state    string
	group    uint32
	depth    int
	nodes    []int
	sectors  uint64
	stat     sysfsview.IOStat
	counters sysfsview.PathCounters
}

// NewPath returns an ANA path in the given state and group.
func NewPath(size int64, state string, group uint32) *Path {
	return &Path{ana: true, state: state, group: group, sectors: uint64(size) / 512}
}

// SetANA changes whether the path uses ANA and its state.
func (p *Path) SetANA(uses bool, state string) {
	p.mu.Lock()
	p.ana, p.state = uses, state
	p.mu.Unlock()
}

// SetQueue changes QueueDepth and NUMANodes.
func (p *Path) SetQueue(depth int, nodes []int) {
	p.mu.Lock()
	p.depth, p.nodes = depth, nodes
	p.mu.Unlock()
}

// SetCounters changes what Counters returns.
func (p *Path) SetCounters(c sysfsview.PathCounters) { p.mu.Lock(); p.counters = c; p.mu.Unlock() }

// SetStat changes what Stat returns.
func (p *Path) SetStat(s sysfsview.IOStat) { p.mu.Lock(); p.stat = s; p.mu.Unlock() }

// UsesANA implements sysfsview.PathSource.
func (p *Path) UsesANA() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.ana }

// ANAState implements sysfsview.PathSource.
func (p *Path) ANAState() string { p.mu.Lock(); defer p.mu.Unlock(); return p.state }

// ANAGroup implements sysfsview.PathSource.
func (p *Path) ANAGroup() uint32 { p.mu.Lock(); defer p.mu.Unlock(); return p.group }

// QueueDepth implements sysfsview.PathSource.
func (p *Path) QueueDepth() int { p.mu.Lock(); defer p.mu.Unlock(); return p.depth }

// NUMANodes implements sysfsview.PathSource.
func (p *Path) NUMANodes() []int { p.mu.Lock(); defer p.mu.Unlock(); return p.nodes }

// Sectors implements sysfsview.PathSource.
func (p *Path) Sectors() uint64 { p.mu.Lock(); defer p.mu.Unlock(); return p.sectors }

// Stat implements sysfsview.PathSource.
func (p *Path) Stat() sysfsview.IOStat { p.mu.Lock(); defer p.mu.Unlock(); return p.stat }

// Counters implements sysfsview.PathSource.
func (p *Path) Counters() sysfsview.PathCounters { p.mu.Lock(); defer p.mu.Unlock(); return p.counters }

// Fixture is a populated tree: nvme-subsys0 with controllers nvme0 and nvme1,
// head nvme0n1 and paths nvme0c0n1 (optimized) and nvme0c1n1 (non-optimized).
type Fixture struct {
	Tree         *sysfsview.Tree
	Subsys       *Subsystem
	Ctrl0, Ctrl1 *Controller
	Head         *Head
	Path0, Path1 *Path
}

// Subsystem, controller and namespace identities used by NewFixture.
const (
	FixtureNQN     = "nqn.2014-08.org.example:subsys1"
	FixtureHostNQN = "nqn.2014-08.org.nvmexpress:uuid:0f8fad5b-d9cb-469f-a165-70867728950e"
)

// FixtureHeadInfo is the identity of the fixture's namespace.
func FixtureHeadInfo() sysfsview.HeadInfo {
	return sysfsview.HeadInfo{
		NSID:  1,
		UUID:  [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef},
		NGUID: [16]byte{0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10, 0, 1, 2, 3, 4, 5, 6, 7},
		EUI64: [8]byte{0x00, 0x25, 0x38, 0xb1, 0x21, 0xaa, 0xbb, 0xcc},
	}
}

// NewFixture builds the fixture tree; size is the namespace size in bytes.
func NewFixture(tree *sysfsview.Tree, size int64) (*Fixture, error) {
	f := &Fixture{
		Tree:   tree,
		Subsys: NewSubsystem("numa"),
		Ctrl0:  NewController("traddr=127.0.0.1,trsvcid=4420,src_addr=127.0.0.1"),
		Ctrl1:  NewController("traddr=127.0.0.1,trsvcid=4421,src_addr=127.0.0.1"),
		Head:   NewHead(size),
		Path0:  NewPath(size, "optimized", 1),
		Path1:  NewPath(size, "non-optimized", 2),
	}
	sinfo := sysfsview.SubsystemInfo{NQN: FixtureNQN, Model: pad("mpathfs demo", 40),
		Serial: pad("0123456789", 20), FirmwareRev: pad("1.0", 8), VID: 0x1b36, Type: "nvm"}
	if err := tree.AddSubsystem("nvme-subsys0", sinfo, f.Subsys); err != nil {
		return nil, err
	}
	for i, c := range []*Controller{f.Ctrl0, f.Ctrl1} {
		cinfo := sysfsview.ControllerInfo{Transport: "tcp", SubsysNQN: FixtureNQN, HostNQN: FixtureHostNQN,
			HostID: [16]byte{0x0f, 0x8f, 0xad, 0x5b, 0xd9, 0xcb, 0x46, 0x9f, 0xa1, 0x65, 0x70, 0x86, 0x77, 0x28, 0x95, 0x0e},
			Model:  sinfo.Model, Serial: sinfo.Serial, FirmwareRev: sinfo.FirmwareRev, CntrlType: 1}
		if err := tree.AddController("nvme"+string(rune('0'+i)), "nvme-subsys0", cinfo, c); err != nil {
			return nil, err
		}
	}
	if err := tree.AddHead("nvme0n1", "nvme-subsys0", FixtureHeadInfo(), f.Head); err != nil {
		return nil, err
	}
	if err := tree.AddPath("nvme0c0n1", "nvme0n1", "nvme0", f.Path0); err != nil {
		return nil, err
	}
	if err := tree.AddPath("nvme0c1n1", "nvme0n1", "nvme1", f.Path1); err != nil {
		return nil, err
	}
	return f, nil
}

func pad(s string, n int) string {
	for len(s) < n {
		s += " "
	}
	return s
}
