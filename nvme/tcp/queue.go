package tcp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/clock"
	"github.com/mpathfs/mpathfs/internal/plug"
	"github.com/mpathfs/mpathfs/internal/ratelog"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

// Errors returned by Exec when no completion was received.
var (
	// ErrQueueDead means the queue died (socket error, protocol error,
	// TermReq, timeout of another command, Close) before the command
	// completed. The returned error wraps it together with the cause.
	ErrQueueDead = fmt.Errorf("nvme-tcp: %w", fabrics.ErrQueueDead)
	// ErrTimeout means the command got no completion within its timeout;
	// the queue has been declared dead.
	ErrTimeout = fmt.Errorf("nvme-tcp: %w", fabrics.ErrTimeout)
	// ErrClosed is the cause recorded when the queue was closed by Close.
	ErrClosed = errors.New("nvme-tcp: queue closed")
	// ErrSilent means ExecWithin gave the command up: no completion and
	// nothing at all received on the queue within its silence bound. The
	// command stays in flight (its tag reserved until its completion
	// arrives or the queue dies; late data is discarded); the queue lives.
	ErrSilent = fmt.Errorf("nvme-tcp: %w", fabrics.ErrSilent)
)

// Defaults and limits.
const (
	// DefaultICRespTimeout is how long Dial waits for ICResp (Linux: 10 s
	// socket receive timeout).
	DefaultICRespTimeout = 10 * time.Second
	// DefaultDepth is the depth used when Config.Depth is 0 (admin queue).
	DefaultDepth = 32
	// MaxDepth is the largest depth: tags occupy the low 12 bits of a CID.
	MaxDepth = 1 << 12
	// FabricsInCapsuleMax is the in-capsule data limit of Fabrics commands
	// on any queue (NVME_TCP_ADMIN_CCSZ, reference §1.11).
	FabricsInCapsuleMax = 8192
	// MinMaxH2CData is the smallest MAXH2CDATA a controller may announce
	// (NVME_TCP_MIN_MAXH2CDATA).
	MinMaxH2CData = 4096

	tagMask  = MaxDepth - 1
	genShift = 12
	// placeChunk bounds how long the reader holds a request's buffer lock
	// while placing C2H data, so a cancelling Exec waits at most that long.
	placeChunk = 256 << 10
)

// Config describes one queue.
type Config struct {
	Addr       string // controller "host:port"
	HostTrAddr string // optional local IP address to connect from
	HostIface  string // optional interface to bind to (SO_BINDTODEVICE)
	Tos        int    // IP type of service; 0: system default
	HdrDigest  bool   // request header digests
	DataDigest bool   // request data digests
	// Depth is the maximum number of commands in flight: admin 32 (AER and
	// Keep Alive included), I/O queue_size-1. 0 means DefaultDepth.
	Depth int
	// InCapsuleMax is the largest host-to-controller transfer sent
	// in-capsule: 8192 on the admin queue, IOCCSZ*16-64 on I/O queues.
	// Fabrics commands always use at least FabricsInCapsuleMax.
	InCapsuleMax int
	// ICRespTimeout bounds the wait for ICResp; 0 means DefaultICRespTimeout.
	ICRespTimeout time.Duration
	// CmdTimeout is the default per-command timeout of Exec; 0 means none.
	CmdTimeout time.Duration
	// Clock drives command timeouts; nil is the system clock.
	Clock clock.Clock
	Log   hclog.Logger // nil: no logging
}

// Request states. The completer (reader goroutine, or the failing path at
// queue death) and the Exec caller hand a request over with CAS on these.
const (
	stateFree       uint32 = iota // tag on the free list or being set up
	stateInflight                 // submitted; Exec is waiting
	stateAbandoned                // submitted; Exec gave up (ctx), completer releases
	stateCompleting               // claimed by a completer (or by Exec on a dead queue)
)

// request.sending values.
const (
	sendIdle     uint32 = iota
	sendBusy            // ExecAsync's caller is writing the command's data
	sendDeferred        // and its result waits in cqe and err for that write to end
)

