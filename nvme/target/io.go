package target

import (
	"github.com/mpathfs/mpathfs/nvme"
)

// anaStatus is the status of I/O through a port whose ANA group state is
// s (nvmet_check_ana_state); 0 if I/O may proceed.
func anaStatus(s nvme.ANAState) nvme.Status {
	switch s {
	case nvme.ANAInaccessible:
		return nvme.StatusANAInaccessible
	case nvme.ANAPersistentLoss:
		return nvme.StatusANAPersistentLoss
	case nvme.ANAChange:
		return nvme.StatusANATransition
	}
	return 0
}

// failIO completes r with st, discarding in-capsule data; false if the
// connection broke.
func (c *conn) failIO(r *request, dl int, st nvme.Status) bool {
	if dl > 0 {
		if err := c.r.Discard(); err != nil {
			c.putReq(r)
			return false
		}
	}
	c.complete(r, st, 0)
	return true
}

// ioCmd checks an I/O command in the reader goroutine, receives its data
// (in-capsule or by R2T) and hands it to a worker.
func (c *conn) ioCmd(ctrl *Controller, r *request, dl int) bool {
	cmd := &r.cmd
	if !ctrl.ready.Load() {
		if ctrl.dying.Load() {
			// Torn down (admin queue gone, keep-alive expired): close the
			// queue as nvmet does, so the host fails the I/O over; a DNR
			// status would end it with an error.
			c.putReq(r)
			return false
		}
		return c.failIO(r, dl, nvme.StatusCommandSequenceError|nvme.StatusDNR)
	}
	if st := c.p.takeFailure(); st != 0 {
		if !ctrl.acre.Load() {
			st &^= nvme.StatusCRDMask // CRD only for a host that enabled ACRE
		}
		return c.failIO(r, dl, st)
	}
	op := nvme.IOOpcode(cmd.Opcode)
	ns := ctrl.s.namespace(cmd.NSID)
	if ns == nil {
		if op == nvme.IOFlush && cmd.NSID == nvme.NSIDAll {
			c.work <- r
			return true
		}
		return c.failIO(r, dl, nvme.StatusInvalidNamespace|nvme.StatusDNR)
	}
	if st := anaStatus(c.p.ANAState(ns.ANAGroup())); st != 0 {
		return c.failIO(r, dl, st)
	}
	r.ns = ns
	length, inCap, st := sgl(cmd)
	if st != 0 {
		return c.failIO(r, dl, st)
	}
	switch op {
	case nvme.IORead, nvme.IOWrite, nvme.IOWriteZeroes:
		slba, nlb := nvme.ParseRWCommand(cmd)
		if blocks := ns.blocks.Load(); slba >= blocks || uint64(nlb) > blocks-slba {
			return c.failIO(r, dl, nvme.StatusLBARange|nvme.StatusDNR)
		}
		r.off, r.n = int64(slba)*ns.bs, int64(nlb)*ns.bs
		write := op != nvme.IORead
		if st := ns.resv.check(ctrl.hostID, write); st != 0 {
			return c.failIO(r, dl, st)
		}
		if op == nvme.IOWriteZeroes {
			if dl > 0 || length != 0 {
				return c.failIO(r, dl, nvme.StatusInvalidField|nvme.StatusDNR)
			}
			c.work <- r
			return true
		}
		if int64(length) != r.n {
			return c.failIO(r, dl, nvme.StatusDataSGLLengthInvalid|nvme.StatusDNR)
		}
		if m := c.p.cfg.MDTS; (m > 0 && r.n > 4096<<m) || r.n > MaxTransfer {
			return c.failIO(r, dl, nvme.StatusInvalidField|nvme.StatusDNR)
		}
		if write {
			return c.receive(r, length, dl, inCap)
		}
		if inCap || dl > 0 {
			return c.failIO(r, dl, nvme.StatusInvalidField|nvme.StatusDNR)
		}
		c.dispatch(r)
		return true
	case nvme.IOFlush:
		if dl > 0 {
			return c.failIO(r, dl, nvme.StatusInvalidField|nvme.StatusDNR)
		}
		c.work <- r
		return true
	case nvme.IODatasetManagement:
		nr, _ := nvme.ParseDSMCommand(cmd)
		if length < nr*nvme.DSMRangeSize {
			return c.failIO(r, dl, nvme.StatusDataSGLLengthInvalid|nvme.StatusDNR)
		}
		if st := ns.resv.check(ctrl.hostID, true); st != 0 {
			return c.failIO(r, dl, st)
		}
		return c.receive(r, length, dl, inCap)
	case nvme.IOReservationRegister, nvme.IOReservationAcquire, nvme.IOReservationRelease:
		want := nvme.ResvRegisterDataSize
		if op == nvme.IOReservationRelease {
			want = nvme.ResvReleaseDataSize
		}
		if length < want || length > 4096 {
			return c.failIO(r, dl, nvme.StatusDataSGLLengthInvalid|nvme.StatusDNR)
		}
		return c.receive(r, length, dl, inCap)
	case nvme.IOReservationReport:
		n, _ := nvme.ParseReservationReportCommand(cmd)
		if inCap || dl > 0 || int(n) != length || n > maxLogLen {
			return c.failIO(r, dl, nvme.StatusDataSGLLengthInvalid|nvme.StatusDNR)
		}
		c.work <- r
		return true
	}
	return c.failIO(r, dl, nvme.StatusInvalidOpcode|nvme.StatusDNR)
}

