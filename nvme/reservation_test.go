package nvme

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// Reference §5: register data CRKEY @0, NRKEY @8; release data CRKEY @0.
func TestReservationKeys(t *testing.T) {
	want := make([]byte, 16)
	put64(want, 0, 0x1111)
	put64(want, 8, 0x2222)
	got := make([]byte, ResvRegisterDataSize)
	MarshalReservationKeys(got, 0x1111, 0x2222)
	if !bytes.Equal(got, want) {
		t.Fatalf("register data = %x, want %x", got, want)
	}
	rel := make([]byte, ResvReleaseDataSize)
	MarshalReservationKeys(rel, 0x1111, 0x2222)
	if !bytes.Equal(rel, want[:8]) {
		t.Fatalf("release data = %x", rel)
	}
	if c, k, err := ParseReservationKeys(want); err != nil || c != 0x1111 || k != 0x2222 {
		t.Fatalf("ParseReservationKeys = %#x %#x %v", c, k, err)
	}
	if c, k, err := ParseReservationKeys(want[:8]); err != nil || c != 0x1111 || k != 0 {
		t.Fatalf("ParseReservationKeys(8 B) = %#x %#x %v", c, k, err)
	}
	if _, _, err := ParseReservationKeys(want[:7]); !errors.Is(err, ErrShort) {
		t.Fatalf("7 bytes err = %v", err)
	}
}

func TestReservationCommandFields(t *testing.T) {
	r := NewReservationRegister(1, ResvUnregister, true, ResvPTPLClear)
	if a, iekey, _, cptpl := ParseReservationCommand(&r); a != ResvUnregister || !iekey || cptpl != ResvPTPLClear {
		t.Errorf("register = %d %v %d", a, iekey, cptpl)
	}
	a := NewReservationAcquire(1, ResvPreemptAbort, false, ResvWriteExclusiveRegOnly)
	if act, iekey, rt, _ := ParseReservationCommand(&a); act != ResvPreemptAbort || iekey || rt != ResvWriteExclusiveRegOnly {
		t.Errorf("acquire = %d %v %d", act, iekey, rt)
	}
	rep := NewReservationReport(1, 64+2*64, true)
	if n, eds := ParseReservationReportCommand(&rep); n != 192 || !eds {
		t.Errorf("report = %d %v", n, eds)
	}
}

var sampleResv = ReservationStatus{
	Gen: 3, RType: ResvWriteExclusive, PTPLS: 0,
	Regs: []RegisteredController{
		{CNTLID: 1, Holds: true, RKey: 0xABCD, HostID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
		{CNTLID: 2, RKey: 0x1234, HostID: [16]byte{0xFF}},
	},
}

// Reference §5 extended format (EDS=1): 64-B header (GEN @0, RTYPE @4,
// REGCTL @5, PTPLS @9), 64-B entries (CNTLID @0, RCSTS @2, RKEY @8,
// HOSTID @16).
func TestReservationStatusGolden(t *testing.T) {
	want := make([]byte, 64+2*64)
	put32(want, 0, 3)
	want[4] = 1
	put16(want, 5, 2)
	e := want[64:]
	put16(e, 0, 1)
	e[2] = 1
	put64(e, 8, 0xABCD)
	copy(e[16:], []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	e = want[128:]
	put16(e, 0, 2)
	put64(e, 8, 0x1234)
	e[16] = 0xFF
	got := sampleResv.AppendBinary(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("status:\n got %x\nwant %x", got, want)
	}
	r, regctl, err := ParseReservationStatus(want)
	if err != nil || regctl != 2 || !reflect.DeepEqual(*r, sampleResv) {
		t.Fatalf("parse = %+v, %d, %v", r, regctl, err)
	}
	r, regctl, err = ParseReservationStatus(want[:64+64+10])
	if err != nil || regctl != 2 || len(r.Regs) != 1 {
		t.Fatalf("truncated report = %+v, %d, %v", r, regctl, err)
	}
	if _, _, err := ParseReservationStatus(want[:63]); !errors.Is(err, ErrShort) {
		t.Fatalf("63-byte report err = %v", err)
	}
}
