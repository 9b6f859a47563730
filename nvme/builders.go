package nvme

import "encoding/binary"

// Command builders. Each fills the opcode, FLAGS (FlagSGL, as every NVMe/TCP
// command carries), NSID and the command dwords; the caller sets CID and the
// transport sets DPTR.

func newCmd(opc uint8, nsid uint32) Command {
	return Command{Opcode: opc, Flags: FlagSGL, NSID: nsid}
}

// NewIdentify builds an Identify command (reference §4.1): CNS in CDW10 7:0,
// CNTID in CDW10 31:16, CSI in CDW11 31:24. The controller returns
// IdentifyDataSize bytes.
func NewIdentify(cns uint8, nsid uint32, cntid uint16, csi uint8) Command {
	c := newCmd(uint8(AdminIdentify), nsid)
	c.CDW10 = uint32(cns) | uint32(cntid)<<16
	c.CDW11 = uint32(csi) << 24
	return c
}

// ParseIdentifyCommand returns the fields NewIdentify sets.
func ParseIdentifyCommand(c *Command) (cns uint8, nsid uint32, cntid uint16, csi uint8) {
	return uint8(c.CDW10), c.NSID, uint16(c.CDW10 >> 16), uint8(c.CDW11 >> 24)
}

// NewGetLogPage builds a Get Log Page command (reference §4.2) reading
// length bytes (a multiple of 4, at least 4) of log lid from byte offset
// offset. lsp is the 7-bit log specific field; rae=true asks the controller
// to retain the asynchronous event (not re-enable it yet).
func NewGetLogPage(lid uint8, nsid uint32, lsp uint8, rae bool, offset uint64, length uint32) Command {
	c := newCmd(uint8(AdminGetLogPage), nsid)
	numd := length / 4
	if numd > 0 {
		numd-- // 0's based
	}
	c.CDW10 = uint32(lid) | uint32(lsp&0x7F)<<8 | (numd&0xFFFF)<<16
	if rae {
		c.CDW10 |= 1 << 15
	}
	c.CDW11 = numd >> 16
	c.CDW12 = uint32(offset)
	c.CDW13 = uint32(offset >> 32)
	return c
}

// ParseGetLogPageCommand returns the fields NewGetLogPage sets; length is in
// bytes ((NUMD+1)*4, saturated at 0xFFFFFFFC).
func ParseGetLogPageCommand(c *Command) (lid uint8, nsid uint32, lsp uint8, rae bool, offset uint64, length uint32) {
	numd := c.CDW10>>16 | (c.CDW11&0xFFFF)<<16
	length = 0xFFFFFFFC // saturate requests of 4 GiB or more
	if numd < 1<<30-1 {
		length = (numd + 1) * 4
	}
	return uint8(c.CDW10), c.NSID, uint8(c.CDW10>>8) & 0x7F, c.CDW10&(1<<15) != 0,
		uint64(c.CDW12) | uint64(c.CDW13)<<32, length
}

// NewSetFeatures builds a Set Features command (reference §4.3) with the
// feature value in CDW11.
func NewSetFeatures(fid uint8, cdw11 uint32) Command {
	c := newCmd(uint8(AdminSetFeatures), 0)
	c.CDW10 = uint32(fid)
	c.CDW11 = cdw11
	return c
}

// NewGetFeatures builds a Get Features command; sel selects current (0),
// default (1), saved (2) or capabilities (3).
func NewGetFeatures(fid uint8, sel uint8) Command {
	c := newCmd(uint8(AdminGetFeatures), 0)
	c.CDW10 = uint32(fid) | uint32(sel&7)<<8
	return c
}

// ParseFeaturesCommand returns FID, SEL (Get Features only) and CDW11 of a
// Set or Get Features command.
func ParseFeaturesCommand(c *Command) (fid uint8, sel uint8, cdw11 uint32) {
	return uint8(c.CDW10), uint8(c.CDW10>>8) & 7, c.CDW11
}

