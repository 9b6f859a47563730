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
// than 16 KiB submitted with a plug (the submitter has more work, which
// the socket write would stall), when no tag is free, or when the queue is
// dead; the caller then uses Exec.
//
// A larger write without a plug is written by the calling goroutine before
// ExecAsync returns, straight from data. Its completion is delivered only
// after that write has returned, so data is never read after done ran: if
// the completion (or the queue's death) comes first, the completer leaves
// it to the submitter, which runs done on a new goroutine.
//
// With a non-nil pl the capsule is queued for the socket but not written:
// the queue records itself with pl.Hold and writes it, with whatever else
// is queued, at pl.Unplug (Flush), or earlier if another command is sent.
func (q *Queue) ExecAsync(cmd *nvme.Command, data []byte, within time.Duration, done fabrics.Completer, pl *plug.Plug) bool {
	dir, err := dataDirection(cmd)
	if err != nil || (dir == dirNone && len(data) > 0) || uint64(len(data)) > math.MaxUint32 {
		return false
	}
	big := dir == dirH2C && len(data) > copyMax
	if dir == dirH2C && len(data) > q.inCapsuleLimit(cmd) || big && pl != nil {
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
	if big {
		req.sending.Store(sendBusy)
	}
	timeout := time.Duration(q.cmdTimeout.Load())
	within = q.fill(req, cmd, data, dir, timeout, within, done)
	if q.isDead() {
		if req.state.CompareAndSwap(stateInflight, stateCompleting) {
			req.sending.Store(sendIdle)
			q.release(req)
			return false
		}
		if big {
			q.sent(req) // the failing path may have left the result to us
		}
		return true // the failing path completes it
	}
	q.send(req, data, timeout, within, pl)
	if big {
		q.sent(req)
	}
	return true
}

// sent ends the submitter's write of a large asynchronous command: if a
// completer found the command still being written and left its result
// (sendDeferred), the submitter delivers it now, on a new goroutine, as
// done never runs on a submitter's stack.
func (q *Queue) sent(req *request) {
	if req.sending.CompareAndSwap(sendBusy, sendIdle) {
		return
	}
	c, err, n := req.cqe, req.err, req.notify
	req.sending.Store(sendIdle)
	q.release(req)
	go n.CommandDone(c, err)
}

// Flush implements plug.Flusher: it writes the capsules held for a plug.
func (q *Queue) Flush() {
	if err := q.s.flush(); err != nil {
		q.kill(fmt.Errorf("send held commands: %w", err))
	}
}
