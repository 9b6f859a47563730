package host

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mpathfs/mpathfs/clock"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// assoc is one association with the target: the queues and what the
// controller reported, from Connect until teardown. Reconnecting builds a
// new one.
type assoc struct {
	c      *Controller
	admin  Queue
	io     []Queue
	cntlid uint16
	cap    fabrics.CAP
	vs     fabrics.VS
	cc     fabrics.CC
	id     *nvme.IdentifyController
	cqt    time.Duration
	sqsize int // 0's based I/O SQ size
	kato   time.Duration
	// maxXfer is the largest data transfer of one command (MDTS and
	// WithMaxTransfer).
	maxXfer    int
	anaUsed    bool
	discovery  bool  // a discovery controller (option, NQN or CNTRLTYPE)
	anatt      Timer // ANATT×2 timer while a group is in change state (under c.mu)
	anaLogSize int
	anaStates  map[uint32]nvme.ANAState // from setup
	anaGroupOf map[uint32]uint32        // from setup
	ns         []Namespace              // from setup

	ctx    context.Context // cancelled by teardown
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	lostAt atomic.Int64 // unix nanoseconds of the loss, 0 while fine

	anaKick  chan struct{}
	scanKick chan struct{}
	discKick chan struct{}
	resvKick chan struct{}
}

// markLost records when the association was found lost (first caller
// wins) and returns that time.
func (a *assoc) markLost(now time.Time) time.Time {
	a.lostAt.CompareAndSwap(0, now.UnixNano())
	return time.Unix(0, a.lostAt.Load())
}

func (a *assoc) aborted(cause error) error {
	return &AbortedError{LostAt: a.markLost(a.c.clk.Now()), KATO: a.kato, CQT: a.cqt, Cause: cause}
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// setupAssoc runs the whole connect sequence of reference §3.3 and §4.6
// and returns a ready association (not yet LIVE, no background goroutines).
func (c *Controller) setupAssoc(ctx context.Context) (a *assoc, err error) {
	o := c.opts
	a = &assoc{c: c, kato: o.KeepAliveTmo, discovery: c.discovery,
		anaKick: make(chan struct{}, 1), scanKick: make(chan struct{}, 1), discKick: make(chan struct{}, 1),
		resvKick: make(chan struct{}, 1)}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			a.teardown()
		}
	}()
	addr := net.JoinHostPort(o.TrAddr, o.TrSvcID)
	a.admin, err = c.tr.Dial(ctx, QueueConfig{
		Addr: addr, HostTrAddr: o.HostTrAddr, HostIface: o.HostIface, Tos: o.Tos,
		HdrDigest: o.HdrDigest, DataDigest: o.DataDigest, Clock: c.clk,
		Depth: fabrics.AdminQueueDepth, InCapsuleMax: fabrics.AdminInCapsuleMax, Log: c.log.Named("q0"),
	})
	if err != nil {
		return a, fmt.Errorf("nvme host: admin queue %s: %w", addr, err)
	}
	a.cntlid, err = c.connectQueue(ctx, a.admin, 0, fabrics.AdminQueueDepth-1, a.kato, fabrics.CNTLIDDynamic)
	if err != nil {
		return a, err
	}
	if err := c.enable(ctx, a); err != nil {
		return a, err
	}
	if err := c.identify(ctx, a); err != nil {
		return a, err
	}
	// Keep-alive runs from here on, so the target's KATO does not expire
	// during a long I/O queue setup or scan (Linux: "nvme: start keep-alive
	// after admin queue setup").
	a.wg.Add(1)
	go a.keepAlive()
	if a.anaUsed {
		log, err := c.readANA(ctx, a)
		if err != nil {
			return a, err
		}
		a.anaStates = anaMap(log)
		a.anaGroupOf = anaGroupOf(log)
	}
	if !a.discovery {
		if err := c.setupIOQueues(ctx, a, addr); err != nil {
			return a, err
		}
	}
	c.configureAEN(ctx, a)
	if err := c.configureACRE(ctx, a); err != nil {
		return a, err
	}
	if !a.discovery {
		c.enableResvNotify(ctx, a)
	}
	if !a.discovery {
		c.scanMu.Lock()
		a.ns, err = c.scan(ctx, a)
		c.scanMu.Unlock()
		if err != nil {
			return a, err
		}
		applyANAGroups(a.ns, a.anaGroupOf)
	}
	return a, nil
}

