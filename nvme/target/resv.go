package target

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mpathfs/mpathfs/nvme"
)

// reservations is the persistent-reservation state of a namespace.
// Registrants are identified by host ID, as on the Linux target, so the
// controllers of one host on several paths share a registration. The I/O
// path reads an immutable snapshot (nil while no reservation is held)
// without locking.
type reservations struct {
	snap atomic.Pointer[resvSnap]

	mask atomic.Uint32 // Reservation Notification Mask (Set Features 0x83)

	mu     sync.Mutex
	gen    uint32
	regs   map[[16]byte]registrant
	held   bool
	holder [16]byte
	rtype  nvme.ReservationType
}

type registrant struct {
	key    uint64
	cntlid uint16
}

type resvSnap struct {
	rtype  nvme.ReservationType
	holder [16]byte
	regs   map[[16]byte]bool
}

func allRegistrants(t nvme.ReservationType) bool {
	return t == nvme.ResvWriteExclusiveAllRegs || t == nvme.ResvExclusiveAccessAllRegs
}

// check returns Reservation Conflict if the host may not read (or write)
// under the reservation held on the namespace.
func (rs *reservations) check(host [16]byte, write bool) nvme.Status {
	s := rs.snap.Load()
	if s == nil {
		return 0
	}
	registered := s.regs[host]
	holder := s.holder == host || (allRegistrants(s.rtype) && registered)
	ok := true
	switch s.rtype {
	case nvme.ResvWriteExclusive:
		ok = !write || holder
	case nvme.ResvExclusiveAccess:
		ok = holder
	case nvme.ResvWriteExclusiveRegOnly, nvme.ResvWriteExclusiveAllRegs:
		ok = !write || registered
	case nvme.ResvExclusiveAccessRegOnly, nvme.ResvExclusiveAccessAllRegs:
		ok = registered
	}
	if ok {
		return 0
	}
	return nvme.StatusReservationConflict
}

// publish refreshes the snapshot; rs.mu held.
func (rs *reservations) publish() {
	if !rs.held {
		rs.snap.Store(nil)
		return
	}
	s := &resvSnap{rtype: rs.rtype, holder: rs.holder, regs: make(map[[16]byte]bool, len(rs.regs))}
	for h := range rs.regs {
		s.regs[h] = true
	}
	rs.snap.Store(s)
}

func (rs *reservations) release() {
	rs.held, rs.holder, rs.rtype = false, [16]byte{}, 0
}

// resvEvent is a reservation notification owed to a host.
type resvEvent struct {
	host [16]byte
	typ  uint8
}

// command runs Reservation Register, Acquire or Release for ctrl's host,
// then posts the notifications it caused (as nvmet does: registration
// preempted to preempted hosts, reservation released to the other
// registrants when a registrants-only reservation is released or its
// holder unregisters, reservation preempted to the others on clear).
func (rs *reservations) command(ctrl *Controller, cmd *nvme.Command, data []byte) nvme.Status {
	if ctrl == nil {
		return nvme.StatusInternalError
	}
	var evs []resvEvent
	st := rs.run(ctrl, cmd, data, &evs)
	mask := rs.mask.Load()
	for _, e := range evs {
		if mask&(1<<e.typ) != 0 {
			continue
		}
		for _, c := range ctrl.s.controllers() {
			if c.hostID == e.host && !c.discovery {
				c.resvNotify(e.typ, cmd.NSID)
			}
		}
	}
	return st
}

// othersOf returns an event of typ for every registrant but me; rs.mu held.
func (rs *reservations) othersOf(me [16]byte, typ uint8) []resvEvent {
	var evs []resvEvent
	for h := range rs.regs {
		if h != me {
			evs = append(evs, resvEvent{h, typ})
		}
	}
	return evs
}

func regOnly(t nvme.ReservationType) bool {
	return t == nvme.ResvWriteExclusiveRegOnly || t == nvme.ResvExclusiveAccessRegOnly
}

