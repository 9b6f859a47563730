package target

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/auth"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

// ioWorkers is the number of goroutines executing I/O commands of one I/O
// queue (the reader goroutine parses and receives data; workers read and
// write the backing store and send data and completions).
const ioWorkers = 4

// inlineMax is the largest RAM read or write the reader goroutine executes
// itself (a memmove), its response held back with the other responses of
// the commands it finds already received and sent in one write before the
// reader next waits for the socket. Larger transfers and file namespaces go
// to the workers.
const inlineMax = 128 << 10

// conn is one TCP connection: one queue (admin or I/O) once connected.
type conn struct {
	t   *Target
	p   *Port
	nc  net.Conn
	log hclog.Logger

	r   *pdu.Reader // reader goroutine only
	wmu sync.Mutex
	w   *pdu.Writer // under wmu
	cw  corkWriter  // under wmu; w writes through it
	// held: the reader holds output back (cw.hold) while it executes
	// commands inline; reader only.
	held bool

	done     chan struct{}
	doneOnce sync.Once
	sockOnce sync.Once

	ctrl atomic.Pointer[Controller]
	// Set by the reader before any worker starts, then read-only.
	qid       uint16
	sqsize    uint32 // entries
	sqflowOff bool
	inCapsule int
	sqhd      atomic.Uint32

	reqs    []*request    // every request of this connection; index = TTAG (reader only)
	free    chan *request // idle requests
	work    chan *request // I/O commands for the workers
	workers bool

	auth       *auth.Controller // DH-HMAC-CHAP of this queue, nil: none (reader only)
	authLogged bool

	scratch [fabrics.AdminInCapsuleMax]byte // admin/fabrics in-capsule data (reader only)
	admBuf  []byte                          // admin response data (reader only)
}

// request is one command in flight; requests are reused.
type request struct {
	c       *conn
	idx     uint16
	cmd     nvme.Command
	cqe     nvme.Completion
	ns      *Namespace
	off, n  int64   // byte range of Read/Write/Write Zeroes
	buf     *[]byte // pooled buffer holding data
	data    []byte  // host data (in-capsule or received after R2T)
	got     int     // bytes received so far after R2T
	r2t     bool    // waiting for H2CData
	dataErr nvme.Status
}

func newConn(p *Port, nc net.Conn) *conn {
	c := &conn{t: p.t, p: p, nc: nc, done: make(chan struct{}),
		log:  p.t.log.With("port", p.id, "remote", nc.RemoteAddr().String()),
		free: make(chan *request, p.cfg.MaxQueueSize+8),
	}
	maxData := max(uint32(fabrics.AdminInCapsuleMax), uint32(p.cfg.InCapsule), p.cfg.MaxH2CData)
	c.r = pdu.NewReader(newLowatReader(nc, &p.lowatN), maxData)
	c.cw.nc = nc
	c.w = pdu.NewWriter(&c.cw)
	return c
}

func (c *conn) controller() *Controller { return c.ctrl.Load() }

// kill ends the connection: the socket is closed now, or when the stall
// ends if the port is stalled.
func (c *conn) kill() {
	c.doneOnce.Do(func() { close(c.done) })
	if !c.p.deferClose(c) {
		c.closeSocket()
	}
}

func (c *conn) closeSocket() {
	c.doneOnce.Do(func() { close(c.done) })
	c.sockOnce.Do(func() { c.nc.Close() })
}

// serve is the reader goroutine.
func (c *conn) serve() {
	defer c.t.wg.Done()
	defer c.teardown()
	if !c.handshake() {
		return
	}
	defer c.release()
	for {
		if c.held && c.r.Buffered() < pdu.CapsuleCmdHLen+pdu.DigestLen {
			c.release() // the next read may wait for the host
		}
		h, err := c.r.Next()
		if err != nil {
			c.readError(err)
			return
		}
		if !c.p.waitStall(c.done) {
			return
		}
		switch h.Type {
		case pdu.TypeCapsuleCmd:
			if !c.capsule() {
				return
			}
		case pdu.TypeH2CData:
			if !c.h2cData() {
				return
			}
		case pdu.TypeH2CTermReq:
			tr, _ := c.r.TermReq()
			c.log.Warn("host terminated the connection", "fes", tr.FES.String(), "fei", tr.FEI)
			return
		case pdu.TypeICReq:
			c.termReq(pdu.FESSequenceError, 0, "ICReq after connection setup")
			return
		default:
			// Controller-to-host PDU types from a host.
			c.termReq(pdu.FESInvalidHeaderField, 0, "unexpected PDU type "+h.Type.String())
			return
		}
	}
}

