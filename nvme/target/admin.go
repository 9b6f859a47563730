package target

import (
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
)

// maxLogLen bounds one Get Log Page transfer.
const maxLogLen = 1 << 20

// adminBuf returns the reader-owned admin data buffer, zeroed, of n bytes.
func (c *conn) adminBuf(n int) []byte {
	if cap(c.admBuf) < n {
		c.admBuf = make([]byte, n)
	}
	b := c.admBuf[:n]
	clear(b)
	return b
}

// sendAdmin sends controller-to-host admin data: the command's SGL must be
// a transport data block of exactly len(data) bytes (nvmet_check_transfer_len).
func (c *conn) sendAdmin(r *request, data []byte) {
	n, inCap, st := sgl(&r.cmd)
	switch {
	case st != 0:
	case inCap:
		st = nvme.StatusInvalidField | nvme.StatusDNR
	case n != len(data):
		st = nvme.StatusDataSGLLengthInvalid | nvme.StatusDNR
	}
	if st != 0 {
		c.complete(r, st, 0)
		return
	}
	c.completeData(r, data)
}

// adminCmd runs an admin command in the reader goroutine.
func (c *conn) adminCmd(ctrl *Controller, r *request, dl int) bool {
	if nvme.AdminOpcode(r.cmd.Opcode) == nvme.AdminSetFeatures && r.cmd.CDW10&0xFF == nvme.FeatHostBehavior && !ctrl.discovery {
		return c.setHostBehavior(ctrl, r, dl)
	}
	if dl > 0 {
		// No supported admin command carries host data.
		if err := c.r.Discard(); err != nil {
			return false
		}
		c.complete(r, nvme.StatusInvalidField|nvme.StatusDNR, 0)
		return true
	}
	if !ctrl.ready.Load() {
		if ctrl.dying.Load() {
			c.putReq(r) // torn down: close, as ioCmd does
			return false
		}
		c.complete(r, nvme.StatusCommandSequenceError|nvme.StatusDNR, 0)
		return true
	}
	switch nvme.AdminOpcode(r.cmd.Opcode) {
	case nvme.AdminIdentify:
		c.identify(ctrl, r)
	case nvme.AdminGetLogPage:
		c.getLogPage(ctrl, r)
	case nvme.AdminSetFeatures:
		st, dw0 := c.setFeatures(ctrl, r)
		c.complete(r, st, dw0)
	case nvme.AdminGetFeatures:
		st, dw0 := c.getFeatures(ctrl, r)
		c.complete(r, st, dw0)
	case nvme.AdminAsyncEvent:
		dw0, now, ok := ctrl.aer(r.cmd.CID)
		switch {
		case !ok:
			c.complete(r, nvme.StatusAERLimitExceeded|nvme.StatusDNR, 0)
		case now:
			c.complete(r, 0, dw0)
		default:
			c.putReq(r) // completed by postEvent
		}
	case nvme.AdminKeepAlive:
		c.complete(r, 0, 0) // the timer was reset when the command arrived
	case nvme.AdminAbort:
		if ctrl.discovery {
			c.complete(r, nvme.StatusInvalidOpcode|nvme.StatusDNR, 0)
			break
		}
		c.complete(r, 0, 1) // bit 0: command not aborted
	default:
		c.complete(r, nvme.StatusInvalidOpcode|nvme.StatusDNR, 0)
	}
	return true
}

// setHostBehavior is Set Features Host Behavior Support: 512 bytes of data
// in the capsule, byte 0 is ACRE (Advanced Command Retry Enable).
func (c *conn) setHostBehavior(ctrl *Controller, r *request, dl int) bool {
	data, st, ok := c.readSmallData(r, dl, nvme.HostBehaviorSize)
	if !ok {
		return false
	}
	if st == 0 && data[0] > 1 {
		st = nvme.StatusInvalidField | nvme.StatusDNR
	}
	if st == 0 {
		ctrl.acre.Store(data[0] == 1)
		c.log.Debug("host behavior support", "cntlid", ctrl.cntlid, "acre", data[0])
	}
	c.complete(r, st, 0)
	return true
}

