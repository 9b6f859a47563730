package multipath

import (
	"time"

	"github.com/mpathfs/mpathfs/internal/plug"
	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme/host"
)

// ioStarter is the optional Controller capability behind SubmitAsync
// (*host.Controller has it).
type ioStarter interface {
	StartIO(write bool, nsid uint32, slba uint64, buf []byte, within time.Duration, done host.Completer, pl *plug.Plug) bool
}

// startedIO is one SubmitAsync in flight: the host's completion, passed
// up after the path's drain accounting. Pooled per path.
type startedIO struct {
	p    *Path
	done mpath.Completer
}

// IODone implements host.Completer.
func (x *startedIO) IODone(err error) {
	p, done := x.p, x.done
	x.done = nil
	p.starts.Put(x)
	p.done()
	done.Complete(err)
}

// SubmitAsync implements mpath.AsyncPathDriver for reads and writes that
// the controller can start as one command without a waiting goroutine
// (host.Controller.StartIO); anything else is declined.
func (p *Path) SubmitAsync(req *mpath.Request, done mpath.Completer) bool {
	if req.Op != mpath.OpRead && req.Op != mpath.OpWrite {
		return false
	}
	st, ok := p.ctrl.(ioStarter)
	if !ok {
		return false
	}
	p.inflight.Add(1)
	if p.draining.Load() {
		p.done() // Submit answers this with a path error, and fails over
		return false
	}
	x, _ := p.starts.Get().(*startedIO)
	if x == nil {
		x = &startedIO{p: p}
	}
	x.done = done
	if !st.StartIO(req.Op == mpath.OpWrite, p.nsid, p.slba(req.Offset), req.Buf[:req.Length], req.SilentAfter, x, req.Plug) {
		x.done = nil
		p.starts.Put(x)
		p.done()
		return false
	}
	return true
}