func (c *conn) readError(err error) {
	var pe *pdu.ProtocolError
	if errors.As(err, &pe) {
		if c.p.waitStall(c.done) {
			c.log.Warn("protocol error from host", "err", pe.Error())
			c.sendTermReq(pe.FES, pe.FEI, pe.Header)
		}
		return
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.log.Debug("connection read failed", "err", err)
	}
}

// termReq sends a C2HTermReq for the current PDU; the caller then closes.
func (c *conn) termReq(fes pdu.FES, fei uint32, reason string) {
	c.log.Warn("fatal transport error", "reason", reason, "fes", fes.String(), "fei", fei)
	c.sendTermReq(fes, fei, c.r.RawHeader())
}

func (c *conn) sendTermReq(fes pdu.FES, fei uint32, hdr []byte) {
	c.release()
	c.wmu.Lock()
	err := c.w.TermReq(pdu.TypeC2HTermReq, pdu.TermReq{FES: fes, FEI: fei, Header: hdr})
	c.wmu.Unlock()
	if err != nil {
		return
	}
	// Half-close and drain what the host still sends for a moment, so the
	// close that follows is a FIN, not a reset that could destroy the
	// TermReq in flight. Runs in the reader goroutine.
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		_ = tc.SetReadDeadline(time.Now().Add(termReqLinger))
		_, _ = io.Copy(io.Discard, io.LimitReader(tc, 1<<20))
	}
}

// termReqLinger bounds the drain after a C2HTermReq.
const termReqLinger = 200 * time.Millisecond

func (c *conn) teardown() {
	if ctrl := c.controller(); ctrl != nil {
		if c.qid == 0 {
			ctrl.destroy("admin queue closed")
		} else {
			ctrl.removeQueue(c.qid, c)
		}
	}
	c.kill()
	if c.workers {
		close(c.work)
	}
	c.p.removeConn(c)
}

// handshake answers the ICReq (reference §1.3/§1.4): the digests asked
// for are echoed, HPDA is honoured, CPDA is 0.
func (c *conn) handshake() bool {
	h, err := c.r.Next()
	if err != nil {
		c.readError(err)
		return false
	}
	if h.Type != pdu.TypeICReq {
		if c.p.waitStall(c.done) {
			c.termReq(pdu.FESSequenceError, 0, "first PDU is "+h.Type.String()+", not ICReq")
		}
		return false
	}
	req := c.r.ICReq()
	if !c.p.waitStall(c.done) {
		return false
	}
	if req.PFV != 0 {
		c.termReq(pdu.FESUnsupportedParam, 8, "ICReq PFV not 0")
		return false
	}
	if req.HPDA > 31 {
		c.termReq(pdu.FESUnsupportedParam, 10, "ICReq HPDA above 31")
		return false
	}
	dg := req.Digest & (pdu.DigestHeader | pdu.DigestData)
	c.wmu.Lock()
	err = c.w.ICResp(pdu.ICResp{PFV: 0, CPDA: 0, Digest: dg, MaxH2CData: c.p.cfg.MaxH2CData})
	c.w.SetDigests(dg)
	c.w.SetPDA(req.HPDA)
	c.wmu.Unlock()
	c.r.SetDigests(dg)
	return err == nil
}

// getReq returns an idle request (allocated only while the host has more
// commands outstanding than ever before).
func (c *conn) getReq() *request {
	select {
	case r := <-c.free:
		return r
	default:
	}
	r := &request{c: c, idx: uint16(len(c.reqs))}
	if len(c.reqs) < 0xFFFF {
		c.reqs = append(c.reqs, r)
	} else {
		r.idx = 0xFFFF // never used as a TTAG
	}
	return r
}

func (c *conn) putReq(r *request) {
	if r.buf != nil {
		c.t.bufs.put(r.buf)
		r.buf = nil
	}
	r.data, r.ns, r.r2t, r.dataErr, r.got = nil, nil, false, 0, 0
	select {
	case c.free <- r:
	default:
	}
}

