// Package target is a userspace NVMe/TCP target (controller side) for tests,
// benchmarks and the demo. It behaves like the Linux kernel target (nvmet)
// with its defaults (reference §8): subsystems with RAM or file namespaces,
// several ports each being a path to the same subsystems, the dynamic
// controller model, ANA groups with per-port states, a discovery subsystem
// on every port, keep-alive enforcement, digests, in-capsule data and R2T,
// reservations, and a fault-injection API (drop, stop listening, stall,
// fail the next I/Os).
//
// Concurrency: each TCP connection has one reader goroutine, which parses
// PDUs, runs admin and Fabrics commands inline and hands I/O commands to a
// few worker goroutines of that connection, so commands complete out of
// order. One mutex per connection serializes its pdu.Writer. The I/O path
// takes no target-wide lock: namespaces are found in an immutable
// copy-on-write table, ANA states, fault counters and reservation state are
// atomics, and RAM namespaces have per-chunk RW locks (see ramStore).
// Request structures (with their completion) are recycled per connection
// through a free list, received write data lands in buffers from
// per-size-class sync.Pools, and reads from RAM are sent straight from the
// namespace memory (one writev per C2HData PDU; small reads are corked
// with their CapsuleResp into one write), so steady-state I/O allocates
// nothing.
//
// Fault injection (Port): DropConnections, StopListening/StartListening,
// Stall, FailNextIO, SetANAState, UnlinkSubsystem/LinkSubsystem. The
// nvmetcli JSON format (LoadNvmetcliJSON, Target.Apply) configures it like a
// Linux target; package controlfs serves a configfs-shaped control tree.
//
// Deviations from the Linux target, on purpose: the discovery log lists the
// links of every port (Linux: only the port asked), so one discovery read
// finds every path; ANA groups not given a state on a port through the Go
// API are optimized (Apply follows Linux: inaccessible unless listed or
// group 1); VS is 1.3 (Linux 6.x: 2.1) so hosts use CNS 0x00 only.
package target

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/auth"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// Limits and defaults, as the Linux target has them (reference §8).
const (
	MaxCNTLID          = 0xFFEF  // dynamic controller IDs are 1..MaxCNTLID
	MaxNSID            = 1024    // NN and MNAN
	MaxANAGroups       = 128     // ANAGRPMAX and NANAGRPID
	DefaultInCapsule   = 1 << 20 // in-capsule data on I/O queues (IOCCSZ 65540; nvmet: 16 KiB)
	MaxInCapsule       = 1 << 20 // largest inline_data_size accepted
	DefaultMaxH2CData  = 0x400000
	DefaultMaxIOQueues = 128
	DefaultQueueSize   = 1024 // CAP.MQES+1
	aqDepth            = 32
	maxAERs            = 4 // AERL 3
	kasUnits           = 10
	// MaxTransfer bounds one I/O command's data when MDTS is 0 (no limit
	// advertised): larger commands fail with Invalid Field.
	MaxTransfer = 64 << 20
)

// Errors returned by the configuration API.
var (
	ErrExists   = errors.New("target: already exists")
	ErrNotFound = errors.New("target: not found")
	ErrClosed   = errors.New("target: closed")
)

// SubsystemConfig describes an NVM subsystem.
type SubsystemConfig struct {
	NQN      string
	Model    string // default "Linux"
	Serial   string // default derived from the NQN
	Firmware string // default "1.0"
	// AllowAnyHost lets every host NQN connect. If false, only Hosts may;
	// an empty Hosts list also means any host.
	AllowAnyHost bool
	Hosts        []string
	// CntlIDMin..CntlIDMax is the range of dynamic controller IDs
	// (0, 0 = 1..MaxCNTLID).
	CntlIDMin, CntlIDMax uint16
	// MaxIOQueues bounds Set Features Number of Queues and I/O queue IDs
	// (0 = DefaultMaxIOQueues).
	MaxIOQueues int
	// CRDT are the Command Retry Delay Times (100 ms units) Identify
	// reports; a status with CRD set keeps it only for a host that enabled
	// ACRE (Set Features Host Behavior Support), else CRD is cleared.
	CRDT [3]uint16
	// FirmwareActivationNotices adds the Firmware Activation Notice to
	// OAES (nvmet does not report it), so ActivateFirmware can raise it.
	FirmwareActivationNotices bool
}

