package nvme

import (
	"encoding/binary"
	"fmt"
)

// IdentifyDataSize is the size of every Identify data structure.
const IdentifyDataSize = 4096

// Identify CNS values (reference §4.1).
const (
	CNSNamespace       = 0x00
	CNSController      = 0x01
	CNSActiveNSList    = 0x02
	CNSNSDescList      = 0x03
	CNSCSController    = 0x06
	CNSCSIndependentNS = 0x08
)

// CMIC bits of Identify Controller.
const (
	CMICMultiPort = 1 << 0
	CMICMultiCtrl = 1 << 1
	CMICANA       = 1 << 3
)

// Controller types (CNTRLTYPE).
const (
	CtrlTypeIO        = 1
	CtrlTypeDiscovery = 2
	CtrlTypeAdmin     = 3
)

// ONCS bits.
const (
	ONCSCompare      = 1 << 0
	ONCSDSM          = 1 << 2
	ONCSWriteZeroes  = 1 << 3
	ONCSReservations = 1 << 5
	ONCSTimestamp    = 1 << 6
)

// CTRATT bits.
const (
	CTRATTHostID128 = 1 << 0
	CTRATTTBKAS     = 1 << 6
)

// Byte offsets in Identify Controller (reference §4.1).
const (
	idcVID       = 0
	idcSSVID     = 2
	idcSN        = 4
	idcMN        = 24
	idcFR        = 64
	idcRAB       = 72
	idcIEEE      = 73
	idcCMIC      = 76
	idcMDTS      = 77
	idcCNTLID    = 78
	idcVER       = 80
	idcOAES      = 92
	idcCTRATT    = 96
	idcCNTRLTYPE = 111
	idcCRDT      = 128
	idcOACS      = 256
	idcACL       = 258
	idcAERL      = 259
	idcFRMW      = 260
	idcLPA       = 261
	idcELPE      = 262
	idcKAS       = 320
	idcANATT     = 342
	idcANACAP    = 343
	idcANAGRPMAX = 344
	idcNANAGRPID = 348
	idcSQES      = 512
	idcCQES      = 513
	idcMAXCMD    = 514
	idcNN        = 516
	idcONCS      = 520
	idcVWC       = 525
	idcAWUN      = 526
	idcAWUPF     = 528
	idcSGLS      = 536
	idcMNAN      = 540
	idcSUBNQN    = 768
	idcIOCCSZ    = 1792
	idcIORCSZ    = 1796
	idcICDOFF    = 1800
	idcFCATT     = 1802
	idcMSDBD     = 1803
	idcOFCS      = 1804

	lenSN     = 20
	lenMN     = 40
	lenFR     = 8
	lenNQNFld = 256
)

// IdentifyController is the part of the Identify Controller data structure
// (CNS 0x01) that hosts and our target use. SerialNumber, ModelNumber and
// FirmwareRev hold the raw fixed-width fields including their space padding,
// as Linux shows them in sysfs; Marshal pads shorter strings with spaces.
// SubNQN is NUL-terminated on the wire (at most 255 bytes are read).
type IdentifyController struct {
	VID, SSVID   uint16
	SerialNumber string
	ModelNumber  string
	FirmwareRev  string
	RAB          uint8
	IEEE         [3]byte
	CMIC         uint8
	MDTS         uint8
	CNTLID       uint16
	Version      uint32
	OAES         uint32
	CTRATT       uint32
	CNTRLTYPE    uint8
	CRDT         [3]uint16
	OACS         uint16
	ACL, AERL    uint8
	FRMW, LPA    uint8
	ELPE         uint8
	KAS          uint16
	ANATT        uint8
	ANACAP       uint8
	ANAGRPMAX    uint32
	NANAGRPID    uint32
	SQES, CQES   uint8
	MAXCMD       uint16
	NN           uint32
	ONCS         uint16
	VWC          uint8
	AWUN, AWUPF  uint16 // atomic write units (0's based, in logical blocks)
	SGLS         uint32
	MNAN         uint32
	SubNQN       string
	IOCCSZ       uint32
	IORCSZ       uint32
	ICDOFF       uint16
	FCATT, MSDBD uint8
	OFCS         uint16
}

// putPadded copies s into the fixed-width field f and fills the rest with
// pad. A longer s is truncated.
func putPadded(f []byte, s string, pad byte) {
	n := copy(f, s)
	for i := n; i < len(f); i++ {
		f[i] = pad
	}
}

