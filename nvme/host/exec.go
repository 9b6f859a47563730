package host

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// Exec runs one I/O command on an I/O queue chosen round-robin (an atomic
// counter, no lock). data is the command's data buffer: sent for writes,
// filled for reads, used in place (no copy). Exec does not allocate.
//
// The error is nil iff a success completion arrived. Otherwise:
//   - nvme.Status: the controller completed the command with that status
//     (after an ANA error the multipath layer calls QueueANARead);
//   - *AbortedError (unwraps to nvme.StatusHostAborted, 0x371): the command
//     was in flight when the connection was lost (or timed out) and was
//     cancelled by error recovery;
//   - nvme.StatusHostPathError (0x370): the controller is not LIVE
//     (resetting, connecting, deleting (no IO), dead). It is returned at
//     once in every non-live state, also while fast_io_fail has not
//     expired: this package does not queue. The multipath layer above
//     decides between requeueing (Available() true) and failing;
//   - the context's error if ctx ended first.
func (c *Controller) Exec(ctx context.Context, cmd *nvme.Command, data []byte) (nvme.Completion, error) {
	return c.exec(ctx, cmd, data, 0)
}

func (c *Controller) exec(ctx context.Context, cmd *nvme.Command, data []byte, within time.Duration) (nvme.Completion, error) {
	a := c.cur.Load()
	if s := State(c.stateA.Load()); a == nil || (s != StateLive && s != StateDeleting) || len(a.io) == 0 {
		return nvme.Completion{}, nvme.StatusHostPathError
	}
	q := a.io[c.rr.Add(1)%uint32(len(a.io))]
	var cqe nvme.Completion
	var err error
	if se, ok := q.(fabrics.SilentExecer); ok && within > 0 {
		cqe, err = se.ExecWithin(ctx, cmd, data, within)
	} else {
		cqe, err = q.Exec(ctx, cmd, data)
	}
	return cqe, c.result(a, cqe, err, within)
}

// result is the error of a command of association a that ended with cqe
// and the queue's err (within: its silence bound).
func (c *Controller) result(a *assoc, cqe nvme.Completion, err error, within time.Duration) error {
	if err != nil {
		if errors.Is(err, fabrics.ErrSilent) {
			c.suspectSilent(a, within)
			return ErrSilent
		}
		return c.lost(a, err)
	}
	if !cqe.Status.OK() {
		c.cmdErrors.Add(1)
		return cqe.Status
	}
	return nil
}

// lost classifies a command that got no completion.
func (c *Controller) lost(a *assoc, err error) error {
	if isQueueLoss(err) {
		c.errorRecovery(a, err)
		return a.aborted(err)
	}
	return err
}

// AdminExec runs one admin command (with the admin timeout) on the live
// association; errors as for Exec.
func (c *Controller) AdminExec(ctx context.Context, cmd *nvme.Command, data []byte) (nvme.Completion, error) {
	a, err := c.live()
	if err != nil {
		return nvme.Completion{}, err
	}
	return c.adminCmd(ctx, a, cmd, data)
}

func (c *Controller) getCmd() *ioCmd  { return c.ioPool.Get().(*ioCmd) }
func (c *Controller) putCmd(x *ioCmd) { c.ioPool.Put(x) }

// execPooled runs x.cmd and recycles x unless the command may still be in
// the transport's hands (no completion).
func (c *Controller) execPooled(ctx context.Context, x *ioCmd, data []byte) error {
	return c.execPooledWithin(ctx, x, data, 0)
}

func (c *Controller) execPooledWithin(ctx context.Context, x *ioCmd, data []byte, within time.Duration) error {
	_, err := c.exec(ctx, &x.cmd, data, within)
	if err == nil || isStatus(err) {
		c.putCmd(x)
	}
	return err
}

func isStatus(err error) bool {
	_, ok := err.(nvme.Status)
	return ok
}

// geometry returns the block size of nsid and the most blocks one command
// may carry (MDTS, max transfer, 16-bit NLB).
func (c *Controller) geometry(nsid uint32) (bs int, maxBlocks int, err error) {
	g, ok := (*c.geom.Load())[nsid]
	if !ok {
		return 0, 0, fmt.Errorf("%w: nsid %d", ErrNoNamespace, nsid)
	}
	bs = int(g.bs)
	maxBlocks = 1 << 16
	if a := c.cur.Load(); a != nil && a.maxXfer > 0 {
		maxBlocks = min(maxBlocks, max(a.maxXfer/bs, 1))
	}
	return bs, maxBlocks, nil
}

