package fusefs

import (
	"context"
	"errors"
	"syscall"
)

// ToErrno is the one place where Go errors become the errno a FUSE request
// fails with: nil is 0; an error with an Errno() syscall.Errno method (such as
// nvme.Status or *sysfsview.StoreError) found by errors.As gives that errno; a
// bare syscall.Errno is itself; context cancellation (the kernel interrupted
// the request) is EINTR; anything else is EIO.
func ToErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var withErrno interface{ Errno() syscall.Errno }
	if errors.As(err, &withErrno) {
		if e := withErrno.Errno(); e != 0 {
			return e
		}
		return syscall.EIO
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && errno != 0 {
		return errno
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return syscall.EINTR
	}
	return syscall.EIO
}