// cString returns the bytes of f up to the first NUL.
func cString(f []byte) string {
	for i, c := range f {
		if c == 0 {
			return string(f[:i])
		}
	}
	return string(f)
}

// Marshal writes c as a 4096-byte Identify Controller data structure into b
// (at least IdentifyDataSize bytes); every byte of b[:IdentifyDataSize] is
// written, fields not in IdentifyController as zero.
func (c *IdentifyController) Marshal(b []byte) {
	b = b[:IdentifyDataSize]
	clear(b)
	le := binary.LittleEndian
	le.PutUint16(b[idcVID:], c.VID)
	le.PutUint16(b[idcSSVID:], c.SSVID)
	putPadded(b[idcSN:idcSN+lenSN], c.SerialNumber, ' ')
	putPadded(b[idcMN:idcMN+lenMN], c.ModelNumber, ' ')
	putPadded(b[idcFR:idcFR+lenFR], c.FirmwareRev, ' ')
	b[idcRAB] = c.RAB
	copy(b[idcIEEE:idcIEEE+3], c.IEEE[:])
	b[idcCMIC] = c.CMIC
	b[idcMDTS] = c.MDTS
	le.PutUint16(b[idcCNTLID:], c.CNTLID)
	le.PutUint32(b[idcVER:], c.Version)
	le.PutUint32(b[idcOAES:], c.OAES)
	le.PutUint32(b[idcCTRATT:], c.CTRATT)
	b[idcCNTRLTYPE] = c.CNTRLTYPE
	for i, v := range c.CRDT {
		le.PutUint16(b[idcCRDT+2*i:], v)
	}
	le.PutUint16(b[idcOACS:], c.OACS)
	b[idcACL] = c.ACL
	b[idcAERL] = c.AERL
	b[idcFRMW] = c.FRMW
	b[idcLPA] = c.LPA
	b[idcELPE] = c.ELPE
	le.PutUint16(b[idcKAS:], c.KAS)
	b[idcANATT] = c.ANATT
	b[idcANACAP] = c.ANACAP
	le.PutUint32(b[idcANAGRPMAX:], c.ANAGRPMAX)
	le.PutUint32(b[idcNANAGRPID:], c.NANAGRPID)
	b[idcSQES] = c.SQES
	b[idcCQES] = c.CQES
	le.PutUint16(b[idcMAXCMD:], c.MAXCMD)
	le.PutUint32(b[idcNN:], c.NN)
	le.PutUint16(b[idcONCS:], c.ONCS)
	b[idcVWC] = c.VWC
	le.PutUint16(b[idcAWUN:], c.AWUN)
	le.PutUint16(b[idcAWUPF:], c.AWUPF)
	le.PutUint32(b[idcSGLS:], c.SGLS)
	le.PutUint32(b[idcMNAN:], c.MNAN)
	// Keep the last byte NUL so the field is always terminated.
	putPadded(b[idcSUBNQN:idcSUBNQN+lenNQNFld-1], c.SubNQN, 0)
	le.PutUint32(b[idcIOCCSZ:], c.IOCCSZ)
	le.PutUint32(b[idcIORCSZ:], c.IORCSZ)
	le.PutUint16(b[idcICDOFF:], c.ICDOFF)
	b[idcFCATT] = c.FCATT
	b[idcMSDBD] = c.MSDBD
	le.PutUint16(b[idcOFCS:], c.OFCS)
}