// Read reads len(buf) bytes (a multiple of the block size) from nsid at
// slba into buf, split at the maximum transfer size.
func (c *Controller) Read(ctx context.Context, nsid uint32, slba uint64, buf []byte) error {
	return c.rw(ctx, nvme.IORead, nsid, slba, buf, 0)
}

// ReadWithin is Read with a silence bound for a caller that has another
// path: if a command of the read gets nothing back within within while
// its queue receives nothing at all, the read is given up with ErrSilent
// (the command keeps its CID until its completion arrives or the queue is
// torn down; late data is discarded, buf is never written after the
// return), the controller is marked Silent and probed at once with a Keep
// Alive. Only reads have a bound: a write that may still execute is never
// given up (the write fence).
func (c *Controller) ReadWithin(ctx context.Context, nsid uint32, slba uint64, buf []byte, within time.Duration) error {
	return c.rw(ctx, nvme.IORead, nsid, slba, buf, within)
}

// Write writes buf (a multiple of the block size) to nsid at slba, split
// at the maximum transfer size.
func (c *Controller) Write(ctx context.Context, nsid uint32, slba uint64, buf []byte) error {
	return c.rw(ctx, nvme.IOWrite, nsid, slba, buf, 0)
}

func (c *Controller) rw(ctx context.Context, op nvme.IOOpcode, nsid uint32, slba uint64, buf []byte, within time.Duration) error {
	bs, maxBlocks, err := c.geometry(nsid)
	if err != nil {
		return err
	}
	if len(buf)%bs != 0 {
		return fmt.Errorf("%w: %d bytes, block size %d", ErrUnaligned, len(buf), bs)
	}
	chunk := maxBlocks * bs
	for off := 0; off < len(buf); off += chunk {
		n := min(chunk, len(buf)-off)
		x := c.getCmd()
		if op == nvme.IORead {
			x.cmd = nvme.NewRead(nsid, slba+uint64(off/bs), uint32(n/bs))
		} else {
			x.cmd = nvme.NewWrite(nsid, slba+uint64(off/bs), uint32(n/bs))
		}
		if err := c.execPooledWithin(ctx, x, buf[off:off+n], within); err != nil {
			return err
		}
	}
	return nil
}

// Silent reports that the controller stopped answering: a read got
// nothing back within its silence bound (ReadWithin) and no keep-alive
// probe has been answered since. The state stays LIVE; the multipath
// layer treats the path as disabled meanwhile.
func (c *Controller) Silent() bool { return c.silent.Load() }

// suspectSilent marks the controller silent and probes association a
// with an immediate Keep Alive, once per episode: an answer clears the
// mark; none within KATO starts error recovery, as the keep-alive timer
// would.
func (c *Controller) suspectSilent(a *assoc, within time.Duration) {
	if c.cur.Load() != a || !c.silent.CompareAndSwap(false, true) {
		return
	}
	c.rlog.Warn("controller not answering: reads fail over, probing with keep alive", "silent_for", within)
	c.pushEvent(SilenceChanged)
	if !c.beginBackground() {
		return
	}
	go func() {
		defer c.bg.Done()
		c.probe(a)
	}()
}

// probe sends one Keep Alive on a's admin queue now (instead of at the
// keep-alive timer's next tick) and waits up to KATO for it.
func (c *Controller) probe(a *assoc) {
	kato := a.kato
	if kato <= 0 {
		kato = c.cfg.adminTimeout
	}
	t0 := c.clk.Now()
	ctx, cancel := context.WithTimeout(a.ctx, kato)
	cmd := nvme.NewKeepAlive()
	_, err := a.admin.Exec(ctx, &cmd, nil)
	cancel()
	if a.ctx.Err() != nil {
		return // torn down: a new association starts answering
	}
	if err != nil {
		err = fmt.Errorf("keep alive probe: no completion within kato %s: %w", kato, err)
		c.log.Error("failed nvme_keep_alive_end_io", "error", err)
		c.errorRecovery(a, err)
		return
	}
	if c.cur.Load() == a && c.silent.CompareAndSwap(true, false) {
		c.rlog.Info("controller answers again", "probe_rtt", c.clk.Now().Sub(t0))
		c.pushEvent(SilenceChanged)
	}
}