func (rs *reservations) run(ctrl *Controller, cmd *nvme.Command, data []byte, evs *[]resvEvent) nvme.Status {
	crkey, key2, err := nvme.ParseReservationKeys(data)
	if err != nil {
		return nvme.StatusDataSGLLengthInvalid | nvme.StatusDNR
	}
	action, iekey, rtype, cptpl := nvme.ParseReservationCommand(cmd)
	me := ctrl.hostID
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.regs == nil {
		rs.regs = map[[16]byte]registrant{}
	}
	defer rs.publish()
	reg, registered := rs.regs[me]
	keyOK := registered && (iekey || reg.key == crkey)
	switch nvme.IOOpcode(cmd.Opcode) {
	case nvme.IOReservationRegister:
		// CPTPL is ignored, as on the Linux target: Linux's pr_register
		// always asks for "persist" (3); nothing persists here (RESCAP
		// bit 0 clear).
		_ = cptpl
		switch action {
		case nvme.ResvRegister:
			if registered {
				if reg.key != key2 {
					return nvme.StatusReservationConflict
				}
				return 0
			}
			rs.regs[me] = registrant{key: key2, cntlid: ctrl.cntlid}
		case nvme.ResvUnregister:
			if !keyOK {
				return nvme.StatusReservationConflict
			}
			delete(rs.regs, me)
			if rs.held && rs.holder == me && regOnly(rs.rtype) {
				*evs = append(*evs, rs.othersOf(me, nvme.ResvNotifyReleased)...)
			}
			if rs.held && (rs.holder == me || allRegistrants(rs.rtype)) {
				if allRegistrants(rs.rtype) && len(rs.regs) > 0 {
					for h := range rs.regs {
						rs.holder = h
						break
					}
				} else {
					rs.release()
				}
			}
		case nvme.ResvReplace:
			if registered && !keyOK {
				return nvme.StatusReservationConflict
			}
			if !registered && !iekey && crkey != 0 {
				return nvme.StatusReservationConflict
			}
			rs.regs[me] = registrant{key: key2, cntlid: ctrl.cntlid}
		default:
			return nvme.StatusInvalidField | nvme.StatusDNR
		}
		rs.gen++
		return 0
	case nvme.IOReservationAcquire:
		if !keyOK {
			return nvme.StatusReservationConflict
		}
		if rtype < nvme.ResvWriteExclusive || rtype > nvme.ResvExclusiveAccessAllRegs {
			return nvme.StatusInvalidField | nvme.StatusDNR
		}
		switch action {
		case nvme.ResvAcquire:
			if rs.held {
				if (rs.holder == me || allRegistrants(rs.rtype)) && rs.rtype == rtype {
					return 0
				}
				return nvme.StatusReservationConflict
			}
			rs.held, rs.holder, rs.rtype = true, me, rtype
			return 0
		case nvme.ResvPreempt, nvme.ResvPreemptAbort:
			removeKey := func(k uint64) {
				for h, g := range rs.regs {
					if h != me && g.key == k {
						delete(rs.regs, h)
						*evs = append(*evs, resvEvent{h, nvme.ResvNotifyRegPreempt})
					}
				}
			}
			switch {
			case !rs.held:
				removeKey(key2)
			case allRegistrants(rs.rtype) && key2 == 0:
				for h := range rs.regs {
					if h != me {
						delete(rs.regs, h)
						*evs = append(*evs, resvEvent{h, nvme.ResvNotifyRegPreempt})
					}
				}
				rs.holder, rs.rtype = me, rtype
			case allRegistrants(rs.rtype):
				removeKey(key2)
			case rs.regs[rs.holder].key == key2:
				removeKey(key2)
				rs.holder, rs.rtype = me, rtype
			case key2 == 0:
				return nvme.StatusInvalidField | nvme.StatusDNR
			default:
				removeKey(key2)
			}
			rs.gen++
			return 0
		}
		return nvme.StatusInvalidField | nvme.StatusDNR
	case nvme.IOReservationRelease:
		if !keyOK {
			return nvme.StatusReservationConflict
		}
		switch action {
		case nvme.ResvRelease:
			if !rs.held || (rs.holder != me && !allRegistrants(rs.rtype)) {
				return 0
			}
			if rs.rtype != rtype {
				return nvme.StatusInvalidField | nvme.StatusDNR
			}
			if rs.rtype != nvme.ResvWriteExclusive && rs.rtype != nvme.ResvExclusiveAccess {
				*evs = append(*evs, rs.othersOf(me, nvme.ResvNotifyReleased)...)
			}
			rs.release()
			return 0
		case nvme.ResvClear:
			*evs = append(*evs, rs.othersOf(me, nvme.ResvNotifyResvPreempt)...)
			rs.release()
			clear(rs.regs)
			rs.gen++
			return 0
		}
		return nvme.StatusInvalidField | nvme.StatusDNR
	}
	return nvme.StatusInvalidOpcode | nvme.StatusDNR
}

// report returns the extended reservation status.
func (rs *reservations) report() *nvme.ReservationStatus {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	st := &nvme.ReservationStatus{Gen: rs.gen}
	if rs.held {
		st.RType = rs.rtype
	}
	for h, g := range rs.regs {
		st.Regs = append(st.Regs, nvme.RegisteredController{CNTLID: g.cntlid, RKey: g.key, HostID: h,
			Holds: rs.held && (h == rs.holder || allRegistrants(rs.rtype))})
	}
	sort.Slice(st.Regs, func(i, j int) bool { return st.Regs[i].CNTLID < st.Regs[j].CNTLID })
	return st
}
