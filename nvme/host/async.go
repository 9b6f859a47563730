package host

import (
	"time"

	"github.com/mpathfs/mpathfs/internal/plug"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// Completer receives the result of an I/O started with StartIO.
type Completer interface {
	// IODone is called exactly once per started I/O with the error Read,
	// ReadWithin or Write would have returned. It runs on a transport
	// goroutine and must not block.
	IODone(err error)
}

// StartIO starts a read (or write) of buf at slba of nsid as one command
// and returns without waiting; done.IODone follows with the result. within
// is ReadWithin's silence bound (reads only; 0: none). It allocates
// nothing on success.
//
// StartIO reports false, having sent nothing, when the I/O cannot go
// this way now; the caller then uses Read or Write, which also give the
// errors of a controller that is not live. pl, if not nil, may hold the
// command back until pl.Unplug (fabrics.AsyncExecer). It cannot when the controller
// is not live, buf is not whole blocks or needs more than one command,
// the queue cannot submit without a waiting goroutine (fabrics.AsyncExecer:
// a write sent on R2T, no free tag), or the queue is dead.
func (c *Controller) StartIO(write bool, nsid uint32, slba uint64, buf []byte, within time.Duration, done Completer, pl *plug.Plug) bool {
	a := c.cur.Load()
	if s := State(c.stateA.Load()); a == nil || (s != StateLive && s != StateDeleting) || len(a.io) == 0 {
		return false
	}
	bs, maxBlocks, err := c.geometry(nsid)
	if err != nil || len(buf) == 0 || len(buf)%bs != 0 || len(buf) > maxBlocks*bs {
		return false
	}
	// Round-robin over the I/O queues, per I/O; per batch when plugged,
	// so that the commands held together leave in one write.
	var i uint64
	if pl != nil {
		i = pl.Epoch()
	} else {
		i = uint64(c.rr.Add(1))
	}
	q, ok := a.io[i%uint64(len(a.io))].(fabrics.AsyncExecer)
	if !ok {
		return false
	}
	x := c.getCmd()
	if write {
		x.cmd = nvme.NewWrite(nsid, slba, uint32(len(buf)/bs))
		within = 0
	} else {
		x.cmd = nvme.NewRead(nsid, slba, uint32(len(buf)/bs))
	}
	x.c, x.a, x.within, x.up = c, a, within, done
	if !q.ExecAsync(&x.cmd, buf, within, x, pl) {
		x.c, x.a, x.up = nil, nil, nil
		c.putCmd(x)
		return false
	}
	return true
}

// CommandDone implements fabrics.Completer for StartIO's command. A
// completion is passed on here; a lost command (queue death, timeout,
// silence) is classified on a new goroutine, since that may start error
// recovery.
func (x *ioCmd) CommandDone(cqe nvme.Completion, err error) {
	c, a, within, up := x.c, x.a, x.within, x.up
	x.c, x.a, x.up = nil, nil, nil
	if err == nil {
		c.putCmd(x)
		up.IODone(c.result(a, cqe, nil, within))
		return
	}
	// As execPooled, x is not reused after a lost command.
	go func() { up.IODone(c.result(a, cqe, err, within)) }()
}
