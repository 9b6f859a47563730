package mpath

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// MaxNodes is the number of per-node current-path cache slots of a head: nodes
// 0..MaxNodes-2 have their own slot; NoNode and larger node numbers share one.
const MaxNodes = 64

// pathSet is an immutable snapshot of a head's paths, published atomically.
type pathSet struct {
	paths []*Path
}

// cacheSlot is one node's current path, padded to a cache line so that round-robin
// updates on one node do not slow down readers on another.
type cacheSlot struct {
	atomic.Pointer[Path]
	_ [56]byte
}

// no-path log episode bits (Head.logged)
const (
	loggedRequeue uint32 = 1 << iota
	loggedFail
)

// Head is one multipath namespace: the Go counterpart of nvme_ns_head / mpath_head.
// Do is its I/O entry point.
type Head struct {
	// Hot, read on every I/O.
	set     atomic.Pointer[pathSet]
	sub     *Subsystem
	hooks   *testHooks // nil outside tests
	logged  atomic.Uint32
	delayed atomic.Uint32 // delayed_removal_secs
	removed atomic.Bool

	current [MaxNodes]cacheSlot

	// The path of the batch of requests being started together under
	// round-robin, and the batch's plug epoch + 1 (Head.startPath).
	batchEpoch atomic.Uint64
	batchPath  atomic.Pointer[Path]

	stats      ioStats
	retry      atomic.Uint64
	errors     atomic.Uint64
	requeue    atomic.Uint64
	failNoPath atomic.Uint64
	fenceWaits atomic.Uint64
	fenceNs    atomic.Int64

	id   Identity
	name string
	log  hclog.Logger
	info atomic.Pointer[HeadInfo]

	wmu sync.Mutex
	wch chan struct{} // closed by wake; nil when nobody waits

	// Protected by sub.mu.
	paths      []*Path
	removal    Timer
	removalGen uint64
}

// testHooks observe every path selection and every wait for a path (export_test.go).
type testHooks struct {
	before func(*Request)
	after  func(*Request, *Path)
	queued func(*Request)
}

// Name returns the head name (SubsystemConfig.HeadName).
func (h *Head) Name() string { return h.name }

// Identity returns the namespace identity shared by all paths.
func (h *Head) Identity() Identity { return h.id }

// Info returns the head's geometry.
func (h *Head) Info() HeadInfo { return *h.info.Load() }

// Subsystem returns the subsystem the head belongs to.
func (h *Head) Subsystem() *Subsystem { return h.sub }

// Paths returns the head's current paths in list order.
func (h *Head) Paths() []*Path {
	return append([]*Path(nil), h.set.Load().paths...)
}

// Removed reports that the head was removed (its last path went and the delayed
// removal, if any, expired). I/O to a removed head fails with ErrNoPath.
func (h *Head) Removed() bool { return h.removed.Load() }

// DelayedRemovalSecs returns delayed_removal_secs: while non-zero, I/O with no
// usable path is queued, and the head outlives its last path by that long.
func (h *Head) DelayedRemovalSecs() uint32 { return h.delayed.Load() }

// SetDelayedRemovalSecs sets delayed_removal_secs. Like the kernel it does not
// change a removal already scheduled; queued requests re-check whether to keep waiting.
func (h *Head) SetDelayedRemovalSecs(secs uint32) {
	h.delayed.Store(secs)
	h.wake()
}

// Stats returns the head's I/O statistics (one I/O per Do call).
func (h *Head) Stats() IOStat { return h.stats.snapshot() }

// Latencies returns the head's completion-latency histograms (whole
// requests, failovers and waits included).
func (h *Head) Latencies() Latencies { return h.stats.latencies() }

// Counters returns the head's diag/ counters.
func (h *Head) Counters() HeadCounters {
	return HeadCounters{
		RetryCount:          h.retry.Load(),
		ErrorCount:          h.errors.Load(),
		RequeueNoUsablePath: h.requeue.Load(),
		FailNoAvailablePath: h.failNoPath.Load(),
		FenceWaits:          h.fenceWaits.Load(),
		FenceWaitTotal:      time.Duration(h.fenceNs.Load()),
	}
}

