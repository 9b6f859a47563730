package nvme

import (
	"errors"
	"reflect"
	"testing"
)

var sampleIDs = NamespaceIDs{
	EUI64: [8]byte{1, 2, 3, 4, 5, 6, 7, 8},
	NGUID: [16]byte{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F},
	UUID:  [16]byte{0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0x46, 0xC7, 0x88, 0xC9, 0xCA, 0xCB, 0xCC, 0xCD, 0xCE, 0xCF},
	CSI:   0,
}

// Reference §4.1: NIDT u8 @0 | NIDL u8 @1 | rsvd 2 | NID @4; EUI64 8,
// NGUID 16, UUID 16, CSI 1; the list ends at NIDL 0.
func TestNSDescriptorsGolden(t *testing.T) {
	var want []byte
	want = append(want, 0x01, 8, 0, 0)
	want = append(want, sampleIDs.EUI64[:]...)
	want = append(want, 0x02, 16, 0, 0)
	want = append(want, sampleIDs.NGUID[:]...)
	want = append(want, 0x03, 16, 0, 0)
	want = append(want, sampleIDs.UUID[:]...)
	want = append(want, 0x04, 1, 0, 0, 0x00)

	b := make([]byte, IdentifyDataSize)
	for i := range b {
		b[i] = 0xFF
	}
	n := sampleIDs.MarshalDescriptors(b)
	if n != len(want) || string(b[:n]) != string(want) {
		t.Fatalf("descriptors (%d B) = %x\nwant (%d B) %x", n, b[:n], len(want), want)
	}
	for i := n; i < len(b); i++ {
		if b[i] != 0 {
			t.Fatalf("byte %d after the list = %#x, want 0", i, b[i])
		}
	}
	got, err := ParseNSDescriptors(b)
	if err != nil || !got.Equal(sampleIDs) {
		t.Fatalf("parse = %+v, %v", got, err)
	}
}

func TestNSDescriptorsOnlyNonZero(t *testing.T) {
	ids := NamespaceIDs{UUID: sampleIDs.UUID, CSI: 2}
	b := make([]byte, IdentifyDataSize)
	n := ids.MarshalDescriptors(b)
	if n != 4+16+4+1 || b[0] != NIDTUUID || b[20] != NIDTCSI || b[24] != 2 {
		t.Fatalf("list = %x (%d B)", b[:n], n)
	}
	got, err := ParseNSDescriptors(b)
	if err != nil || !reflect.DeepEqual(got, ids) {
		t.Fatalf("parse = %+v, %v", got, err)
	}
}

func TestParseNSDescriptorsLikeLinux(t *testing.T) {
	tests := []struct {
		name    string
		list    []byte
		want    NamespaceIDs
		wantErr bool
	}{
		{"empty list is no identifiers", nil, NamespaceIDs{}, false},
		{"unknown type 0x7F is skipped", []byte{0x7F, 2, 0, 0, 9, 9, 0x04, 1, 0, 0, 3}, NamespaceIDs{CSI: 3}, false},
		{"EUI64 with NIDL 16 is bogus", append([]byte{0x01, 16, 0, 0}, make([]byte, 16)...), NamespaceIDs{}, true},
		{"CSI with NIDL 2 is bogus", []byte{0x04, 2, 0, 0, 0, 0}, NamespaceIDs{}, true},
		{"descriptor running past the buffer", []byte{0x03, 16, 0, 0, 1, 2}, NamespaceIDs{}, true},
		{"truncated header ends the list", []byte{0x04, 1, 0, 0, 5, 0x03}, NamespaceIDs{CSI: 5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNSDescriptors(tt.list)
			if tt.wantErr {
				if !errors.Is(err, ErrBadDescriptor) {
					t.Fatalf("err = %v, want ErrBadDescriptor", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestNamespaceIDsEqual(t *testing.T) {
	a := sampleIDs
	b := sampleIDs
	if !a.Equal(b) {
		t.Fatal("identical IDs not equal")
	}
	b.CSI = 2
	if a.Equal(b) {
		t.Fatal("IDs differing in CSI are equal")
	}
	if !(NamespaceIDs{CSI: 1}).IsZero() || a.IsZero() {
		t.Fatal("IsZero wrong")
	}
}

// Reference §4.1 CNS 0x02: ascending NSIDs, zero-terminated, 1024 at most.
func TestNSIDList(t *testing.T) {
	b := make([]byte, IdentifyDataSize)
	for i := range b {
		b[i] = 0xFF
	}
	MarshalNSIDList(b, []uint32{1, 2, 0x10})
	if b[0] != 1 || b[4] != 2 || b[8] != 0x10 || b[12] != 0 || b[4095] != 0 {
		t.Fatalf("list = %x", b[:16])
	}
	if got := ParseNSIDList(b); !reflect.DeepEqual(got, []uint32{1, 2, 0x10}) {
		t.Fatalf("ParseNSIDList = %v", got)
	}
	full := make([]uint32, 1025)
	for i := range full {
		full[i] = uint32(i + 1)
	}
	MarshalNSIDList(b, full)
	if got := ParseNSIDList(b); len(got) != 1024 || got[1023] != 1024 {
		t.Fatalf("full page: %d NSIDs, last %d", len(got), got[len(got)-1])
	}
	if got := ParseNSIDList([]byte{1, 0, 0}); len(got) != 0 {
		t.Fatalf("3-byte list = %v", got)
	}
}

func FuzzParseNSDescriptors(f *testing.F) {
	b := make([]byte, IdentifyDataSize)
	n := sampleIDs.MarshalDescriptors(b)
	f.Add(b[:n+4])
	f.Add([]byte{0x03, 0xFF, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		ids, err := ParseNSDescriptors(data)
		if err != nil {
			return
		}
		out := make([]byte, IdentifyDataSize)
		ids.MarshalDescriptors(out)
		ids2, err := ParseNSDescriptors(out)
		if err != nil || ids2 != ids {
			t.Fatalf("re-parse = %+v, %v; want %+v", ids2, err, ids)
		}
		_ = ParseNSIDList(data)
	})
}
