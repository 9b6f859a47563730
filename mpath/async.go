package mpath

import "context"

// Completer receives the result of asynchronous work: a request started
// with Head.Start, or one attempt submitted with AsyncPathDriver.SubmitAsync.
type Completer interface {
	// Complete is called exactly once. It may run on a driver's completion
	// goroutine and must not block.
	Complete(err error)
}

// AsyncPathDriver is an optional PathDriver capability behind Head.Start:
// an attempt submitted without a goroutine waiting for it.
type AsyncPathDriver interface {
	// SubmitAsync sends req on this path as Submit would and returns at
	// once; done.Complete follows with what Submit would have returned. It
	// reports false, having sent nothing, when req cannot go this way now
	// (Head.Start then submits it with Submit on a goroutine of its own).
	SubmitAsync(req *Request, done Completer) bool
}

// attemptDone is the Completer of a Head.Start attempt (a field of the
// Request, so that starting one allocates nothing).
type attemptDone struct{ req *Request }

// Start performs req like Do but returns without waiting; done.Complete
// follows exactly once with Do's result, usually on the path driver's
// completion goroutine. The request must stay untouched until then.
//
// Start reports false, having done nothing, when no path is usable at once
// or the selected path's driver is not an AsyncPathDriver: the caller then
// calls Do, which waits for a path as usual. Once started, everything Do
// does still happens: a failed attempt continues on a new goroutine with
// the driver's verdict (retry, failover, write fence, waiting for a path),
// and an attempt the driver declines is submitted with Submit on a new
// goroutine. Those goroutines use ctx, which should end only when the
// caller's I/O stops (an unmount). A first attempt that succeeds
// allocates nothing.
func (h *Head) Start(ctx context.Context, req *Request, done Completer) bool {
	now := h.sub.nanotime()
	p := h.startPath(req, now)
	if p == nil {
		return false
	}
	ad, ok := p.drv.(AsyncPathDriver)
	if !ok {
		return false
	}
	h.pathFound()
	h.stats.start(statGroup(req.Op), now)
	req.retries, req.path, req.t0, req.done, req.ctx = 0, p, now, done, ctx
	req.onPath.req = req
	req.pol = h.begin(p, req, now)
	if ad.SubmitAsync(req, &req.onPath) {
		return true
	}
	// Declined (a large write, no free tag): the same attempt, waited for
	// on a goroutine, so that path selection does not run twice.
	h.cancelAttempt(p, req)
	go h.finish(ctx, req, p, now, nil)
	return true
}

// batchMax is the largest request that follows its batch's path.
const batchMax = 64 << 10

// startPath selects the path of a started request. Under round-robin the
// requests started with a plug, i.e. together, go to one path: the first
// of a batch (one plug epoch) selects as any I/O does, advancing the
// rotation, and the others follow it while it stays usable and optimized.
// So a batch leaves in one socket write and reaches the target in one
// read, as it does with one path, and batches rotate over the paths (the
// kernel rotates per I/O; README lists the difference). Every other
// request, and every policy but round-robin, selects per I/O; so do
// requests above batchMax, whose cost is their data, not their command,
// and which two paths move in parallel.
func (h *Head) startPath(req *Request, now int64) *Path {
	if req.Plug == nil || req.Length > batchMax || h.sub.IOPolicy() != PolicyRoundRobin {
		return h.selectHooked(req, now)
	}
	e := req.Plug.Epoch() + 1 // never 0, where batchEpoch starts
	if h.batchEpoch.Load() == e {
		if p := h.batchPath.Load(); p != nil {
			if st, ok := p.state(); ok && st == StateOptimized {
				h.observe(req, p)
				return p
			}
		}
	}
	p := h.selectHooked(req, now)
	h.batchPath.Store(p)
	h.batchEpoch.Store(e)
	return p
}

// cancelAttempt undoes begin for an attempt that was not sent.
func (h *Head) cancelAttempt(p *Path, req *Request) {
	switch req.pol {
	case PolicyQueueDepth:
		p.ctrl.inflight.Add(-1)
	case PolicyServiceTime:
		p.ctrl.outstanding.Add(-req.Length)
	}
	p.stats.cancel(statGroup(req.Op))
}

// Complete implements Completer for an attempt of Head.Start.
func (a *attemptDone) Complete(err error) {
	req := a.req
	p := req.path
	h := p.head
	end := h.end(p, req, req.pol, req.t0, err)
	if err == nil {
		h.stats.done(statGroup(req.Op), req.Length, req.t0, end)
		d := req.done
		req.done, req.ctx = nil, nil
		d.Complete(nil)
		return
	}
	go h.finish(req.ctx, req, p, end, err)
}

// finish runs the rest of Do for a started request: from the failure err
// of the attempt on p, or (err nil) from an attempt on p.
func (h *Head) finish(ctx context.Context, req *Request, p *Path, now int64, err error) {
	end, err := h.drive(ctx, req, p, now, err)
	h.stats.done(statGroup(req.Op), req.Length, req.t0, end)
	d := req.done
	req.done, req.ctx = nil, nil
	d.Complete(err)
}