// lockW takes the writer lock once the port is not stalled; false if the
// connection ended meanwhile.
func (c *conn) lockW() bool {
	if !c.p.waitStall(c.done) {
		return false
	}
	c.wmu.Lock()
	return true
}

// complete sends the completion of r and recycles it.
func (c *conn) complete(r *request, st nvme.Status, dw0 uint32) {
	if c.loseCompletion(r) {
		return
	}
	c.fillCQE(r, st, dw0)
	if c.lockW() {
		_ = c.w.CapsuleResp(&r.cqe)
		c.wmu.Unlock()
	}
	c.putReq(r)
}

// loseCompletion applies the port's lost-completion fault
// (LoseNextCompletions) to an I/O command that ran and completes without
// data: the connection is closed instead of answering, and r is freed.
func (c *conn) loseCompletion(r *request) bool {
	if c.qid == 0 || !c.p.takeLoss() {
		return false
	}
	c.closeSocket()
	c.putReq(r)
	return true
}

func (c *conn) fillCQE(r *request, st nvme.Status, dw0 uint32) {
	if st != 0 {
		if ctrl := c.ctrl.Load(); ctrl != nil {
			st = ctrl.errs.record(c.qid, r.cmd.CID, st, r.cmd.NSID)
		}
	}
	r.cqe = nvme.Completion{DW0: dw0, SQID: c.qid, CID: r.cmd.CID, Status: st}
	if c.sqflowOff {
		r.cqe.SQHD = 0xFFFF
	} else if c.sqsize > 0 {
		r.cqe.SQHD = uint16(c.sqhd.Load() % c.sqsize)
	}
}

func (c *conn) completeAER(cid uint16, dw0 uint32) {
	cqe := nvme.Completion{DW0: dw0, SQID: 0, CID: cid}
	if c.lockW() {
		_ = c.w.CapsuleResp(&cqe)
		c.wmu.Unlock()
	}
}

// sendData sends data as C2HData PDUs (split at the port's MaxC2HData)
// followed by the completion, or with SUCCESS on the last PDU instead of a
// completion when the host disabled SQ flow control. The caller holds wmu.
func (c *conn) sendDataLocked(r *request, data []byte) error {
	if err := c.queueDataLocked(r, data); err != nil {
		c.cw.flush()
		return err
	}
	return c.cw.flush()
}

// queueDataLocked writes what sendDataLocked sends into the corked writer;
// small PDUs stay there until the next flush. The caller holds wmu.
func (c *conn) queueDataLocked(r *request, data []byte) error {
	max := int(c.p.cfg.MaxC2HData)
	if max <= 0 {
		max = len(data)
	}
	success := c.sqflowOff
	c.cw.cork()
	for off := 0; off < len(data); off += max {
		n := min(max, len(data)-off)
		last := off+n == len(data)
		if err := c.w.C2HData(pdu.Data{CCCID: r.cmd.CID, Offset: uint32(off), Length: uint32(n)}, data[off:off+n], last, last && success); err != nil {
			return err
		}
	}
	if !success {
		c.fillCQE(r, 0, 0)
		return c.w.CapsuleResp(&r.cqe)
	}
	return nil
}

// completeData sends data and a success completion, then recycles r.
func (c *conn) completeData(r *request, data []byte) {
	if c.lockW() {
		_ = c.sendDataLocked(r, data)
		c.wmu.Unlock()
	}
	c.putReq(r)
}

// capsule handles a CapsuleCmd; false ends the connection.
func (c *conn) capsule() bool {
	r := c.getReq()
	c.r.Command(&r.cmd)
	c.sqhd.Add(1)
	ctrl := c.controller()
	if ctrl != nil {
		ctrl.touch()
	}
	dl := c.r.DataLen()
	if r.cmd.Opcode == nvme.OpFabrics {
		return c.fabrics(r, dl)
	}
	if ctrl == nil {
		c.complete(r, nvme.StatusCommandSequenceError|nvme.StatusDNR, 0)
		return true
	}
	if c.authPending() {
		return c.notAuthenticated(r, dl)
	}
	if c.qid == 0 {
		return c.adminCmd(ctrl, r, dl)
	}
	return c.ioCmd(ctrl, r, dl)
}

