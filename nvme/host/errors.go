package host

import (
	"errors"
	"fmt"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
)

// AbortedError is returned for a command cancelled by error recovery: it
// was in flight when its connection was lost (EOF, protocol error,
// TermReq, keep-alive or command timeout), so no completion arrived and the
// command may or may not have executed on the controller. It unwraps to
// nvme.StatusHostAborted (0x371, a path error: the multipath layer fails
// over) and to the transport cause.
//
// LostAt is when the host noticed the loss; the controller may keep
// executing commands until its keep-alive timer (KATO) expires, or for CQT
// after that if it reports a Command Quiesce Time, so a caller re-issuing a
// write elsewhere may wait until LostAt+KATO(+CQT) (the CQT gap,
// spdk#3593).
type AbortedError struct {
	LostAt time.Time
	KATO   time.Duration
	CQT    time.Duration // 0 if Identify Controller reports none
	Cause  error
}

func (e *AbortedError) Error() string {
	return fmt.Sprintf("nvme host: command aborted by error recovery (lost at %s, kato %s): %v",
		e.LostAt.Format(time.RFC3339Nano), e.KATO, e.Cause)
}

// Unwrap returns nvme.StatusHostAborted and the cause.
func (e *AbortedError) Unwrap() []error {
	if e.Cause == nil {
		return []error{nvme.StatusHostAborted}
	}
	return []error{nvme.StatusHostAborted, e.Cause}
}

// Errors of the controller's own checks.
var (
	// ErrIdentify: Identify Controller failed one of Linux's checks.
	ErrIdentify = errors.New("nvme host: identify controller rejected")
	// ErrEnable: the controller did not become ready (or reported a fatal
	// status) after CC.EN.
	ErrEnable = errors.New("nvme host: controller enable failed")
	// ErrNoNamespace: the NSID is not an active namespace of this
	// controller.
	ErrNoNamespace = errors.New("nvme host: no such namespace")
	// ErrUnaligned: an I/O helper was given a buffer that is not a
	// multiple of the block size.
	ErrUnaligned = errors.New("nvme host: length not a multiple of the block size")
	// ErrClosed: the controller was closed.
	ErrClosed = errors.New("nvme host: controller closed")
	// ErrAuthRequired: the controller asks for secure channel
	// concatenation (Connect AUTHREQ ASCR), which needs TLS: unsupported.
	ErrAuthRequired = errors.New("nvme host: secure channel concatenation required (not supported)")
	// ErrSilent: ReadWithin gave a read up because its queue received
	// nothing within the silence bound; the read did not complete (buf
	// holds no result) and may be re-sent on another path.
	ErrSilent = errors.New("nvme host: controller silent, read given up")
)
