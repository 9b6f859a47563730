package nvme

import (
	"encoding/binary"
	"fmt"
)

// ReservationType is RTYPE (reference §5).
type ReservationType uint8

// Reservation types.
const (
	ResvWriteExclusive         ReservationType = 1
	ResvExclusiveAccess        ReservationType = 2
	ResvWriteExclusiveRegOnly  ReservationType = 3
	ResvExclusiveAccessRegOnly ReservationType = 4
	ResvWriteExclusiveAllRegs  ReservationType = 5
	ResvExclusiveAccessAllRegs ReservationType = 6
)

// Reservation Register actions (RREGA).
const (
	ResvRegister   = 0
	ResvUnregister = 1
	ResvReplace    = 2
)

// Reservation Acquire actions (RACQA).
const (
	ResvAcquire      = 0
	ResvPreempt      = 1
	ResvPreemptAbort = 2
)

// Reservation Release actions (RRELA).
const (
	ResvRelease = 0
	ResvClear   = 1
)

// Change Persist Through Power Loss values (CPTPL) of Reservation Register.
const (
	ResvPTPLNoChange = 0
	ResvPTPLClear    = 2
	ResvPTPLPersist  = 3
)

// Data sizes of the reservation commands.
const (
	ResvRegisterDataSize = 16 // CRKEY, NRKEY
	ResvAcquireDataSize  = 16 // CRKEY, PRKEY
	ResvReleaseDataSize  = 8  // CRKEY
	resvIEKEY            = 1 << 3
)

// NewReservationRegister builds a Reservation Register command; its data
// (ResvRegisterDataSize bytes) is MarshalReservationKeys(crkey, nrkey).
func NewReservationRegister(nsid uint32, action uint8, iekey bool, cptpl uint8) Command {
	c := newCmd(uint8(IOReservationRegister), nsid)
	c.CDW10 = uint32(action&7) | uint32(cptpl&3)<<30
	if iekey {
		c.CDW10 |= resvIEKEY
	}
	return c
}

// NewReservationAcquire builds a Reservation Acquire command; its data
// (ResvAcquireDataSize bytes) is MarshalReservationKeys(crkey, prkey).
func NewReservationAcquire(nsid uint32, action uint8, iekey bool, rtype ReservationType) Command {
	c := newCmd(uint8(IOReservationAcquire), nsid)
	c.CDW10 = uint32(action&7) | uint32(rtype)<<8
	if iekey {
		c.CDW10 |= resvIEKEY
	}
	return c
}

// NewReservationRelease builds a Reservation Release command; its data
// (ResvReleaseDataSize bytes) is the CRKEY.
func NewReservationRelease(nsid uint32, action uint8, iekey bool, rtype ReservationType) Command {
	c := NewReservationAcquire(nsid, action, iekey, rtype)
	c.Opcode = uint8(IOReservationRelease)
	return c
}

// NewReservationReport builds a Reservation Report returning length bytes
// (a multiple of 4, at least 4) in the extended data structure if eds
// (the only format the Linux target supports).
func NewReservationReport(nsid uint32, length uint32, eds bool) Command {
	c := newCmd(uint8(IOReservationReport), nsid)
	if numd := length / 4; numd > 0 {
		c.CDW10 = numd - 1
	}
	if eds {
		c.CDW11 = 1
	}
	return c
}

// ParseReservationCommand returns the action (RREGA/RACQA/RRELA), IEKEY,
// RTYPE (acquire, release) and CPTPL (register) of a reservation command.
func ParseReservationCommand(c *Command) (action uint8, iekey bool, rtype ReservationType, cptpl uint8) {
	return uint8(c.CDW10) & 7, c.CDW10&resvIEKEY != 0, ReservationType(c.CDW10 >> 8), uint8(c.CDW10>>30) & 3
}

