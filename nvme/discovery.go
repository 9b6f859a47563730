package nvme

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// DiscoveryNQN is the well-known discovery subsystem NQN.
const DiscoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"

// Discovery log sizes (reference §4.2).
const (
	DiscoveryLogHeaderSize = 1024
	DiscoveryLogEntrySize  = 1024
)

// Discovery log entry values.
const (
	TrTypeRDMA = 1
	TrTypeFC   = 2
	TrTypeTCP  = 3
	TrTypeLoop = 254

	AdrFamIPv4 = 1
	AdrFamIPv6 = 2
	AdrFamIB   = 3
	AdrFamFC   = 4

	SubTypeReferral         = 1 // another discovery subsystem
	SubTypeNVM              = 2
	SubTypeCurrentDiscovery = 3

	TReqNotSpecified  = 0
	TReqRequired      = 1
	TReqNotRequired   = 2
	TReqDisableSQFlow = 1 << 2

	EFlagsDuplicateReturnInfo = 1 << 0
	EFlagsExplicitPersistent  = 1 << 1

	SecTypeNone  = 0
	SecTypeTLS12 = 1
	SecTypeTLS13 = 2
)

// Entry field offsets.
const (
	dleTrType  = 0
	dleAdrFam  = 1
	dleSubType = 2
	dleTReq    = 3
	dlePortID  = 4
	dleCNTLID  = 6
	dleASQSZ   = 8
	dleEFlags  = 10
	dleTrSvcID = 32
	dleSubNQN  = 256
	dleTrAddr  = 512
	dleSecType = 768

	lenTrSvcID = 32
	lenTrAddr  = 256
	dlhMinSize = 18 // GENCTR, NUMREC, RECFMT
)

// DiscoveryLogEntry is one 1024-byte discovery log entry. TrSvcID, SubNQN
// and TrAddr are decoded up to the first NUL (at most field size - 1 bytes)
// without trailing-space padding.
type DiscoveryLogEntry struct {
	TrType, AdrFam, SubType, TReq uint8
	PortID, CNTLID, ASQSZ, EFlags uint16
	TrSvcID, SubNQN, TrAddr       string
	SecType                       uint8 // TSAS for TCP
}

// DiscoveryLog is the discovery log page (LID 0x70).
type DiscoveryLog struct {
	GenCtr  uint64
	NumRec  uint64 // as read; AppendBinary writes len(Entries)
	RecFmt  uint16
	Entries []DiscoveryLogEntry
}

// AppendBinary appends the wire form of l (1024-byte header with NUMREC =
// len(Entries), then the entries) to b.
func (l *DiscoveryLog) AppendBinary(b []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, DiscoveryLogHeaderSize+len(l.Entries)*DiscoveryLogEntrySize)...)
	h := b[start:]
	le := binary.LittleEndian
	le.PutUint64(h[0:], l.GenCtr)
	le.PutUint64(h[8:], uint64(len(l.Entries)))
	le.PutUint16(h[16:], l.RecFmt)
	for i := range l.Entries {
		l.Entries[i].marshal(h[DiscoveryLogHeaderSize+i*DiscoveryLogEntrySize:])
	}
	return b
}

// marshal writes e into the zeroed entry e.
func (e *DiscoveryLogEntry) marshal(b []byte) {
	le := binary.LittleEndian
	b[dleTrType] = e.TrType
	b[dleAdrFam] = e.AdrFam
	b[dleSubType] = e.SubType
	b[dleTReq] = e.TReq
	le.PutUint16(b[dlePortID:], e.PortID)
	le.PutUint16(b[dleCNTLID:], e.CNTLID)
	le.PutUint16(b[dleASQSZ:], e.ASQSZ)
	le.PutUint16(b[dleEFlags:], e.EFlags)
	copy(b[dleTrSvcID:dleTrSvcID+lenTrSvcID-1], e.TrSvcID)
	copy(b[dleSubNQN:dleSubNQN+lenNQNFld-1], e.SubNQN)
	copy(b[dleTrAddr:dleTrAddr+lenTrAddr-1], e.TrAddr)
	b[dleSecType] = e.SecType
}

// ParseDiscoveryLogHeader decodes GENCTR, NUMREC and RECFMT from the start
// of a discovery log (at least 18 bytes; libnvme reads 20).
func ParseDiscoveryLogHeader(b []byte) (genctr, numrec uint64, recfmt uint16, err error) {
	if len(b) < dlhMinSize {
		return 0, 0, 0, fmt.Errorf("discovery log header: %d bytes, want %d: %w", len(b), dlhMinSize, ErrShort)
	}
	le := binary.LittleEndian
	return le.Uint64(b[0:]), le.Uint64(b[8:]), le.Uint16(b[16:]), nil
}

// ParseDiscoveryLogEntries decodes n entries from b, which holds the log
// from offset DiscoveryLogHeaderSize on (what a Get Log Page with LPO=1024
// returns). b must hold n×1024 bytes.
func ParseDiscoveryLogEntries(b []byte, n int) ([]DiscoveryLogEntry, error) {
	if n < 0 || n > len(b)/DiscoveryLogEntrySize {
		return nil, fmt.Errorf("discovery log: %d entries need %d bytes, have %d: %w",
			n, int64(n)*DiscoveryLogEntrySize, len(b), ErrShort)
	}
	le := binary.LittleEndian
	es := make([]DiscoveryLogEntry, n)
	for i := range es {
		e := b[i*DiscoveryLogEntrySize:]
		es[i] = DiscoveryLogEntry{
			TrType:  e[dleTrType],
			AdrFam:  e[dleAdrFam],
			SubType: e[dleSubType],
			TReq:    e[dleTReq],
			PortID:  le.Uint16(e[dlePortID:]),
			CNTLID:  le.Uint16(e[dleCNTLID:]),
			ASQSZ:   le.Uint16(e[dleASQSZ:]),
			EFlags:  le.Uint16(e[dleEFlags:]),
			TrSvcID: trimField(e[dleTrSvcID : dleTrSvcID+lenTrSvcID-1]),
			SubNQN:  trimField(e[dleSubNQN : dleSubNQN+lenNQNFld-1]),
			TrAddr:  trimField(e[dleTrAddr : dleTrAddr+lenTrAddr-1]),
			SecType: e[dleSecType],
		}
	}
	return es, nil
}

// ParseDiscoveryLog decodes a whole discovery log (header and entries) from
// b. It fails if b holds fewer than NUMREC entries.
func ParseDiscoveryLog(b []byte) (*DiscoveryLog, error) {
	gen, num, fmtv, err := ParseDiscoveryLogHeader(b)
	if err != nil {
		return nil, err
	}
	if len(b) < DiscoveryLogHeaderSize || num > uint64((len(b)-DiscoveryLogHeaderSize)/DiscoveryLogEntrySize) {
		return nil, fmt.Errorf("discovery log: %d records need %d bytes, have %d: %w",
			num, DiscoveryLogHeaderSize+num*DiscoveryLogEntrySize, len(b), ErrShort)
	}
	es, err := ParseDiscoveryLogEntries(b[DiscoveryLogHeaderSize:], int(num))
	if err != nil {
		return nil, err
	}
	return &DiscoveryLog{GenCtr: gen, NumRec: num, RecFmt: fmtv, Entries: es}, nil
}

// trimField returns a fixed-width string field up to its first NUL, without
// trailing spaces.
func trimField(f []byte) string {
	return strings.TrimRight(cString(f), " ")
}
