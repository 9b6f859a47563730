package fabrics

import (
	"fmt"
	"time"
)

// Controller property offsets (reference §3.2).
const (
	RegCAP  = 0x00
	RegVS   = 0x08
	RegCC   = 0x14
	RegCSTS = 0x1C
	RegNSSR = 0x20
	RegCRTO = 0x68
)

// CAP is the Controller Capabilities register (8 bytes).
type CAP uint64

// CAP.CSS bits (CAP bits 44:37, returned by CSS).
const (
	CAPCSSNVM    = 1 << 0 // NVM command set
	CAPCSSIOCS   = 1 << 6 // I/O command sets (then CC.CSS = 6)
	CAPCSSNoIOCS = 1 << 7 // admin command set only
)

// MQES returns Maximum Queue Entries Supported (0's based).
func (c CAP) MQES() uint16 { return uint16(c) }

// CQR reports Contiguous Queues Required.
func (c CAP) CQR() bool { return c>>16&1 != 0 }

// TO returns the worst-case time to become ready (CAP.TO × 500 ms).
func (c CAP) TO() time.Duration { return time.Duration(c>>24&0xFF) * 500 * time.Millisecond }

// DSTRD returns the doorbell stride field.
func (c CAP) DSTRD() uint8 { return uint8(c>>32) & 0xF }

// NSSRS reports NVM Subsystem Reset Supported.
func (c CAP) NSSRS() bool { return c>>36&1 != 0 }

// CSS returns the Command Sets Supported field (CAP bits 44:37).
func (c CAP) CSS() uint8 { return uint8(c >> 37) }

// MPSMIN returns the minimum memory page size exponent (page = 2^(12+n)).
func (c CAP) MPSMIN() uint8 { return uint8(c>>48) & 0xF }

// MPSMAX returns the maximum memory page size exponent.
func (c CAP) MPSMAX() uint8 { return uint8(c>>52) & 0xF }

// CRMS returns the Controller Ready Modes Supported field (bits 60:59).
func (c CAP) CRMS() uint8 { return uint8(c>>59) & 3 }

// MakeCAP builds a CAP value from the fields a fabrics target reports.
func MakeCAP(mqes uint16, timeout500ms uint8, css uint8) CAP {
	return CAP(mqes) | CAP(timeout500ms)<<24 | CAP(css)<<37
}

// VS is the Version register: major 31:16, minor 15:8, tertiary 7:0.
type VS uint32

// MakeVS builds a version value, e.g. MakeVS(1, 3, 0) = 0x00010300.
func MakeVS(major uint16, minor, tertiary uint8) VS {
	return VS(major)<<16 | VS(minor)<<8 | VS(tertiary)
}

// Major returns the major version.
func (v VS) Major() uint16 { return uint16(v >> 16) }

// Minor returns the minor version.
func (v VS) Minor() uint8 { return uint8(v >> 8) }

// Tertiary returns the tertiary version.
func (v VS) Tertiary() uint8 { return uint8(v) }

// String formats v as "major.minor" or "major.minor.tertiary" like nvme-cli.
func (v VS) String() string {
	if v.Tertiary() != 0 {
		return fmt.Sprintf("%d.%d.%d", v.Major(), v.Minor(), v.Tertiary())
	}
	return fmt.Sprintf("%d.%d", v.Major(), v.Minor())
}

// CC is the Controller Configuration register.
type CC uint32

// CC fields and values.
const (
	CCEnable     CC = 1 << 0
	CCCSSNVM     CC = 0 << 4
	CCCSSIOCS    CC = 6 << 4
	CCCSSMask    CC = 7 << 4
	CCMPSMask    CC = 0xF << 7
	CCAMSMask    CC = 7 << 11
	CCShnNone    CC = 0 << 14
	CCShnNormal  CC = 1 << 14
	CCShnAbrupt  CC = 2 << 14
	CCShnMask    CC = 3 << 14
	CCIOSQES     CC = 6 << 16 // 64-byte SQEs
	CCIOCQES     CC = 4 << 20 // 16-byte CQEs
	CCIOSQESMask CC = 0xF << 16
	CCIOCQESMask CC = 0xF << 20
	CCCRIME      CC = 1 << 24
)

// EN reports Enable.
func (c CC) EN() bool { return c&CCEnable != 0 }

// CSS returns the I/O Command Set Selected (bits 6:4).
func (c CC) CSS() uint8 { return uint8(c>>4) & 7 }

// MPS returns the memory page size exponent (page = 2^(12+n)).
func (c CC) MPS() uint8 { return uint8(c>>7) & 0xF }

// AMS returns the arbitration mechanism.
func (c CC) AMS() uint8 { return uint8(c>>11) & 7 }

// SHN returns the shutdown notification: 0 none, 1 normal, 2 abrupt.
func (c CC) SHN() uint8 { return uint8(c>>14) & 3 }

// IOSQES returns the I/O SQ entry size exponent.
func (c CC) IOSQES() uint8 { return uint8(c>>16) & 0xF }

// IOCQES returns the I/O CQ entry size exponent.
func (c CC) IOCQES() uint8 { return uint8(c>>20) & 0xF }

// CSTS is the Controller Status register.
type CSTS uint32

// CSTS fields and values.
const (
	CSTSRdy           CSTS = 1 << 0
	CSTSCFS           CSTS = 1 << 1
	CSTSShstNormal    CSTS = 0 << 2
	CSTSShstOccurring CSTS = 1 << 2
	CSTSShstComplete  CSTS = 2 << 2
	CSTSShstMask      CSTS = 3 << 2
	CSTSNSSRO         CSTS = 1 << 4
	CSTSPP            CSTS = 1 << 5
)

// RDY reports Ready.
func (c CSTS) RDY() bool { return c&CSTSRdy != 0 }

// CFS reports Controller Fatal Status.
func (c CSTS) CFS() bool { return c&CSTSCFS != 0 }

// SHST returns the shutdown status: 0 normal, 1 occurring, 2 complete.
func (c CSTS) SHST() uint8 { return uint8(c>>2) & 3 }

// NSSRO reports NVM Subsystem Reset Occurred.
func (c CSTS) NSSRO() bool { return c&CSTSNSSRO != 0 }

// PP reports Processing Paused.
func (c CSTS) PP() bool { return c&CSTSPP != 0 }