// execIO runs a checked I/O command in a worker goroutine.
func (c *conn) execIO(r *request) {
	ns := r.ns
	switch nvme.IOOpcode(r.cmd.Opcode) {
	case nvme.IORead:
		if ns.ram != nil {
			// Send straight from the namespace memory under the chunks'
			// read locks; take the writer first so a stall never waits
			// while holding them.
			if !c.lockW() {
				c.putReq(r)
				return
			}
			data := ns.ram.rlock(r.off, r.n)
			if c.p.takeShort() {
				data = data[:len(data)/2]
			}
			_ = c.sendDataLocked(r, data)
			ns.ram.runlock(r.off, r.n)
			c.wmu.Unlock()
			c.putReq(r)
			return
		}
		r.buf = c.t.bufs.get(int(r.n))
		if err := ns.file.readAt(*r.buf, r.off); err != nil {
			c.log.Error("read failed", "nsid", ns.nsid, "err", err)
			c.complete(r, nvme.StatusUnrecoveredRead, 0)
			return
		}
		data := *r.buf
		if c.p.takeShort() {
			data = data[:len(data)/2]
		}
		c.completeData(r, data)
	case nvme.IOWrite:
		if ns.ram != nil {
			ns.ram.writeAt(r.data, r.off)
		} else if err := ns.file.writeAt(r.data, r.off); err != nil {
			c.log.Error("write failed", "nsid", ns.nsid, "err", err)
			c.complete(r, nvme.StatusWriteFault, 0)
			return
		}
		c.complete(r, 0, 0)
	case nvme.IOFlush:
		c.complete(r, flush(c, ns), 0)
	case nvme.IOWriteZeroes:
		deac := r.cmd.CDW12&nvme.RWDeallocate != 0
		c.complete(r, ns.zero(r.off, r.n, deac), 0)
	case nvme.IODatasetManagement:
		c.complete(r, ns.dsm(r), 0)
	case nvme.IOReservationRegister, nvme.IOReservationAcquire, nvme.IOReservationRelease:
		c.complete(r, ns.resv.command(c.controller(), &r.cmd, r.data), 0)
	case nvme.IOReservationReport:
		n, eds := nvme.ParseReservationReportCommand(&r.cmd)
		if !eds {
			c.complete(r, nvme.StatusHostIDInconsistent|nvme.StatusDNR, 0)
			return
		}
		r.buf = c.t.bufs.get(int(n))
		b := *r.buf
		clear(b)
		copy(b, ns.resv.report().AppendBinary(nil))
		c.completeData(r, b)
	default:
		c.complete(r, nvme.StatusInvalidOpcode|nvme.StatusDNR, 0)
	}
}

// flush syncs a file namespace (all of the subsystem's for NSID
// 0xFFFFFFFF); RAM needs nothing.
func flush(c *conn, ns *Namespace) nvme.Status {
	list := []*Namespace{ns}
	if ns == nil {
		ctrl := c.controller()
		if ctrl == nil {
			return nvme.StatusInternalError
		}
		list = ctrl.s.namespaces()
	}
	for _, n := range list {
		if n.file != nil {
			if err := n.file.sync(); err != nil {
				c.log.Error("flush failed", "nsid", n.nsid, "err", err)
				return nvme.StatusInternalError
			}
		}
	}
	return 0
}

// zero makes [off, off+n) read as zeroes: zeroed memory for RAM, a punched
// hole (deallocate) or zeroed range for a file.
func (ns *Namespace) zero(off, n int64, deallocate bool) nvme.Status {
	if ns.ram != nil {
		ns.ram.zero(off, n)
		return 0
	}
	var err error
	if deallocate {
		err = ns.file.punch(off, n)
	} else {
		err = ns.file.zero(off, n)
	}
	if err != nil {
		ns.s.t.log.Error("write zeroes failed", "nsid", ns.nsid, "err", err)
		return nvme.StatusWriteFault
	}
	return 0
}

// dsm runs Dataset Management: with the Deallocate attribute every range
// is deallocated (reads back as zeroes); other attributes are hints.
func (ns *Namespace) dsm(r *request) nvme.Status {
	nr, attrs := nvme.ParseDSMCommand(&r.cmd)
	if attrs&nvme.DSMDeallocate == 0 {
		return 0
	}
	for i := range nr {
		slba, nlb := nvme.ParseDSMRange(r.data[i*nvme.DSMRangeSize:])
		if nlb == 0 {
			continue
		}
		if blocks := ns.blocks.Load(); slba >= blocks || uint64(nlb) > blocks-slba {
			return nvme.StatusLBARange | nvme.StatusDNR
		}
		if st := ns.zero(int64(slba)*ns.bs, int64(nlb)*ns.bs, true); st != 0 {
			return st
		}
	}
	return 0
}