// IdentifyController returns what Identify Controller reports for ctrl:
// the Linux target's defaults (reference §8) with VS 1.3.
func (c *Controller) identifyController() *nvme.IdentifyController {
	cfg := &c.s.cfg
	id := &nvme.IdentifyController{
		SerialNumber: cfg.Serial, ModelNumber: cfg.Model, FirmwareRev: cfg.Firmware,
		RAB: 6, MDTS: c.port.cfg.MDTS, CNTLID: c.cntlid, Version: versionReg,
		ACL: 3, AERL: maxAERs - 1, FRMW: 3, LPA: 1<<1 | 1<<2, ELPE: 127, KAS: kasUnits,
		SQES: 0x66, CQES: 0x44, SGLS: 0x00100001, SubNQN: cfg.NQN,
		IOCCSZ: uint32((64 + c.port.cfg.InCapsule) / 16), IORCSZ: 1, MSDBD: 1,
		CTRATT: nvme.CTRATTHostID128 | nvme.CTRATTTBKAS,
		CRDT:   cfg.CRDT,
	}
	if c.discovery {
		id.CNTRLTYPE = nvme.CtrlTypeDiscovery
		id.OAES = nvme.AENCfgDiscoveryChange
		// As nvmet: the port's queue size, so a host's default queue_size
		// is not clamped ("sqsize 128 > ctrl maxcmd 32, clamping down").
		id.MAXCMD = uint16(c.port.cfg.MaxQueueSize)
		id.LPA = 1 << 2
		id.SerialNumber = "mpathfs-discovery"
		return id
	}
	id.CNTRLTYPE = nvme.CtrlTypeIO
	id.CMIC = nvme.CMICMultiPort | nvme.CMICMultiCtrl | nvme.CMICANA
	id.OAES = nvme.AENCfgNSAttr | nvme.AENCfgANAChange
	if cfg.FirmwareActivationNotices {
		id.OAES |= nvme.AENCfgFWActivation
	}
	id.ANATT, id.ANACAP = 10, 0x1F
	id.ANAGRPMAX, id.NANAGRPID = MaxANAGroups, MaxANAGroups
	id.MAXCMD = uint16(c.port.cfg.MaxQueueSize)
	id.NN, id.MNAN = MaxNSID, MaxNSID
	id.ONCS = nvme.ONCSDSM | nvme.ONCSWriteZeroes | nvme.ONCSReservations
	id.VWC = 1
	return id
}

// physBlockSize is the physical block size our namespaces report: RAM and
// files are written in pages, as brd reports 4096.
const physBlockSize = 4096

// identifyNamespace returns Identify Namespace data for ns.
func (ns *Namespace) identify() *nvme.IdentifyNamespace {
	blocks := ns.blocks.Load()
	ids := ns.IDs()
	nmic := uint8(nvme.NMICShared)
	if ns.cfg.Private {
		nmic = 0
	}
	id := &nvme.IdentifyNamespace{
		NSZE: blocks, NCAP: blocks, NUSE: blocks,
		NMIC:     nmic,
		RESCAP:   0xFE, // all reservation types and Ignore Existing Key; no PTPL
		DLFEAT:   0x09, // deallocated blocks read as zeroes; Write Zeroes may deallocate
		ANAGRPID: ns.ANAGroup(),
		NGUID:    ids.NGUID, EUI64: ids.EUI64,
	}
	lbads := uint8(9)
	if ns.bs == 4096 {
		lbads = 12
	}
	// As nvmet over a brd/page-granular device: atomic write unit,
	// preferred write and deallocate granularity and alignment are one
	// physical block (0's based, in logical blocks); no optimal write size.
	lpp := uint16(max(physBlockSize/ns.bs, 1) - 1)
	id.NSFEAT |= nvme.NSFEATAtomics | nvme.NSFEATOptPerf
	id.NAWUN, id.NAWUPF, id.NACWU = lpp, lpp, lpp
	id.NPWG, id.NPWA, id.NPDG, id.NPDA = lpp, lpp, lpp, lpp
	id.LBAF[0] = nvme.LBAFormat{LBADS: lbads, MS: ns.cfg.MetadataSize}
	return id
}