// sgl describes the data pointer of a command: in-capsule or transport
// data, and its length.
func sgl(cmd *nvme.Command) (length int, inCapsule bool, st nvme.Status) {
	switch cmd.DPTR.Type {
	case nvme.SGLDataBlockOffset:
		if cmd.DPTR.Addr != 0 {
			return 0, false, nvme.StatusInvalidSGLOffset | nvme.StatusDNR
		}
		return int(cmd.DPTR.Length), true, 0
	case nvme.SGLTransportDataBlock:
		return int(cmd.DPTR.Length), false, 0
	case 0: // no data pointer at all: a no-data command from a lax host
		if cmd.DPTR.Length == 0 {
			return 0, false, 0
		}
	}
	return 0, false, nvme.StatusSGLTypeInvalid | nvme.StatusDNR
}

// readSmallData reads up to AdminInCapsuleMax bytes of in-capsule data of
// an admin or Fabrics command into the scratch buffer. want is the length
// the command needs (0: none). A status means the command fails with it
// (the data, if any, was consumed); ok=false means the connection broke.
func (c *conn) readSmallData(r *request, dl, want int) (data []byte, st nvme.Status, ok bool) {
	n, inCap, st := sgl(&r.cmd)
	switch {
	case st != 0:
	case want == 0 && dl == 0:
		return nil, 0, true
	case want == 0:
		st = nvme.StatusInvalidField | nvme.StatusDNR
	case !inCap || dl == 0:
		st = nvme.StatusInvalidField | nvme.StatusDNR // admin data must be in-capsule
	case n != dl || dl > len(c.scratch) || dl < want:
		st = nvme.StatusDataSGLLengthInvalid | nvme.StatusDNR
	}
	if st != 0 {
		if dl > 0 {
			if err := c.r.Discard(); err != nil {
				return nil, 0, false
			}
		}
		return nil, st, true
	}
	buf := c.scratch[:dl]
	if err := c.r.ReadData(buf); err != nil {
		if errors.Is(err, pdu.ErrDataDigest) {
			return nil, nvme.StatusDataTransferError, true
		}
		return nil, 0, false
	}
	return buf, 0, true
}

// fabrics handles a Fabrics command.
func (c *conn) fabrics(r *request, dl int) bool {
	ctrl := c.controller()
	switch r.cmd.FCType() {
	case nvme.FabricsConnect:
		data, st, ok := c.readSmallData(r, dl, fabrics.ConnectDataSize)
		if !ok {
			return false
		}
		if st != 0 {
			c.complete(r, st, 0)
			return true
		}
		c.connect(r, data)
		return true
	case nvme.FabricsAuthSend, nvme.FabricsAuthRecv:
		return c.authCmd(r, dl)
	case nvme.FabricsPropertyGet, nvme.FabricsPropertySet:
		if ctrl != nil && c.authPending() {
			return c.notAuthenticated(r, dl)
		}
		if dl > 0 {
			if err := c.r.Discard(); err != nil {
				return false
			}
		}
		switch {
		case ctrl == nil:
			c.complete(r, nvme.StatusCommandSequenceError|nvme.StatusDNR, 0)
		case c.qid != 0:
			c.complete(r, nvme.StatusInvalidField|nvme.StatusDNR, 0)
		case r.cmd.FCType() == nvme.FabricsPropertyGet:
			off, size8, _ := fabrics.ParseProperty(&r.cmd)
			v, st := ctrl.propGet(off, size8)
			r.cqe.DW1 = 0
			c.fillCQE(r, st, uint32(v))
			r.cqe.DW1 = uint32(v >> 32)
			if c.lockW() {
				_ = c.w.CapsuleResp(&r.cqe)
				c.wmu.Unlock()
			}
			c.putReq(r)
		default:
			off, size8, v := fabrics.ParseProperty(&r.cmd)
			c.complete(r, ctrl.propSet(off, size8, v), 0)
		}
		return true
	}
	if dl > 0 {
		if err := c.r.Discard(); err != nil {
			return false
		}
	}
	c.complete(r, nvme.StatusInvalidOpcode|nvme.StatusDNR, 0)
	return true
}

// Connect status DW0 for Invalid Parameters: IATTR (bit 16: in data) and
// the byte offset of the bad field.
const (
	ipoData    = 1 << 16
	ipoCNTLID  = ipoData | 16
	ipoSubNQN  = ipoData | 256
	ipoHostNQN = ipoData | 512
	ipoQID     = 42
	ipoSQSize  = 44
)

