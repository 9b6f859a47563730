package mpath

import (
	"sync"
	"sync/atomic"
	"time"
)

// path flags owned by mpath (the driver's own state is behind PathDriver).
const (
	flagNotReady   uint32 = 1 << iota // capacity/block size differ from the head's (NS_READY clear)
	flagANAPending                    // failed with an ANA error; waiting for Changed
	flagRemoved                       // RemovePath was called
)

// Cached driver classes, bits 8-9 of Path.word, refreshed by Changed.
const (
	clsOptimized uint32 = iota
	clsNonOptimized
	clsUnusable

	clsShift  = 8
	clsMask   = 3 << clsShift
	flagsMask = 1<<clsShift - 1
)

// Path is one controller's view of a head's namespace.
type Path struct {
	// word holds the mpath flags (low byte) and the driver's class as of the last
	// Changed (bits 8-9, a scan hint only), so a scan reads one word per path.
	word  atomic.Uint32
	idx   atomic.Int32 // index in the head's current snapshot, a hint for round-robin
	clsMu sync.Mutex   // orders refreshes of the class

	drv  PathDriver
	ctrl *Controller
	head *Head
	name string
	info atomic.Pointer[HeadInfo]

	stats    ioStats
	readLat  readLatency
	failover atomic.Uint64
	retry    atomic.Uint64
	errors   atomic.Uint64
}

// Name returns the path name (e.g. "nvme0c1n1").
func (p *Path) Name() string { return p.name }

// Controller returns the controller the path goes through.
func (p *Path) Controller() *Controller { return p.ctrl }

// Head returns the head the path belongs to.
func (p *Path) Head() *Head { return p.head }

// Driver returns the path's driver.
func (p *Path) Driver() PathDriver { return p.drv }

// Info returns the geometry reported through this path.
func (p *Path) Info() HeadInfo { return *p.info.Load() }

// Ready reports that the path's geometry matches its head's (the kernel's NS_READY).
// A path that is not ready is never selected.
func (p *Path) Ready() bool { return p.word.Load()&flagNotReady == 0 }

// ANAPending reports that the path failed with an ANA error and the driver has not
// called Changed since.
func (p *Path) ANAPending() bool { return p.word.Load()&flagANAPending != 0 }

// Usable reports whether path selection may pick the path right now: it is ready,
// not ANA-pending, not removed, not Disabled and optimized or non-optimized.
func (p *Path) Usable() bool {
	_, ok := p.state()
	return ok
}

// state returns the access state and whether the path is usable. This is the one
// predicate shared by every policy (nvme_path_is_disabled plus the ANA check).
func (p *Path) state() (AccessState, bool) {
	if p.word.Load()&flagsMask != 0 {
		return StateOther, false
	}
	st := p.drv.AccessState()
	if st >= StateOther || p.drv.Disabled() {
		return st, false
	}
	return st, true
}

// Stats returns the path's I/O statistics (one I/O per submission attempt).
func (p *Path) Stats() IOStat { return p.stats.snapshot() }

// Latencies returns the path's latency histograms (one sample per
// submission attempt).
func (p *Path) Latencies() Latencies { return p.stats.latencies() }

// Counters returns the path's diag/ counters.
func (p *Path) Counters() PathCounters {
	return PathCounters{
		FailoverCount: p.failover.Load(),
		RetryCount:    p.retry.Load(),
		ErrorCount:    p.errors.Load(),
	}
}

// SetCounter sets one diag/ counter by its sysfs name (multipath_failover_count,
// command_retries_count, command_error_count), as writing the file does in
// Linux; it reports false for another name.
func (p *Path) SetCounter(name string, v uint64) bool {
	switch name {
	case "multipath_failover_count":
		p.failover.Store(v)
	case "command_retries_count":
		p.retry.Store(v)
	case "command_error_count":
		p.errors.Store(v)
	default:
		return false
	}
	return true
}