func (c *conn) identify(ctrl *Controller, r *request) {
	cns, nsid, _, csi := nvme.ParseIdentifyCommand(&r.cmd)
	buf := c.adminBuf(nvme.IdentifyDataSize)
	if ctrl.discovery && cns != nvme.CNSController {
		c.complete(r, nvme.StatusInvalidField|nvme.StatusDNR, 0)
		return
	}
	switch cns {
	case nvme.CNSController:
		ctrl.identifyController().Marshal(buf)
	case nvme.CNSNamespace:
		if nsid == nvme.NSIDAll {
			c.complete(r, nvme.StatusInvalidNamespace|nvme.StatusDNR, 0)
			return
		}
		// An inactive NSID reads as zeroes, as on Linux.
		if ns := ctrl.s.namespace(nsid); ns != nil {
			ns.identify().Marshal(buf)
		}
	case nvme.CNSActiveNSList:
		if nsid >= 0xFFFFFFFE {
			c.complete(r, nvme.StatusInvalidNamespace|nvme.StatusDNR, 0)
			return
		}
		ids := make([]uint32, 0, 16)
		for _, ns := range ctrl.s.namespaces() {
			if ns.nsid > nsid && len(ids) < nvme.IdentifyDataSize/4 {
				ids = append(ids, ns.nsid)
			}
		}
		nvme.MarshalNSIDList(buf, ids)
	case nvme.CNSNSDescList:
		ns := ctrl.s.namespace(nsid)
		if ns == nil {
			c.complete(r, nvme.StatusInvalidNamespace|nvme.StatusDNR, 0)
			return
		}
		ns.IDs().MarshalDescriptors(buf)
	case nvme.CNSCSController:
		if csi != nvme.CSINVM {
			c.complete(r, nvme.StatusInvalidField|nvme.StatusDNR, 0)
			return
		}
		// NVM command set specific controller data: all zero.
	default:
		c.complete(r, nvme.StatusInvalidField|nvme.StatusDNR, 0)
		return
	}
	c.sendAdmin(r, buf)
}

func (c *conn) getLogPage(ctrl *Controller, r *request) {
	lid, _, lsp, rae, off, length := nvme.ParseGetLogPageCommand(&r.cmd)
	if off%4 != 0 || length > maxLogLen {
		c.complete(r, nvme.StatusInvalidField|nvme.StatusDNR, 0)
		return
	}
	var full []byte
	clearBit := uint32(0)
	switch {
	case ctrl.discovery && lid == nvme.LogDiscovery:
		full = c.t.discoveryLog(ctrl.hostNQN, ctrl.port).AppendBinary(nil)
		clearBit = nvme.AENCfgDiscoveryChange
	case ctrl.discovery:
		c.complete(r, nvme.StatusInvalidField|nvme.StatusDNR, 0)
		return
	case lid == nvme.LogError:
		full = ctrl.errs.page()
	case lid == nvme.LogSMART:
		full = make([]byte, 512)
	case lid == nvme.LogFWSlot:
		// Mandatory: slot 1 active (AFI), holding the firmware revision.
		full = make([]byte, 512)
		full[0] = 1
		copy(full[8:16], fmt.Sprintf("%-8.8s", ctrl.s.cfg.Firmware))
		clearBit = nvme.AENCfgFWActivation
	case lid == nvme.LogCmdEffects:
		full = cmdEffectsLog()
	case lid == nvme.LogChangedNS:
		full = make([]byte, nvme.IdentifyDataSize)
		ctrl.mu.Lock()
		nvme.MarshalNSIDList(full, ctrl.changed)
		ctrl.changed = ctrl.changed[:0]
		ctrl.mu.Unlock()
		clearBit = nvme.AENCfgNSAttr
	case lid == nvme.LogANA:
		full = ctrl.anaLog(lsp&nvme.LSPANAGroupsOnly != 0).AppendBinary(nil)
		ctrl.anaReads.Add(1)
		clearBit = nvme.AENCfgANAChange
	case lid == nvme.LogResvNotify:
		full = ctrl.popResvLog().AppendBinary(nil)
		clearBit = aenResvLog
	default:
		c.complete(r, nvme.StatusInvalidField|nvme.StatusDNR, 0)
		return
	}
	if full != nil && off > uint64(len(full)) {
		c.complete(r, nvme.StatusInvalidField|nvme.StatusDNR, 0)
		return
	}
	if clearBit != 0 && !rae {
		ctrl.clearEvent(clearBit)
	}
	buf := c.adminBuf(int(length))
	if full != nil {
		copy(buf, full[off:])
	}
	c.sendAdmin(r, buf)
}