// direction of a command's data transfer.
type direction uint8

const (
	dirNone direction = iota
	dirH2C
	dirC2H
)

// request is the preallocated state of one tag.
type request struct {
	q     *Queue
	tag   uint16
	state atomic.Uint32

	// Set by Exec before state becomes stateInflight; read-only afterwards.
	gen       uint8
	cid       uint16
	cmd       nvme.Command
	data      []byte
	dir       direction
	inCapsule bool

	// Exec side only.
	sent uint32 // H2C bytes sent

	// Reader side only (reset by Exec before submission).
	received uint32 // C2H bytes placed so far
	r2tEnd   uint32 // end of the last R2T window accepted
	r2tBytes uint32 // H2C bytes requested by R2Ts so far
	ddgstErr bool   // a C2HData of this command failed its data digest

	// Result, written by the completer before signalling done.
	cqe nvme.Completion
	err error

	done chan struct{} // cap 1: the completer signals the waiting Exec
	// notify replaces done for ExecAsync: the completer calls it. Set
	// (nil for Exec) before the request goes in flight and only then, so
	// that a silence timer reading it never races with release.
	notify fabrics.Completer
	// sending is sendBusy while ExecAsync's caller writes a large command
	// from its buffer; a completer that finds it so stores the result in
	// cqe and err and sets sendDeferred, and the submitter delivers it
	// once the write returned (Queue.sent).
	sending atomic.Uint32
	r2t     chan pdu.R2T // cap 1: MAXR2T is 0, one R2T outstanding at most
	// mu is held by the reader while it places data into data, and by
	// Exec while it abandons the request, so that data is never written
	// after Exec returned.
	mu sync.Mutex

	// The timers. On the system clock timer and soft exist from the
	// queue's start and are only Reset and Stopped, so that the submitter
	// arming them and a completer releasing the tag (a queue dying
	// meanwhile) never race on the fields; on an injected clock ftimer and
	// fsoft are replaced per use, under fmu.
	timer    *time.Timer
	ftimer   clock.Timer  // the timer when Config.Clock is not the system clock
	deadline atomic.Int64 // ns since q.epoch
	timedOut atomic.Bool
	// label (cid | opcode<<16) and the timeout, for the timeout error built
	// off the Exec goroutine (timer, failAll); atomics because a late
	// reader may overlap the next use of the tag.
	label     atomic.Uint32
	timeoutNs atomic.Int64

	// ExecWithin's silence bound: soft (fsoft on an injected clock) fires
	// softExpire, which signals softc when the queue received nothing for
	// silentNs since submitNs.
	soft     *time.Timer
	fmu      sync.Mutex
	fsoft    clock.Timer
	softc    chan struct{} // cap 1
	silentNs atomic.Int64  // 0: no bound
	submitNs atomic.Int64  // ns since q.epoch
}

// Queue is one NVMe/TCP queue (one TCP connection). Its methods are safe for
// concurrent use.
type Queue struct {
	cfg    Config
	log    hclog.Logger
	conn   net.Conn
	maxH2C uint32
	epoch  time.Time
	clk    clock.Clock
	sysClk bool // clk is the system clock: time.Since and a reusable *time.Timer

	inCapsuleMax atomic.Int64
	cmdTimeout   atomic.Int64 // Exec's timeout (ns); starts as Config.CmdTimeout

	s *sender // every PDU after the handshake

	r        *pdu.Reader     // reader goroutine only
	rlog     *ratelog.Logger // lines a controller can repeat at will
	lastRecv atomic.Int64    // ns since epoch of the last PDU header received

	reqs     []request
	free     chan uint16
	inflight atomic.Int32

	killOnce   sync.Once
	errMu      sync.Mutex
	err        error
	deadErr    error
	dead       chan struct{}
	readerDone chan struct{}
}