// ParseReservationReportCommand returns the requested length in bytes and
// EDS of a Reservation Report command.
func ParseReservationReportCommand(c *Command) (length uint32, eds bool) {
	length = 0xFFFFFFFC
	if c.CDW10 < 1<<30-1 {
		length = (c.CDW10 + 1) * 4
	}
	return length, c.CDW11&1 != 0
}

// MarshalReservationKeys writes the reservation command data: crkey @0 and,
// if b holds 16 bytes, key2 (NRKEY or PRKEY) @8. b must hold at least 8
// bytes.
func MarshalReservationKeys(b []byte, crkey, key2 uint64) {
	binary.LittleEndian.PutUint64(b[0:8], crkey)
	if len(b) >= 16 {
		binary.LittleEndian.PutUint64(b[8:16], key2)
	}
}

// ParseReservationKeys decodes reservation command data: crkey from the
// first 8 bytes and key2 from the next 8 if present (0 otherwise).
func ParseReservationKeys(b []byte) (crkey, key2 uint64, err error) {
	if len(b) < 8 {
		return 0, 0, fmt.Errorf("reservation data: %d bytes, want 8: %w", len(b), ErrShort)
	}
	crkey = binary.LittleEndian.Uint64(b[0:])
	if len(b) >= 16 {
		key2 = binary.LittleEndian.Uint64(b[8:])
	}
	return crkey, key2, nil
}

// Extended reservation status layout (EDS=1, reference §5).
const (
	ResvStatusHeaderSize = 64
	ResvStatusEntrySize  = 64
)

// RegisteredController is one registrant in the extended reservation
// status.
type RegisteredController struct {
	CNTLID uint16
	Holds  bool // RCSTS bit 0: this registrant holds the reservation
	RKey   uint64
	HostID [16]byte
}

// ReservationStatus is the extended Reservation Report data (EDS=1).
type ReservationStatus struct {
	Gen   uint32
	RType ReservationType
	PTPLS uint8
	Regs  []RegisteredController
}

// AppendBinary appends the extended data structure (REGCTL = len(Regs)).
func (r *ReservationStatus) AppendBinary(b []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, ResvStatusHeaderSize+len(r.Regs)*ResvStatusEntrySize)...)
	h := b[start:]
	le := binary.LittleEndian
	le.PutUint32(h[0:], r.Gen)
	h[4] = uint8(r.RType)
	le.PutUint16(h[5:], uint16(len(r.Regs)))
	h[9] = r.PTPLS
	for i, g := range r.Regs {
		e := h[ResvStatusHeaderSize+i*ResvStatusEntrySize:]
		le.PutUint16(e[0:], g.CNTLID)
		if g.Holds {
			e[2] = 1
		}
		le.PutUint64(e[8:], g.RKey)
		copy(e[16:32], g.HostID[:])
	}
	return b
}

// ParseReservationStatus decodes extended reservation status data. A report
// truncated by the requested length yields the registrants that fit; REGCTL
// is the count the controller reported.
func ParseReservationStatus(b []byte) (r *ReservationStatus, regctl uint16, err error) {
	if len(b) < ResvStatusHeaderSize {
		return nil, 0, fmt.Errorf("reservation status: %d bytes, want %d: %w", len(b), ResvStatusHeaderSize, ErrShort)
	}
	le := binary.LittleEndian
	regctl = le.Uint16(b[5:])
	r = &ReservationStatus{Gen: le.Uint32(b[0:]), RType: ReservationType(b[4]), PTPLS: b[9]}
	n := min(int(regctl), (len(b)-ResvStatusHeaderSize)/ResvStatusEntrySize)
	if n > 0 {
		r.Regs = make([]RegisteredController, n)
	}
	for i := range r.Regs {
		e := b[ResvStatusHeaderSize+i*ResvStatusEntrySize:]
		g := &r.Regs[i]
		g.CNTLID = le.Uint16(e[0:])
		g.Holds = e[2]&1 != 0
		g.RKey = le.Uint64(e[8:])
		copy(g.HostID[:], e[16:32])
	}
	return r, regctl, nil
}