// anaLog builds the ANA log as seen through the controller's port: group 1,
// every group a namespace of the subsystem is in and every group given a
// state on the port, ascending, each with the port's state for it.
func (c *Controller) anaLog(groupsOnly bool) *nvme.ANALog {
	groups := map[uint32][]uint32{1: nil}
	for _, ns := range c.s.namespaces() {
		g := ns.ANAGroup()
		groups[g] = append(groups[g], ns.nsid)
	}
	for g := uint32(1); g <= MaxANAGroups; g++ {
		if c.port.anaGroupSet(g) {
			if _, ok := groups[g]; !ok {
				groups[g] = nil
			}
		}
	}
	ids := make([]uint32, 0, len(groups))
	for g := range groups {
		ids = append(ids, g)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	chg := c.s.t.anaChg.Load()
	l := &nvme.ANALog{ChangeCount: chg}
	for _, g := range ids {
		d := nvme.ANAGroup{ID: g, ChangeCount: chg, State: c.port.ANAState(g)}
		if !groupsOnly {
			d.NSIDs = groups[g]
		}
		l.Groups = append(l.Groups, d)
	}
	return l
}

// cmdEffectsLog is the Commands Supported and Effects log: CSUPP for each
// supported opcode, LBCC for those changing data.
func cmdEffectsLog() []byte {
	b := make([]byte, 4096)
	const csupp, lbcc = 1 << 0, 1 << 1
	for _, op := range []nvme.AdminOpcode{nvme.AdminGetLogPage, nvme.AdminIdentify, nvme.AdminAbort,
		nvme.AdminSetFeatures, nvme.AdminGetFeatures, nvme.AdminAsyncEvent, nvme.AdminKeepAlive} {
		binary.LittleEndian.PutUint32(b[4*int(op):], csupp)
	}
	for _, op := range []nvme.IOOpcode{nvme.IORead, nvme.IOReservationReport} {
		binary.LittleEndian.PutUint32(b[1024+4*int(op):], csupp)
	}
	for _, op := range []nvme.IOOpcode{nvme.IOFlush, nvme.IOWrite, nvme.IOWriteZeroes, nvme.IODatasetManagement,
		nvme.IOReservationRegister, nvme.IOReservationAcquire, nvme.IOReservationRelease} {
		binary.LittleEndian.PutUint32(b[1024+4*int(op):], csupp|lbcc)
	}
	return b
}

func (c *conn) setFeatures(ctrl *Controller, r *request) (nvme.Status, uint32) {
	fid, _, v := nvme.ParseFeaturesCommand(&r.cmd)
	if r.cmd.CDW10&(1<<31) != 0 {
		return nvme.StatusFeatureNotSaveable | nvme.StatusDNR, 0
	}
	switch {
	case fid == nvme.FeatNumQueues && !ctrl.discovery:
		if v&0xFFFF == 0xFFFF || v>>16 == 0xFFFF {
			return nvme.StatusInvalidField | nvme.StatusDNR, 0
		}
		nsq, ncq := nvme.ParseNumQueues(v)
		m := ctrl.s.cfg.MaxIOQueues
		nsq, ncq = min(nsq, m), min(ncq, m)
		ctrl.mu.Lock()
		ctrl.nrIOQ = min(nsq, ncq)
		ctrl.mu.Unlock()
		return 0, uint32(nsq-1) | uint32(ncq-1)<<16
	case fid == nvme.FeatAsyncEventConfig:
		mask := uint32(nvme.AENCfgNSAttr | nvme.AENCfgANAChange)
		if ctrl.s.cfg.FirmwareActivationNotices {
			mask |= nvme.AENCfgFWActivation
		}
		if ctrl.discovery {
			mask = nvme.AENCfgDiscoveryChange
		}
		if v&^mask != 0 {
			return nvme.StatusInvalidField | nvme.StatusDNR, 0
		}
		ctrl.mu.Lock()
		ctrl.aec = v
		ctrl.mu.Unlock()
		return 0, 0
	case fid == nvme.FeatKeepAliveTimer:
		ctrl.setKATO(time.Duration(v) * time.Millisecond)
		return 0, 0
	case fid == nvme.FeatResvNotifyMask && !ctrl.discovery:
		// nvmet_set_feat_resv_notif_mask: one namespace, or all with NSID FFFFFFFFh.
		if v&^nvme.ResvNotifyMaskAll != 0 {
			return nvme.StatusInvalidField | nvme.StatusDNR, 0
		}
		if r.cmd.NSID == nvme.NSIDAll {
			for _, ns := range ctrl.s.namespaces() {
				ns.resv.mask.Store(v)
			}
			return 0, v
		}
		ns := ctrl.s.namespace(r.cmd.NSID)
		if ns == nil {
			return nvme.StatusInvalidNamespace | nvme.StatusDNR, 0
		}
		ns.resv.mask.Store(v)
		return 0, v
	}
	return nvme.StatusInvalidField | nvme.StatusDNR, 0
}

func (c *conn) getFeatures(ctrl *Controller, r *request) (nvme.Status, uint32) {
	fid, sel, _ := nvme.ParseFeaturesCommand(&r.cmd)
	if sel == 3 { // capabilities: changeable, not saveable
		switch fid {
		case nvme.FeatNumQueues, nvme.FeatAsyncEventConfig, nvme.FeatKeepAliveTimer:
			return 0, 1 << 2
		}
		return nvme.StatusInvalidField | nvme.StatusDNR, 0
	}
	ctrl.mu.Lock()
	defer ctrl.mu.Unlock()
	switch {
	case fid == nvme.FeatNumQueues && !ctrl.discovery:
		n := ctrl.nrIOQ
		if n == 0 || sel == 1 {
			n = ctrl.s.cfg.MaxIOQueues
		}
		return 0, nvme.NumQueues(n)
	case fid == nvme.FeatAsyncEventConfig:
		return 0, ctrl.aec
	case fid == nvme.FeatVolatileWC && !ctrl.discovery:
		return 0, 1 // enabled, as VWC reports it present
	case fid == nvme.FeatKeepAliveTimer:
		return 0, uint32(ctrl.kato.Milliseconds())
	case fid == nvme.FeatResvNotifyMask && !ctrl.discovery:
		ns := ctrl.s.namespace(r.cmd.NSID)
		if ns == nil {
			return nvme.StatusInvalidNamespace | nvme.StatusDNR, 0
		}
		return 0, ns.resv.mask.Load()
	}
	return nvme.StatusInvalidField | nvme.StatusDNR, 0
}