// connect handles Connect (reference §3.1), with the dynamic controller
// model: admin Connect must ask for CNTLID 0xFFFF and gets a fresh
// controller; I/O Connect names it.
func (c *conn) connect(r *request, data []byte) {
	qid, sqsize, kato, cattr, recfmt := fabrics.ParseConnect(&r.cmd)
	fail := func(st nvme.Status, dw0 uint32) { c.complete(r, st|nvme.StatusDNR, dw0) }
	if c.controller() != nil {
		fail(nvme.StatusCommandSequenceError, 0)
		return
	}
	if recfmt != 0 {
		fail(nvme.StatusConnectIncompatible, 0)
		return
	}
	cd, err := fabrics.ParseConnectData(data)
	if err != nil {
		fail(nvme.StatusInvalidField, 0)
		return
	}
	if sqsize == 0 || int(sqsize) >= c.p.cfg.MaxQueueSize {
		fail(nvme.StatusConnectInvalidParam, ipoSQSize)
		return
	}
	s := c.p.lookup(cd.SubNQN)
	if s == nil {
		c.log.Info("connect to unknown subsystem", "subnqn", cd.SubNQN, "hostnqn", cd.HostNQN)
		fail(nvme.StatusConnectInvalidParam, ipoSubNQN)
		return
	}
	if !s.hostAllowed(cd.HostNQN) {
		c.log.Info("host not allowed", "subnqn", cd.SubNQN, "hostnqn", cd.HostNQN)
		fail(nvme.StatusConnectInvalidHost, ipoHostNQN)
		return
	}
	c.sqsize = uint32(sqsize) + 1
	c.sqflowOff = cattr&fabrics.CATTRDisableSQFlow != 0
	if qid == 0 {
		if cd.CNTLID != fabrics.CNTLIDDynamic {
			fail(nvme.StatusConnectInvalidParam, ipoCNTLID)
			return
		}
		ctrl := newController(s, c.p, cd, c)
		ctrl.auth = c.t.authParams(s, cd.HostNQN)
		id := s.allocCNTLID(ctrl)
		if id == 0 {
			fail(nvme.StatusConnectCtrlBusy, 0)
			return
		}
		ctrl.cntlid = id
		c.qid = 0
		c.inCapsule = fabrics.AdminInCapsuleMax
		c.ctrl.Store(ctrl)
		ctrl.setKATO(kato)
		kind := "nvm"
		if s.discovery {
			kind = "discovery"
		}
		c.log.Info("creating "+kind+" controller", "cntlid", id, "subsys", s.cfg.NQN, "hostnqn", cd.HostNQN, "kato", katoRound(kato), "dhchap", ctrl.auth != nil)
		c.complete(r, 0, uint32(id)|c.startAuth(ctrl))
		return
	}
	ctrl := s.controller(cd.CNTLID)
	if ctrl == nil || ctrl.hostNQN != cd.HostNQN || ctrl.port != c.p || ctrl.discovery {
		fail(nvme.StatusConnectInvalidParam, ipoCNTLID)
		return
	}
	if int(qid) > s.cfg.MaxIOQueues {
		fail(nvme.StatusConnectInvalidParam, ipoQID)
		return
	}
	if !ctrl.ready.Load() {
		fail(nvme.StatusCommandSequenceError, 0)
		return
	}
	if !ctrl.addQueue(qid, c) {
		fail(nvme.StatusConnectCtrlBusy, 0)
		return
	}
	c.qid = qid
	c.inCapsule = c.p.cfg.InCapsule
	c.ctrl.Store(ctrl)
	ctrl.touch()
	c.work = make(chan *request, c.p.cfg.MaxQueueSize+8)
	c.workers = true
	for range min(ioWorkers, int(c.sqsize)) {
		c.t.wg.Add(1)
		go c.worker()
	}
	c.complete(r, 0, uint32(ctrl.cntlid)|c.startAuth(ctrl))
}

// notAuthenticated fails a command on a queue that has not authenticated
// (nvmet_check_auth_status): Authentication Required, DNR.
func (c *conn) notAuthenticated(r *request, dl int) bool {
	if dl > 0 {
		if err := c.r.Discard(); err != nil {
			return false
		}
	}
	c.log.Warn(fmt.Sprintf("qid %d not authenticated", c.qid))
	c.complete(r, nvme.StatusAuthRequired|nvme.StatusDNR, 0)
	return true
}

