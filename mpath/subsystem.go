package mpath

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/clock"
)

// SubsystemConfig configures a Subsystem. Start from DefaultSubsystemConfig: its
// zero value has FenceWrites off.
type SubsystemConfig struct {
	NQN    string
	Policy IOPolicy
	// Logger receives the kernel-style lines ("subsysnqn ... iopolicy changed ...",
	// "no usable path - requeuing I/O", ...). Heads log through Logger.Named(head name).
	// Nil discards.
	Logger hclog.Logger
	// FenceWrites makes a failed-over in-doubt write wait for Fencer.Fence before it
	// is resubmitted on another path. DefaultSubsystemConfig sets it.
	FenceWrites bool
	// OnHeadAdded and OnHeadRemoved are called, serialized and in order, when a head
	// appears (first AddPath for its NSID) and goes (last path removed, after the
	// delayed removal). They must not call AddPath, RemovePath or SetIOPolicy.
	OnHeadAdded, OnHeadRemoved func(*Head)
	// Clock defaults to SystemClock().
	Clock Clock
	// HeadName names a new head; the default is "n<NSID>".
	HeadName func(Identity) string
	// Distance is the NUMA distance between two known nodes for the numa policy;
	// the default is the kernel's 10 for the same node and 20 otherwise.
	Distance func(from, to int) int
}

// DefaultSubsystemConfig returns a config for nqn with the numa policy and
// FenceWrites on.
func DefaultSubsystemConfig(nqn string) SubsystemConfig {
	return SubsystemConfig{NQN: nqn, Policy: PolicyNUMA, FenceWrites: true}
}

// Subsystem groups the heads of one NVM subsystem and owns their iopolicy.
type Subsystem struct {
	policy   atomic.Uint32
	fence    atomic.Bool
	sysClock bool
	clock    Clock
	epoch    time.Time

	nqn       string
	log       hclog.Logger
	onAdded   func(*Head)
	onRemoved func(*Head)
	headName  func(Identity) string
	distance  func(from, to int) int

	cbMu  sync.Mutex // serializes membership changes and the callbacks they make
	mu    sync.Mutex // protects heads, Head.paths/removal
	heads map[uint32]*Head
}

