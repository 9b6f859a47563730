package fabrics

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
)

// AdminQueueDepth is the admin queue depth Linux uses (Connect SQSIZE 31).
const AdminQueueDepth = 32

// ConnectDataSize is the size of the Connect command data.
const ConnectDataSize = 1024

// AdminInCapsuleMax is the in-capsule data limit for admin and Fabrics
// commands (NVME_TCP_ADMIN_CCSZ).
const AdminInCapsuleMax = 8192

// CNTLIDDynamic is the CNTLID an admin Connect carries to ask for any
// controller (dynamic controller model).
const CNTLIDDynamic = 0xFFFF

// NQNSize is Linux's NVMF_NQN_SIZE: the kernel rejects hostnqn= and nqn=
// options of NQNSize bytes or more.
const NQNSize = 223

// CATTRDisableSQFlow is the Connect CATTR bit disabling SQ flow control.
const CATTRDisableSQFlow = 1 << 2

// Connect completion DW0 AUTHREQ bits.
const (
	ConnectAuthATR  = 1 << 17 // DH-HMAC-CHAP authentication required
	ConnectAuthASCR = 1 << 18 // secure channel concatenation required
)

// Connect data offsets (reference §3.1).
const (
	cdHostID  = 0
	cdCNTLID  = 16
	cdSubNQN  = 256
	cdHostNQN = 512
	nqnField  = 256
)

// ConnectData is the 1024-byte data of a Connect command.
type ConnectData struct {
	HostID  [16]byte
	CNTLID  uint16
	SubNQN  string
	HostNQN string
}

// Marshal writes d into b (at least ConnectDataSize bytes); every byte of
// b[:ConnectDataSize] is written. NQNs longer than 255 bytes are truncated
// so the fields stay NUL-terminated.
func (d *ConnectData) Marshal(b []byte) {
	b = b[:ConnectDataSize]
	clear(b)
	copy(b[cdHostID:cdHostID+16], d.HostID[:])
	binary.LittleEndian.PutUint16(b[cdCNTLID:], d.CNTLID)
	copy(b[cdSubNQN:cdSubNQN+nqnField-1], d.SubNQN)
	copy(b[cdHostNQN:cdHostNQN+nqnField-1], d.HostNQN)
}

// ParseConnectData decodes Connect data. Like the Linux target it reads each
// NQN up to its first NUL within the first 255 bytes of the field.
func ParseConnectData(b []byte) (ConnectData, error) {
	if len(b) < ConnectDataSize {
		return ConnectData{}, fmt.Errorf("connect data: %d bytes, want %d: %w", len(b), ConnectDataSize, nvme.ErrShort)
	}
	d := ConnectData{
		CNTLID:  binary.LittleEndian.Uint16(b[cdCNTLID:]),
		SubNQN:  cString(b[cdSubNQN : cdSubNQN+nqnField-1]),
		HostNQN: cString(b[cdHostNQN : cdHostNQN+nqnField-1]),
	}
	copy(d.HostID[:], b[cdHostID:cdHostID+16])
	return d, nil
}

func cString(f []byte) string {
	for i, c := range f {
		if c == 0 {
			return string(f[:i])
		}
	}
	return string(f)
}

func newFabrics(t nvme.FabricsType) nvme.Command {
	c := nvme.Command{Opcode: nvme.OpFabrics, Flags: nvme.FlagSGL}
	c.SetFCType(t)
	return c
}

// NewConnect builds a Connect command (reference §3.1): RECFMT 0, QID,
// SQSIZE (0's based), CATTR (bit 2 if disableSQFlow) and KATO in
// milliseconds (rounded down; only meaningful on the admin queue). The
// caller sends ConnectDataSize bytes of ConnectData in-capsule.
func NewConnect(qid uint16, sqsize uint16, kato time.Duration, disableSQFlow bool) nvme.Command {
	c := newFabrics(nvme.FabricsConnect)
	c.CDW10 = uint32(qid) << 16
	c.CDW11 = uint32(sqsize)
	if disableSQFlow {
		c.CDW11 |= CATTRDisableSQFlow << 16
	}
	ms := kato.Milliseconds()
	switch {
	case ms < 0:
		ms = 0
	case ms > math.MaxUint32:
		ms = math.MaxUint32
	}
	c.CDW12 = uint32(ms)
	return c
}

// ParseConnect returns the fields of a Connect command.
func ParseConnect(cmd *nvme.Command) (qid, sqsize uint16, kato time.Duration, cattr uint8, recfmt uint16) {
	return uint16(cmd.CDW10 >> 16), uint16(cmd.CDW11), time.Duration(cmd.CDW12) * time.Millisecond,
		uint8(cmd.CDW11 >> 16), uint16(cmd.CDW10)
}

// NewPropertyGet builds a Property Get of the register at offset, 8 bytes
// wide if size8 (reference §3.2). The value comes back in completion DW0
// (low) and DW1 (high).
func NewPropertyGet(offset uint32, size8 bool) nvme.Command {
	c := newFabrics(nvme.FabricsPropertyGet)
	if size8 {
		c.CDW10 = 1
	}
	c.CDW11 = offset
	return c
}

// NewPropertySet builds a Property Set of the register at offset to value.
func NewPropertySet(offset uint32, value uint64, size8 bool) nvme.Command {
	c := NewPropertyGet(offset, size8)
	c.SetFCType(nvme.FabricsPropertySet)
	c.CDW12 = uint32(value)
	c.CDW13 = uint32(value >> 32)
	return c
}

// ParseProperty returns the register offset, width and (Property Set only)
// value of a Property Get or Set command.
func ParseProperty(cmd *nvme.Command) (offset uint32, size8 bool, value uint64) {
	return cmd.CDW11, cmd.CDW10&7 == 1, uint64(cmd.CDW12) | uint64(cmd.CDW13)<<32
}

// PropertyValue returns the value of a Property Get completion.
func PropertyValue(c *nvme.Completion) uint64 { return uint64(c.DW0) | uint64(c.DW1)<<32 }