// h2cData receives data answering an R2T, with the Linux target's checks
// (reference §1.8): a known TTAG with an R2T outstanding, the command's
// CID, DATAO equal to the bytes received so far, 0 < DATAL <= MAXH2CDATA,
// and no data beyond the command's length.
func (c *conn) h2cData() bool {
	d := c.r.Data()
	if int(d.TTAG) >= len(c.reqs) || !c.reqs[d.TTAG].r2t {
		c.termReq(pdu.FESInvalidHeaderField, 10, "H2CData with unknown TTAG")
		return false
	}
	r := c.reqs[d.TTAG]
	switch {
	case d.CCCID != r.cmd.CID:
		c.termReq(pdu.FESInvalidHeaderField, 8, "H2CData CCCID does not match the R2T")
		return false
	case int(d.Offset) != r.got:
		c.termReq(pdu.FESInvalidHeaderField, 12, "H2CData DATAO is not the expected offset")
		return false
	case d.Length == 0 || d.Length > c.p.cfg.MaxH2CData:
		c.termReq(pdu.FESR2TLimit, 16, "H2CData DATAL above MAXH2CDATA")
		return false
	case r.got+int(d.Length) > len(r.data):
		c.termReq(pdu.FESDataOutOfRange, 16, "H2CData beyond the command's data")
		return false
	}
	c.mayWait(int(d.Length))
	if err := c.r.ReadData(r.data[r.got : r.got+int(d.Length)]); err != nil {
		if !errors.Is(err, pdu.ErrDataDigest) {
			return false
		}
		r.dataErr = nvme.StatusDataTransferError
	}
	r.got += int(d.Length)
	if r.got == len(r.data) {
		r.r2t = false
		c.dataReady(r)
	}
	return true
}

// receive gets the host-to-controller data of r (n bytes): in-capsule now,
// or by R2T; dataReady runs when all of it is there.
func (c *conn) receive(r *request, n, dl int, inCap bool) bool {
	if inCap {
		if dl != n {
			if err := c.r.Discard(); err != nil {
				return false
			}
			c.complete(r, nvme.StatusDataSGLLengthInvalid|nvme.StatusDNR, 0)
			return true
		}
		if n > c.inCapsule {
			if err := c.r.Discard(); err != nil {
				return false
			}
			c.complete(r, nvme.StatusInvalidSGLOffset|nvme.StatusDNR, 0)
			return true
		}
		if nvme.IOOpcode(r.cmd.Opcode) == nvme.IOWrite && r.ns != nil && r.ns.ram != nil && !c.r.DataDigest() {
			return c.receiveIntoRAM(r)
		}
		r.buf = c.t.bufs.get(n)
		r.data = *r.buf
		c.mayWait(n)
		if err := c.r.ReadData(r.data); err != nil {
			if !errors.Is(err, pdu.ErrDataDigest) {
				c.putReq(r)
				return false
			}
			c.complete(r, nvme.StatusDataTransferError, 0)
			return true
		}
		c.dataReady(r)
		return true
	}
	if dl > 0 {
		if err := c.r.Discard(); err != nil {
			return false
		}
		c.complete(r, nvme.StatusInvalidField|nvme.StatusDNR, 0)
		return true
	}
	if r.idx == 0xFFFF {
		c.complete(r, nvme.StatusInternalError, 0)
		return true
	}
	r.buf = c.t.bufs.get(n)
	r.data = *r.buf
	r.got = 0
	r.r2t = true
	if !c.lockW() {
		return false
	}
	err := c.w.R2T(pdu.R2T{CCCID: r.cmd.CID, TTAG: r.idx, Offset: 0, Length: uint32(n)})
	if err == nil && c.cw.corked {
		err = c.cw.flush() // the host waits for it (output held stays held)
	}
	c.wmu.Unlock()
	return err == nil
}

// dataReady runs a command whose data has arrived.
func (c *conn) dataReady(r *request) {
	if r.dataErr != 0 {
		c.complete(r, r.dataErr, 0)
		return
	}
	if c.qid == 0 {
		c.complete(r, nvme.StatusInvalidField|nvme.StatusDNR, 0)
		return
	}
	c.dispatch(r)
}