// Dial connects to cfg.Addr (TCP_NODELAY, from cfg.HostTrAddr if set),
// performs the ICReq/ICResp exchange with the checks the Linux host makes
// and starts the queue's reader goroutine. A controller that accepts the
// connection but does not answer within ICRespTimeout (or before ctx is
// done) fails Dial.
func Dial(ctx context.Context, cfg Config) (*Queue, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	d, err := dialer(cfg)
	if err != nil {
		return nil, err
	}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("nvme-tcp: connect %s: %w", cfg.Addr, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		if err := tc.SetNoDelay(true); err != nil {
			conn.Close()
			return nil, fmt.Errorf("nvme-tcp: %s: TCP_NODELAY: %w", cfg.Addr, err)
		}
	}
	q, err := newQueue(ctx, conn, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

func (cfg *Config) normalize() error {
	if cfg.Depth == 0 {
		cfg.Depth = DefaultDepth
	}
	if cfg.Depth < 1 || cfg.Depth > MaxDepth {
		return fmt.Errorf("nvme-tcp: depth %d out of range 1..%d", cfg.Depth, MaxDepth)
	}
	if cfg.InCapsuleMax < 0 {
		return fmt.Errorf("nvme-tcp: negative in-capsule limit %d", cfg.InCapsuleMax)
	}
	if cfg.ICRespTimeout <= 0 {
		cfg.ICRespTimeout = DefaultICRespTimeout
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System()
	}
	return nil
}

// newQueue runs the connection handshake on conn and starts the reader.
func newQueue(ctx context.Context, conn net.Conn, cfg Config) (*Queue, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	var dg pdu.DigestFlags
	if cfg.HdrDigest {
		dg |= pdu.DigestHeader
	}
	if cfg.DataDigest {
		dg |= pdu.DigestData
	}
	r := pdu.NewReader(conn, math.MaxUint32) // C2H data is bounded per command below
	w := pdu.NewWriter(conn)

	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	if err := conn.SetDeadline(time.Now().Add(cfg.ICRespTimeout)); err != nil {
		stop()
		return nil, fmt.Errorf("nvme-tcp: %s: %w", cfg.Addr, err)
	}
	resp, err := handshake(r, w, dg)
	if !stop() {
		return nil, fmt.Errorf("nvme-tcp: %s: connection setup: %w", cfg.Addr, context.Cause(ctx))
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("nvme-tcp: %s: no ICResp within %v: %w", cfg.Addr, cfg.ICRespTimeout, err)
		}
		return nil, fmt.Errorf("nvme-tcp: %s: %w", cfg.Addr, err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("nvme-tcp: %s: %w", cfg.Addr, err)
	}
	r.SetDigests(dg)
	snd := newSender(conn)
	snd.w.SetDigests(dg)

	q := &Queue{
		cfg:        cfg,
		log:        cfg.Log.With("traddr", cfg.Addr, "local", conn.LocalAddr().String()),
		conn:       conn,
		maxH2C:     resp.MaxH2CData,
		epoch:      cfg.Clock.Now(),
		clk:        cfg.Clock,
		sysClk:     clock.IsSystem(cfg.Clock),
		s:          snd,
		r:          r,
		reqs:       make([]request, cfg.Depth),
		free:       make(chan uint16, cfg.Depth),
		dead:       make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	q.rlog = ratelog.New(q.log, time.Now)
	q.inCapsuleMax.Store(int64(cfg.InCapsuleMax))
	q.cmdTimeout.Store(int64(cfg.CmdTimeout))
	for i := range q.reqs {
		req := &q.reqs[i]
		req.q = q
		req.tag = uint16(i)
		req.done = make(chan struct{}, 1)
		req.r2t = make(chan pdu.R2T, 1)
		req.softc = make(chan struct{}, 1)
		if q.sysClk {
			req.timer = time.AfterFunc(time.Hour, req.expire)
			req.timer.Stop()
			req.soft = time.AfterFunc(time.Hour, req.softExpire)
			req.soft.Stop()
		}
		q.free <- uint16(i)
	}
	go q.readLoop()
	return q, nil
}

// handshake sends ICReq and validates ICResp exactly as Linux's
// nvme_tcp_init_connection does.
func handshake(r *pdu.Reader, w *pdu.Writer, dg pdu.DigestFlags) (pdu.ICResp, error) {
	if err := w.ICReq(pdu.ICReq{PFV: 0, HPDA: 0, Digest: dg, MaxR2T: 0}); err != nil {
		return pdu.ICResp{}, fmt.Errorf("send ICReq: %w", err)
	}
	h, err := r.Next()
	if err != nil {
		return pdu.ICResp{}, fmt.Errorf("receive ICResp: %w", err)
	}
	if h.Type != pdu.TypeICResp {
		return pdu.ICResp{}, fmt.Errorf("ICResp: got PDU type %s", h.Type)
	}
	if h.PLEN != pdu.ICLen {
		return pdu.ICResp{}, fmt.Errorf("ICResp: PLEN %d, want %d", h.PLEN, pdu.ICLen)
	}
	p := r.ICResp()
	switch {
	case p.PFV != 0:
		return p, fmt.Errorf("ICResp: unsupported PFV %d", p.PFV)
	case p.Digest != dg:
		return p, fmt.Errorf("ICResp: digests %#x, requested %#x", uint8(p.Digest), uint8(dg))
	case p.CPDA != 0:
		return p, fmt.Errorf("ICResp: unsupported CPDA %d", p.CPDA)
	case p.MaxH2CData < MinMaxH2CData || p.MaxH2CData%4 != 0:
		return p, fmt.Errorf("ICResp: invalid MAXH2CDATA %d", p.MaxH2CData)
	}
	return p, nil
}

// Exec submits cmd with data and waits for its completion, using the
// queue's CmdTimeout. See ExecTimeout.
func (q *Queue) Exec(ctx context.Context, cmd *nvme.Command, data []byte) (nvme.Completion, error) {
	return q.ExecTimeout(ctx, cmd, data, time.Duration(q.cmdTimeout.Load()))
}

// SetCmdTimeout changes the timeout of later Exec and ExecWithin calls
// (sysfs io_timeout: Linux applies it to the running queues).
func (q *Queue) SetCmdTimeout(d time.Duration) { q.cmdTimeout.Store(int64(d)) }

// ExecTimeout submits a copy of cmd with data and waits for its
// completion (CapsuleResp, or C2HData with SUCCESS). timeout 0 means no
// timeout (e.g. for Asynchronous Event Requests).
//
// The queue assigns the CID (tag | genctr<<12), sets FLAGS to SGL and
// DPTR: in-capsule (type 0x01) for host-to-controller data of at most
// InCapsuleMax bytes (FabricsInCapsuleMax for Fabrics commands), else a
// transport data block (0x5A) answered by R2T/H2CData or C2HData. The
// data direction follows the opcode bits 1:0 (FCTYPE bits 1:0 for Fabrics
// commands); a bidirectional command is rejected. cmd is not modified.
//
// err != nil means no completion was received: an error wrapping
// ErrQueueDead or ErrTimeout, or ctx.Err(). A controller error status is
// not an error here: it is in Completion.Status.
//
// When ctx is done Exec stops waiting and returns ctx.Err(); the command
// stays in flight and its tag is recycled when its completion arrives or
// the queue dies. After Exec returned the queue never touches data again
// (later C2H data is discarded). A write that still owes R2T data first
// sends it, so the wait after cancellation is bounded by the controller's
// R2T (and by the command timeout).
func (q *Queue) ExecTimeout(ctx context.Context, cmd *nvme.Command, data []byte, timeout time.Duration) (nvme.Completion, error) {
	return q.exec(ctx, cmd, data, timeout, 0)
}

// ExecWithin is Exec for a command that owes the controller no data (a
// read, or no data at all) with a silence bound: if within after
// submission no completion arrived and the queue has received nothing at
// all for within, the controller is not answering on this connection, and
// ExecWithin gives the command up and returns ErrSilent, so the caller
// can re-send a read elsewhere at once instead of waiting for keep-alive
// or command timeouts. The abandoned command keeps its tag (its CID is
// not reused) until its completion arrives or the queue dies; a late
// completion or C2H data is discarded, never placed in data. For a
// command with data to send, within is ignored (a write is never given
// up: see the write fence in nvme/multipath). within 0 is Exec.
func (q *Queue) ExecWithin(ctx context.Context, cmd *nvme.Command, data []byte, within time.Duration) (nvme.Completion, error) {
	return q.exec(ctx, cmd, data, time.Duration(q.cmdTimeout.Load()), within)
}

func (q *Queue) exec(ctx context.Context, cmd *nvme.Command, data []byte, timeout, within time.Duration) (nvme.Completion, error) {
	dir, err := dataDirection(cmd)
	if err != nil {
		return nvme.Completion{}, err
	}
	if dir == dirNone && len(data) > 0 {
		return nvme.Completion{}, fmt.Errorf("nvme-tcp: opcode %#02x transfers no data, got %d bytes", cmd.Opcode, len(data))
	}
	if uint64(len(data)) > math.MaxUint32 {
		return nvme.Completion{}, fmt.Errorf("nvme-tcp: transfer of %d bytes too large", len(data))
	}
	if err := ctx.Err(); err != nil {
		return nvme.Completion{}, err
	}
	tag, err := q.getTag(ctx)
	if err != nil {
		return nvme.Completion{}, err
	}
	req := &q.reqs[tag]
	within = q.fill(req, cmd, data, dir, timeout, within, nil)
	if q.isDead() {
		// The failing path may already have scanned this tag; whoever wins
		// the CAS completes the request.
		if req.state.CompareAndSwap(stateInflight, stateCompleting) {
			q.release(req)
			return nvme.Completion{}, q.deadErr
		}
		return q.wait(ctx, req)
	}
	q.send(req, data, timeout, within, nil)
	return q.wait(ctx, req)
}

// fill sets req up for cmd and publishes it in flight (with done as its
// asynchronous completer, or nil for Exec). It returns the silence bound
// in force: none for a command with data to send.
func (q *Queue) fill(req *request, cmd *nvme.Command, data []byte, dir direction, timeout, within time.Duration, done fabrics.Completer) time.Duration {
	req.gen++
	req.cid = req.tag | uint16(req.gen&0xF)<<genShift
	req.cmd = *cmd
	req.cmd.CID = req.cid
	req.cmd.Flags = req.cmd.Flags&^0xC0 | nvme.FlagSGL
	req.inCapsule = dir == dirH2C && len(data) > 0 && len(data) <= q.inCapsuleLimit(cmd)
	req.cmd.DPTR = nvme.SGL{Length: uint32(len(data)), Type: nvme.SGLTransportDataBlock}
	if req.inCapsule {
		req.cmd.DPTR.Type = nvme.SGLDataBlockOffset // Addr = ICDOFF = 0
	}
	req.data, req.dir = data, dir
	req.sent, req.received, req.r2tEnd, req.r2tBytes, req.ddgstErr = 0, 0, 0, 0, false
	req.notify = done
	req.timedOut.Store(false)
	req.label.Store(uint32(req.cid) | uint32(cmd.Opcode)<<16)
	req.timeoutNs.Store(int64(timeout))
	now := q.since()
	if timeout > 0 {
		req.deadline.Store(int64(now + timeout))
	} else {
		req.deadline.Store(math.MaxInt64) // a stale timer of an earlier use must not fire
	}
	if dir == dirH2C {
		within = 0
	}
	select { // a stale signal of an earlier use
	case <-req.softc:
	default:
	}
	req.submitNs.Store(int64(now))
	req.silentNs.Store(int64(within))
	q.inflight.Add(1)
	req.state.Store(stateInflight)
	return within
}

// send arms req's timers and sends its capsule (with data in-capsule if
// it goes so); a
// send error kills the queue, which completes req.
func (q *Queue) send(req *request, data []byte, timeout, within time.Duration, pl *plug.Plug) {
	q.arm(req, timeout, within)
	var inCapsule []byte
	if req.inCapsule {
		inCapsule = data
		req.sent = uint32(len(data))
	}
	if pl == nil {
		if err := q.s.capsule(&req.cmd, inCapsule); err != nil {
			q.kill(fmt.Errorf("send command cid %#04x: %w", req.cid, err))
		}
		return
	}
	if err := q.s.hold(&req.cmd, inCapsule); err != nil {
		q.kill(fmt.Errorf("queue command cid %#04x: %w", req.cid, err))
		return
	}
	pl.Hold(q)
}

// arm starts req's command timeout and silence bound.
func (q *Queue) arm(req *request, timeout, within time.Duration) {
	if timeout > 0 {
		if q.sysClk {
			req.timer.Reset(timeout)
		} else {
			req.fmu.Lock()
			if req.ftimer != nil {
				req.ftimer.Stop()
			}
			req.ftimer = q.clk.AfterFunc(timeout, req.expire)
			req.fmu.Unlock()
		}
	}
	if within > 0 {
		req.armSoft(within)
	}
}

// dataDirection returns the transfer direction of cmd: opcode bits 1:0, or
// FCTYPE bits 1:0 for a Fabrics command (Connect = host to controller).
func dataDirection(cmd *nvme.Command) (direction, error) {
	bits := cmd.Opcode & 3
	if cmd.Opcode == nvme.OpFabrics {
		bits = uint8(cmd.FCType()) & 3
	}
	switch bits {
	case 1:
		return dirH2C, nil
	case 2:
		return dirC2H, nil
	case 3:
		return dirNone, fmt.Errorf("nvme-tcp: bidirectional opcode %#02x not supported", cmd.Opcode)
	}
	return dirNone, nil
}

func (q *Queue) inCapsuleLimit(cmd *nvme.Command) int {
	n := int(q.inCapsuleMax.Load())
	if cmd.Opcode == nvme.OpFabrics && n < FabricsInCapsuleMax {
		n = FabricsInCapsuleMax
	}
	return n
}

// getTag takes a free tag, waiting for one while honouring ctx.
func (q *Queue) getTag(ctx context.Context) (uint16, error) {
	if q.isDead() {
		return 0, q.deadErr
	}
	select {
	case tag := <-q.free:
		return tag, nil
	default:
	}
	select {
	case tag := <-q.free:
		return tag, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-q.dead:
		return 0, q.deadErr
	}
}

// wait serves R2Ts for req and waits for its completion or ctx. Once ctx
// is done, a write that still owes data to the controller first finishes
// sending it (the controller asked for it; only tearing down the
// connection could take the command back), then stops waiting.
func (q *Queue) wait(ctx context.Context, req *request) (nvme.Completion, error) {
	cancel, cancelled := ctx.Done(), false
	for {
		select {
		case <-req.done:
			return q.collect(req)
		default:
		}
		select {
		case <-req.done:
			return q.collect(req)
		case r := <-req.r2t:
			q.sendData(req, r)
			if cancelled && req.sent == uint32(len(req.data)) {
				return q.abandon(ctx, req)
			}
		case <-cancel:
			if req.dir == dirH2C && req.sent < uint32(len(req.data)) {
				cancel, cancelled = nil, true // finish the data phase first
				continue
			}
			return q.abandon(ctx, req)
		case <-req.softc: // ExecWithin's bound: never set for H2C data
			return q.giveUp(req, ErrSilent)
		}
	}
}

func (q *Queue) collect(req *request) (nvme.Completion, error) {
	cqe, err := req.cqe, req.err
	q.release(req)
	return cqe, err
}

// sendData answers one R2T with H2CData PDUs of at most MAXH2CDATA bytes,
// LAST on the final one (the reader validated the window).
func (q *Queue) sendData(req *request, r pdu.R2T) {
	off, end := r.Offset, r.Offset+r.Length
	for off < end {
		n := min(end-off, q.maxH2C)
		err := q.s.h2cData(pdu.Data{CCCID: req.cid, TTAG: r.TTAG, Offset: off}, req.data[off:off+n], off+n == end)
		if err != nil {
			q.kill(fmt.Errorf("send H2CData cid %#04x: %w", req.cid, err))
			return
		}
		off += n
	}
	req.sent = end
}

// abandon hands req to the completer after Exec's ctx was done and
// returns ctx.Err(); if a completer claimed the request first, its result
// is returned instead.
func (q *Queue) abandon(ctx context.Context, req *request) (nvme.Completion, error) {
	return q.giveUp(req, ctx.Err())
}

// giveUp hands req to the completer and returns err; if a completer
// claimed the request first, its result is returned instead.
func (q *Queue) giveUp(req *request, err error) (nvme.Completion, error) {
	req.mu.Lock()
	ok := req.state.CompareAndSwap(stateInflight, stateAbandoned)
	req.mu.Unlock()
	if ok {
		return nvme.Completion{}, err
	}
	<-req.done
	return q.collect(req)
}

// softExpire runs when an ExecWithin command's silence bound passed: it
// signals the waiting Exec if the queue received nothing since
// max(submission, now-within), else re-arms for the rest. A stale timer
// of an earlier use of the tag sees a later submission and does nothing.
func (req *request) softExpire() {
	q := req.q
	within := req.silentNs.Load()
	if within <= 0 || req.state.Load() != stateInflight {
		return
	}
	now := int64(q.since())
	last := max(q.lastRecv.Load(), req.submitNs.Load())
	if rest := last + within - now; rest > 0 {
		req.armSoft(time.Duration(rest))
		return
	}
	if n := req.notify; n != nil {
		// ExecAsync: give the command up here, as wait would.
		req.mu.Lock()
		ok := req.state.CompareAndSwap(stateInflight, stateAbandoned)
		req.mu.Unlock()
		if ok {
			n.CommandDone(nvme.Completion{}, ErrSilent)
		}
		return
	}
	select {
	case req.softc <- struct{}{}:
	default:
	}
}

// armSoft (re)arms the silence bound on the queue's clock: a reusable
// *time.Timer on the system clock (no allocation per I/O), a new
// clock.Timer on an injected one.
func (req *request) armSoft(d time.Duration) {
	q := req.q
	if q.sysClk {
		req.soft.Reset(d)
		return
	}
	req.fmu.Lock()
	if req.fsoft != nil {
		req.fsoft.Stop()
	}
	req.fsoft = q.clk.AfterFunc(d, req.softExpire)
	req.fmu.Unlock()
}

// complete delivers a result to req if it is in flight; it reports whether
// it did. Only the reader goroutine calls it (receive path and failAll).
func (q *Queue) complete(req *request, cqe *nvme.Completion, err error) bool {
	for {
		switch s := req.state.Load(); s {
		case stateInflight:
			if req.state.CompareAndSwap(s, stateCompleting) {
				if n := req.notify; n != nil {
					if req.sending.Load() == sendBusy {
						req.cqe, req.err = *cqe, err
						if req.sending.CompareAndSwap(sendBusy, sendDeferred) {
							return true // Queue.sent delivers it
						}
					}
					c := *cqe
					q.release(req)
					n.CommandDone(c, err)
					return true
				}
				req.cqe, req.err = *cqe, err
				req.done <- struct{}{}
				return true
			}
		case stateAbandoned:
			if req.state.CompareAndSwap(s, stateCompleting) {
				q.release(req)
				return true
			}
		default:
			return false
		}
	}
}

// release recycles req's tag.
func (q *Queue) release(req *request) {
	req.silentNs.Store(0)
	if q.sysClk {
		req.timer.Stop()
		req.soft.Stop()
	} else {
		req.fmu.Lock()
		if req.fsoft != nil {
			req.fsoft.Stop()
		}
		if req.ftimer != nil {
			req.ftimer.Stop()
		}
		req.fmu.Unlock()
	}
	req.data = nil
	req.err = nil
	select {
	case <-req.r2t:
	default:
	}
	req.state.Store(stateFree)
	q.inflight.Add(-1)
	q.free <- req.tag
}

// since is the time since the queue was created, on the queue's clock.
func (q *Queue) since() time.Duration {
	if q.sysClk {
		return time.Since(q.epoch) // monotonic, one vDSO call
	}
	return q.clk.Now().Sub(q.epoch)
}

// expire runs when req's timer fires. A stale timer of an earlier use of
// the tag sees a later deadline and does nothing.
func (req *request) expire() {
	q := req.q
	s := req.state.Load()
	if s != stateInflight && s != stateAbandoned {
		return
	}
	if int64(q.since()) < req.deadline.Load() {
		return
	}
	req.timedOut.Store(true)
	q.kill(req.timeoutErr())
}

// timeoutErr describes req's timeout.
func (req *request) timeoutErr() error {
	l := req.label.Load()
	return fmt.Errorf("%w: cid %#04x opcode %#02x after %v", ErrTimeout, uint16(l), uint8(l>>16), time.Duration(req.timeoutNs.Load()))
}

// kill declares the queue dead with cause; the first call wins. It closes
// the socket, which stops the reader, which fails what is in flight.
func (q *Queue) kill(cause error) {
	q.killOnce.Do(func() {
		q.errMu.Lock()
		q.err = cause
		q.deadErr = fmt.Errorf("%w: %w", ErrQueueDead, cause)
		q.errMu.Unlock()
		close(q.dead)
		q.conn.Close()
		if errors.Is(cause, ErrClosed) {
			q.log.Debug("queue closed")
		} else {
			q.log.Error("queue dead", "error", cause)
		}
	})
}

func (q *Queue) isDead() bool {
	select {
	case <-q.dead:
		return true
	default:
		return false
	}
}

// failAll fails every command in flight; it is the only place that does,
// and runs on the reader goroutine once it stopped reading.
func (q *Queue) failAll() {
	var zero nvme.Completion
	for i := range q.reqs {
		req := &q.reqs[i]
		err := q.deadErr
		if req.timedOut.Load() {
			err = req.timeoutErr()
		}
		q.complete(req, &zero, err)
	}
}

// SetInCapsuleMax changes the in-capsule data limit for later commands
// (e.g. to IOCCSZ*16-64 once Identify Controller is known).
func (q *Queue) SetInCapsuleMax(n int) { q.inCapsuleMax.Store(int64(max(n, 0))) }

// Dead returns a channel closed when the queue died (EOF, protocol error,
// TermReq, send error, command timeout, cancelled write, Close).
func (q *Queue) Dead() <-chan struct{} { return q.dead }

// Err returns why the queue died, or nil while it is alive.
func (q *Queue) Err() error {
	q.errMu.Lock()
	defer q.errMu.Unlock()
	return q.err
}

// Close closes the socket and waits until every in-flight command has
// failed with ErrQueueDead. It is safe to call more than once.
func (q *Queue) Close() error {
	q.kill(ErrClosed)
	<-q.readerDone
	return nil
}

// LocalAddr returns the local address of the connection.
func (q *Queue) LocalAddr() net.Addr { return q.conn.LocalAddr() }

// MaxH2CData returns the controller's MAXH2CDATA from ICResp.
func (q *Queue) MaxH2CData() uint32 { return q.maxH2C }

// Inflight returns the number of tags in use (submitted commands not yet
// completed, including abandoned ones).
func (q *Queue) Inflight() int { return int(q.inflight.Load()) }

// Depth returns the queue depth (number of tags).
func (q *Queue) Depth() int { return len(q.reqs) }
