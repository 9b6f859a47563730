// Package mpathtest provides a scriptable fake mpath.PathDriver and a fake
// mpath.Clock, so the mpath library (and code built on it) can be tested without
// NVMe: set a path's access state, disable it, make it unavailable, add latency,
// or make its next N submissions fail with a chosen Verdict.
package mpathtest