// NewKeepAlive builds a Keep Alive command (no fields, no data).
func NewKeepAlive() Command { return newCmd(uint8(AdminKeepAlive), 0) }

// NewAsyncEventRequest builds an Asynchronous Event Request (no fields,
// stays outstanding until an event).
func NewAsyncEventRequest() Command { return newCmd(uint8(AdminAsyncEvent), 0) }

func newRW(opc IOOpcode, nsid uint32, slba uint64, nlb uint32) Command {
	c := newCmd(uint8(opc), nsid)
	c.CDW10 = uint32(slba)
	c.CDW11 = uint32(slba >> 32)
	c.CDW12 = (nlb - 1) & 0xFFFF
	return c
}

// NewRead builds a Read of nlb blocks (1's based count, 1..65536) starting
// at slba (reference §5).
func NewRead(nsid uint32, slba uint64, nlb uint32) Command { return newRW(IORead, nsid, slba, nlb) }

// NewWrite builds a Write of nlb blocks (1's based count, 1..65536)
// starting at slba.
func NewWrite(nsid uint32, slba uint64, nlb uint32) Command { return newRW(IOWrite, nsid, slba, nlb) }

// ParseRWCommand returns SLBA and the 1's based block count of a Read,
// Write or Write Zeroes command.
func ParseRWCommand(c *Command) (slba uint64, nlb uint32) {
	return uint64(c.CDW10) | uint64(c.CDW11)<<32, c.CDW12&0xFFFF + 1
}

// CDW12 bits of Read, Write and Write Zeroes.
const (
	RWDeallocate   = 1 << 25 // Write Zeroes DEAC
	RWForceAccess  = 1 << 30 // FUA
	RWLimitedRetry = 1 << 31 // LR
)

// NewFlush builds a Flush of namespace nsid.
func NewFlush(nsid uint32) Command { return newCmd(uint8(IOFlush), nsid) }

// NewWriteZeroes builds a Write Zeroes of nlb blocks (1's based) at slba,
// with DEAC set if deallocate.
func NewWriteZeroes(nsid uint32, slba uint64, nlb uint32, deallocate bool) Command {
	c := newRW(IOWriteZeroes, nsid, slba, nlb)
	if deallocate {
		c.CDW12 |= RWDeallocate
	}
	return c
}

// DSMRangeSize is the size of one Dataset Management range.
const DSMRangeSize = 16

// DSMDeallocate is the AD (deallocate) attribute in CDW11 of Dataset
// Management.
const DSMDeallocate = 1 << 2

// NewDeallocate builds a Dataset Management command with the Deallocate
// attribute over nranges ranges (1..256), which the caller sends as
// nranges*DSMRangeSize bytes of data (MarshalDSMRange).
func NewDeallocate(nsid uint32, nranges int) Command {
	c := newCmd(uint8(IODatasetManagement), nsid)
	c.CDW10 = uint32(nranges-1) & 0xFF
	c.CDW11 = DSMDeallocate
	return c
}

// ParseDSMCommand returns the number of ranges (1's based) and the
// attributes (CDW11) of a Dataset Management command.
func ParseDSMCommand(c *Command) (nranges int, attrs uint32) {
	return int(c.CDW10&0xFF) + 1, c.CDW11
}

// MarshalDSMRange writes one 16-byte range: context attributes 0, length
// (1's based block count) @4, SLBA @8.
func MarshalDSMRange(b []byte, slba uint64, nlb uint32) {
	_ = b[DSMRangeSize-1]
	binary.LittleEndian.PutUint32(b[0:], 0)
	binary.LittleEndian.PutUint32(b[4:], nlb)
	binary.LittleEndian.PutUint64(b[8:], slba)
}

// ParseDSMRange decodes one 16-byte range written by MarshalDSMRange.
func ParseDSMRange(b []byte) (slba uint64, nlb uint32) {
	_ = b[DSMRangeSize-1]
	return binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint32(b[4:])
}
