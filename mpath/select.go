package mpath

import "math"

// Kernel node distances (include/linux/topology.h).
const (
	localDistance  = 10
	remoteDistance = 20
)

// staleNs is how long a controller with nothing in flight keeps its service-time
// estimate; after that it scores as unmeasured, so a path that was slow once is
// probed again instead of being starved forever.
const staleNs = int64(1e9)

// selector picks a path for one I/O. Selectors are stateless values: the per-node
// cache lives in the Head and the load figures in the Controllers, so one selector
// serves every head and is called concurrently, without locks, from any goroutine.
// paths is an immutable snapshot. A selector returns one of its paths or nil, and
// never a path that was not usable (Path.state) when it looked at it.
type selector interface {
	pick(h *Head, paths []*Path, node int, bytes, now int64) *Path
}

func selectorFor(p IOPolicy) selector {
	switch p {
	case PolicyRoundRobin:
		return roundRobin{}
	case PolicyQueueDepth:
		return queueDepth{}
	case PolicyServiceTime:
		return serviceTime{}
	}
	return numa{}
}

// numa is nvme_numa_path: the cached path of the submitter's node is kept while it is
// usable and optimized; otherwise (so on every I/O while the cache holds a
// non-optimized path) __nvme_find_path rescans.
type numa struct{}

func (numa) pick(h *Head, paths []*Path, node int, _, _ int64) *Path {
	slot := h.slot(node)
	if p := slot.Load(); p != nil {
		if st, ok := p.state(); ok && st == StateOptimized {
			return p
		}
	}
	return h.findPath(paths, node, true)
}

// findPath is __nvme_find_path: the nearest optimized path, else the nearest
// non-optimized one, cached for node. Distances count only under the numa policy
// and when both nodes are known; otherwise every path is local, so the first
// usable path in list order wins.
//
// Like every full scan here it classifies paths by the class hint in Path.word (one
// atomic load) and asks the driver (Path.state) only about a path that would become the
// best so far, so the chosen path is always one the driver called usable at the
// moment of the choice, at a fraction of the cost of asking about every path.
func (h *Head) findPath(paths []*Path, node int, useDistance bool) *Path {
	foundD, fallbackD := math.MaxInt, math.MaxInt
	var found, fallback *Path
	for _, p := range paths {
		w := p.word.Load()
		if w&flagsMask != 0 {
			continue
		}
		c := w >> clsShift
		if c >= clsUnusable || (c == clsNonOptimized && found != nil) {
			continue
		}
		d := localDistance
		if useDistance && node != NoNode && p.ctrl.node != NoNode {
			d = h.sub.nodeDistance(node, p.ctrl.node)
		}
		if c == clsOptimized && d >= foundD || c == clsNonOptimized && d >= fallbackD {
			continue
		}
		st, ok := p.state()
		if !ok {
			continue
		}
		if st == StateOptimized {
			if d < foundD {
				foundD, found = d, p
			}
		} else if found == nil && d < fallbackD {
			fallbackD, fallback = d, p
		}
	}
	if found == nil {
		found = fallback
	}
	if found != nil {
		if slot := h.slot(node); slot.Load() != found {
			slot.Store(found)
		}
	}
	return found
}

// roundRobin is nvme_round_robin_path, including Martin Wilck's fallback rules.
type roundRobin struct{}

