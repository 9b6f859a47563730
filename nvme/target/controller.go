package target

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/auth"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// discoveryKATO is what the Linux target gives discovery controllers that
// ask for no keep-alive.
const discoveryKATO = 120 * time.Second

// Controller is one dynamic controller: an admin queue plus I/O queues on
// one port for one host.
type Controller struct {
	s         *Subsystem
	port      *Port
	cntlid    uint16
	hostNQN   string
	hostID    [16]byte
	discovery bool
	auth      *auth.CtrlParams // DH-HMAC-CHAP for every queue, nil: none

	t0       time.Time    // base of lastSeen (monotonic)
	lastSeen atomic.Int64 // ns since t0 of the last command (TBKAS)
	ready    atomic.Bool  // CSTS.RDY
	acre     atomic.Bool  // Host Behavior Support ACRE: keep CRD in statuses
	anaReads atomic.Uint64
	dying    atomic.Bool // set by destroy before ready is cleared
	errs     errLog

	mu       sync.Mutex
	cc       fabrics.CC
	csts     fabrics.CSTS
	aec      uint32
	nrIOQ    int // granted I/O queues (Set Features Number of Queues)
	kato     time.Duration
	kaTimer  *time.Timer
	admin    *conn
	queues   map[uint16]*conn
	aers     []uint16                // CIDs of outstanding AERs
	events   []uint32                // AEN DW0s waiting for an AER
	masked   uint32                  // AEC bits reported and not yet cleared by reading the log
	changed  []uint32                // changed namespace list
	resvLog  []nvme.ResvNotification // Reservation Notification log pages not yet read
	resvCnt  uint64                  // last log page count given out
	dead     bool
	destroyR string
}

func newController(s *Subsystem, p *Port, cd fabrics.ConnectData, admin *conn) *Controller {
	// The events enabled before any Set Features: nvmet's
	// NVMET_AEN_CFG_OPTIONAL (0x900) and NVMET_DISC_AEN_CFG_OPTIONAL.
	aec := uint32(nvme.AENCfgNSAttr | nvme.AENCfgANAChange)
	if s.discovery {
		aec = nvme.AENCfgDiscoveryChange
	}
	return &Controller{s: s, port: p, hostNQN: cd.HostNQN, hostID: cd.HostID, discovery: s.discovery,
		t0: time.Now(), admin: admin, queues: map[uint16]*conn{}, aec: aec}
}

// ANALogReads counts the ANA log pages the host read.
func (c *Controller) ANALogReads() uint64 { return c.anaReads.Load() }

// ACRE reports that the host enabled Advanced Command Retry.
func (c *Controller) ACRE() bool { return c.acre.Load() }

// CNTLID returns the controller ID.
func (c *Controller) CNTLID() uint16 { return c.cntlid }

// HostNQN returns the NQN of the connected host.
func (c *Controller) HostNQN() string { return c.hostNQN }

func (c *Controller) touch() { c.lastSeen.Store(int64(time.Since(c.t0))) }

// setKATO (re)arms the keep-alive timer: d is rounded up to whole seconds
// like the Linux target; 0 disables it (discovery controllers get 120 s).
func (c *Controller) setKATO(d time.Duration) {
	d = katoRound(d)
	if d == 0 && c.discovery {
		d = discoveryKATO
	}
	c.touch()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	c.kato = d
	switch {
	case d == 0 && c.kaTimer != nil:
		c.kaTimer.Stop()
	case d == 0:
	case c.kaTimer == nil:
		c.kaTimer = time.AfterFunc(d, c.kaFire)
	default:
		c.kaTimer.Reset(d)
	}
}

