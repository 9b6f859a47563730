package nvme

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
