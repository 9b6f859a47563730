package mpath

// SetSelectHooks installs observers around every path selection of h (tests only).
// Call it before any I/O is issued to h.
func SetSelectHooks(h *Head, before func(*Request), after func(*Request, *Path)) {
	h.hooks = &testHooks{before: before, after: after}
}

// SetQueueHook installs an observer called when a request is about to wait for a
// usable path (after it was counted and logged). Call it before any I/O to h.
func SetQueueHook(h *Head, queued func(*Request)) {
	h.hooks = &testHooks{queued: queued}
}

// SetCurrent sets node's cached current path of h.
func SetCurrent(h *Head, node int, p *Path) { h.slot(node).Store(p) }

// Current returns node's cached current path of h.
func Current(h *Head, node int) *Path { return h.slot(node).Load() }

// SetInflight sets a controller's in-flight count (queue-depth input).
func SetInflight(c *Controller, n int64) { c.inflight.Store(n) }

// SetServiceTime sets a controller's service-time inputs.
func SetServiceTime(c *Controller, outstanding, nsPerKiB, lastDone int64) {
	c.outstanding.Store(outstanding)
	c.nsPerKiB.Store(nsPerKiB)
	c.lastDone.Store(lastDone)
}

// ServiceEstimate returns a controller's service-time estimate (ns per KiB).
func ServiceEstimate(c *Controller) int64 { return c.nsPerKiB.Load() }

// MarkANAPending marks p as failed with an ANA error.
func MarkANAPending(p *Path) { p.word.Or(flagANAPending) }

// Nanotime returns s's clock reading in ns.
func Nanotime(s *Subsystem) int64 { return s.nanotime() }

// Select runs h's path selection as Do does, without submitting.
func Select(h *Head, node int, bytes, now int64) *Path { return h.selectPath(node, bytes, now) }