// NamespaceConfig describes a namespace.
type NamespaceConfig struct {
	NSID      uint32
	Size      int64  // bytes; for a file: the size to create it with if missing (0: use the file's size)
	BlockSize int    // 512 (default) or 4096
	Path      string // "" = RAM, else a file or block device
	UUID      [16]byte
	NGUID     [16]byte
	EUI64     [8]byte
	ANAGroup  uint32 // 0 = 1
	// MetadataSize is the metadata bytes per block the LBA format reports
	// (0: none). The data path carries no metadata: it exists so hosts'
	// handling of a metadata-formatted namespace can be tested (Linux over
	// TCP makes it capacity 0 without PI).
	MetadataSize uint16
	// Private presents the namespace as not shared (NMIC bit 0 clear):
	// a host must not group it with another controller's namespace.
	Private bool
}

// PortConfig describes a port: one TCP listener, one path.
type PortConfig struct {
	ID   uint16
	Addr string // "127.0.0.1:0" picks a free port
	// MaxH2CData is the ICResp MAXH2CDATA (0 = 4 MiB like Linux).
	MaxH2CData uint32
	// InCapsule is the in-capsule data size of I/O queues (0 = 16 KiB,
	// negative = none); admin and Fabrics commands always get 8 KiB.
	InCapsule int
	// MaxC2HData splits read data into C2HData PDUs of at most this many
	// bytes (0 = one PDU per command, like Linux).
	MaxC2HData uint32
	// MDTS is Identify Controller MDTS (0 = no limit); larger transfers
	// fail with Invalid Field, so a host's MDTS split is tested.
	MDTS uint8
	// MaxQueueSize is CAP.MQES+1 (0 = 1024).
	MaxQueueSize int
	// TReq is the discovery log entry TREQ (secure channel bits).
	TReq uint8
	// ANAStates are the initial ANA group states of this port; a group
	// not listed is optimized.
	ANAStates map[uint32]nvme.ANAState
	// Referrals are reported in the discovery log of this target.
	Referrals []Referral
}

// Target is an NVMe/TCP target: subsystems, ports and the discovery
// subsystem.
type Target struct {
	log  hclog.Logger
	bufs bufPools

	discGen atomic.Uint64 // discovery log generation counter
	discAll atomic.Bool   // discovery logs list every port (SetDiscoveryAllPorts)
	anaChg  atomic.Uint64 // ANA change count (global, like nvmet)

	wg sync.WaitGroup // connection readers and workers

	mu         sync.Mutex
	subsystems map[string]*Subsystem
	ports      map[uint16]*Port
	disc       *Subsystem
	closed     bool

	hostAuth map[string]HostAuth // under mu
	authSeq  auth.SeqNum         // S1 of every challenge

	// destroying, if set (tests), runs while a controller is torn down:
	// after it stopped being ready, before its connections are closed.
	destroying atomic.Pointer[func()]
}

// New returns an empty target. log may be nil.
func New(log hclog.Logger) *Target {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	t := &Target{log: log, subsystems: map[string]*Subsystem{}, ports: map[uint16]*Port{}}
	t.disc = newSubsystem(t, SubsystemConfig{NQN: nvme.DiscoveryNQN, AllowAnyHost: true, Model: "Linux"}, true)
	return t
}