func (roundRobin) pick(h *Head, paths []*Path, node int, _, _ int64) *Path {
	slot := h.slot(node)
	old := slot.Load()
	n := len(paths)
	i := -1
	if old != nil {
		i = int(old.idx.Load())
		if i >= n || paths[i] != old {
			i = indexOf(paths, old)
		}
	}
	if i < 0 { // no current path (or it was removed)
		return h.findPath(paths, node, false)
	}
	if n == 1 {
		// The kernel returns the single path unless it is disabled; we also refuse
		// it in StateOther (state() folds that in), so no policy ever submits to
		// an inaccessible path.
		if _, ok := old.state(); ok {
			return old
		}
		return nil
	}
	var found *Path
	for k, j := 1, i+1; k < n; k, j = k+1, j+1 {
		if j == n {
			j = 0
		}
		p := paths[j]
		st, ok := p.state()
		if !ok {
			continue
		}
		if st == StateOptimized {
			slot.Store(p)
			return p
		}
		found = p // non-optimized: remember the last one seen
	}
	// Fall back to the current path if it is usable and either optimized, or
	// non-optimized with nothing else found.
	if st, ok := old.state(); ok && (st == StateOptimized || found == nil) {
		return old
	}
	if found != nil {
		slot.Store(found)
	}
	return found
}

func indexOf(paths []*Path, p *Path) int {
	for i, q := range paths {
		if q == p {
			return i
		}
	}
	return -1
}

// queueDepth is nvme_queue_depth_path: the fewest commands in flight per controller
// among optimized paths, else among non-optimized ones; no cache; an idle optimized
// path ends the scan.
type queueDepth struct{}

func (queueDepth) pick(_ *Head, paths []*Path, _ int, _, _ int64) *Path {
	minOpt, minNon := int64(math.MaxInt64), int64(math.MaxInt64)
	var bestOpt, bestNon *Path
	for _, p := range paths {
		w := p.word.Load()
		if w&flagsMask != 0 {
			continue
		}
		c := w >> clsShift
		if c >= clsUnusable {
			continue
		}
		d := p.ctrl.inflight.Load()
		if c == clsOptimized && d >= minOpt || c == clsNonOptimized && (bestOpt != nil || d >= minNon) {
			continue
		}
		st, ok := p.state() // a candidate: ask the driver (see findPath)
		if !ok {
			continue
		}
		if st == StateOptimized {
			if d >= minOpt {
				continue
			}
			minOpt, bestOpt = d, p
			if d <= 0 {
				return p
			}
		} else if bestOpt == nil && d < minNon {
			minNon, bestNon = d, p
		}
	}
	if bestOpt != nil {
		return bestOpt
	}
	return bestNon
}

// serviceTime is dm-multipath's service-time selector with a measured throughput:
// the expected completion time (outstanding bytes + this request) × the controller's
// EWMA service time per byte, lowest wins, optimized before non-optimized; ties go to
// fewer outstanding bytes. A controller with no estimate (or a stale one while idle)
// scores 0, so new and recovered paths get probed.
type serviceTime struct{}

func (serviceTime) pick(_ *Head, paths []*Path, _ int, bytes, now int64) *Path {
	type best struct {
		p     *Path
		score float64
		out   int64
	}
	opt := best{score: math.Inf(1)}
	non := best{score: math.Inf(1)}
	for _, p := range paths {
		w := p.word.Load()
		if w&flagsMask != 0 {
			continue
		}
		c := w >> clsShift
		if c >= clsUnusable || (c == clsNonOptimized && opt.p != nil) {
			continue
		}
		ctrl := p.ctrl
		out := ctrl.outstanding.Load()
		est := ctrl.nsPerKiB.Load()
		if out <= 0 && now-ctrl.lastDone.Load() > staleNs {
			est = 0
		}
		score := float64(out+bytes) * float64(est)
		b := &opt
		if c != clsOptimized {
			b = &non
		}
		if !(score < b.score || (score == b.score && out < b.out)) {
			continue
		}
		st, ok := p.state() // a candidate: ask the driver (see findPath)
		if !ok {
			continue
		}
		b = &opt
		if st != StateOptimized {
			if opt.p != nil {
				continue
			}
			b = &non
		}
		if score < b.score || (score == b.score && out < b.out) {
			*b = best{p, score, out}
			if st == StateOptimized && score == 0 && out <= 0 {
				return p
			}
		}
	}
	if opt.p != nil {
		return opt.p
	}
	return non.p
}
