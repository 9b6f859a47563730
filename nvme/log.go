package nvme

import (
	"encoding/binary"
	"fmt"
)

// Log page identifiers (reference §4.2).
const (
	LogError      = 0x01
	LogSMART      = 0x02
	LogFWSlot     = 0x03
	LogChangedNS  = 0x04
	LogCmdEffects = 0x05
	LogANA        = 0x0C
	LogDiscovery  = 0x70
	LogResvNotify = 0x80
)

// Log specific fields.
const (
	// LSPANAGroupsOnly is RGO of the ANA log: groups without NSID lists.
	LSPANAGroupsOnly = 1 << 0
)

// NSIDAll is the broadcast NSID (the ANA log is read with it).
const NSIDAll = 0xFFFFFFFF

// Asynchronous event types (AEN completion DW0 bits 2:0).
const (
	AENTypeError  = 0
	AENTypeSMART  = 1
	AENTypeNotice = 2
	AENTypeIOCS   = 6
)

// Asynchronous event information of notice events (DW0 bits 15:8).
const (
	AENInfoNSAttr          = 0x00
	AENInfoFWActivation    = 0x01
	AENInfoANAChange       = 0x03
	AENInfoDiscoveryChange = 0xF0
)

// AEN completion DW0 values a host handles (reference §4.4).
const (
	AENNSChanged       = 0x00040002
	AENANAChange       = 0x000C0302
	AENFWActivation    = 0x00030102 // notice: firmware activation starting (log page 03h)
	AENDiscoveryChange = 0x0070F002
)

// AsyncEvent is a decoded Asynchronous Event Request completion DW0.
type AsyncEvent struct {
	Type    uint8 // bits 2:0
	Info    uint8 // bits 15:8
	LogPage uint8 // bits 23:16, the log to read to clear the event
}

// ParseAsyncEvent decodes an AER completion DW0.
func ParseAsyncEvent(dw0 uint32) AsyncEvent {
	return AsyncEvent{Type: uint8(dw0) & 7, Info: uint8(dw0 >> 8), LogPage: uint8(dw0 >> 16)}
}

// DW0 encodes e as an AER completion DW0.
func (e AsyncEvent) DW0() uint32 {
	return uint32(e.Type&7) | uint32(e.Info)<<8 | uint32(e.LogPage)<<16
}

// AENResvLogAvailable is the AEN DW0 of "Reservation Log Page Available"
// (I/O command set specific event, info 0, log 0x80).
const AENResvLogAvailable = 0x00800006

// Reservation Notification log page types (§ Reservation Notification).
const (
	ResvNotifyEmpty       = 0
	ResvNotifyRegPreempt  = 1 // Registration Preempted
	ResvNotifyReleased    = 2 // Reservation Released
	ResvNotifyResvPreempt = 3 // Reservation Preempted
)

// ResvNotifyLogSize is the size of one Reservation Notification log page.
const ResvNotifyLogSize = 64

// ResvNotification is one Reservation Notification log page: Count is the
// log page count (0: the log is empty; a gap means lost pages), Available
// the number of further pages the controller holds.
type ResvNotification struct {
	Count     uint64
	Type      uint8
	Available uint8
	NSID      uint32
}

// AppendBinary appends the 64-byte log page.
func (n ResvNotification) AppendBinary(b []byte) []byte {
	var p [ResvNotifyLogSize]byte
	binary.LittleEndian.PutUint64(p[0:], n.Count)
	p[8], p[9] = n.Type, n.Available
	binary.LittleEndian.PutUint32(p[12:], n.NSID)
	return append(b, p[:]...)
}

// ParseResvNotification decodes a Reservation Notification log page.
func ParseResvNotification(b []byte) (ResvNotification, error) {
	if len(b) < 16 {
		return ResvNotification{}, fmt.Errorf("reservation notification log: %d bytes, want %d: %w", len(b), ResvNotifyLogSize, ErrShort)
	}
	return ResvNotification{Count: binary.LittleEndian.Uint64(b[0:]), Type: b[8], Available: b[9],
		NSID: binary.LittleEndian.Uint32(b[12:])}, nil
}

// ResvNotifyTypeString names a notification type as the log line prints it.
func ResvNotifyTypeString(t uint8) string {
	switch t {
	case ResvNotifyEmpty:
		return "empty"
	case ResvNotifyRegPreempt:
		return "registration preempted"
	case ResvNotifyReleased:
		return "reservation released"
	case ResvNotifyResvPreempt:
		return "reservation preempted"
	}
	return fmt.Sprintf("type %d", t)
}
