package mpath

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/mpathfs/mpathfs/internal/plug"
)

// AccessState is the abstract access state of a path, as in libmultipath's
// MPATH_STATE_*. The NVMe driver maps ANA states onto it; another driver could map ALUA.
type AccessState uint8

const (
	// StateOptimized paths are preferred by every policy.
	StateOptimized AccessState = iota
	// StateNonOptimized paths are used only when no optimized path is usable.
	StateNonOptimized
	// StateOther covers every unusable state (ANA inaccessible, persistent-loss,
	// change): the path is never selected, but its controller may still count as
	// available, so I/O is queued rather than failed.
	StateOther
)

var accessStateNames = [...]string{
	StateOptimized:    "optimized",
	StateNonOptimized: "non-optimized",
	StateOther:        "other",
}

func (s AccessState) String() string {
	if int(s) < len(accessStateNames) {
		return accessStateNames[s]
	}
	return "UNKNOWN_access_state_0x" + strconv.FormatUint(uint64(s), 16)
}

// IOPolicy selects how a head spreads I/O over its paths. It is set per Subsystem.
type IOPolicy uint8

const (
	// PolicyNUMA (the default) uses the nearest optimized path, else the nearest
	// non-optimized one, cached per NUMA node.
	PolicyNUMA IOPolicy = iota
	// PolicyRoundRobin rotates over the usable paths, per NUMA node.
	PolicyRoundRobin
	// PolicyQueueDepth uses the path whose controller has the fewest commands in flight.
	PolicyQueueDepth
	// PolicyServiceTime (beyond the kernel; dm-multipath's service-time) uses the path
	// whose controller is expected to finish soonest: outstanding bytes divided by
	// the controller's measured throughput.
	PolicyServiceTime

	numPolicies
)

var ioPolicyNames = [...]string{
	PolicyNUMA:        "numa",
	PolicyRoundRobin:  "round-robin",
	PolicyQueueDepth:  "queue-depth",
	PolicyServiceTime: "service-time",
}

// String returns the sysfs name of the policy ("numa", "round-robin", "queue-depth",
// "service-time").
func (p IOPolicy) String() string {
	if p < numPolicies {
		return ioPolicyNames[p]
	}
	return "UNKNOWN_iopolicy_0x" + strconv.FormatUint(uint64(p), 16)
}

// ParseIOPolicy parses a policy name with the kernel's sysfs_streq rule: an exact
// match, optionally followed by one "\n". Anything else is an error wrapping ErrInvalid.
func ParseIOPolicy(s string) (IOPolicy, error) {
	t := s
	if len(t) > 0 && t[len(t)-1] == '\n' {
		t = t[:len(t)-1]
	}
	for i, name := range ioPolicyNames {
		if t == name {
			return IOPolicy(i), nil
		}
	}
	return 0, fmt.Errorf("iopolicy %q: %w", s, ErrInvalid)
}

// Op is the kind of a request. It decides statistics accounting and whether a
// failed-over, in-doubt request must wait for the fence (see IsWrite).
type Op uint8

const (
	OpRead Op = iota
	OpWrite
	OpFlush
	OpWriteZeroes
	OpDiscard
	// OpOther is any other command that may modify the medium or device state
	// (reservations, passthrough); it is treated as a write and not accounted in IOStat.
	OpOther
	// OpOtherRead is any other command that does not modify anything (identify,
	// reservation report); it is not a write and not accounted in IOStat.
	OpOtherRead
)

var opNames = [...]string{
	OpRead: "read", OpWrite: "write", OpFlush: "flush", OpWriteZeroes: "write-zeroes",
	OpDiscard: "discard", OpOther: "other", OpOtherRead: "other-read",
}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "UNKNOWN_op_0x" + strconv.FormatUint(uint64(o), 16)
}

// IsWrite reports whether o may modify data: write, write-zeroes, discard and OpOther.
// A failed-over in-doubt write is fenced before it is resubmitted (see Fencer).
func (o Op) IsWrite() bool {
	switch o {
	case OpWrite, OpWriteZeroes, OpDiscard, OpOther:
		return true
	}
	return false
}

// Request is one I/O sent whole to one path at a time. The caller owns it (and may
// pool it); Head.Do must not be called twice concurrently with the same Request.
type Request struct {
	Op     Op
	Offset int64  // bytes
	Length int64  // bytes
	Buf    []byte // data in (write) or out (read); nil for flush/discard
	Node   int    // NUMA node of the submitter, or NoNode
	Arg    any    // driver payload, untouched by mpath

	// SilentAfter is set by Head.Do for each attempt, for the driver: on a
	// read with another usable path, how long the path may stay silent
	// (nothing at all received) before the driver gives the read up and
	// fails it with an error it classifies ActionFailover, so the read is
	// re-sent on a live path. 0: wait (writes, and reads with no other
	// path). See Path.SilentAfter.
	SilentAfter time.Duration

	// Plug, set by Head.Start's caller, lets the driver of the first
	// attempt hold the command back until the caller unplugs (see package
	// plug): the caller has more requests to start at once. Only that
	// submission sees it; retries and failover send at once.
	Plug *plug.Plug

	path    *Path // path of the current attempt
	retries int   // retries on the current path

	// Head.Start's request: the attempt's start and policy, and where the
	// result goes.
	t0     int64
	pol    IOPolicy
	ctx    context.Context
	done   Completer
	onPath attemptDone
}

// Path returns the path the request is (or was last) submitted on, or nil.
func (r *Request) Path() *Path { return r.path }