// kaFire runs when the keep-alive timer may have expired: with
// traffic-based keep-alive (CTRATT.TBKAS) any command counts.
func (c *Controller) kaFire() {
	c.mu.Lock()
	if c.dead || c.kato == 0 {
		c.mu.Unlock()
		return
	}
	kato := c.kato
	idle := time.Since(c.t0) - time.Duration(c.lastSeen.Load())
	if idle < kato {
		c.kaTimer.Reset(kato - idle)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.s.t.log.Warn("keep-alive timer expired, controller torn down", "cntlid", c.cntlid,
		"kato", kato, "port", c.port.id, "subsys", c.s.cfg.NQN)
	c.destroy("keep-alive timer expired")
}

// destroy tears the controller down: it leaves the subsystem and every
// connection of it is closed (deferred while the port is stalled).
func (c *Controller) destroy(reason string) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.dead = true
	c.destroyR = reason
	c.dying.Store(true)
	c.ready.Store(false)
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
	conns := make([]*conn, 0, len(c.queues)+1)
	if c.admin != nil {
		conns = append(conns, c.admin)
	}
	for _, q := range c.queues {
		conns = append(conns, q)
	}
	c.aers, c.events = nil, nil
	c.mu.Unlock()
	if h := c.s.t.destroying.Load(); h != nil {
		(*h)()
	}
	c.s.removeController(c)
	c.s.t.log.Info("controller removed", "cntlid", c.cntlid, "subsys", c.s.cfg.NQN, "port", c.port.id, "reason", reason)
	for _, q := range conns {
		q.kill()
	}
}

// Dead reports whether the controller was torn down.
func (c *Controller) Dead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

func (c *Controller) addQueue(qid uint16, q *conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || c.queues[qid] != nil {
		return false
	}
	c.queues[qid] = q
	return true
}

func (c *Controller) removeQueue(qid uint16, q *conn) {
	c.mu.Lock()
	if c.queues[qid] == q {
		delete(c.queues, qid)
	}
	c.mu.Unlock()
}

// nsChanged records nsid in the changed namespace list and raises the
// namespace-attribute-changed event.
func (c *Controller) nsChanged(nsid uint32) {
	c.mu.Lock()
	switch {
	case len(c.changed) == 1 && c.changed[0] == nvme.NSIDAll:
	case len(c.changed) >= MaxNSID:
		c.changed = append(c.changed[:0], nvme.NSIDAll)
	default:
		found := false
		for _, id := range c.changed {
			found = found || id == nsid
		}
		if !found {
			c.changed = append(c.changed, nsid)
		}
	}
	c.mu.Unlock()
	c.postEvent(nvme.AENNSChanged, nvme.AENCfgNSAttr)
}

// aenResvLog stands for the Reservation Log Page Available event in the
// AEC-bit bookkeeping of postEvent: it has no AEC bit (the Reservation
// Notification Mask gates it) and is masked until the log is read.
const aenResvLog = 1 << 30

// maxResvLog bounds the queued notification pages; the count of a later
// page jumps over lost ones.
const maxResvLog = 64

// resvNotify queues a Reservation Notification log page and raises
// Reservation Log Page Available.
func (c *Controller) resvNotify(typ uint8, nsid uint32) {
	c.mu.Lock()
	c.resvCnt++
	if c.resvCnt == 0 {
		c.resvCnt = 1
	}
	if len(c.resvLog) < maxResvLog {
		c.resvLog = append(c.resvLog, nvme.ResvNotification{Count: c.resvCnt, Type: typ, NSID: nsid})
	}
	c.mu.Unlock()
	c.postEvent(nvme.AENResvLogAvailable, aenResvLog)
}

// popResvLog returns the oldest queued notification page (zero: none) with
// the number of pages still queued.
func (c *Controller) popResvLog() nvme.ResvNotification {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.resvLog) == 0 {
		return nvme.ResvNotification{}
	}
	n := c.resvLog[0]
	c.resvLog = c.resvLog[1:]
	n.Available = uint8(min(len(c.resvLog), 255))
	return n
}

