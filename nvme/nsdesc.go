package nvme

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Namespace Identifier Types of the CNS 0x03 descriptor list and their
// lengths (reference §4.1).
const (
	NIDTEUI64 = 0x01
	NIDTNGUID = 0x02
	NIDTUUID  = 0x03
	NIDTCSI   = 0x04

	nidlEUI64 = 8
	nidlNGUID = 16
	nidlUUID  = 16
	nidlCSI   = 1
	nidHdr    = 4
)

// CSINVM is the NVM command set identifier.
const CSINVM = 0x00

// NamespaceIDs are the identifiers of a namespace. A zero array means the
// identifier is not reported. Linux requires them to be identical on every
// path of a shared namespace.
type NamespaceIDs struct {
	EUI64 [8]byte
	NGUID [16]byte
	UUID  [16]byte
	CSI   uint8
}

// Equal reports whether a and b carry the same identifiers.
func (a NamespaceIDs) Equal(b NamespaceIDs) bool { return a == b }

// IsZero reports whether no identifier (EUI64, NGUID, UUID) is set.
func (a NamespaceIDs) IsZero() bool {
	return a.EUI64 == [8]byte{} && a.NGUID == [16]byte{} && a.UUID == [16]byte{}
}

// MarshalDescriptors writes the Namespace Identification Descriptor list
// (CNS 0x03) into b (IdentifyDataSize bytes, all written): EUI64, NGUID and
// UUID when non-zero, then the CSI descriptor, which the Linux target always
// sends. It returns the number of bytes used by descriptors; the rest is
// zero, which terminates the list.
func (a NamespaceIDs) MarshalDescriptors(b []byte) int {
	b = b[:IdentifyDataSize]
	clear(b)
	off := 0
	put := func(t uint8, id []byte) {
		b[off] = t
		b[off+1] = uint8(len(id))
		copy(b[off+nidHdr:], id)
		off += nidHdr + len(id)
	}
	if a.EUI64 != [8]byte{} {
		put(NIDTEUI64, a.EUI64[:])
	}
	if a.NGUID != [16]byte{} {
		put(NIDTNGUID, a.NGUID[:])
	}
	if a.UUID != [16]byte{} {
		put(NIDTUUID, a.UUID[:])
	}
	put(NIDTCSI, []byte{a.CSI})
	return off
}

// ErrBadDescriptor is wrapped by ParseNSDescriptors errors.
var ErrBadDescriptor = errors.New("nvme: bad namespace identification descriptor")

// ParseNSDescriptors decodes a Namespace Identification Descriptor list the
// way Linux's nvme_identify_ns_descs does: the list ends at the first NIDL of
// 0 or at the end of b; a known type with the wrong length is an error
// (Linux then skips the namespace); unknown types are skipped.
func ParseNSDescriptors(b []byte) (NamespaceIDs, error) {
	var ids NamespaceIDs
	for off := 0; off+nidHdr <= len(b); {
		t, l := b[off], int(b[off+1])
		if l == 0 {
			break
		}
		end := off + nidHdr + l
		if end > len(b) {
			return NamespaceIDs{}, fmt.Errorf("descriptor type %d at %d: length %d beyond the list: %w", t, off, l, ErrBadDescriptor)
		}
		id := b[off+nidHdr : end]
		want := 0
		switch t {
		case NIDTEUI64:
			want = nidlEUI64
			copy(ids.EUI64[:], id)
		case NIDTNGUID:
			want = nidlNGUID
			copy(ids.NGUID[:], id)
		case NIDTUUID:
			want = nidlUUID
			copy(ids.UUID[:], id)
		case NIDTCSI:
			want = nidlCSI
			ids.CSI = id[0]
		}
		if want != 0 && l != want {
			return NamespaceIDs{}, fmt.Errorf("descriptor type %d at %d: length %d, want %d: %w", t, off, l, want, ErrBadDescriptor)
		}
		off = end
	}
	return ids, nil
}

// ParseNSIDList decodes an Active Namespace ID list (CNS 0x02): up to
// len(b)/4 NSIDs, ending at the first 0.
func ParseNSIDList(b []byte) []uint32 {
	n := 0
	for n*4+4 <= len(b) && binary.LittleEndian.Uint32(b[n*4:]) != 0 {
		n++
	}
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = binary.LittleEndian.Uint32(b[i*4:])
	}
	return ids
}

// MarshalNSIDList writes nsids (ascending, non-zero) as an Active
// Namespace ID list into b, zero-filling the rest; NSIDs beyond len(b)/4
// are dropped.
func MarshalNSIDList(b []byte, nsids []uint32) {
	clear(b)
	for i, id := range nsids {
		if i*4+4 > len(b) {
			return
		}
		binary.LittleEndian.PutUint32(b[i*4:], id)
	}
}
