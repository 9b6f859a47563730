package tcp

import (
	"fmt"
	"math"
	"time"

	"github.com/mpathfs/mpathfs/internal/plug"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

var _ fabrics.AsyncExecer = (*Queue)(nil)

// ExecAsync implements fabrics.AsyncExecer: it submits cmd like
// ExecWithin (within 0: like Exec, the queue's command timeout applies to
// both) and returns without waiting. done.CommandDone runs on the queue's
// reader goroutine when the completion arrives or the queue dies, or on a
// timer goroutine when the silence bound gives a read up (ErrSilent; the
// tag stays reserved as for ExecWithin). It reports false, having sent
// nothing, for a command that owes data on R2T (a write larger than the
// in-capsule limit: only a waiting goroutine answers R2Ts), a write of more
// than 16 KiB (written by the calling goroutine), when no tag is free, or
// when the queue is dead; the caller then uses Exec.
//
// With a non-nil pl the capsule is queued for the socket but not written:
// the queue records itself with pl.Hold and writes it, with whatever else
// is queued, at pl.Unplug (Flush), or earlier if another command is sent.
func (q *Queue) ExecAsync(cmd *nvme.Command, data []byte, within time.Duration, done fabrics.Completer, pl *plug.Plug) bool {
	dir, err := dataDirection(cmd)
	if err != nil || (dir == dirNone && len(data) > 0) || uint64(len(data)) > math.MaxUint32 {
		return false
	}
	if dir == dirH2C && (len(data) > q.inCapsuleLimit(cmd) || len(data) > copyMax) {
		// Data on R2T needs a waiting goroutine; large in-capsule data is
		// written by the submitter, which would stall an asynchronous
		// submitter's other work for the whole socket write.
		return false
	}
	if q.isDead() {
		return false
	}
	var tag uint16
	select {
	case tag = <-q.free:
	default:
		return false
	}
	req := &q.reqs[tag]
	timeout := time.Duration(q.cmdTimeout.Load())
	within = q.fill(req, cmd, data, dir, timeout, within, done)
	if q.isDead() {
		if req.state.CompareAndSwap(stateInflight, stateCompleting) {
			q.release(req)
			return false
		}
		return true // the failing path completes it
	}
	q.send(req, data, timeout, within, pl)
	return true
}

// Flush implements plug.Flusher: it writes the capsules held for a plug.
func (q *Queue) Flush() {
	if err := q.s.flush(); err != nil {
		q.kill(fmt.Errorf("send held commands: %w", err))
	}
}
