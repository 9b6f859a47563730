package mpath

// SetSelectHooks installs observers around every path selection of h (tests only).
// Call it before any I/O is issued to h.
func SetSelectHooks(h *Head, before func(*Request), after func(*Request, *Path)) {
	h.hooks = &testHooks{before: before, after: after}
}
