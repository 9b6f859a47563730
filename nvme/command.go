package nvme

import (
	"encoding/binary"
	"errors"
)

// SQESize and CQESize are the sizes of a submission and a completion queue
// entry on the wire.
const (
	SQESize = 64
	CQESize = 16
)

// Byte offsets of the submission queue entry fields (reference §2.1).
const (
	sqeOpcode = 0
	sqeFlags  = 1
	sqeCID    = 2
	sqeNSID   = 4
	sqeCDW2   = 8
	sqeCDW3   = 12
	sqeMPTR   = 16
	sqeDPTR   = 24
	sqeCDW10  = 40
)

// FlagSGL is the SQE FLAGS value every NVMe/TCP command carries: PSDT=01b,
// "SGL, MPTR contiguous" (reference §1.12).
const FlagSGL = 0x40

// SGL descriptor type bytes used on NVMe/TCP (reference §1.12).
const (
	// SGLTransportDataBlock (0x5A) is used for transfers that are not
	// in-capsule and, with length 0, for commands without data.
	SGLTransportDataBlock = 0x5A
	// SGLDataBlockOffset (0x01) describes in-capsule data at offset Addr.
	SGLDataBlockOffset = 0x01
)

// SGL is the data pointer (SGL1) of a command as used by NVMe/TCP.
type SGL struct {
	Addr   uint64
	Length uint32
	Type   uint8 // (descriptor type << 4) | subtype
}

// Command is a submission queue entry (64 bytes). Fabrics commands use the
// same layout with FCTYPE in byte 4, which is the low byte of NSID: use
// FCType and SetFCType for them.
type Command struct {
	Opcode uint8
	Flags  uint8
	CID    uint16
	NSID   uint32
	CDW2   uint32
	CDW3   uint32
	MPTR   uint64
	DPTR   SGL
	CDW10  uint32
	CDW11  uint32
	CDW12  uint32
	CDW13  uint32
	CDW14  uint32
	CDW15  uint32
}

// FCType returns the Fabrics command type (byte 4) of a Fabrics command.
func (c *Command) FCType() FabricsType { return FabricsType(c.NSID) }

// SetFCType sets the Fabrics command type (byte 4) of a Fabrics command.
func (c *Command) SetFCType(t FabricsType) { c.NSID = uint32(t) }

// ErrShort is returned when a buffer is too short for the structure decoded
// from it.
var ErrShort = errors.New("nvme: buffer too short")

// Marshal writes the 64-byte wire form of c into b, which must hold at least
// SQESize bytes.
func (c *Command) Marshal(b []byte) {
	_ = b[SQESize-1]
	le := binary.LittleEndian
	b[sqeOpcode] = c.Opcode
	b[sqeFlags] = c.Flags
	le.PutUint16(b[sqeCID:], c.CID)
	le.PutUint32(b[sqeNSID:], c.NSID)
	le.PutUint32(b[sqeCDW2:], c.CDW2)
	le.PutUint32(b[sqeCDW3:], c.CDW3)
	le.PutUint64(b[sqeMPTR:], c.MPTR)
	le.PutUint64(b[sqeDPTR:], c.DPTR.Addr)
	le.PutUint32(b[sqeDPTR+8:], c.DPTR.Length)
	b[sqeDPTR+12], b[sqeDPTR+13], b[sqeDPTR+14] = 0, 0, 0
	b[sqeDPTR+15] = c.DPTR.Type
	for i, v := range [6]uint32{c.CDW10, c.CDW11, c.CDW12, c.CDW13, c.CDW14, c.CDW15} {
		le.PutUint32(b[sqeCDW10+4*i:], v)
	}
}

// Unmarshal decodes a 64-byte submission queue entry from b.
func (c *Command) Unmarshal(b []byte) error {
	if len(b) < SQESize {
		return ErrShort
	}
	le := binary.LittleEndian
	c.Opcode = b[sqeOpcode]
	c.Flags = b[sqeFlags]
	c.CID = le.Uint16(b[sqeCID:])
	c.NSID = le.Uint32(b[sqeNSID:])
	c.CDW2 = le.Uint32(b[sqeCDW2:])
	c.CDW3 = le.Uint32(b[sqeCDW3:])
	c.MPTR = le.Uint64(b[sqeMPTR:])
	c.DPTR.Addr = le.Uint64(b[sqeDPTR:])
	c.DPTR.Length = le.Uint32(b[sqeDPTR+8:])
	c.DPTR.Type = b[sqeDPTR+15]
	c.CDW10 = le.Uint32(b[sqeCDW10:])
	c.CDW11 = le.Uint32(b[sqeCDW10+4:])
	c.CDW12 = le.Uint32(b[sqeCDW10+8:])
	c.CDW13 = le.Uint32(b[sqeCDW10+12:])
	c.CDW14 = le.Uint32(b[sqeCDW10+16:])
	c.CDW15 = le.Uint32(b[sqeCDW10+20:])
	return nil
}

// Completion is a completion queue entry (16 bytes), the payload of a
// CapsuleResp PDU.
type Completion struct {
	DW0    uint32 // command specific (Connect: CNTLID; Property Get: low dword)
	DW1    uint32 // command specific (Property Get: high dword)
	SQHD   uint16
	SQID   uint16
	CID    uint16
	Status Status // Linux form: the wire status field shifted right by one (phase bit dropped)
}

// Marshal writes the 16-byte wire form of c into b (at least CQESize bytes).
func (c *Completion) Marshal(b []byte) {
	_ = b[CQESize-1]
	le := binary.LittleEndian
	le.PutUint32(b[0:], c.DW0)
	le.PutUint32(b[4:], c.DW1)
	le.PutUint16(b[8:], c.SQHD)
	le.PutUint16(b[10:], c.SQID)
	le.PutUint16(b[12:], c.CID)
	le.PutUint16(b[14:], uint16(c.Status)<<1)
}

// Unmarshal decodes a 16-byte completion queue entry from b.
func (c *Completion) Unmarshal(b []byte) error {
	if len(b) < CQESize {
		return ErrShort
	}
	le := binary.LittleEndian
	c.DW0 = le.Uint32(b[0:])
	c.DW1 = le.Uint32(b[4:])
	c.SQHD = le.Uint16(b[8:])
	c.SQID = le.Uint16(b[10:])
	c.CID = le.Uint16(b[12:])
	c.Status = Status(le.Uint16(b[14:]) >> 1)
	return nil
}