// ParseIdentifyController decodes an Identify Controller data structure.
// It checks only the length; semantic checks (KAS, IOCCSZ, SGLS, ...) are
// the host's.
func ParseIdentifyController(b []byte) (*IdentifyController, error) {
	if len(b) < IdentifyDataSize {
		return nil, fmt.Errorf("identify controller: %d bytes, want %d: %w", len(b), IdentifyDataSize, ErrShort)
	}
	le := binary.LittleEndian
	c := &IdentifyController{
		VID:          le.Uint16(b[idcVID:]),
		SSVID:        le.Uint16(b[idcSSVID:]),
		SerialNumber: string(b[idcSN : idcSN+lenSN]),
		ModelNumber:  string(b[idcMN : idcMN+lenMN]),
		FirmwareRev:  string(b[idcFR : idcFR+lenFR]),
		RAB:          b[idcRAB],
		CMIC:         b[idcCMIC],
		MDTS:         b[idcMDTS],
		CNTLID:       le.Uint16(b[idcCNTLID:]),
		Version:      le.Uint32(b[idcVER:]),
		OAES:         le.Uint32(b[idcOAES:]),
		CTRATT:       le.Uint32(b[idcCTRATT:]),
		CNTRLTYPE:    b[idcCNTRLTYPE],
		OACS:         le.Uint16(b[idcOACS:]),
		ACL:          b[idcACL],
		AERL:         b[idcAERL],
		FRMW:         b[idcFRMW],
		LPA:          b[idcLPA],
		ELPE:         b[idcELPE],
		KAS:          le.Uint16(b[idcKAS:]),
		ANATT:        b[idcANATT],
		ANACAP:       b[idcANACAP],
		ANAGRPMAX:    le.Uint32(b[idcANAGRPMAX:]),
		NANAGRPID:    le.Uint32(b[idcNANAGRPID:]),
		SQES:         b[idcSQES],
		CQES:         b[idcCQES],
		MAXCMD:       le.Uint16(b[idcMAXCMD:]),
		NN:           le.Uint32(b[idcNN:]),
		ONCS:         le.Uint16(b[idcONCS:]),
		VWC:          b[idcVWC],
		AWUN:         le.Uint16(b[idcAWUN:]),
		AWUPF:        le.Uint16(b[idcAWUPF:]),
		SGLS:         le.Uint32(b[idcSGLS:]),
		MNAN:         le.Uint32(b[idcMNAN:]),
		SubNQN:       cString(b[idcSUBNQN : idcSUBNQN+lenNQNFld-1]), // always NUL-terminated
		IOCCSZ:       le.Uint32(b[idcIOCCSZ:]),
		IORCSZ:       le.Uint32(b[idcIORCSZ:]),
		ICDOFF:       le.Uint16(b[idcICDOFF:]),
		FCATT:        b[idcFCATT],
		MSDBD:        b[idcMSDBD],
		OFCS:         le.Uint16(b[idcOFCS:]),
	}
	copy(c.IEEE[:], b[idcIEEE:idcIEEE+3])
	for i := range c.CRDT {
		c.CRDT[i] = le.Uint16(b[idcCRDT+2*i:])
	}
	return c, nil
}

// LBAFormat is one LBA Format descriptor of Identify Namespace.
type LBAFormat struct {
	MS    uint16 // metadata bytes per block
	LBADS uint8  // block size is 1<<LBADS bytes
	RP    uint8  // relative performance, 2 bits
}

// Byte offsets in Identify Namespace (reference §4.1).
const (
	idnNSZE     = 0
	idnNCAP     = 8
	idnNUSE     = 16
	idnNSFEAT   = 24
	idnNLBAF    = 25
	idnFLBAS    = 26
	idnMC       = 27
	idnDPC      = 28
	idnDPS      = 29
	idnNMIC     = 30
	idnRESCAP   = 31
	idnDLFEAT   = 33
	idnNAWUN    = 34
	idnNPWG     = 64
	idnANAGRPID = 92
	idnNSATTR   = 99
	idnNGUID    = 104
	idnEUI64    = 120
	idnLBAF     = 128
)

// NMICShared is the NMIC bit marking a namespace shared by several
// controllers (required for multipath).
const NMICShared = 1 << 0

// IdentifyNamespace is the part of the Identify Namespace data structure
// (CNS 0x00) that hosts and our target use. NSZE, NCAP and NUSE are in
// logical blocks.
type IdentifyNamespace struct {
	NSZE, NCAP, NUSE uint64
	NSFEAT           uint8
	NLBAF            uint8 // number of LBA formats, 0's based
	FLBAS            uint8
	MC, DPC, DPS     uint8
	NMIC             uint8
	RESCAP           uint8
	DLFEAT           uint8
	// NSFEAT bit 1: NAWUN, NAWUPF, NACWU, NABSN, NABO, NABSPF (0's based
	// except NABO, in logical blocks) and NOIOB are valid.
	NAWUN, NAWUPF, NACWU, NABSN, NABO, NABSPF, NOIOB uint16
	// NSFEAT bit 4: preferred write/deallocate granularity and alignment
	// and optimal write size (0's based, in logical blocks).
	NPWG, NPWA, NPDG, NPDA, NOWS uint16
	ANAGRPID                     uint32
	NSATTR                       uint8
	NGUID                        [16]byte
	EUI64                        [8]byte
	LBAF                         [64]LBAFormat
}