// Close stops every port, closes every connection, waits for their
// goroutines and closes the namespaces' files.
func (t *Target) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	ports := make([]*Port, 0, len(t.ports))
	for _, p := range t.ports {
		ports = append(ports, p)
	}
	subs := make([]*Subsystem, 0, len(t.subsystems))
	for _, s := range t.subsystems {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	for _, p := range ports {
		p.close()
	}
	t.wg.Wait()
	var errs []error
	for _, s := range subs {
		for _, ns := range s.namespaces() {
			if ns.file != nil {
				if err := ns.file.close(); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Subsystem returns the subsystem with the given NQN, or nil.
func (t *Target) Subsystem(nqn string) *Subsystem {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.subsystems[nqn]
}

// Port returns the port with the given ID, or nil.
func (t *Target) Port(id uint16) *Port {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ports[id]
}

// Ports returns the ports sorted by ID.
func (t *Target) Ports() []*Port {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := make([]*Port, 0, len(t.ports))
	for _, p := range t.ports {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].id < ps[j].id })
	return ps
}

// Subsystems returns the NVM subsystems sorted by NQN.
func (t *Target) Subsystems() []*Subsystem {
	t.mu.Lock()
	defer t.mu.Unlock()
	ss := make([]*Subsystem, 0, len(t.subsystems))
	for _, s := range t.subsystems {
		ss = append(ss, s)
	}
	sort.Slice(ss, func(i, j int) bool { return ss[i].cfg.NQN < ss[j].cfg.NQN })
	return ss
}

// AddSubsystem creates an NVM subsystem (not yet reachable: link it to
// ports).
func (t *Target) AddSubsystem(cfg SubsystemConfig) (*Subsystem, error) {
	if cfg.NQN == "" || cfg.NQN == nvme.DiscoveryNQN {
		return nil, fmt.Errorf("add subsystem %q: bad NQN", cfg.NQN)
	}
	if err := checkNQN(cfg.NQN); err != nil {
		return nil, fmt.Errorf("add subsystem: %w", err)
	}
	if cfg.CntlIDMin == 0 && cfg.CntlIDMax == 0 {
		cfg.CntlIDMin, cfg.CntlIDMax = 1, MaxCNTLID
	}
	if cfg.CntlIDMin < 1 || cfg.CntlIDMax > MaxCNTLID || cfg.CntlIDMin > cfg.CntlIDMax {
		return nil, fmt.Errorf("add subsystem %s: cntlid range %d..%d not within 1..%d", cfg.NQN, cfg.CntlIDMin, cfg.CntlIDMax, MaxCNTLID)
	}
	if cfg.MaxIOQueues <= 0 {
		cfg.MaxIOQueues = DefaultMaxIOQueues
	}
	if cfg.Model == "" {
		cfg.Model = "Linux"
	}
	if cfg.Firmware == "" {
		cfg.Firmware = "1.0"
	}
	if cfg.Serial == "" {
		cfg.Serial = fmt.Sprintf("%016x", fnv64(cfg.NQN))[:16]
	}
	cfg.Hosts = slices.Clone(cfg.Hosts)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if _, ok := t.subsystems[cfg.NQN]; ok {
		return nil, fmt.Errorf("add subsystem %s: %w", cfg.NQN, ErrExists)
	}
	s := newSubsystem(t, cfg, false)
	t.subsystems[cfg.NQN] = s
	t.log.Info("subsystem added", "nqn", cfg.NQN)
	return s, nil
}

// AddPort creates a port and starts listening at once.
func (t *Target) AddPort(cfg PortConfig) (*Port, error) {
	if cfg.MaxH2CData == 0 {
		cfg.MaxH2CData = DefaultMaxH2CData
	}
	if cfg.MaxH2CData < 4096 || cfg.MaxH2CData%4 != 0 {
		return nil, fmt.Errorf("add port %d: MaxH2CData %d must be at least 4096 and a multiple of 4", cfg.ID, cfg.MaxH2CData)
	}
	switch {
	case cfg.InCapsule == 0:
		cfg.InCapsule = DefaultInCapsule
	case cfg.InCapsule < 0:
		cfg.InCapsule = 0
	case cfg.InCapsule > MaxInCapsule:
		return nil, fmt.Errorf("add port %d: in-capsule size %d above %d", cfg.ID, cfg.InCapsule, MaxInCapsule)
	}
	if cfg.MaxQueueSize == 0 {
		cfg.MaxQueueSize = DefaultQueueSize
	}
	if cfg.MaxQueueSize < 2 || cfg.MaxQueueSize > 65536 {
		return nil, fmt.Errorf("add port %d: queue size %d out of range", cfg.ID, cfg.MaxQueueSize)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	p := newPort(t, cfg)
	for g, st := range cfg.ANAStates {
		if g < 1 || g > MaxANAGroups {
			return nil, fmt.Errorf("add port %d: ANA group %d not in 1..%d", cfg.ID, g, MaxANAGroups)
		}
		if !validANAState(st) {
			return nil, fmt.Errorf("add port %d: ANA group %d: bad state %d", cfg.ID, g, st)
		}
		p.ana[g].Store(uint32(st))
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if _, ok := t.ports[cfg.ID]; ok {
		t.mu.Unlock()
		return nil, fmt.Errorf("add port %d: %w", cfg.ID, ErrExists)
	}
	t.ports[cfg.ID] = p
	t.mu.Unlock()
	if err := p.StartListening(); err != nil {
		t.mu.Lock()
		delete(t.ports, cfg.ID)
		t.mu.Unlock()
		return nil, err
	}
	t.discChanged()
	return p, nil
}

// RemovePort stops a port and closes its connections.
func (t *Target) RemovePort(id uint16) error {
	t.mu.Lock()
	p := t.ports[id]
	delete(t.ports, id)
	t.mu.Unlock()
	if p == nil {
		return fmt.Errorf("remove port %d: %w", id, ErrNotFound)
	}
	p.close()
	t.discChanged()
	return nil
}

func validANAState(s nvme.ANAState) bool {
	switch s {
	case nvme.ANAOptimized, nvme.ANANonOptimized, nvme.ANAInaccessible, nvme.ANAPersistentLoss, nvme.ANAChange:
		return true
	}
	return false
}

// discChanged bumps the discovery log generation counter and sends a
// discovery-change AEN to every discovery controller.
func (t *Target) discChanged() {
	t.discGen.Add(1)
	for _, c := range t.disc.controllers() {
		c.postEvent(nvme.AENDiscoveryChange, nvme.AENCfgDiscoveryChange)
	}
}

// discoveryLog builds the discovery log a host sees: one entry per (port,
// subsystem) link of the whole target, for subsystems the host may access,
// ordered by port ID and NQN, then the referrals. (The Linux target lists
// only the links of the port the host is connected to; listing every port
// lets one discovery read find every path.)
// SetDiscoveryAllPorts makes discovery logs list the subsystems and
// referrals of every port, not only of the port the discovery controller
// is connected through (nvmet's scope), so that one discovery finds every
// path (the demo does this).
func (t *Target) SetDiscoveryAllPorts(on bool) {
	t.discAll.Store(on)
	t.discGen.Add(1)
}

// discoveryLog is what nvmet lists to hostNQN on port cur: the discovery
// subsystem itself (subtype 3, current discovery subsystem), then the
// subsystems linked to cur that the host may use, then cur's referrals;
// every port in turn with SetDiscoveryAllPorts.
func (t *Target) discoveryLog(hostNQN string, cur *Port) *nvme.DiscoveryLog {
	l := &nvme.DiscoveryLog{GenCtr: t.discGen.Load()}
	entry := func(p *Port, subType uint8, nqn string) nvme.DiscoveryLogEntry {
		host, svc, adrfam := p.discAddr()
		return nvme.DiscoveryLogEntry{
			TrType: nvme.TrTypeTCP, AdrFam: adrfam, SubType: subType,
			TReq: p.cfg.TReq | nvme.TReqDisableSQFlow, PortID: p.id, CNTLID: 0xFFFF,
			ASQSZ: aqDepth, TrSvcID: svc, SubNQN: nqn, TrAddr: host,
		}
	}
	l.Entries = append(l.Entries, entry(cur, nvme.SubTypeCurrentDiscovery, nvme.DiscoveryNQN))
	all := t.discAll.Load()
	for _, p := range t.Ports() {
		if p != cur && !all {
			continue
		}
		for _, s := range p.linked() {
			if !s.hostAllowed(hostNQN) {
				continue
			}
			l.Entries = append(l.Entries, entry(p, nvme.SubTypeNVM, s.cfg.NQN))
		}
		for _, r := range p.cfg.Referrals {
			if !r.Enabled {
				continue
			}
			l.Entries = append(l.Entries, nvme.DiscoveryLogEntry{
				TrType: nvme.TrTypeTCP, AdrFam: r.AdrFam, SubType: nvme.SubTypeReferral,
				TReq: r.TReq, PortID: r.PortID, CNTLID: 0xFFFF, ASQSZ: aqDepth,
				TrSvcID: r.TrSvcID, SubNQN: nvme.DiscoveryNQN, TrAddr: r.TrAddr,
			})
		}
	}
	l.NumRec = uint64(len(l.Entries))
	return l
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Subsystem is an NVM subsystem (or the discovery subsystem).
type Subsystem struct {
	t         *Target
	cfg       SubsystemConfig
	discovery bool

	nsTab atomic.Pointer[nsTable] // copy-on-write, read without locks

	mu     sync.Mutex
	ctrls  map[uint16]*Controller
	hosts  map[string]bool
	strict bool // allow_any_host set off at run time: an empty hosts list admits nobody
	// disabled namespaces (nvmet's enable = 0): kept with their data, out
	// of the active list.
	disabled map[uint32]*Namespace
}

type nsTable struct {
	byID  map[uint32]*Namespace
	order []*Namespace // ascending NSID
}

func newSubsystem(t *Target, cfg SubsystemConfig, discovery bool) *Subsystem {
	s := &Subsystem{t: t, cfg: cfg, discovery: discovery, ctrls: map[uint16]*Controller{}, hosts: map[string]bool{}}
	for _, h := range cfg.Hosts {
		s.hosts[h] = true
	}
	s.nsTab.Store(&nsTable{byID: map[uint32]*Namespace{}})
	return s
}

// NQN returns the subsystem NQN.
func (s *Subsystem) NQN() string { return s.cfg.NQN }

func (s *Subsystem) hostAllowed(hostNQN string) bool {
	if s.discovery {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.anyHostLocked() || s.hosts[hostNQN]
}

// anyHostLocked: allow_any_host, or (unless set off at run time) an empty
// host list.
func (s *Subsystem) anyHostLocked() bool {
	return s.cfg.AllowAnyHost || (!s.strict && len(s.hosts) == 0)
}

// SetAllowAnyHost is nvmet's attr_allow_any_host: true lets every host
// connect (and none authenticates); false admits only the allowed hosts,
// none while the list is empty, as in Linux. Existing controllers stay.
func (s *Subsystem) SetAllowAnyHost(on bool) {
	s.mu.Lock()
	s.cfg.AllowAnyHost, s.strict = on, !on
	s.mu.Unlock()
}

// AllowAnyHost reports attr_allow_any_host.
func (s *Subsystem) AllowAnyHost() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.anyHostLocked()
}

// DisallowHost removes a host NQN from the allowed hosts.
func (s *Subsystem) DisallowHost(hostNQN string) {
	s.mu.Lock()
	delete(s.hosts, hostNQN)
	s.mu.Unlock()
	s.t.discChanged()
}

// AllowedHosts returns the allowed host NQNs, sorted.
func (s *Subsystem) AllowedHosts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.hosts))
}

// AllowHost adds a host NQN to the allowed hosts.
func (s *Subsystem) AllowHost(hostNQN string) {
	s.mu.Lock()
	s.hosts[hostNQN] = true
	s.mu.Unlock()
	s.t.discChanged()
}

func (s *Subsystem) namespace(nsid uint32) *Namespace { return s.nsTab.Load().byID[nsid] }

func (s *Subsystem) namespaces() []*Namespace { return s.nsTab.Load().order }

func (s *Subsystem) controllers() []*Controller {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := make([]*Controller, 0, len(s.ctrls))
	for _, c := range s.ctrls {
		cs = append(cs, c)
	}
	return cs
}

// Namespace returns the namespace nsid, or nil.
func (s *Subsystem) Namespace(nsid uint32) *Namespace { return s.namespace(nsid) }

// AddNamespace adds a namespace; connected controllers get a
// namespace-attribute-changed AEN.
func (s *Subsystem) AddNamespace(cfg NamespaceConfig) (*Namespace, error) {
	if s.discovery {
		return nil, errors.New("add namespace: discovery subsystem")
	}
	if cfg.NSID < 1 || cfg.NSID > MaxNSID {
		return nil, fmt.Errorf("add namespace %d: NSID not in 1..%d", cfg.NSID, MaxNSID)
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = 512
	}
	if cfg.BlockSize != 512 && cfg.BlockSize != 4096 {
		return nil, fmt.Errorf("add namespace %d: block size %d is not 512 or 4096", cfg.NSID, cfg.BlockSize)
	}
	if cfg.ANAGroup == 0 {
		cfg.ANAGroup = 1
	}
	if cfg.ANAGroup > MaxANAGroups {
		return nil, fmt.Errorf("add namespace %d: ANA group %d not in 1..%d", cfg.NSID, cfg.ANAGroup, MaxANAGroups)
	}
	ns := &Namespace{s: s, cfg: cfg, nsid: cfg.NSID, bs: int64(cfg.BlockSize)}
	ns.anaGroup.Store(cfg.ANAGroup)
	if cfg.Path == "" {
		if cfg.Size <= 0 || cfg.Size%int64(cfg.BlockSize) != 0 {
			return nil, fmt.Errorf("add namespace %d: size %d is not a positive multiple of %d", cfg.NSID, cfg.Size, cfg.BlockSize)
		}
		st, err := newRAMStore(cfg.Size)
		if err != nil {
			return nil, fmt.Errorf("add namespace %d: %w", cfg.NSID, err)
		}
		ns.ram, ns.capacity = st, cfg.Size
	} else {
		st, err := openFileStore(cfg.Path, cfg.Size)
		if err != nil {
			return nil, fmt.Errorf("add namespace %d: %w", cfg.NSID, err)
		}
		ns.file, ns.capacity = st, st.size/int64(cfg.BlockSize)*int64(cfg.BlockSize)
		if ns.capacity == 0 {
			st.close()
			return nil, fmt.Errorf("add namespace %d: %s is smaller than one block", cfg.NSID, cfg.Path)
		}
	}
	ns.size.Store(ns.capacity)
	ns.blocks.Store(uint64(ns.capacity / ns.bs))
	ns.ids.Store(&nvme.NamespaceIDs{EUI64: cfg.EUI64, NGUID: cfg.NGUID, UUID: cfg.UUID, CSI: nvme.CSINVM})
	s.mu.Lock()
	old := s.nsTab.Load()
	if _, ok := old.byID[cfg.NSID]; ok || s.disabled[cfg.NSID] != nil {
		s.mu.Unlock()
		if ns.file != nil {
			ns.file.close()
		}
		return nil, fmt.Errorf("add namespace %d: %w", cfg.NSID, ErrExists)
	}
	s.nsTab.Store(old.with(ns, nil))
	s.mu.Unlock()
	s.nsChanged(cfg.NSID)
	return ns, nil
}

// RemoveNamespace removes a namespace; connected controllers get a
// namespace-attribute-changed AEN.
func (s *Subsystem) RemoveNamespace(nsid uint32) error {
	s.mu.Lock()
	old := s.nsTab.Load()
	ns, ok := old.byID[nsid]
	if !ok {
		if ns = s.disabled[nsid]; ns == nil {
			s.mu.Unlock()
			return fmt.Errorf("remove namespace %d: %w", nsid, ErrNotFound)
		}
		delete(s.disabled, nsid)
		s.mu.Unlock()
		if ns.file != nil {
			return ns.file.close()
		}
		return nil
	}
	s.nsTab.Store(old.with(nil, ns))
	s.mu.Unlock()
	s.nsChanged(nsid)
	if ns.file != nil {
		return ns.file.close()
	}
	return nil
}

// SetNamespaceEnabled is nvmet's namespaces/N/enable: false takes the
// namespace out of the active list, keeping it and its data; true puts it
// back. A change raises the namespace-attribute-changed AEN.
func (s *Subsystem) SetNamespaceEnabled(nsid uint32, on bool) error {
	s.mu.Lock()
	old := s.nsTab.Load()
	active, dis := old.byID[nsid], s.disabled[nsid]
	switch {
	case active == nil && dis == nil:
		s.mu.Unlock()
		return fmt.Errorf("namespace %d: %w", nsid, ErrNotFound)
	case on && dis != nil:
		delete(s.disabled, nsid)
		s.nsTab.Store(old.with(dis, nil))
	case !on && active != nil:
		if s.disabled == nil {
			s.disabled = map[uint32]*Namespace{}
		}
		s.disabled[nsid] = active
		s.nsTab.Store(old.with(nil, active))
	default:
		s.mu.Unlock()
		return nil // no change
	}
	s.mu.Unlock()
	s.nsChanged(nsid)
	return nil
}

// DisabledNamespace returns the disabled namespace nsid, or nil.
func (s *Subsystem) DisabledNamespace(nsid uint32) *Namespace {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.disabled[nsid]
}

// DisabledNamespaces returns the NSIDs of the disabled namespaces.
func (s *Subsystem) DisabledNamespaces() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]uint32, 0, len(s.disabled))
	for id := range s.disabled {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (tab *nsTable) with(add, del *Namespace) *nsTable {
	n := &nsTable{byID: make(map[uint32]*Namespace, len(tab.byID)+1)}
	for id, ns := range tab.byID {
		if ns != del {
			n.byID[id] = ns
		}
	}
	if add != nil {
		n.byID[add.nsid] = add
	}
	for _, ns := range n.byID {
		n.order = append(n.order, ns)
	}
	sort.Slice(n.order, func(i, j int) bool { return n.order[i].nsid < n.order[j].nsid })
	return n
}

func (s *Subsystem) nsChanged(nsid uint32) {
	for _, c := range s.controllers() {
		c.nsChanged(nsid)
	}
}

// allocCNTLID returns the lowest free controller ID and registers c under
// it (0: none free).
func (s *Subsystem) allocCNTLID(c *Controller) uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	lo, hi := s.cfg.CntlIDMin, s.cfg.CntlIDMax
	if s.discovery {
		lo, hi = 1, MaxCNTLID
	}
	for id := uint32(lo); id <= uint32(hi); id++ {
		if _, used := s.ctrls[uint16(id)]; !used {
			s.ctrls[uint16(id)] = c
			return uint16(id)
		}
	}
	return 0
}

