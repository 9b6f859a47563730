// Package mpath is a generic multipath library: the Go counterpart of Linux's
// libmultipath series (and of the NVMe multipath code it was taken from). It knows
// nothing of NVMe; a driver plugs in through PathDriver, the way NVMe plugs into
// libmultipath through mpath_head_template.
//
// # Objects
//
// A Subsystem groups Heads and owns the IOPolicy. A Head is one multipath
// namespace; its Paths are the views of that namespace through different
// Controllers. A Controller is shared by all paths through one connection: it
// holds the in-flight count (queue-depth is per controller, as in the kernel),
// the service-time estimate and the NUMA node. Subsystem.AddPath groups paths by
// NSID and refuses one whose UUID/NGUID/EUI64/CSI differ ("IDs don't match for
// shared namespace N"); a path whose capacity or block size differs from the
// head's joins but is not ready, so it is never selected.
//
// # Selection: snapshot and cache
//
// The I/O path takes no lock. A head's paths are an immutable slice published with
// an atomic pointer (replaced on AddPath/RemovePath, the kernel's SRCU list). Each
// head has one cached current path per NUMA node, an atomic pointer padded to a
// cache line. numa keeps the cached path while it is usable and optimized and
// rescans otherwise (so a cached non-optimized path is re-evaluated on every I/O);
// round-robin starts after the cached path; queue-depth and service-time keep no
// cache and read per-controller atomic counters. All policies share one predicate:
// a path is usable if it is ready, not ANA-pending, not removed, its driver does
// not report Disabled, and its AccessState is optimized or non-optimized. Optimized
// paths are always preferred. Full scans classify paths by a hint (the driver's
// class as of its last Path.Changed, one atomic load) and ask the driver itself
// only about a path that would become the best so far, so the path chosen is
// always one the driver called usable at the moment of the choice. The exact kernel rules, and where we differ, are in
// the comments of select.go. Selection allocates nothing; neither does Head.Do in
// steady state.
//
// # Failover and requeue by waiting
//
// Head.Do is synchronous: it submits the whole request on one path and, if the
// driver's Classify says so, retries it there (CRD delay, at most MaxRetries) or
// fails it over: the path is dropped as current path, an ANA error marks it
// ANA-pending and asks the driver to re-read the ANA log, and selection runs again.
// When no path is usable, the request waits, as the kernel's requeue list does,
// if some path is Available (its controller may come back) or delayed_removal_secs
// is set; otherwise it fails with ErrNoPath (EIO). Waiting is on a channel that
// Path.Changed, AddPath, RemovePath and head removal close; there is no polling.
// Drivers must therefore call Path.Changed (or Controller.Changed) after every
// change of what AccessState, Disabled or Available return.
//
// # Write fence
//
// Whole-command failover has a hole that Linux and SPDK share (spdk#3593): a write
// that failed because the path died, without a completion, may still execute on
// the old controller after it was resubmitted elsewhere, overwriting newer data.
// When a failover Verdict has InDoubt set, the request is a write (Op.IsWrite) and
// the subsystem's FenceWrites is on, Do first calls the driver's Fencer.Fence,
// which blocks until the old controller can no longer execute the command (it was
// torn down, KATO expired after the loss, or its Command Quiesce Time passed).
// Fence waits are counted in HeadCounters.
//
// # Removal
//
// When a head's last path goes, the head is removed at once, or after
// DelayedRemovalSecs; until then it queues I/O, and a path that joins cancels the
// removal. Queued I/O of a removed head fails with ErrNoPath. Time comes from an
// injectable Clock, so tests need not sleep.
//
// # Concurrency
//
// Head.Do, FindPath and every getter are safe for concurrent use. Membership
// changes (AddPath, RemovePath, delayed removal) are serialized per subsystem and
// never block I/O. PathDriver methods are called concurrently and, except Submit
// and Fence, must not block.
package mpath