// ResetNoPathCounters zeroes io_requeue_no_usable_path_count and
// io_fail_no_available_path_count (what writing those diag/ files does).
func (h *Head) ResetNoPathCounters() {
	h.requeue.Store(0)
	h.failNoPath.Store(0)
}

// SetCounter sets one diag/ counter by its sysfs name
// (io_requeue_no_usable_path_count, io_fail_no_available_path_count), as
// writing the file does in Linux; it reports false for another name.
func (h *Head) SetCounter(name string, v uint64) bool {
	switch name {
	case "io_requeue_no_usable_path_count":
		h.requeue.Store(v)
	case "io_fail_no_available_path_count":
		h.failNoPath.Store(v)
	default:
		return false
	}
	return true
}

// FindPath runs path selection for a submitter on node without submitting anything
// (mpath_find_path: persistent reservations, ioctls, "current path" displays).
// It returns nil when no path is usable. Service-time assumes a 4 KiB request.
func (h *Head) FindPath(node int) *Path {
	return h.selectPath(node, 4096, h.sub.nanotime())
}

func (h *Head) slot(node int) *cacheSlot {
	if node < 0 || node >= MaxNodes-1 {
		return &h.current[0]
	}
	return &h.current[node+1]
}

func (h *Head) selectPath(node int, bytes, now int64) *Path {
	return selectorFor(h.sub.IOPolicy()).pick(h, h.set.Load().paths, node, bytes, now)
}

// clearCache forgets every node's current path.
func (h *Head) clearCache() {
	for i := range h.current {
		if h.current[i].Load() != nil {
			h.current[i].Store(nil)
		}
	}
}

// clearPath forgets p wherever it is the current path (nvme_mpath_clear_current_path).
func (h *Head) clearPath(p *Path) {
	for i := range h.current {
		h.current[i].CompareAndSwap(p, nil)
	}
}

// waitChan returns the channel the next wake closes. Callers take it before they
// look for a path, so a wake between the look and the wait is not lost.
func (h *Head) waitChan() <-chan struct{} {
	h.wmu.Lock()
	if h.wch == nil {
		h.wch = make(chan struct{})
	}
	ch := h.wch
	h.wmu.Unlock()
	return ch
}

// wake re-drives every request queued for lack of a usable path.
func (h *Head) wake() {
	h.wmu.Lock()
	if h.wch != nil {
		close(h.wch)
		h.wch = nil
	}
	h.wmu.Unlock()
}

// mayQueue is nvme_available_path: some path may come back, or delayed removal
// is configured, and the head is not gone.
func (h *Head) mayQueue() bool {
	if h.removed.Load() {
		return false
	}
	for _, p := range h.set.Load().paths {
		if p.drv.Available() {
			return true
		}
	}
	return h.delayed.Load() > 0
}

// publish installs a new snapshot of h.paths. Called with sub.mu held.
func (h *Head) publish() {
	ps := append([]*Path(nil), h.paths...)
	for i, p := range ps {
		p.idx.Store(int32(i))
	}
	h.set.Store(&pathSet{paths: ps})
}

// revalidate is nvme_mpath_revalidate_paths for new head geometry.
func (h *Head) revalidate(info HeadInfo) {
	s := h.sub
	s.mu.Lock()
	h.info.Store(&info)
	for _, p := range h.paths {
		if p.Info() != info {
			p.word.Or(flagNotReady)
		} else {
			p.word.And(^flagNotReady)
		}
	}
	s.mu.Unlock()
	h.clearCache()
	h.wake()
}