// Changed must be called by the driver after any change of the path's access state,
// controller state, or availability. It clears the ANA-pending mark, drops cached
// current paths of the head so selection re-runs, and wakes requests queued for
// lack of a usable path.
func (p *Path) Changed() {
	p.refresh()
	p.word.And(^flagANAPending)
	h := p.head
	h.clearCache()
	h.wake()
}

// Refreshed is Changed without clearing the ANA-pending mark: the driver's
// controller state changed, but no ANA log read vouched for the path's ANA state
// (the kernel clears NVME_NS_ANA_PENDING only when a log read lists the namespace).
func (p *Path) Refreshed() {
	p.refresh()
	h := p.head
	h.clearCache()
	h.wake()
}

// SetANAPending marks the path ANA-pending (not usable until Changed), as after an
// ANA error or when its ANA group is missing from the log; the driver re-reads the
// log.
func (p *Path) SetANAPending() {
	p.word.Or(flagANAPending)
	p.head.clearPath(p)
}

// UpdateInfo records new geometry reported through this path (after a rescan or
// resize) and revalidates the head like nvme_mpath_revalidate_paths: the head takes
// this geometry, and every path whose geometry differs is marked not ready.
func (p *Path) UpdateInfo(info HeadInfo) {
	p.info.Store(&info)
	p.head.revalidate(info)
}

// refresh re-reads the driver's state into the class hint. The mutex makes the
// last refresh to run store what the driver said last.
func (p *Path) refresh() {
	p.clsMu.Lock()
	c := clsUnusable
	if st := p.drv.AccessState(); !p.drv.Disabled() {
		switch st {
		case StateOptimized:
			c = clsOptimized
		case StateNonOptimized:
			c = clsNonOptimized
		}
	}
	for {
		old := p.word.Load()
		if p.word.CompareAndSwap(old, old&^clsMask|c<<clsShift) {
			break
		}
	}
	p.clsMu.Unlock()
}

// NUMANodes returns the NUMA nodes whose cached current path is p, ascending (the
// kernel's per-path numa_nodes attribute). NoNode and nodes beyond MaxNodes-2 are
// not reported.
func (p *Path) NUMANodes() []int {
	var nodes []int
	h := p.head
	for i := 1; i < MaxNodes; i++ {
		if h.current[i].Load() == p {
			nodes = append(nodes, i-1)
		}
	}
	return nodes
}

// Bounds of a read's silence deadline (Request.SilentAfter).
const (
	// SilentReadMin is the shortest silence after which a read is re-sent
	// elsewhere: well above loopback and LAN service times, and short
	// enough that a read survives a silent path in well under 300 ms.
	SilentReadMin = 100 * time.Millisecond
	// SilentReadMax caps the deadline of a path with slow reads: past it
	// a read is re-sent even on a slow path, as long as the path's queue
	// received nothing at all meanwhile.
	SilentReadMax = time.Second
)

// readLatency tracks a path's read service time like TCP's RTO estimator
// (RFC 6298): an EWMA of the samples (1/8) and of their deviation (1/4).
// Updates race benignly: concurrent samples may overwrite each other.
type readLatency struct {
	srtt, rttvar atomic.Int64 // ns
}

func (l *readLatency) observe(d int64) {
	s := l.srtt.Load()
	if s == 0 {
		l.srtt.Store(max(d, 1))
		l.rttvar.Store(d / 2)
		return
	}
	v := l.rttvar.Load()
	dev := s - d
	if dev < 0 {
		dev = -dev
	}
	l.rttvar.Store(v + (dev-v)/4)
	l.srtt.Store(max(s+(d-s)/8, 1))
}

// SilentAfter is the path's read silence deadline: 4 × (SRTT + 4 ×
// RTTVAR) — four times a conservative p99 of its read service time —
// within [SilentReadMin, SilentReadMax].
func (p *Path) SilentAfter() time.Duration {
	l := &p.readLat
	d := time.Duration(4 * (l.srtt.Load() + 4*l.rttvar.Load()))
	return min(max(d, SilentReadMin), SilentReadMax)
}
