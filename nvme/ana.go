package nvme

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ANAState is an Asymmetric Namespace Access state (reference §4.2).
type ANAState uint8

// ANA states.
const (
	ANAOptimized      ANAState = 0x01
	ANANonOptimized   ANAState = 0x02
	ANAInaccessible   ANAState = 0x03
	ANAPersistentLoss ANAState = 0x04
	ANAChange         ANAState = 0x0F
)

// String returns the name Linux shows in sysfs ana_state
// (nvme_ana_state_names): "optimized", "non-optimized", "inaccessible",
// "persistent-loss", "change", and "invalid state" for 0. Other values,
// which Linux leaves unnamed, print as UNKNOWN_ANA_STATE_0xNN.
func (s ANAState) String() string {
	switch s {
	case 0:
		return "invalid state"
	case ANAOptimized:
		return "optimized"
	case ANANonOptimized:
		return "non-optimized"
	case ANAInaccessible:
		return "inaccessible"
	case ANAPersistentLoss:
		return "persistent-loss"
	case ANAChange:
		return "change"
	}
	return fmt.Sprintf("UNKNOWN_ANA_STATE_0x%02x", uint8(s))
}

// Usable reports whether Linux sends I/O on a path in state s
// (optimized or non-optimized).
func (s ANAState) Usable() bool { return s == ANAOptimized || s == ANANonOptimized }

// ParseANAState is the inverse of String for the five named states.
func ParseANAState(s string) (ANAState, error) {
	for _, st := range [...]ANAState{ANAOptimized, ANANonOptimized, ANAInaccessible, ANAPersistentLoss, ANAChange} {
		if s == st.String() {
			return st, nil
		}
	}
	return 0, fmt.Errorf("nvme: unknown ANA state %q", s)
}

// ANA log layout (reference §4.2).
const (
	anaHdrSize  = 16
	anaDescSize = 32
)

// ANAGroup is one group descriptor of the ANA log.
type ANAGroup struct {
	ID          uint32
	ChangeCount uint64
	State       ANAState
	NSIDs       []uint32 // empty when read with LSPANAGroupsOnly
}

// ANALog is the Asymmetric Namespace Access log page (LID 0x0C).
type ANALog struct {
	ChangeCount uint64
	Groups      []ANAGroup
}

// Size returns the wire size of l.
func (l *ANALog) Size() int {
	n := anaHdrSize
	for i := range l.Groups {
		n += anaDescSize + 4*len(l.Groups[i].NSIDs)
	}
	return n
}

// AppendBinary appends the wire form of l to b.
func (l *ANALog) AppendBinary(b []byte) []byte {
	le := binary.LittleEndian
	b = le.AppendUint64(b, l.ChangeCount)
	b = le.AppendUint16(b, uint16(len(l.Groups)))
	b = append(b, make([]byte, anaHdrSize-10)...)
	for i := range l.Groups {
		g := &l.Groups[i]
		b = le.AppendUint32(b, g.ID)
		b = le.AppendUint32(b, uint32(len(g.NSIDs)))
		b = le.AppendUint64(b, g.ChangeCount)
		b = append(b, uint8(g.State))
		b = append(b, make([]byte, anaDescSize-17)...)
		for _, id := range g.NSIDs {
			b = le.AppendUint32(b, id)
		}
	}
	return b
}

// ErrBadANALog is wrapped by ParseANALog errors.
var ErrBadANALog = errors.New("nvme: bad ANA log")

// ParseANALog decodes an ANA log with the checks of Linux's
// nvme_parse_ana_log: every descriptor and its NSID list must lie inside b,
// a group ID of 0 or above anagrpmax is rejected, and so is a state of 0 or
// above 0x0F. Bytes after the last group are ignored (the host reads a
// buffer sized for the maximum).
func ParseANALog(b []byte, anagrpmax uint32) (*ANALog, error) {
	if len(b) < anaHdrSize {
		return nil, fmt.Errorf("%w: %d bytes, header needs %d", ErrBadANALog, len(b), anaHdrSize)
	}
	le := binary.LittleEndian
	l := &ANALog{ChangeCount: le.Uint64(b[0:])}
	ngrps := int(le.Uint16(b[8:]))
	if ngrps > 0 {
		// Each group takes at least anaDescSize bytes: never allocate for more
		// groups than b can hold.
		l.Groups = make([]ANAGroup, 0, min(ngrps, (len(b)-anaHdrSize)/anaDescSize))
	}
	off := anaHdrSize
	for i := 0; i < ngrps; i++ {
		if len(b)-off < anaDescSize {
			return nil, fmt.Errorf("%w: group %d descriptor at %d beyond %d bytes", ErrBadANALog, i, off, len(b))
		}
		d := b[off:]
		g := ANAGroup{ID: le.Uint32(d[0:]), ChangeCount: le.Uint64(d[8:]), State: ANAState(d[16])}
		nnsids := uint64(le.Uint32(d[4:]))
		if g.ID == 0 || g.ID > anagrpmax {
			return nil, fmt.Errorf("%w: group %d: ANAGRPID %d not in 1..%d", ErrBadANALog, i, g.ID, anagrpmax)
		}
		if g.State == 0 || g.State > ANAChange {
			return nil, fmt.Errorf("%w: group %d (ANAGRPID %d): state 0x%02x", ErrBadANALog, i, g.ID, uint8(g.State))
		}
		off += anaDescSize
		if nnsids*4 > uint64(len(b)-off) {
			return nil, fmt.Errorf("%w: group %d (ANAGRPID %d): %d NSIDs beyond %d bytes", ErrBadANALog, i, g.ID, nnsids, len(b))
		}
		if nnsids > 0 {
			g.NSIDs = make([]uint32, nnsids)
			for j := range g.NSIDs {
				g.NSIDs[j] = le.Uint32(b[off+4*j:])
			}
			off += int(nnsids) * 4
		}
		l.Groups = append(l.Groups, g)
	}
	return l, nil
}

// ANALogSize is the buffer size Linux reads the ANA log with:
// 16 + NANAGRPID×32 + MNAN×4.
func ANALogSize(nanagrpid, mnan uint32) uint64 {
	return anaHdrSize + uint64(nanagrpid)*anaDescSize + uint64(mnan)*4
}