func (s *Subsystem) removeController(c *Controller) {
	s.mu.Lock()
	if s.ctrls[c.cntlid] == c {
		delete(s.ctrls, c.cntlid)
	}
	s.mu.Unlock()
}

func (s *Subsystem) controller(id uint16) *Controller {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctrls[id]
}

// StartFirmwareActivation simulates the start of a firmware activation:
// every controller sets CSTS.PP (processing paused) and raises the
// Firmware Activation Starting notice (for hosts that enabled it) until
// EndFirmwareActivation.
func (s *Subsystem) StartFirmwareActivation() {
	for _, c := range s.controllers() {
		c.mu.Lock()
		c.csts |= fabrics.CSTSPP
		c.mu.Unlock()
		c.postEvent(nvme.AENFWActivation, nvme.AENCfgFWActivation)
	}
}

// EndFirmwareActivation clears CSTS.PP on every controller.
func (s *Subsystem) EndFirmwareActivation() {
	for _, c := range s.controllers() {
		c.mu.Lock()
		c.csts &^= fabrics.CSTSPP
		c.mu.Unlock()
	}
}

// Controllers returns the subsystem's live controllers.
func (s *Subsystem) Controllers() []*Controller { return s.controllers() }

// Namespace is a namespace of a subsystem.
type Namespace struct {
	s        *Subsystem
	cfg      NamespaceConfig
	nsid     uint32
	bs       int64
	size     atomic.Int64  // bytes (Resize changes it)
	blocks   atomic.Uint64 // size / bs
	capacity int64         // the largest size the backing store holds
	ids      atomic.Pointer[nvme.NamespaceIDs]
	ram      *ramStore
	file     *fileStore
	anaGroup atomic.Uint32
	resv     reservations
}

