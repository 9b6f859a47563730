// Package pdu is the NVMe/TCP PDU codec: typed PDU headers, header and data
// digests (CRC32C), and a Reader and a Writer that frame PDUs on a byte
// stream without copying payloads.
//
// The package is pure: no goroutines, clocks or logging. A queue owns the
// socket and drives one Reader from one goroutine and one Writer under its
// own serialization. Facts and offsets: NVMe/TCP transport specification as
// summarised in shared/docs/nvme-tcp-reference.md §1.
package pdu

import (
	"fmt"
	"hash/crc32"
)

// Type is the PDU-Type field (reference §1.2).
type Type uint8

// PDU types.
const (
	TypeICReq       Type = 0x00
	TypeICResp      Type = 0x01
	TypeH2CTermReq  Type = 0x02
	TypeC2HTermReq  Type = 0x03
	TypeCapsuleCmd  Type = 0x04
	TypeCapsuleResp Type = 0x05
	TypeH2CData     Type = 0x06
	TypeC2HData     Type = 0x07
	TypeR2T         Type = 0x09
)

var typeNames = [...]string{
	TypeICReq: "ICReq", TypeICResp: "ICResp", TypeH2CTermReq: "H2CTermReq",
	TypeC2HTermReq: "C2HTermReq", TypeCapsuleCmd: "CapsuleCmd", TypeCapsuleResp: "CapsuleResp",
	TypeH2CData: "H2CData", TypeC2HData: "C2HData", 8: "", TypeR2T: "R2T",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("UNKNOWN_PDU_TYPE_0x%02x", uint8(t))
}

// Flags is the FLAGS field of the common header.
type Flags uint8

// PDU flags.
const (
	FlagHDGST   Flags = 0x01 // header digest present
	FlagDDGST   Flags = 0x02 // data digest present
	FlagLast    Flags = 0x04 // last data PDU of a command or R2T
	FlagSuccess Flags = 0x08 // C2HData: command completed, no CapsuleResp follows
)

// Has reports whether all bits of f2 are set in f.
func (f Flags) Has(f2 Flags) bool { return f&f2 == f2 }

// DigestFlags are the DGST bits of ICReq/ICResp.
type DigestFlags uint8

// Digest bits.
const (
	DigestHeader DigestFlags = 0x01
	DigestData   DigestFlags = 0x02
)

// FES is the Fatal Error Status of a TermReq (reference §1.5).
type FES uint16

// Fatal error statuses.
const (
	FESInvalidHeaderField FES = 0x01
	FESSequenceError      FES = 0x02
	FESHeaderDigest       FES = 0x03
	FESDataOutOfRange     FES = 0x04
	FESR2TLimit           FES = 0x05 // R2T / data transfer limit exceeded
	FESUnsupportedParam   FES = 0x06
)

var fesNames = [...]string{
	FESInvalidHeaderField: "Invalid PDU Header Field", FESSequenceError: "PDU Sequence Error",
	FESHeaderDigest: "Header Digest Error", FESDataOutOfRange: "Data Transfer Out of Range",
	FESR2TLimit: "Data Transfer Limit Exceeded", FESUnsupportedParam: "Unsupported Parameter",
}

func (f FES) String() string {
	if int(f) < len(fesNames) && fesNames[f] != "" {
		return fesNames[f]
	}
	return fmt.Sprintf("UNKNOWN_FES_0x%02x", uint16(f))
}

// Header lengths (HLEN) and other sizes.
const (
	CommonHeaderLen = 8
	ICLen           = 128 // ICReq/ICResp HLEN and PLEN
	TermReqHLen     = 24
	CapsuleCmdHLen  = 72
	CapsuleRespHLen = 24
	DataHLen        = 24 // H2CData, C2HData
	R2THLen         = 24
	DigestLen       = 4
	MaxTermReqPLEN  = 152
	// MaxTermReqData is how much of an offending header a TermReq carries.
	MaxTermReqData = MaxTermReqPLEN - TermReqHLen
)

// hlenOf gives the fixed HLEN of each known type (0: unknown type).
var hlenOf = [...]uint8{
	TypeICReq: ICLen, TypeICResp: ICLen, TypeH2CTermReq: TermReqHLen, TypeC2HTermReq: TermReqHLen,
	TypeCapsuleCmd: CapsuleCmdHLen, TypeCapsuleResp: CapsuleRespHLen, TypeH2CData: DataHLen,
	TypeC2HData: DataHLen, 8: 0, TypeR2T: R2THLen,
}

// HLEN returns the fixed header length of t, or 0 for an unknown type.
func (t Type) HLEN() int {
	if int(t) < len(hlenOf) {
		return int(hlenOf[t])
	}
	return 0
}

// headerDigest reports whether t may carry a header digest (reference §1.2).
func (t Type) headerDigest() bool {
	switch t {
	case TypeCapsuleCmd, TypeCapsuleResp, TypeH2CData, TypeC2HData, TypeR2T:
		return true
	}
	return false
}

// carriesData reports whether t may carry data (and so a data digest).
func (t Type) carriesData() bool {
	switch t {
	case TypeCapsuleCmd, TypeH2CData, TypeC2HData:
		return true
	}
	return false
}

// Header is the 8-byte common header of every PDU.
type Header struct {
	Type  Type
	Flags Flags
	HLEN  uint8
	PDO   uint8
	PLEN  uint32
}

// ICReq is the host's Initialize Connection Request (reference §1.3).
type ICReq struct {
	PFV    uint16
	HPDA   uint8
	Digest DigestFlags
	MaxR2T uint32 // 0's based
}

// ICResp is the controller's Initialize Connection Response (reference §1.4).
type ICResp struct {
	PFV        uint16
	CPDA       uint8
	Digest     DigestFlags
	MaxH2CData uint32
}

// TermReq is an H2CTermReq or C2HTermReq (reference §1.5).
type TermReq struct {
	FES    FES
	FEI    uint32
	Header []byte // copy of the offending PDU header, at most MaxTermReqData bytes
}

// Data is the PDU-specific header of H2CData and C2HData (reference §1.8).
type Data struct {
	CCCID  uint16
	TTAG   uint16 // H2CData only: echo of the R2T's tag
	Offset uint32 // DATAO
	Length uint32 // DATAL
}

// R2T is a Ready to Transfer PDU header (reference §1.8).
type R2T struct {
	CCCID  uint16
	TTAG   uint16
	Offset uint32 // R2TO
	Length uint32 // R2TL
}

// ProtocolError is a violation of the NVMe/TCP transport rules by the peer.
// It is fatal to the connection: report FES and FEI in a TermReq (the
// controller side does) or close, and never read the stream again.
type ProtocolError struct {
	FES    FES
	FEI    uint32 // for FESInvalidHeaderField: byte offset of the bad field
	Reason string
	Header []byte // the offending header, for the TermReq
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("nvme-tcp protocol error: %s (FES %s, FEI %d)", e.Reason, e.FES, e.FEI)
}

// castagnoli is the CRC32C table; read-only after package initialisation.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Digest returns the CRC32C of b as used for HDGST and DDGST.
func Digest(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// alignPDO returns the PDO for data following a header of hdrLen bytes
// (HLEN plus header digest) with the given PDA (0's based DWORDs).
func alignPDO(hdrLen int, pda uint8) int {
	a := (int(pda) + 1) * 4
	if a <= 4 {
		return hdrLen
	}
	return (hdrLen + a - 1) / a * a
}