// dispatch runs a checked I/O command: small RAM reads and writes in the
// reader goroutine, the rest in a worker.
func (c *conn) dispatch(r *request) {
	op := nvme.IOOpcode(r.cmd.Opcode)
	if r.ns == nil || r.ns.ram == nil || r.n > inlineMax || (op != nvme.IORead && op != nvme.IOWrite) {
		c.work <- r
		return
	}
	if op == nvme.IOWrite {
		r.ns.ram.writeAt(r.data, r.off)
	}
	c.answerInline(r, op)
}

// receiveIntoRAM reads the in-capsule data of a write to a RAM namespace
// straight into the store, under the write locks of the chunks it covers
// (no pooled buffer, no copy: the store is the receive buffer), and answers
// it at once. Only without a data digest: a digest is checked after the
// data, and data that fails it must never reach the store. Like a read
// sending from the store, a host stalling mid-capsule holds those chunks
// until its connection ends.
func (c *conn) receiveIntoRAM(r *request) bool {
	c.mayWait(int(r.n))
	dst := r.ns.ram.lock(r.off, r.n)
	err := c.r.ReadData(dst)
	r.ns.ram.unlock(r.off, r.n)
	if err != nil {
		c.putReq(r)
		return false
	}
	c.answerInline(r, nvme.IOWrite)
	return true
}

// answerInline sends the response of a RAM read or write executed by the
// reader goroutine (the data of a read, from the store), held back with
// the other responses of this burst (see release); it frees r.
func (c *conn) answerInline(r *request, op nvme.IOOpcode) {
	if op == nvme.IOWrite && c.loseCompletion(r) {
		return
	}
	if !c.lockW() {
		c.putReq(r)
		return
	}
	if !c.held {
		c.held = true
		c.cw.hold = true
		c.cw.cork()
	}
	if op == nvme.IORead {
		data := r.ns.ram.rlock(r.off, r.n)
		if c.p.takeShort() {
			data = data[:len(data)/2]
		}
		_ = c.queueDataLocked(r, data) // copied unless it is large
		r.ns.ram.runlock(r.off, r.n)
	} else {
		c.fillCQE(r, 0, 0)
		_ = c.w.CapsuleResp(&r.cqe)
	}
	c.wmu.Unlock()
	c.putReq(r)
}

// mayWait releases held output before reading n bytes that are not all
// received yet; reader only.
func (c *conn) mayWait(n int) {
	if c.held && c.r.Buffered() < n {
		c.release()
	}
}

// release sends the output the reader held back; reader only.
func (c *conn) release() {
	if !c.held {
		return
	}
	c.held = false
	c.wmu.Lock()
	c.cw.hold = false
	_ = c.cw.flush()
	c.wmu.Unlock()
}

// worker executes I/O commands of this connection.
func (c *conn) worker() {
	defer c.t.wg.Done()
	for r := range c.work {
		c.execIO(r)
	}
}

// corkWriter lets a burst of PDUs (C2HData then CapsuleResp) leave in one
// system call: while corked, small writes are collected (copied: at most
// corkSize bytes in all) and a large one goes out with what was collected
// in a single writev, never copied. Used under the connection's wmu.
type corkWriter struct {
	nc     net.Conn
	corked bool
	hold   bool // the reader holds output back: stay corked after a flush
	buf    []byte
	arr    [2][]byte
	bufs   net.Buffers
}

const corkSize = 128 << 10

func (w *corkWriter) Write(p []byte) (int, error) {
	if !w.corked {
		return w.nc.Write(p)
	}
	if len(w.buf)+len(p) <= corkSize {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if len(w.buf) == 0 {
		return w.nc.Write(p)
	}
	w.arr[0], w.arr[1] = w.buf, p
	w.bufs = w.arr[:]
	_, err := w.bufs.WriteTo(w.nc)
	w.arr = [2][]byte{}
	w.buf = w.buf[:0]
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *corkWriter) cork() {
	w.corked = true
	if w.buf == nil {
		w.buf = make([]byte, 0, corkSize)
	}
}

// flush sends what was collected and uncorks unless output is held.
func (w *corkWriter) flush() error {
	w.corked = w.hold
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.nc.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}