// NSID returns the namespace ID.
func (ns *Namespace) NSID() uint32 { return ns.nsid }

// Size returns the size in bytes.
func (ns *Namespace) Size() int64 { return ns.size.Load() }

// Resize changes the namespace's size (a multiple of the block size, at
// most what the backing store holds: a RAM namespace's initial size, a
// file's size); every controller gets a namespace-attribute-changed AEN.
func (ns *Namespace) Resize(size int64) error {
	if size <= 0 || size%ns.bs != 0 || size > ns.capacity {
		return fmt.Errorf("resize namespace %d: size %d is not a multiple of %d in 1..%d", ns.nsid, size, ns.bs, ns.capacity)
	}
	ns.size.Store(size)
	ns.blocks.Store(uint64(size / ns.bs))
	ns.s.nsChanged(ns.nsid)
	return nil
}

// SetIDs changes the namespace's UUID, NGUID and EUI-64 (a different
// namespace now behind the same NSID); every controller gets a
// namespace-attribute-changed AEN.
func (ns *Namespace) SetIDs(uuid, nguid [16]byte, eui64 [8]byte) {
	ns.ids.Store(&nvme.NamespaceIDs{EUI64: eui64, NGUID: nguid, UUID: uuid, CSI: nvme.CSINVM})
	ns.s.nsChanged(ns.nsid)
}