// NewSubsystem returns an empty subsystem.
func NewSubsystem(cfg SubsystemConfig) *Subsystem {
	s := &Subsystem{
		nqn:       cfg.NQN,
		log:       cfg.Logger,
		clock:     cfg.Clock,
		onAdded:   cfg.OnHeadAdded,
		onRemoved: cfg.OnHeadRemoved,
		headName:  cfg.HeadName,
		distance:  cfg.Distance,
		heads:     make(map[uint32]*Head),
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.clock == nil {
		s.clock = SystemClock()
	}
	if s.headName == nil {
		s.headName = func(id Identity) string { return "n" + strconv.FormatUint(uint64(id.NSID), 10) }
	}
	if cfg.Policy < numPolicies {
		s.policy.Store(uint32(cfg.Policy))
	}
	s.fence.Store(cfg.FenceWrites)
	s.sysClock = clock.IsSystem(s.clock)
	s.epoch = s.clock.Now()
	return s
}

// nanotime is the subsystem's monotonic time in ns. With the system clock it is
// time.Since, which reads only the monotonic clock (one vDSO call, not two).
func (s *Subsystem) nanotime() int64 {
	if s.sysClock {
		return int64(time.Since(s.epoch))
	}
	return int64(s.clock.Now().Sub(s.epoch))
}

// NQN returns the subsystem NQN.
func (s *Subsystem) NQN() string { return s.nqn }

// IOPolicy returns the current policy.
func (s *Subsystem) IOPolicy() IOPolicy { return IOPolicy(s.policy.Load()) }

// SetIOPolicy changes the policy of every head. On a change it clears every cached
// current path and logs "subsysnqn <nqn> iopolicy changed from <old> to <new>".
// Invalid values are ignored.
func (s *Subsystem) SetIOPolicy(p IOPolicy) {
	if p >= numPolicies {
		return
	}
	old := IOPolicy(s.policy.Swap(uint32(p)))
	if old == p {
		return
	}
	for _, h := range s.Heads() {
		h.clearCache()
	}
	s.log.Info(fmt.Sprintf("subsysnqn %s iopolicy changed from %s to %s", s.nqn, old, p))
}

// FenceWrites reports whether failed-over in-doubt writes wait for Fencer.Fence.
func (s *Subsystem) FenceWrites() bool { return s.fence.Load() }

// SetFenceWrites turns the write fence on or off.
func (s *Subsystem) SetFenceWrites(on bool) { s.fence.Store(on) }

// Heads returns the live heads (including those waiting for delayed removal),
// ordered by NSID.
func (s *Subsystem) Heads() []*Head {
	s.mu.Lock()
	hs := make([]*Head, 0, len(s.heads))
	for _, h := range s.heads {
		hs = append(hs, h)
	}
	s.mu.Unlock()
	sort.Slice(hs, func(i, j int) bool { return hs[i].id.NSID < hs[j].id.NSID })
	return hs
}

// Head returns the head for nsid, or nil.
func (s *Subsystem) Head(nsid uint32) *Head {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heads[nsid]
}

// AddPath adds drv, controller ctrl's view of namespace id, as a path named name.
// It joins the head for id.NSID or creates it (OnHeadAdded). It refuses a path whose
// identity differs from the head's ("IDs don't match for shared namespace %d",
// ErrIDMismatch), a new head whose UUID, NGUID or EUI64 another head already has
// ("duplicate IDs in subsystem for nsid %d", ErrDuplicateIDs), and a second path of
// the same controller (ErrDuplicatePath). A path whose geometry differs from the
// head's is added but not ready (never selected). A path joining a head waiting for
// delayed removal cancels the removal. Queued requests are re-driven.
func (s *Subsystem) AddPath(id Identity, info HeadInfo, name string, ctrl *Controller, drv PathDriver) (*Path, error) {
	if ctrl == nil || drv == nil {
		return nil, fmt.Errorf("mpath: AddPath %s: nil controller or driver: %w", name, ErrInvalid)
	}
	p := &Path{drv: drv, ctrl: ctrl, name: name}
	p.info.Store(&info)
	p.refresh()

	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	s.mu.Lock()
	h := s.heads[id.NSID]
	created := false
	if h == nil {
		if s.duplicateIDs(id) {
			s.mu.Unlock()
			err := &refusal{fmt.Sprintf("duplicate IDs in subsystem for nsid %d", id.NSID), ErrDuplicateIDs}
			s.log.Named(ctrl.name).Error(err.Error())
			return nil, err
		}
		h = s.newHead(id, info)
		s.heads[id.NSID] = h
		created = true
	} else {
		if h.id != id {
			s.mu.Unlock()
			err := &refusal{fmt.Sprintf("IDs don't match for shared namespace %d", id.NSID), ErrIDMismatch}
			s.log.Named(ctrl.name).Error(err.Error())
			return nil, err
		}
		for _, q := range h.paths {
			if q.ctrl == ctrl {
				s.mu.Unlock()
				return nil, fmt.Errorf("mpath: %s: controller %s already has path %s: %w", h.name, ctrl.name, q.name, ErrDuplicatePath)
			}
		}
		if h.removal != nil {
			h.removal.Stop()
			h.removal = nil
		}
		h.removalGen++ // a removal timer that already fired finds it outdated
	}
	p.head = h
	if info != h.Info() {
		p.word.Or(flagNotReady)
	}
	h.paths = append(h.paths, p)
	h.publish()
	s.mu.Unlock()

	ctrl.addPath(p)
	if created && s.onAdded != nil {
		s.onAdded(h)
	}
	h.wake()
	return p, nil
}

func (s *Subsystem) newHead(id Identity, info HeadInfo) *Head {
	h := &Head{sub: s, id: id}
	h.name = s.headName(id)
	h.log = s.log.Named(h.name)
	h.info.Store(&info)
	h.set.Store(&pathSet{})
	return h
}

// duplicateIDs is nvme_subsys_check_duplicate_ids. Called with s.mu held.
func (s *Subsystem) duplicateIDs(id Identity) bool {
	var zero [16]byte
	hasUUID := id.UUID != zero
	hasNGUID := id.NGUID != zero
	hasEUI := !bytes.Equal(id.EUI64[:], zero[:8])
	for _, h := range s.heads {
		if hasUUID && id.UUID == h.id.UUID ||
			hasNGUID && id.NGUID == h.id.NGUID ||
			hasEUI && id.EUI64 == h.id.EUI64 {
			return true
		}
	}
	return false
}

// RemovePath removes p from its head. When the head has no path left it is removed
// at once (OnHeadRemoved) if DelayedRemovalSecs is 0, otherwise after that many
// seconds unless a path joins meanwhile. Requests waiting for a path re-check.
// In-flight submissions on p are the driver's to finish or fail. Removing a path
// twice is a no-op.
func (s *Subsystem) RemovePath(p *Path) {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	h := p.head
	s.mu.Lock()
	if p.word.Or(flagRemoved)&flagRemoved != 0 {
		s.mu.Unlock()
		return
	}
	if i := indexOf(h.paths, p); i >= 0 {
		h.paths = append(h.paths[:i:i], h.paths[i+1:]...)
		h.publish()
	}
	h.clearPath(p)
	removeNow := false
	if len(h.paths) == 0 && !h.removed.Load() {
		if d := h.delayed.Load(); d == 0 {
			s.detach(h)
			removeNow = true
		} else {
			h.removalGen++
			gen := h.removalGen
			h.removal = s.clock.AfterFunc(time.Duration(d)*time.Second, func() { s.delayedRemove(h, gen) })
		}
	}
	s.mu.Unlock()

	p.ctrl.removePath(p)
	h.wake()
	if removeNow && s.onRemoved != nil {
		s.onRemoved(h)
	}
}

// delayedRemove is the delayed_removal_secs timer: remove h unless a path came back.
func (s *Subsystem) delayedRemove(h *Head, gen uint64) {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	s.mu.Lock()
	if h.removalGen != gen || len(h.paths) > 0 || h.removed.Load() {
		s.mu.Unlock()
		return
	}
	h.removal = nil
	s.detach(h)
	s.mu.Unlock()
	h.wake()
	if s.onRemoved != nil {
		s.onRemoved(h)
	}
}

// detach marks h removed and drops it from the subsystem. Called with s.mu held.
func (s *Subsystem) detach(h *Head) {
	h.removed.Store(true)
	if s.heads[h.id.NSID] == h {
		delete(s.heads, h.id.NSID)
	}
}

// nodeDistance is the NUMA distance between two known nodes.
func (s *Subsystem) nodeDistance(from, to int) int {
	if s.distance != nil {
		return s.distance(from, to)
	}
	if from == to {
		return localDistance
	}
	return remoteDistance
}