// connectQueue sends the Fabrics Connect of one queue and returns the
// CNTLID of the response.
func (c *Controller) connectQueue(ctx context.Context, q Queue, qid, sqsize uint16, kato time.Duration, cntlid uint16) (uint16, error) {
	cmd := fabrics.NewConnect(qid, sqsize, kato, c.opts.DisableSQFlow)
	data := make([]byte, fabrics.ConnectDataSize)
	cd := fabrics.ConnectData{HostID: c.opts.HostID, CNTLID: cntlid, SubNQN: c.opts.SubsysNQN, HostNQN: c.opts.HostNQN}
	cd.Marshal(data)
	ctx, cancel := context.WithTimeout(ctx, c.tunable().adminTimeout)
	defer cancel()
	cqe, err := q.Exec(ctx, &cmd, data)
	if err != nil {
		return 0, fmt.Errorf("nvme host: connect qid %d: %w", qid, err)
	}
	if st := cqe.Status; !st.OK() {
		if st.Code() == nvme.StatusConnectInvalidParam {
			ipo, iattr := cqe.DW0&0xFFFF, cqe.DW0>>16&1
			where := "command"
			if iattr != 0 {
				where = "data"
			}
			c.log.Error("Connect Invalid "+map[bool]string{true: "Data", false: "SQE"}[iattr != 0]+" Parameter", "qid", qid, "offset", ipo, "in", where)
		}
		c.log.Error("Connect command failed", "qid", qid, "status", st, "dnr", st.DNR())
		return 0, fmt.Errorf("nvme host: connect qid %d: %w", qid, st)
	}
	if err := c.checkAuthReq(ctx, q, qid, cqe.DW0); err != nil {
		return 0, err
	}
	return uint16(cqe.DW0), nil
}

func (c *Controller) propGet(ctx context.Context, a *assoc, off uint32, size8 bool) (uint64, error) {
	cmd := fabrics.NewPropertyGet(off, size8)
	cqe, err := c.adminCmd(ctx, a, &cmd, nil)
	if err != nil {
		return 0, fmt.Errorf("nvme host: property get 0x%x: %w", off, err)
	}
	return fabrics.PropertyValue(&cqe), nil
}

func (c *Controller) propSet(ctx context.Context, a *assoc, off uint32, v uint64) error {
	cmd := fabrics.NewPropertySet(off, v, false)
	if _, err := c.adminCmd(ctx, a, &cmd, nil); err != nil {
		return fmt.Errorf("nvme host: property set 0x%x: %w", off, err)
	}
	return nil
}

// enable is nvme_enable_ctrl: CAP, CC (CSS per CAP, IOSQES 6, IOCQES 4),
// CC.EN, wait for CSTS.RDY within (CAP.TO+1)×500 ms, then VS.
func (c *Controller) enable(ctx context.Context, a *assoc) error {
	v, err := c.propGet(ctx, a, fabrics.RegCAP, true)
	if err != nil {
		return err
	}
	a.cap = fabrics.CAP(v)
	cc := fabrics.CCCSSNVM | fabrics.CCIOSQES | fabrics.CCIOCQES
	if a.cap.CSS()&fabrics.CAPCSSIOCS != 0 {
		cc = fabrics.CCCSSIOCS | fabrics.CCIOSQES | fabrics.CCIOCQES
	}
	if err := c.propSet(ctx, a, fabrics.RegCC, uint64(cc)); err != nil {
		return err
	}
	cc |= fabrics.CCEnable
	if err := c.propSet(ctx, a, fabrics.RegCC, uint64(cc)); err != nil {
		return err
	}
	a.cc = cc
	timeout := a.cap.TO() + 500*time.Millisecond
	if err := c.waitCSTS(ctx, a, timeout, func(s fabrics.CSTS) (bool, error) {
		if s.CFS() {
			return false, fmt.Errorf("%w: CSTS.CFS set (0x%x)", ErrEnable, uint32(s))
		}
		return s.RDY(), nil
	}); err != nil {
		return err
	}
	v, err = c.propGet(ctx, a, fabrics.RegVS, false)
	if err != nil {
		return err
	}
	a.vs = fabrics.VS(v)
	return nil
}