// BlockSize returns the logical block size.
func (ns *Namespace) BlockSize() int { return int(ns.bs) }

// ANAGroup returns the namespace's ANA group.
func (ns *Namespace) ANAGroup() uint32 { return ns.anaGroup.Load() }

// IDs returns the namespace identifiers.
func (ns *Namespace) IDs() nvme.NamespaceIDs {
	return *ns.ids.Load()
}

// SetANAGroup moves the namespace to another ANA group; every controller of
// the subsystem gets an ANA-change AEN.
func (ns *Namespace) SetANAGroup(g uint32) error {
	if g < 1 || g > MaxANAGroups {
		return fmt.Errorf("set ANA group: %d not in 1..%d", g, MaxANAGroups)
	}
	ns.anaGroup.Store(g)
	ns.s.t.anaChg.Add(1)
	for _, c := range ns.s.controllers() {
		c.postEvent(nvme.AENANAChange, nvme.AENCfgANAChange)
	}
	return nil
}

// ReadAt copies namespace data into p (for tests and tools; not the
// network path).
func (ns *Namespace) ReadAt(p []byte, off int64) (int, error) {
	size := ns.size.Load()
	if off < 0 || off > size {
		return 0, fmt.Errorf("read at %d: out of range", off)
	}
	n := min(int64(len(p)), size-off)
	if ns.ram != nil {
		ns.ram.readAt(p[:n], off)
		return int(n), nil
	}
	return int(n), ns.file.readAt(p[:n], off)
}