// Do performs req on one path of the head and returns when it is done: the I/O
// entry point, safe for concurrent use. It selects a path with the subsystem's
// policy and submits; on failure the path's driver classifies the error:
//   - ActionComplete: the error is returned as is (command_error_count).
//   - ActionRetry: resubmitted on the same path after RetryDelay, at most MaxRetries
//     times (command_retry_count); an in-doubt write waits for Fencer.Fence first (if
//     FenceWrites); if the path has become unusable meanwhile, path selection runs
//     again instead.
//   - ActionFailover: the path's multipath_failover_count is bumped; an ANA error
//     marks the path ANA-pending and calls RefreshANA; the path is dropped as current
//     path; an in-doubt write waits for Fencer.Fence (if FenceWrites); then path
//     selection runs again.
//
// With no usable path, the request waits (no polling) while some path is Available
// or DelayedRemovalSecs > 0, until a Path.Changed, AddPath, removal or ctx ends the
// wait; otherwise it fails with an *Error wrapping ErrNoPath (errno EIO).
// Do does not allocate unless it has to wait.
func (h *Head) Do(ctx context.Context, req *Request) error {
	g := statGroup(req.Op)
	t0 := h.sub.nanotime()
	h.stats.start(g, t0)
	end, err := h.do(ctx, req, t0)
	h.stats.done(g, req.Length, t0, end)
	return err
}

func (h *Head) do(ctx context.Context, req *Request, now int64) (int64, error) {
	req.retries = 0
	return h.drive(ctx, req, nil, now, nil)
}

// drive is Do's loop. With err != nil it begins with the failure err of
// an attempt on p (Start's completion), else with an attempt on p (nil:
// path selection first).
func (h *Head) drive(ctx context.Context, req *Request, p *Path, now int64, err error) (int64, error) {
	s := h.sub
	for {
		if err == nil {
			if p == nil {
				if p, now, err = h.pick(ctx, req, now); err != nil {
					return s.nanotime(), err
				}
			}
			req.path = p
			var end int64
			if end, err = h.submit(ctx, p, req, now); err == nil {
				return end, nil
			}
			now = end
		}
		v := p.drv.Classify(err, req.retries)
		switch v.Action {
		case ActionRetry:
			if req.retries >= MaxRetries {
				return now, h.complete(p, err)
			}
			req.retries++
			p.retry.Add(1)
			h.retry.Add(1)
			if now, err = h.fence(ctx, p, req, err, v, now); err != nil {
				return now, err
			}
			if v.RetryDelay > 0 {
				if werr := h.sleep(ctx, v.RetryDelay); werr != nil {
					return s.nanotime(), &Error{Head: h.name, Err: werr}
				}
				now = s.nanotime()
			}
			if !p.Usable() {
				// Linux would submit and get a host path error, then fail over.
				p, req.retries = nil, 0
			}
		case ActionFailover:
			p.failover.Add(1)
			if v.ANA {
				p.word.Or(flagANAPending)
				if r, ok := p.drv.(ANARefresher); ok {
					r.RefreshANA()
				}
			}
			h.clearPath(p)
			if now, err = h.fence(ctx, p, req, err, v, now); err != nil {
				return now, err
			}
			p, req.retries = nil, 0
		default:
			return now, h.complete(p, err)
		}
		if cerr := ctx.Err(); cerr != nil {
			return now, &Error{Head: h.name, Err: cerr}
		}
	}
}

// fence makes an in-doubt write wait, before it is sent again anywhere, until the
// failed attempt can no longer execute (Fencer). A fence error fails the request.
func (h *Head) fence(ctx context.Context, p *Path, req *Request, err error, v Verdict, now int64) (int64, error) {
	if !v.InDoubt || !req.Op.IsWrite() || !h.sub.fence.Load() {
		return now, nil
	}
	f, ok := p.drv.(Fencer)
	if !ok {
		return now, nil
	}
	ferr := f.Fence(ctx, err)
	end := h.sub.nanotime()
	h.fenceWaits.Add(1)
	h.fenceNs.Add(end - now)
	if ferr != nil {
		h.errors.Add(1)
		p.errors.Add(1)
		return end, &Error{Head: h.name, Err: fmt.Errorf("write fence after %v: %w", err, ferr)}
	}
	return end, nil
}

func (h *Head) complete(p *Path, err error) error {
	p.errors.Add(1)
	h.errors.Add(1)
	return err
}