// waitCSTS polls CSTS with a ticker until done reports true, an error, or
// timeout.
func (c *Controller) waitCSTS(ctx context.Context, a *assoc, timeout time.Duration, done func(fabrics.CSTS) (bool, error)) error {
	deadline := clock.NewTimer(c.clk, timeout)
	defer deadline.Stop()
	tick := clock.NewTicker(c.clk, readyPoll)
	defer tick.Stop()
	for {
		v, err := c.propGet(ctx, a, fabrics.RegCSTS, false)
		if err != nil {
			return err
		}
		if uint32(v) == 0xFFFFFFFF {
			return fmt.Errorf("%w: CSTS reads all ones (controller dead)", ErrEnable)
		}
		ok, err := done(fabrics.CSTS(v))
		if err != nil || ok {
			return err
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return fmt.Errorf("%w: timeout after %s (CSTS 0x%x)", ErrEnable, timeout, uint32(v))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// identify reads Identify Controller and applies Linux's checks
// (nvme_init_identify, nvme_tcp_setup_ctrl).
func (c *Controller) identify(ctx context.Context, a *assoc) error {
	buf := make([]byte, nvme.IdentifyDataSize)
	cmd := nvme.NewIdentify(nvme.CNSController, 0, 0, 0)
	if _, err := c.adminCmd(ctx, a, &cmd, buf); err != nil {
		return fmt.Errorf("nvme host: identify controller: %w", err)
	}
	id, err := nvme.ParseIdentifyController(buf)
	if err != nil {
		return fmt.Errorf("nvme host: identify controller: %w", err)
	}
	a.id = id
	a.cqt = time.Duration(binary.LittleEndian.Uint16(buf[idcCQT:])) * time.Millisecond
	a.discovery = c.discovery || id.CNTRLTYPE == nvme.CtrlTypeDiscovery
	if id.CNTLID != a.cntlid {
		return fmt.Errorf("%w: Mismatching cntlid: Connect %d vs Identify %d, rejecting", ErrIdentify, a.cntlid, id.CNTLID)
	}
	if id.ICDOFF != 0 {
		return fmt.Errorf("%w: icdoff %d is not supported!", ErrIdentify, id.ICDOFF)
	}
	if id.SGLS&3 == 0 {
		return fmt.Errorf("%w: Mandatory sgls are not supported!", ErrIdentify)
	}
	if !a.discovery {
		if id.KAS == 0 {
			return fmt.Errorf("%w: keep-alive support is mandatory for fabrics", ErrIdentify)
		}
		if id.IOCCSZ < 4 {
			return fmt.Errorf("%w: I/O queue command capsule supported size %d < 4", ErrIdentify, id.IOCCSZ)
		}
		if id.IORCSZ < 1 {
			return fmt.Errorf("%w: I/O queue response capsule supported size %d < 1", ErrIdentify, id.IORCSZ)
		}
	}
	a.maxXfer = c.cfg.maxTransfer
	if id.MDTS != 0 {
		page := 1 << (12 + a.cap.MPSMIN())
		if lim := page << id.MDTS; lim > 0 && lim < a.maxXfer {
			a.maxXfer = lim
		}
	}
	if id.CMIC&nvme.CMICANA != 0 && !a.discovery {
		size := nvme.ANALogSize(id.NANAGRPID, id.MNAN)
		switch {
		case id.NANAGRPID == 0 || id.ANAGRPMAX == 0:
			c.log.Warn("ANA reported with no groups, disabling ANA support")
		case id.MNAN == 0 || id.MNAN > id.NN:
			// nvme_mpath_init_identify fails the controller's setup.
			msg := fmt.Sprintf("Invalid MNAN value %d", id.MNAN)
			c.log.Error(msg)
			return fmt.Errorf("nvme host: %s: %w", msg, syscall.EINVAL)
		case size > uint64(a.maxXfer):
			c.log.Warn(fmt.Sprintf("ANA log page size (%d) larger than MDTS (%d). Disabling ANA support.", size, a.maxXfer))
		default:
			a.anaUsed = true
			a.anaLogSize = int(size)
		}
	}
	return nil
}

// idcCQT is the offset of Command Quiesce Time (ms) in Identify Controller.
const idcCQT = 386

// setupIOQueues negotiates the number of queues and connects each one.
func (c *Controller) setupIOQueues(ctx context.Context, a *assoc, addr string) error {
	o := c.opts
	n := o.NrIOQueues
	cmd := nvme.NewSetFeatures(nvme.FeatNumQueues, nvme.NumQueues(n))
	cqe, err := c.adminCmd(ctx, a, &cmd, nil)
	switch {
	case err == nil:
		nsq, ncq := nvme.ParseNumQueues(cqe.DW0)
		n = min(n, nsq, ncq)
	case errors.As(err, new(nvme.Status)) && !errors.Is(err, nvme.StatusHostPathError):
		c.log.Error("Could not set queue count", "status", err)
		n = 0
	default:
		return fmt.Errorf("nvme host: set features number of queues: %w", err)
	}
	if n <= 0 {
		return fmt.Errorf("nvme host: unable to set any I/O queues")
	}
	sqsize := min(o.QueueSize-1, int(a.cap.MQES()))
	maxcmd := int(a.id.MAXCMD)
	if maxcmd == 0 {
		maxcmd = sqsize + 1
	}
	if sqsize+1 > maxcmd {
		c.log.Warn("sqsize > maxcmd, clamping down", "sqsize", sqsize+1, "maxcmd", maxcmd)
		sqsize = maxcmd - 1
	}
	if sqsize < 1 {
		return fmt.Errorf("nvme host: I/O queue size %d too small", sqsize+1)
	}
	a.sqsize = sqsize
	inCapsule := int(a.id.IOCCSZ)*16 - nvme.SQESize
	for qid := 1; qid <= n; qid++ {
		q, err := c.tr.Dial(ctx, QueueConfig{
			Addr: addr, HostTrAddr: o.HostTrAddr, HostIface: o.HostIface, Tos: o.Tos,
			HdrDigest: o.HdrDigest, DataDigest: o.DataDigest, Clock: c.clk,
			Depth: sqsize, InCapsuleMax: fabrics.AdminInCapsuleMax, CmdTimeout: c.tunable().ioTimeout,
			Log: c.log.Named(fmt.Sprintf("q%d", qid)),
		})
		if err != nil {
			return fmt.Errorf("nvme host: I/O queue %d: %w", qid, err)
		}
		a.io = append(a.io, q)
		if _, err := c.connectQueue(ctx, q, uint16(qid), uint16(sqsize), 0, a.cntlid); err != nil {
			return err
		}
		q.SetInCapsuleMax(inCapsule)
	}
	return nil
}

// configureAEN enables the events the host handles: OAES & (NS attribute |
// ANA change | discovery change). A failure is only logged, like Linux.
func (c *Controller) configureAEN(ctx context.Context, a *assoc) {
	want := uint32(nvme.AENCfgNSAttr | nvme.AENCfgFWActivation | nvme.AENCfgANAChange | nvme.AENCfgDiscoveryChange)
	v := a.id.OAES & want
	if v == 0 {
		return
	}
	cmd := nvme.NewSetFeatures(nvme.FeatAsyncEventConfig, v)
	if _, err := c.adminCmd(ctx, a, &cmd, nil); err != nil {
		c.log.Warn(fmt.Sprintf("Failed to configure AEN (cfg %x)", v), "error", err)
	}
}

// firmwareActivation is nvme_fw_act_work after a Firmware Activation
// Starting notice: poll CSTS.PP every 100 ms until the controller resumes
// processing, at most the admin timeout (our Identify does not parse
// MTFA); then read the firmware slot log, which clears the event. A
// controller still paused after that is reset ("Fw activation timeout,
// reset controller"). I/O is not quiesced meanwhile: a paused controller
// holds it, and a command it does not complete in time is the I/O
// timeout's business. It reports false if the association is going away.
func (c *Controller) firmwareActivation(a *assoc) bool {
	c.log.Info("firmware activation starting")
	deadline := c.clk.Now().Add(c.tunable().adminTimeout)
	for {
		v, err := c.propGet(a.ctx, a, fabrics.RegCSTS, false)
		if err != nil {
			return false
		}
		if !fabrics.CSTS(v).PP() {
			break
		}
		if c.clk.Now().After(deadline) {
			c.log.Warn("Fw activation timeout, reset controller")
			c.resetAsync(a, errors.New("firmware activation timeout"), nil)
			return false
		}
		if err := clock.Sleep(a.ctx, c.clk, 100*time.Millisecond); err != nil {
			return false
		}
	}
	buf := make([]byte, 512)
	cmd := nvme.NewGetLogPage(nvme.LogFWSlot, nvme.NSIDAll, 0, false, 0, uint32(len(buf)))
	if _, err := c.adminCmd(a.ctx, a, &cmd, buf); err != nil {
		c.log.Warn("reading the firmware slot log failed", "error", err)
		return a.ctx.Err() == nil
	}
	c.fwActivations.Add(1)
	slot := max(int(buf[0]&7), 1) // AFI: the active slot; FRS<n> at 8*n
	c.log.Info("firmware activated", "slot", slot, "revision", trimID(string(buf[8*slot:8*slot+8])))
	return true
}

// configureACRE is nvme_configure_acre: when the controller reports a
// Command Retry Delay (CRDT1 != 0), Set Features Host Behavior Support with
// ACRE=1, so it may ask for a delay (CRD) in a retryable status. An error
// status is ignored (the controller then sets no CRD); a lost queue fails
// the setup.
func (c *Controller) configureACRE(ctx context.Context, a *assoc) error {
	if a.discovery || a.id.CRDT[0] == 0 {
		return nil
	}
	buf := make([]byte, nvme.HostBehaviorSize)
	buf[0] = 1 // NVME_ENABLE_ACRE
	cmd := nvme.NewSetFeatures(nvme.FeatHostBehavior, 0)
	if _, err := c.adminCmd(ctx, a, &cmd, buf); err != nil {
		if isStatus(err) {
			c.log.Debug("host behavior support (ACRE) refused", "error", err)
			return nil
		}
		return fmt.Errorf("nvme host: set features host behavior: %w", err)
	}
	return nil
}

// enableResvNotify unmasks every Reservation Notification (Set Features
// 0x83, mask 0, all namespaces) when the controller supports reservations.
// A failure (a target without the feature) is only logged at debug.
func (c *Controller) enableResvNotify(ctx context.Context, a *assoc) {
	if a.id.ONCS&nvme.ONCSReservations == 0 {
		return
	}
	cmd := nvme.NewSetFeatures(nvme.FeatResvNotifyMask, 0)
	cmd.NSID = nvme.NSIDAll
	if _, err := c.adminCmd(ctx, a, &cmd, nil); err != nil {
		c.log.Debug("reservation notifications not enabled", "error", err)
	}
}

// maxResvLogReads bounds one drain of the Reservation Notification log.
const maxResvLogReads = 256

// readResvLog drains the Reservation Notification log after its AEN: one
// page per read (reading without RAE re-arms the event) until the log is
// empty or reports no further pages; it counts and logs each notification.
func (c *Controller) readResvLog(ctx context.Context, a *assoc) {
	buf := make([]byte, nvme.ResvNotifyLogSize)
	for range maxResvLogReads {
		cmd := nvme.NewGetLogPage(nvme.LogResvNotify, nvme.NSIDAll, 0, false, 0, uint32(len(buf)))
		clear(buf)
		if _, err := c.adminCmd(ctx, a, &cmd, buf); err != nil {
			if ctx.Err() == nil {
				c.log.Warn("reading reservation notification log failed", "error", err)
			}
			return
		}
		n, err := nvme.ParseResvNotification(buf)
		if err != nil || n.Count == 0 {
			return
		}
		c.resvNotices.Add(1)
		c.log.Info(fmt.Sprintf("reservation notification: %s", nvme.ResvNotifyTypeString(n.Type)), "nsid", n.NSID, "count", n.Count)
		if n.Available == 0 {
			return
		}
	}
}

// adminCmd runs one admin command on a with the admin timeout. It returns
// nil iff the command succeeded; a controller error as nvme.Status; a
// timeout or queue loss starts error recovery (if a is the live
// association) and returns *AbortedError.
func (c *Controller) adminCmd(ctx context.Context, a *assoc, cmd *nvme.Command, data []byte) (nvme.Completion, error) {
	adminTmo := c.tunable().adminTimeout
	tctx, cancel := context.WithTimeout(ctx, adminTmo)
	defer cancel()
	cqe, err := a.admin.Exec(tctx, cmd, data)
	if err != nil {
		if ctx.Err() == nil && tctx.Err() != nil {
			err = fmt.Errorf("admin command 0x%02x timed out after %s: %w", cmd.Opcode, adminTmo, err)
			c.errorRecovery(a, err)
			return cqe, a.aborted(err)
		}
		if isQueueLoss(err) {
			c.errorRecovery(a, err)
			return cqe, a.aborted(err)
		}
		return cqe, err
	}
	if !cqe.Status.OK() {
		c.cmdErrors.Add(1)
		return cqe, cqe.Status
	}
	return cqe, nil
}

// start launches the background work of a live association (keep-alive
// already runs since setup): one outstanding AER, the admin worker and one watcher per queue.
func (a *assoc) start() {
	c := a.c
	for _, q := range append([]Queue{a.admin}, a.io...) {
		a.wg.Add(1)
		go func(q Queue) {
			defer a.wg.Done()
			select {
			case <-q.Dead():
				c.errorRecovery(a, fmt.Errorf("queue died: %w", q.Err()))
			case <-a.ctx.Done():
			}
		}(q)
	}
	a.wg.Add(2)
	go a.aerLoop()
	go a.worker()
}

// stopBackground stops keep-alive, AER, worker and watchers (not the
// queues) and waits for them.
func (a *assoc) stopBackground() {
	a.cancel()
	a.wg.Wait()
}

// teardown stops the background work and closes every queue: in-flight
// commands fail (ErrQueueDead, reported as *AbortedError). Idempotent.
func (a *assoc) teardown() {
	a.once.Do(func() {
		a.markLost(a.c.clk.Now())
		a.cancel()
		a.c.mu.Lock()
		if a.anatt != nil {
			a.anatt.Stop()
			a.anatt = nil
		}
		a.c.mu.Unlock()
		for _, q := range a.io {
			q.Close()
		}
		if a.admin != nil {
			a.admin.Close()
		}
		a.wg.Wait()
	})
}

// keepAlive sends Keep Alive every KATO/2; a Keep Alive that gets no
// completion within KATO starts error recovery (its error status is only
// logged).
func (a *assoc) keepAlive() {
	defer a.wg.Done()
	if a.kato <= 0 {
		return
	}
	c := a.c
	t := clock.NewTicker(c.clk, a.kato/2)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(a.ctx, a.kato)
		cmd := nvme.NewKeepAlive()
		cqe, err := a.admin.Exec(ctx, &cmd, nil)
		cancel()
		if a.ctx.Err() != nil {
			return
		}
		if err != nil {
			err = fmt.Errorf("keep alive: no completion within kato %s: %w", a.kato, err)
			c.log.Error("failed nvme_keep_alive_end_io", "error", err)
			c.errorRecovery(a, err)
			a.admin.Close() // fails a setup still in progress
			return
		}
		if !cqe.Status.OK() {
			c.log.Error("keep alive failed", "status", cqe.Status)
		}
	}
}

// aerLoop keeps one Asynchronous Event Request outstanding and hands each
// event to the worker; like Linux it does not resubmit after an error
// completion.
func (a *assoc) aerLoop() {
	defer a.wg.Done()
	c := a.c
	for {
		cmd := nvme.NewAsyncEventRequest()
		cqe, err := a.admin.Exec(a.ctx, &cmd, nil)
		if err != nil {
			return // queue loss: the watcher recovers; teardown: done
		}
		if !cqe.Status.OK() {
			c.log.Warn("async event request failed, not resubmitting", "status", cqe.Status)
			return
		}
		ev := nvme.ParseAsyncEvent(cqe.DW0)
		c.log.Debug("async event", "type", ev.Type, "info", ev.Info, "log", ev.LogPage)
		switch {
		case ev.Type == nvme.AENTypeNotice && ev.Info == nvme.AENInfoANAChange:
			kick(a.anaKick)
		case ev.Type == nvme.AENTypeNotice && ev.Info == nvme.AENInfoFWActivation:
			// Handled before the next AER is sent (nvme_fw_act_work
			// requeues the async event work when done).
			if !c.firmwareActivation(a) {
				return
			}
		case ev.Type == nvme.AENTypeNotice && ev.Info == nvme.AENInfoNSAttr:
			kick(a.scanKick)
		case ev.Type == nvme.AENTypeNotice && ev.Info == nvme.AENInfoDiscoveryChange:
			kick(a.discKick)
		case ev.Type == nvme.AENTypeIOCS && ev.Info == 0 && ev.LogPage == nvme.LogResvNotify:
			kick(a.resvKick)
		case ev.Type == nvme.AENTypeError && ev.Info == 0x03:
			c.log.Error("persistent internal error, resetting controller")
			c.resetAsync(a, errors.New("async event: persistent internal error"), nil)
			return
		default:
			c.rlog.Warn("unhandled async event", "dw0", fmt.Sprintf("0x%08x", cqe.DW0))
		}
	}
}

// worker runs the admin work the AEN and I/O paths request: ANA log
// re-reads, changed-namespace log + rescan, discovery notifications.
func (a *assoc) worker() {
	defer a.wg.Done()
	c := a.c
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-a.anaKick:
			if err := c.refreshANA(a.ctx, a); err != nil && a.ctx.Err() == nil {
				c.log.Warn("ANA log read failed", "error", err)
			}
		case <-a.scanKick:
			c.readChangedNS(a.ctx, a)
			if err := c.rescan(a.ctx, a); err != nil && a.ctx.Err() == nil {
				c.log.Warn("namespace scan failed", "error", err)
			}
		case <-a.resvKick:
			c.readResvLog(a.ctx, a)
		case <-a.discKick:
			c.pushEvent(DiscoveryChanged)
			if f := c.onDiscovery; f != nil {
				f()
			}
		}
	}
}
