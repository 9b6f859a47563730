package tcp

import (
	"errors"
	"fmt"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

// readLoop is the queue's only reader. It stops at the first error — never
// parsing a stream it may have lost sync with — kills the queue and fails
// whatever is still in flight.
func (q *Queue) readLoop() {
	defer close(q.readerDone)
	err := q.recv()
	q.termReq(err)
	q.kill(err)
	q.failAll()
}

// termReqTimeout bounds the H2CTermReq write to a peer that may not read.
const termReqTimeout = 100 * time.Millisecond

// termReq tells the controller why the host is closing the connection, as
// the NVMe/TCP transport asks of the side that detects a fatal error: an
// H2CTermReq with the FES, FEI and the offending header. (Linux just
// closes; a controller must cope with both.) Nothing is sent for errors
// that are not protocol violations, e.g. the peer closing.
func (q *Queue) termReq(err error) {
	var pe *pdu.ProtocolError
	if !errors.As(err, &pe) || q.isDead() {
		return
	}
	hdr := pe.Header
	if len(hdr) == 0 {
		// A violation the queue found after parsing (unknown CID, bad R2T):
		// the reader stopped on the offending PDU, whose header it still has.
		hdr = q.r.RawHeader()
	}
	if werr := q.s.termReq(pdu.TermReq{FES: pe.FES, FEI: pe.FEI, Header: hdr}, termReqTimeout); werr != nil {
		q.log.Debug("H2CTermReq not sent", "error", werr)
	}
}

// recv processes C2H PDUs until an error; it always returns non-nil.
func (q *Queue) recv() error {
	for {
		h, err := q.r.Next()
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		q.lastRecv.Store(int64(q.since()))
		switch h.Type {
		case pdu.TypeCapsuleResp:
			err = q.recvResp()
		case pdu.TypeC2HData:
			err = q.recvData(h)
		case pdu.TypeR2T:
			err = q.recvR2T()
		case pdu.TypeC2HTermReq:
			t, terr := q.r.TermReq()
			if terr != nil {
				return fmt.Errorf("receive C2HTermReq: %w", terr)
			}
			return fmt.Errorf("controller sent C2HTermReq: FES %#x (%s), FEI %d", uint16(t.FES), t.FES, t.FEI)
		default:
			// Linux (nvme_tcp_recv_pdu) accepts only these four types.
			return protoErr(pdu.FESInvalidHeaderField, 0, "unexpected PDU type %s", h.Type)
		}
		if err != nil {
			return err
		}
	}
}

// protoErr returns a *pdu.ProtocolError for a violation found by the queue.
func protoErr(fes pdu.FES, fei uint32, format string, args ...any) error {
	return &pdu.ProtocolError{FES: fes, FEI: fei, Reason: fmt.Sprintf(format, args...)}
}

// lookup returns the in-flight request with CID cid (including abandoned
// ones), or a protocol error: unknown tag, tag not in flight, or genctr
// mismatch all trigger error recovery in Linux.
func (q *Queue) lookup(t pdu.Type, cid uint16) (*request, error) {
	tag := int(cid & tagMask)
	if tag >= len(q.reqs) {
		return nil, protoErr(pdu.FESInvalidHeaderField, 8, "%s: CID %#04x: tag %d out of range (depth %d)", t, cid, tag, len(q.reqs))
	}
	req := &q.reqs[tag]
	if s := req.state.Load(); s != stateInflight && s != stateAbandoned {
		return nil, protoErr(pdu.FESInvalidHeaderField, 8, "%s: CID %#04x not in flight", t, cid)
	}
	if req.cid != cid {
		return nil, protoErr(pdu.FESInvalidHeaderField, 8, "%s: CID %#04x: generation mismatch, in flight %#04x", t, cid, req.cid)
	}
	return req, nil
}

func (q *Queue) recvResp() error {
	var cqe nvme.Completion
	q.r.Completion(&cqe)
	req, err := q.lookup(pdu.TypeCapsuleResp, cqe.CID)
	if err != nil {
		return err
	}
	if cqe.Status.OK() && req.received != uint32(len(req.data)) && req.dir == dirC2H {
		return shortRead(pdu.TypeCapsuleResp, req)
	}
	if cqe.Status.OK() && req.dir == dirH2C && !req.inCapsule && req.r2tBytes != uint32(len(req.data)) {
		// A write acknowledged without all its data: it would be lost.
		return protoErr(pdu.FESSequenceError, 0, "CapsuleResp: CID %#04x: write completed with success after R2Ts for %d of %d bytes", req.cid, req.r2tBytes, len(req.data))
	}
	if req.ddgstErr {
		// Linux keeps the data transfer error recorded for the request.
		cqe.Status = nvme.StatusDataTransferError
	}
	q.complete(req, &cqe, nil)
	return nil
}

func (q *Queue) recvData(h pdu.Header) error {
	d := q.r.Data()
	req, err := q.lookup(pdu.TypeC2HData, d.CCCID)
	if err != nil {
		return err
	}
	switch {
	case req.dir != dirC2H || len(req.data) == 0:
		return protoErr(pdu.FESInvalidHeaderField, 8, "C2HData for CID %#04x, which reads no data", d.CCCID)
	case d.Offset != req.received:
		return protoErr(pdu.FESDataOutOfRange, 12, "C2HData CID %#04x: DATAO %d, expected %d", d.CCCID, d.Offset, req.received)
	case uint64(d.Offset)+uint64(d.Length) > uint64(len(req.data)):
		return protoErr(pdu.FESDataOutOfRange, 16, "C2HData CID %#04x: %d bytes at %d exceed the command's %d", d.CCCID, d.Length, d.Offset, len(req.data))
	case h.Flags.Has(pdu.FlagSuccess) && !h.Flags.Has(pdu.FlagLast):
		return protoErr(pdu.FESInvalidHeaderField, 1, "C2HData CID %#04x: SUCCESS without LAST_PDU", d.CCCID)
	}
	err = q.place(req, req.data[d.Offset:d.Offset+d.Length])
	req.received += d.Length
	if errors.Is(err, pdu.ErrDataDigest) {
		q.rlog.Error("data digest error", "cid", d.CCCID, "offset", d.Offset, "length", d.Length)
		req.ddgstErr = true
	} else if err != nil {
		return fmt.Errorf("receive C2HData: %w", err)
	}
	if h.Flags.Has(pdu.FlagSuccess) {
		if req.received != uint32(len(req.data)) {
			return shortRead(pdu.TypeC2HData, req)
		}
		cqe := nvme.Completion{CID: d.CCCID}
		if req.ddgstErr {
			cqe.Status = nvme.StatusDataTransferError
		}
		q.complete(req, &cqe, nil)
	}
	return nil
}

// shortRead is the violation of a read completed with success before all its
// data arrived: the buffer holds stale bytes, so the command must not
// complete (Linux completes it; we fail the queue and the read goes to
// another path).
func shortRead(t pdu.Type, req *request) error {
	return protoErr(pdu.FESSequenceError, 0, "%s: CID %#04x completed with success after %d of %d data bytes", t, req.cid, req.received, len(req.data))
}

// place reads the current PDU's data into buf in chunks, holding req.mu so
// that an Exec abandoning req never returns while its buffer is written.
// Data of an abandoned request is discarded.
func (q *Queue) place(req *request, buf []byte) error {
	for len(buf) > 0 {
		n := min(len(buf), placeChunk)
		req.mu.Lock()
		if req.state.Load() == stateAbandoned {
			req.mu.Unlock()
			return q.r.Discard()
		}
		err := q.r.ReadData(buf[:n])
		req.mu.Unlock()
		if err != nil {
			return err
		}
		buf = buf[n:]
	}
	return nil
}

func (q *Queue) recvR2T() error {
	r := q.r.R2T()
	req, err := q.lookup(pdu.TypeR2T, r.CCCID)
	if err != nil {
		return err
	}
	switch {
	case req.dir != dirH2C || req.inCapsule:
		return protoErr(pdu.FESInvalidHeaderField, 8, "R2T for CID %#04x, which has no data to send", r.CCCID)
	case r.Length == 0:
		return protoErr(pdu.FESInvalidHeaderField, 16, "R2T CID %#04x: R2TL 0", r.CCCID)
	case r.Offset < req.r2tEnd:
		return protoErr(pdu.FESDataOutOfRange, 12, "R2T CID %#04x: R2TO %d below %d already requested", r.CCCID, r.Offset, req.r2tEnd)
	case uint64(r.Offset)+uint64(r.Length) > uint64(len(req.data)):
		return protoErr(pdu.FESDataOutOfRange, 16, "R2T CID %#04x: %d bytes at %d exceed the command's %d", r.CCCID, r.Length, r.Offset, len(req.data))
	}
	req.r2tEnd = r.Offset + r.Length
	req.r2tBytes += r.Length
	select {
	case req.r2t <- r:
		return nil
	default:
		return protoErr(pdu.FESR2TLimit, 0, "R2T CID %#04x: more than MAXR2T+1 (1) outstanding", r.CCCID)
	}
}