// Flush flushes nsid's volatile write cache.
func (c *Controller) Flush(ctx context.Context, nsid uint32) error {
	x := c.getCmd()
	x.cmd = nvme.NewFlush(nsid)
	return c.execPooled(ctx, x, nil)
}

// WriteZeroes zeroes nlb blocks from slba (split at 65536 blocks per
// command).
func (c *Controller) WriteZeroes(ctx context.Context, nsid uint32, slba, nlb uint64) error {
	for nlb > 0 {
		n := min(nlb, 1<<16)
		x := c.getCmd()
		x.cmd = nvme.NewWriteZeroes(nsid, slba, uint32(n), false)
		if err := c.execPooled(ctx, x, nil); err != nil {
			return err
		}
		slba += n
		nlb -= n
	}
	return nil
}

// Deallocate deallocates (discards) nlb blocks from slba with Dataset
// Management, one range per command.
func (c *Controller) Deallocate(ctx context.Context, nsid uint32, slba, nlb uint64) error {
	for nlb > 0 {
		n := min(nlb, math.MaxUint32)
		x := c.getCmd()
		x.cmd = nvme.NewDeallocate(nsid, 1)
		nvme.MarshalDSMRange(x.buf[:nvme.DSMRangeSize], slba, uint32(n))
		if err := c.execPooled(ctx, x, x.buf[:nvme.DSMRangeSize]); err != nil {
			return err
		}
		slba += n
		nlb -= n
	}
	return nil
}

// ReservationRegister registers (nvme.ResvRegister), unregisters or
// replaces (ResvReplace) a reservation key: crkey is the current key,
// nrkey the new one; cptpl is the persist-through-power-loss change.
func (c *Controller) ReservationRegister(ctx context.Context, nsid uint32, action uint8, crkey, nrkey uint64, iekey bool, cptpl uint8) error {
	x := c.getCmd()
	x.cmd = nvme.NewReservationRegister(nsid, action, iekey, cptpl)
	d := x.buf[:nvme.ResvRegisterDataSize]
	nvme.MarshalReservationKeys(d, crkey, nrkey)
	return c.execPooled(ctx, x, d)
}

// ReservationAcquire acquires (nvme.ResvAcquire) or preempts
// (ResvPreempt, ResvPreemptAbort, prkey = the key to preempt) a
// reservation of type rtype.
func (c *Controller) ReservationAcquire(ctx context.Context, nsid uint32, action uint8, rtype nvme.ReservationType, crkey, prkey uint64, iekey bool) error {
	x := c.getCmd()
	x.cmd = nvme.NewReservationAcquire(nsid, action, iekey, rtype)
	d := x.buf[:nvme.ResvAcquireDataSize]
	nvme.MarshalReservationKeys(d, crkey, prkey)
	return c.execPooled(ctx, x, d)
}

// ReservationRelease releases (nvme.ResvRelease) or clears (ResvClear) the
// reservation.
func (c *Controller) ReservationRelease(ctx context.Context, nsid uint32, action uint8, rtype nvme.ReservationType, crkey uint64, iekey bool) error {
	x := c.getCmd()
	x.cmd = nvme.NewReservationRelease(nsid, action, iekey, rtype)
	d := x.buf[:nvme.ResvReleaseDataSize]
	nvme.MarshalReservationKeys(d, crkey, 0)
	return c.execPooled(ctx, x, d)
}

// ReservationReport returns the reservation status (extended data
// structure, EDS=1, the format the Linux target supports), re-reading
// with a larger buffer if the registrants did not fit.
func (c *Controller) ReservationReport(ctx context.Context, nsid uint32) (*nvme.ReservationStatus, error) {
	size := 4096
	for {
		buf := make([]byte, size)
		cmd := nvme.NewReservationReport(nsid, uint32(size), true)
		if _, err := c.Exec(ctx, &cmd, buf); err != nil {
			return nil, err
		}
		r, regctl, err := nvme.ParseReservationStatus(buf)
		if err != nil {
			return nil, err
		}
		need := nvme.ResvStatusHeaderSize + int(regctl)*nvme.ResvStatusEntrySize
		if need <= size || size >= 1<<20 {
			return r, nil
		}
		size = need
	}
}
