package nvme

import "fmt"

// AdminOpcode is an admin command opcode.
type AdminOpcode uint8

// Admin command opcodes (reference §4).
const (
	AdminGetLogPage  AdminOpcode = 0x02
	AdminIdentify    AdminOpcode = 0x06
	AdminAbort       AdminOpcode = 0x08
	AdminSetFeatures AdminOpcode = 0x09
	AdminGetFeatures AdminOpcode = 0x0A
	AdminAsyncEvent  AdminOpcode = 0x0C
	AdminKeepAlive   AdminOpcode = 0x18
	// OpFabrics is the opcode of every Fabrics command (on any queue).
	OpFabrics uint8 = 0x7F
)

var adminNames = map[AdminOpcode]string{
	AdminGetLogPage: "Get Log Page", AdminIdentify: "Identify", AdminAbort: "Abort",
	AdminSetFeatures: "Set Features", AdminGetFeatures: "Get Features",
	AdminAsyncEvent: "Asynchronous Event Request", AdminKeepAlive: "Keep Alive",
}

func (o AdminOpcode) String() string {
	if uint8(o) == OpFabrics {
		return "Fabrics"
	}
	if s, ok := adminNames[o]; ok {
		return s
	}
	return fmt.Sprintf("UNKNOWN_ADMIN_OPCODE_0x%02x", uint8(o))
}

// IOOpcode is an NVM command set I/O opcode.
type IOOpcode uint8

// NVM I/O command opcodes (reference §5).
const (
	IOFlush               IOOpcode = 0x00
	IOWrite               IOOpcode = 0x01
	IORead                IOOpcode = 0x02
	IOWriteZeroes         IOOpcode = 0x08
	IODatasetManagement   IOOpcode = 0x09
	IOReservationRegister IOOpcode = 0x0D
	IOReservationReport   IOOpcode = 0x0E
	IOReservationAcquire  IOOpcode = 0x11
	IOReservationRelease  IOOpcode = 0x15
)

var ioNames = map[IOOpcode]string{
	IOFlush: "Flush", IOWrite: "Write", IORead: "Read", IOWriteZeroes: "Write Zeroes",
	IODatasetManagement: "Dataset Management", IOReservationRegister: "Reservation Register",
	IOReservationReport: "Reservation Report", IOReservationAcquire: "Reservation Acquire",
	IOReservationRelease: "Reservation Release",
}

func (o IOOpcode) String() string {
	if uint8(o) == OpFabrics {
		return "Fabrics"
	}
	if s, ok := ioNames[o]; ok {
		return s
	}
	return fmt.Sprintf("UNKNOWN_IO_OPCODE_0x%02x", uint8(o))
}

// FabricsType is the FCTYPE of a Fabrics command (reference §3).
type FabricsType uint8

// Fabrics command types.
const (
	FabricsPropertySet FabricsType = 0x00
	FabricsConnect     FabricsType = 0x01
	FabricsPropertyGet FabricsType = 0x04
	FabricsAuthSend    FabricsType = 0x05
	FabricsAuthRecv    FabricsType = 0x06
	FabricsDisconnect  FabricsType = 0x08
)

func (t FabricsType) String() string {
	switch t {
	case FabricsPropertySet:
		return "Property Set"
	case FabricsConnect:
		return "Connect"
	case FabricsPropertyGet:
		return "Property Get"
	case FabricsAuthSend:
		return "Authentication Send"
	case FabricsAuthRecv:
		return "Authentication Receive"
	case FabricsDisconnect:
		return "Disconnect"
	}
	return fmt.Sprintf("UNKNOWN_FCTYPE_0x%02x", uint8(t))
}