// Marshal writes n as a 4096-byte Identify Namespace data structure into b
// (at least IdentifyDataSize bytes); every byte of b[:IdentifyDataSize] is
// written.
func (n *IdentifyNamespace) Marshal(b []byte) {
	b = b[:IdentifyDataSize]
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[idnNSZE:], n.NSZE)
	le.PutUint64(b[idnNCAP:], n.NCAP)
	le.PutUint64(b[idnNUSE:], n.NUSE)
	b[idnNSFEAT] = n.NSFEAT
	b[idnNLBAF] = n.NLBAF
	b[idnFLBAS] = n.FLBAS
	b[idnMC] = n.MC
	b[idnDPC] = n.DPC
	b[idnDPS] = n.DPS
	b[idnNMIC] = n.NMIC
	b[idnRESCAP] = n.RESCAP
	b[idnDLFEAT] = n.DLFEAT
	for i, v := range n.nsFeatFields() {
		le.PutUint16(b[nsFeatOffsets[i]:], *v)
	}
	le.PutUint32(b[idnANAGRPID:], n.ANAGRPID)
	b[idnNSATTR] = n.NSATTR
	copy(b[idnNGUID:idnNGUID+16], n.NGUID[:])
	copy(b[idnEUI64:idnEUI64+8], n.EUI64[:])
	for i, f := range n.LBAF {
		le.PutUint32(b[idnLBAF+4*i:], uint32(f.MS)|uint32(f.LBADS)<<16|uint32(f.RP&3)<<24)
	}
}

// ParseIdentifyNamespace decodes an Identify Namespace data structure. It
// checks only the length.
func ParseIdentifyNamespace(b []byte) (*IdentifyNamespace, error) {
	if len(b) < IdentifyDataSize {
		return nil, fmt.Errorf("identify namespace: %d bytes, want %d: %w", len(b), IdentifyDataSize, ErrShort)
	}
	le := binary.LittleEndian
	n := &IdentifyNamespace{
		NSZE:     le.Uint64(b[idnNSZE:]),
		NCAP:     le.Uint64(b[idnNCAP:]),
		NUSE:     le.Uint64(b[idnNUSE:]),
		NSFEAT:   b[idnNSFEAT],
		NLBAF:    b[idnNLBAF],
		FLBAS:    b[idnFLBAS],
		MC:       b[idnMC],
		DPC:      b[idnDPC],
		DPS:      b[idnDPS],
		NMIC:     b[idnNMIC],
		RESCAP:   b[idnRESCAP],
		DLFEAT:   b[idnDLFEAT],
		ANAGRPID: le.Uint32(b[idnANAGRPID:]),
		NSATTR:   b[idnNSATTR],
	}
	copy(n.NGUID[:], b[idnNGUID:idnNGUID+16])
	copy(n.EUI64[:], b[idnEUI64:idnEUI64+8])
	for i, v := range n.nsFeatFields() {
		*v = le.Uint16(b[nsFeatOffsets[i]:])
	}
	for i := range n.LBAF {
		v := le.Uint32(b[idnLBAF+4*i:])
		n.LBAF[i] = LBAFormat{MS: uint16(v), LBADS: uint8(v >> 16), RP: uint8(v>>24) & 3}
	}
	return n, nil
}

// nsFeatOffsets are the offsets of the fields nsFeatFields returns.
var nsFeatOffsets = [12]int{idnNAWUN, idnNAWUN + 2, idnNAWUN + 4, idnNAWUN + 6, idnNAWUN + 8, idnNAWUN + 10, idnNAWUN + 12,
	idnNPWG, idnNPWG + 2, idnNPWG + 4, idnNPWG + 6, idnNPWG + 8}

// nsFeatFields are the 16-bit NSFEAT-dependent fields, in nsFeatOffsets order.
func (n *IdentifyNamespace) nsFeatFields() [12]*uint16 {
	return [12]*uint16{&n.NAWUN, &n.NAWUPF, &n.NACWU, &n.NABSN, &n.NABO, &n.NABSPF, &n.NOIOB,
		&n.NPWG, &n.NPWA, &n.NPDG, &n.NPDA, &n.NOWS}
}

// FormatIndex returns the LBA format in use: FLBAS bits 3:0, with bits 6:5
// as the high bits.
func (n *IdentifyNamespace) FormatIndex() int {
	return int(n.FLBAS&0x0F) | int(n.FLBAS>>5&3)<<4
}

// BlockSize returns the logical block size in bytes, 1<<LBADS of the LBA
// format in use, or 0 if LBADS is not below 32 (a bogus namespace).
func (n *IdentifyNamespace) BlockSize() uint32 {
	ds := n.LBAF[n.FormatIndex()].LBADS
	if ds >= 32 {
		return 0
	}
	return 1 << ds
}