// WriteAt copies p into the namespace (for tests and tools).
func (ns *Namespace) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > ns.size.Load() {
		return 0, fmt.Errorf("write at %d+%d: out of range", off, len(p))
	}
	if ns.ram != nil {
		ns.ram.writeAt(p, off)
		return len(p), nil
	}
	return len(p), ns.file.writeAt(p, off)
}

// deadline helper for tests of timers.
func katoRound(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + time.Second - 1) / time.Second * time.Second
}

// discAddr returns traddr, trsvcid and adrfam of the port for the
// discovery log.
func (p *Port) discAddr() (string, string, uint8) {
	a := p.Addr()
	if a == nil {
		host, svc, _ := net.SplitHostPort(p.cfg.Addr)
		return host, svc, nvme.AdrFamIPv4
	}
	fam := uint8(nvme.AdrFamIPv4)
	if a.IP.To4() == nil {
		fam = nvme.AdrFamIPv6
	}
	return a.IP.String(), fmt.Sprint(a.Port), fam
}

// Namespaces returns the subsystem's namespaces in NSID order.
func (s *Subsystem) Namespaces() []*Namespace { return slices.Clone(s.namespaces()) }

// Config returns the subsystem's configuration (with defaults filled in).
func (s *Subsystem) Config() SubsystemConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cfg
	c.Hosts = make([]string, 0, len(s.hosts))
	for h := range s.hosts {
		c.Hosts = append(c.Hosts, h)
	}
	sort.Strings(c.Hosts)
	return c
}

// Config returns the namespace's configuration.
func (ns *Namespace) Config() NamespaceConfig { return ns.cfg }