// postEvent raises an asynchronous event (dw0) of AEC bit: dropped unless
// the host enabled it, and masked until the host reads the matching log;
// it completes an outstanding AER or waits for the next one.
func (c *Controller) postEvent(dw0 uint32, bit uint32) {
	c.mu.Lock()
	if c.dead || (bit != aenResvLog && c.aec&bit == 0) || c.masked&bit != 0 {
		c.mu.Unlock()
		return
	}
	c.masked |= bit
	if len(c.aers) == 0 {
		c.events = append(c.events, dw0)
		c.mu.Unlock()
		return
	}
	cid := c.aers[0]
	c.aers = c.aers[1:]
	adm := c.admin
	c.mu.Unlock()
	// Not inline: the caller (SetANAState, a namespace change) must not
	// wait for a stalled port or a slow socket.
	go adm.completeAER(cid, dw0)
}

// clearEvent unmasks an event type after its log was read without RAE.
func (c *Controller) clearEvent(bit uint32) {
	c.mu.Lock()
	c.masked &^= bit
	c.mu.Unlock()
}

// aer handles an Asynchronous Event Request: it completes at once with a
// queued event, else stays outstanding. ok=false means the AER limit was
// exceeded.
func (c *Controller) aer(cid uint16) (dw0 uint32, now, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.events) > 0 {
		dw0 = c.events[0]
		c.events = c.events[1:]
		return dw0, true, true
	}
	if len(c.aers) >= maxAERs {
		return 0, false, false
	}
	c.aers = append(c.aers, cid)
	return 0, false, true
}

// capReg is CAP: MQES from the port, TO 15 (7.5 s), CSS NVM only (bit 37)
// so hosts stay on the simple path (reference §4.6).
func (c *Controller) capReg() uint64 {
	return uint64(c.port.cfg.MaxQueueSize-1) | 15<<24 | 1<<37
}

// versionReg is VS 1.3.
const versionReg = 0x00010300

func (c *Controller) propGet(off uint32, size8 bool) (uint64, nvme.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case off == fabrics.RegCAP && size8:
		return c.capReg(), 0
	case size8:
		return 0, nvme.StatusInvalidField | nvme.StatusDNR
	case off == fabrics.RegVS:
		return versionReg, 0
	case off == fabrics.RegCC:
		return uint64(c.cc), 0
	case off == fabrics.RegCSTS:
		return uint64(c.csts), 0
	}
	return 0, nvme.StatusInvalidField | nvme.StatusDNR
}

// propSet handles Property Set of CC (the only writable property), with
// the Linux target's enable and shutdown sequence (nvmet_update_cc).
func (c *Controller) propSet(off uint32, size8 bool, v uint64) nvme.Status {
	if size8 || off != fabrics.RegCC {
		return nvme.StatusInvalidField | nvme.StatusDNR
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, nw := c.cc, fabrics.CC(v)
	c.cc = nw
	if nw.EN() && !old.EN() {
		c.start()
	}
	if !nw.EN() && old.EN() {
		c.clear()
	}
	if nw.SHN() != 0 && old.SHN() == 0 {
		c.clear()
		c.csts |= fabrics.CSTSShstComplete
	}
	if nw.SHN() == 0 && old.SHN() != 0 {
		c.csts &^= fabrics.CSTSShstMask
	}
	return 0
}

// start enables the controller: the I/O queue entry sizes must be 64/16
// bytes (except on discovery controllers), MPS 4 KiB, AMS round robin and
// CSS NVM; otherwise CSTS.CFS is set (nvmet_start_ctrl).
func (c *Controller) start() {
	cc := c.cc
	if (!c.discovery && (cc.IOSQES() != 6 || cc.IOCQES() != 4)) || cc.MPS() != 0 || cc.AMS() != 0 || cc.CSS() != 0 {
		c.csts = fabrics.CSTSCFS
		return
	}
	c.csts = fabrics.CSTSRdy
	c.ready.Store(true)
}

func (c *Controller) clear() {
	c.csts &^= fabrics.CSTSRdy
	c.ready.Store(false)
}