// submit sends req on p with the per-path statistics and the per-controller load
// figures. Like the kernel's nr_active, the in-flight count is kept only while the
// policy is queue-depth and the outstanding bytes and service-time samples only
// while it is service-time; the policy in force at submission decides what is
// undone at completion, so a policy change in between leaves no residue.
func (h *Head) submit(ctx context.Context, p *Path, req *Request, t0 int64) (int64, error) {
	pol := h.begin(p, req, t0)
	err := p.drv.Submit(ctx, req)
	return h.end(p, req, pol, t0, err), err
}

// begin accounts the start of an attempt of req on p at t0 and sets its
// SilentAfter; it returns the policy in force, which end needs.
func (h *Head) begin(p *Path, req *Request, t0 int64) IOPolicy {
	c := p.ctrl
	pol := h.sub.IOPolicy()
	switch pol {
	case PolicyQueueDepth:
		c.inflight.Add(1)
	case PolicyServiceTime:
		c.outstanding.Add(req.Length)
	}
	p.stats.start(statGroup(req.Op), t0)
	req.SilentAfter = 0
	if req.Op == OpRead && h.otherUsable(p) {
		req.SilentAfter = p.SilentAfter()
	}
	return pol
}

// end accounts the end of the attempt begun at t0 with result err and
// returns the time.
func (h *Head) end(p *Path, req *Request, pol IOPolicy, t0 int64, err error) int64 {
	c := p.ctrl
	g := statGroup(req.Op)
	t1 := h.sub.nanotime()
	p.stats.done(g, req.Length, t0, t1)
	if err == nil && req.Op == OpRead {
		p.readLat.observe(t1 - t0)
	}
	switch pol {
	case PolicyQueueDepth:
		c.inflight.Add(-1)
	case PolicyServiceTime:
		c.outstanding.Add(-req.Length)
		if err == nil && req.Length > 0 && g != grpNone && g != grpFlush {
			c.sample(t1-t0, req.Length, t1)
		}
	}
	return t1
}

// otherUsable reports whether a path other than p could take a re-sent
// request now.
func (h *Head) otherUsable(p *Path) bool {
	for _, q := range h.set.Load().paths {
		if q != p && q.Usable() {
			return true
		}
	}
	return false
}

// pathFound ends a no-path log episode, if one is on.
func (h *Head) pathFound() {
	if h.logged.Load() != 0 {
		h.logged.Store(0)
	}
}

// pick selects a path for req, waiting while none is usable but one may return.
// It returns the time after the wait.
func (h *Head) pick(ctx context.Context, req *Request, now int64) (*Path, int64, error) {
	if p := h.selectHooked(req, now); p != nil {
		h.pathFound()
		return p, now, nil
	}
	for {
		ch := h.waitChan()
		if p := h.selectHooked(req, now); p != nil {
			h.logged.Store(0)
			return p, now, nil
		}
		if !h.mayQueue() {
			h.failNoPath.Add(1)
			if h.logged.Or(loggedFail)&loggedFail == 0 {
				h.log.Warn("no available path - failing I/O")
			}
			return nil, now, &Error{Head: h.name, Err: ErrNoPath}
		}
		h.requeue.Add(1)
		if h.logged.Or(loggedRequeue)&loggedRequeue == 0 {
			h.log.Warn("no usable path - requeuing I/O")
		}
		if hk := h.hooks; hk != nil && hk.queued != nil {
			hk.queued(req)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, now, &Error{Head: h.name, Err: ctx.Err()}
		}
		now = h.sub.nanotime()
	}
}

func (h *Head) selectHooked(req *Request, now int64) *Path {
	hk := h.hooks
	if hk != nil && hk.before != nil {
		hk.before(req)
	}
	p := h.selectPath(req.Node, req.Length, now)
	if hk != nil && hk.after != nil {
		hk.after(req, p)
	}
	return p
}

// observe shows the test hooks a selection made without selectPath.
func (h *Head) observe(req *Request, p *Path) {
	if hk := h.hooks; hk != nil {
		if hk.before != nil {
			hk.before(req)
		}
		if hk.after != nil {
			hk.after(req, p)
		}
	}
}

// sleep waits d on the subsystem clock, or until ctx ends.
func (h *Head) sleep(ctx context.Context, d time.Duration) error {
	done := make(chan struct{})
	t := h.sub.clock.AfterFunc(d, func() { close(done) })
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
}