// NoNode is the Request.Node and Controller NUMA node meaning "unknown"
// (the kernel's NUMA_NO_NODE). Distances involving it are all equal.
const NoNode = -1

// Action is what Head.Do does with a failed submission.
type Action uint8

const (
	// ActionComplete returns the error to the caller.
	ActionComplete Action = iota
	// ActionRetry resubmits on the same path after Verdict.RetryDelay (at most MaxRetries times).
	ActionRetry
	// ActionFailover requeues the request: path selection runs again.
	ActionFailover
)

var actionNames = [...]string{"complete", "retry", "failover"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "UNKNOWN_action_0x" + strconv.FormatUint(uint64(a), 16)
}

// MaxRetries caps same-path retries of one request, like nvme_core.max_retries.
const MaxRetries = 5

// Verdict is a driver's disposition of a failed submission (nvme_decide_disposition).
type Verdict struct {
	Action Action
	// RetryDelay is the wait before a same-path retry (NVMe CRD).
	RetryDelay time.Duration
	// ANA marks an ANA error: the path is ANA-pending (never selected) until the
	// driver calls Path.Changed, and ANARefresher.RefreshANA is called.
	ANA bool
	// InDoubt means no completion was seen: the command may still execute on the old
	// controller. An in-doubt write waits for Fencer.Fence before it is retried or
	// failed over.
	InDoubt bool
}

// PathDriver is one path: a controller's view of one namespace. It is the Go
// counterpart of libmultipath's mpath_head_template. All methods are called
// concurrently from many goroutines and must not block, except Submit.
//
// The driver must call Path.Changed after any change of what AccessState,
// Disabled or Available return, or queued requests are not re-driven.
type PathDriver interface {
	// Submit sends req on this path and blocks until it completes; nil is success.
	Submit(ctx context.Context, req *Request) error
	// Classify decides what to do with a Submit error; retries is the number of
	// same-path retries already done for this request.
	Classify(err error, retries int) Verdict
	// AccessState is the path's current access state.
	AccessState() AccessState
	// Disabled reports that the path must not be selected now (controller not
	// live/deleting, ANA pending, not ready).
	Disabled() bool
	// Available reports that the path may come back (controller live, resetting or
	// connecting, and fast-fail not expired). If any path of a head is available,
	// I/O with no usable path is queued instead of failed.
	Available() bool
}

// ANARefresher is an optional PathDriver capability. RefreshANA is called (and must
// not block) when a submission fails with an ANA error; the driver re-reads the ANA
// log and then calls Path.Changed. If not implemented, nothing is done: the path stays
// ANA-pending until the driver calls Path.Changed.
type ANARefresher interface {
	RefreshANA()
}

// Fencer is an optional PathDriver capability. Fence blocks until a command that
// failed on this path with err (a Verdict with InDoubt) can no longer execute on the
// old controller: the controller was torn down, KATO expired after the loss, or its
// Command Quiesce Time passed. Head.Do calls it before resubmitting a failed-over
// write elsewhere (spdk#3593). A non-nil result fails the request with that error.
// If not implemented, there is no wait.
type Fencer interface {
	Fence(ctx context.Context, err error) error
}

// Identity is a namespace's identity. Paths join one head only if all fields are equal.
type Identity struct {
	NSID  uint32
	UUID  [16]byte
	NGUID [16]byte
	EUI64 [8]byte
	CSI   uint8
}

// HeadInfo is the geometry of a namespace as seen through one path.
type HeadInfo struct {
	Capacity  int64 // bytes
	BlockSize uint32
}

// errnoError is a sentinel error carrying the errno a filesystem should return.
type errnoError struct {
	msg   string
	errno syscall.Errno
}

func (e *errnoError) Error() string        { return e.msg }
func (e *errnoError) Errno() syscall.Errno { return e.errno }

// Sentinel errors. Each has an Errno() syscall.Errno method.
var (
	// ErrNoPath: no usable path and none may come back (EIO).
	ErrNoPath error = &errnoError{"no available path", syscall.EIO}
	// ErrInvalid: an invalid argument (EINVAL).
	ErrInvalid error = &errnoError{"invalid argument", syscall.EINVAL}
	// ErrIDMismatch: a path's identity differs from its head's (EINVAL).
	ErrIDMismatch error = &errnoError{"namespace IDs don't match", syscall.EINVAL}
	// ErrDuplicateIDs: another head of the subsystem has the same UUID, NGUID or EUI64 (EINVAL).
	ErrDuplicateIDs error = &errnoError{"duplicate namespace IDs", syscall.EINVAL}
	// ErrDuplicatePath: the controller already has a path to this head (EEXIST).
	ErrDuplicatePath error = &errnoError{"duplicate path", syscall.EEXIST}
)

// Error is an error produced by mpath itself (not by a driver) for a head.
// It unwraps to one of the sentinel errors (or a context/fence error) and has an
// Errno method.
type Error struct {
	Head string // head name
	Err  error
}

func (e *Error) Error() string { return "mpath: " + e.Head + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errno returns the errno of the wrapped error, or EIO.
func (e *Error) Errno() syscall.Errno {
	var en interface{ Errno() syscall.Errno }
	if errors.As(e.Err, &en) {
		return en.Errno()
	}
	if errors.Is(e.Err, context.Canceled) {
		return syscall.EINTR
	}
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return syscall.ETIMEDOUT
	}
	return syscall.EIO
}

// refusal is an AddPath error whose text is exactly the kernel's message.
type refusal struct {
	text string
	kind error
}

func (r *refusal) Error() string { return r.text }
func (r *refusal) Unwrap() error { return r.kind }
