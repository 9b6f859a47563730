package nvme

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// Hand-written little-endian pokes for golden vectors: the expected bytes are
// built from the reference offsets, independently of the codec's constants.
func put16(b []byte, off int, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }
func put32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func put64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

// Reference §2.1 and §5: a Read of 8 blocks at SLBA 0x1_2345_6789 on NSID 1,
// CID 0x1234, transport data block SGL of 4096 bytes.
func TestReadCommandGolden(t *testing.T) {
	want := make([]byte, SQESize)
	want[0] = 0x02 // OPC Read
	want[1] = 0x40 // PSDT = SGL
	put16(want, 2, 0x1234)
	put32(want, 4, 1)
	put32(want, 32, 4096) // SGL length
	want[39] = 0x5A       // Transport Data Block
	put32(want, 40, 0x23456789)
	put32(want, 44, 0x1)
	put32(want, 48, 7) // NLB 0's based

	c := NewRead(1, 0x123456789, 8)
	c.CID = 0x1234
	c.DPTR = SGL{Length: 4096, Type: SGLTransportDataBlock}
	got := make([]byte, SQESize)
	c.Marshal(got)
	if !bytes.Equal(got, want) {
		t.Fatalf("Read SQE:\n got %x\nwant %x", got, want)
	}
	var back Command
	if err := back.Unmarshal(want); err != nil {
		t.Fatal(err)
	}
	if back != c {
		t.Fatalf("Unmarshal = %+v, want %+v", back, c)
	}
	if slba, nlb := ParseRWCommand(&back); slba != 0x123456789 || nlb != 8 {
		t.Fatalf("ParseRWCommand = %#x, %d", slba, nlb)
	}
}

// Reference §2.2: ANA Inaccessible is Linux status 0x302, wire 0x0604.
func TestCompletionGolden(t *testing.T) {
	want := make([]byte, CQESize)
	put32(want, 0, 0xdeadbeef)
	put32(want, 4, 0x01020304)
	put16(want, 8, 5)
	put16(want, 10, 1)
	put16(want, 12, 0x1234)
	put16(want, 14, 0x0604)
	c := Completion{DW0: 0xdeadbeef, DW1: 0x01020304, SQHD: 5, SQID: 1, CID: 0x1234, Status: StatusANAInaccessible}
	got := make([]byte, CQESize)
	c.Marshal(got)
	if !bytes.Equal(got, want) {
		t.Fatalf("CQE:\n got %x\nwant %x", got, want)
	}
	var back Completion
	if err := back.Unmarshal(got); err != nil {
		t.Fatal(err)
	}
	if back != c {
		t.Fatalf("Unmarshal = %+v, want %+v", back, c)
	}
	if err := back.Unmarshal(got[:CQESize-1]); err == nil {
		t.Fatal("Unmarshal of 15 bytes succeeded")
	}
}

func TestCommandRoundTrip(t *testing.T) {
	c := Command{Opcode: 0x7F, Flags: 0x40, CID: 0xFFFF, NSID: 0x01, CDW2: 2, CDW3: 3, MPTR: 0x1122334455667788,
		DPTR:  SGL{Addr: 0x8877665544332211, Length: 1024, Type: SGLDataBlockOffset},
		CDW10: 10, CDW11: 11, CDW12: 12, CDW13: 13, CDW14: 14, CDW15: 15}
	b := make([]byte, SQESize)
	c.Marshal(b)
	var back Command
	if err := back.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip = %+v, want %+v", back, c)
	}
	if err := back.Unmarshal(b[:SQESize-1]); err == nil {
		t.Fatal("Unmarshal of 63 bytes succeeded")
	}
}

// sqe marshals c and returns the bytes, for checks at wire offsets.
func sqe(c Command) []byte {
	b := make([]byte, SQESize)
	c.Marshal(b)
	return b
}

func TestBuildersWireFields(t *testing.T) {
	type field struct {
		off, size int
		val       uint64
	}
	tests := []struct {
		name string
		cmd  Command
		opc  uint8
		nsid uint32
		want []field
	}{
		{"§4.1 Identify Controller: CNS 1 @40", NewIdentify(CNSController, 0, 0, 0), 0x06, 0,
			[]field{{40, 1, 1}, {42, 2, 0}, {47, 1, 0}}},
		{"§4.1 Identify CNS 0x05 carries CNTID @42 and CSI @47", NewIdentify(0x05, 7, 0xABCD, 2), 0x06, 7,
			[]field{{40, 1, 5}, {42, 2, 0xABCD}, {47, 1, 2}}},
		{"§4.2 Get Log Page ANA 4096 B: LID @40, NUMDL @42 = 1023, RAE @41 bit7 clear", NewGetLogPage(LogANA, NSIDAll, 0, false, 0, 4096), 0x02, NSIDAll,
			[]field{{40, 1, 0x0C}, {41, 1, 0}, {42, 2, 1023}, {44, 2, 0}, {48, 8, 0}}},
		{"§4.2 Get Log Page discovery entries: RAE @41 bit7, LSP, NUMDU @44, LPO @48", NewGetLogPage(LogDiscovery, 0, 1, true, 1024, 0x40000*4+4), 0x02, 0,
			[]field{{40, 1, 0x70}, {41, 1, 0x81}, {42, 2, 0}, {44, 2, 4}, {48, 8, 1024}}},
		{"§4.3 Set Features Number of Queues: FID @40, value @44", NewSetFeatures(FeatNumQueues, NumQueues(4)), 0x09, 0,
			[]field{{40, 1, 7}, {44, 4, 0x00030003}}},
		{"§4.3 Get Features KATO with SEL 3 in CDW10 10:8", NewGetFeatures(FeatKeepAliveTimer, 3), 0x0A, 0,
			[]field{{40, 2, 0x030F}}},
		{"§4.5 Keep Alive has no fields", NewKeepAlive(), 0x18, 0, []field{{40, 8, 0}}},
		{"§4.4 AER has no fields", NewAsyncEventRequest(), 0x0C, 0, []field{{40, 8, 0}}},
		{"§5 Write: SLBA @40, NLB 0's based @48", NewWrite(3, 10, 1), 0x01, 3, []field{{40, 8, 10}, {48, 4, 0}}},
		{"§5 Flush NSID", NewFlush(0xFFFFFFFF), 0x00, 0xFFFFFFFF, []field{{40, 8, 0}}},
		{"§5 Write Zeroes DEAC bit25", NewWriteZeroes(1, 0x100, 0x10000, true), 0x08, 1,
			[]field{{40, 8, 0x100}, {48, 4, 1<<25 | 0xFFFF}}},
		{"§5 DSM deallocate: NR 0's based @40, AD bit2 @44", NewDeallocate(1, 256), 0x09, 1,
			[]field{{40, 4, 255}, {44, 4, 4}}},
		{"§5 Reservation Register replace, IEKEY, CPTPL persist", NewReservationRegister(1, ResvReplace, true, ResvPTPLPersist), 0x0D, 1,
			[]field{{40, 4, 3<<30 | 1<<3 | 2}}},
		{"§5 Reservation Acquire preempt RTYPE 6 @41", NewReservationAcquire(1, ResvPreempt, false, ResvExclusiveAccessAllRegs), 0x11, 1,
			[]field{{40, 4, 6<<8 | 1}}},
		{"§5 Reservation Release clear", NewReservationRelease(1, ResvClear, false, ResvWriteExclusive), 0x15, 1,
			[]field{{40, 4, 1<<8 | 1}}},
		{"§5 Reservation Report 4096 B extended: NUMD 1023, EDS", NewReservationReport(1, 4096, true), 0x0E, 1,
			[]field{{40, 4, 1023}, {44, 4, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := sqe(tt.cmd)
			if b[0] != tt.opc || b[1] != 0x40 || binary.LittleEndian.Uint32(b[4:]) != tt.nsid {
				t.Fatalf("OPC/FLAGS/NSID = %#x/%#x/%#x, want %#x/0x40/%#x", b[0], b[1], binary.LittleEndian.Uint32(b[4:]), tt.opc, tt.nsid)
			}
			for _, f := range tt.want {
				var got uint64
				for i := f.size - 1; i >= 0; i-- {
					got = got<<8 | uint64(b[f.off+i])
				}
				if got != f.val {
					t.Errorf("bytes %d..%d = %#x, want %#x", f.off, f.off+f.size-1, got, f.val)
				}
			}
		})
	}
}

func TestParseCommandHelpersInvertBuilders(t *testing.T) {
	id := NewIdentify(CNSNSDescList, 9, 0x42, 3)
	if cns, nsid, cntid, csi := ParseIdentifyCommand(&id); cns != CNSNSDescList || nsid != 9 || cntid != 0x42 || csi != 3 {
		t.Errorf("ParseIdentifyCommand = %d %d %d %d", cns, nsid, cntid, csi)
	}
	gl := NewGetLogPage(LogANA, NSIDAll, LSPANAGroupsOnly, true, 0x100000004, 0x20000)
	if lid, nsid, lsp, rae, off, n := ParseGetLogPageCommand(&gl); lid != LogANA || nsid != NSIDAll || lsp != 1 || !rae || off != 0x100000004 || n != 0x20000 {
		t.Errorf("ParseGetLogPageCommand = %d %#x %d %v %#x %d", lid, nsid, lsp, rae, off, n)
	}
	huge := Command{CDW10: 0xFFFF0000, CDW11: 0xFFFF}
	if _, _, _, _, _, n := ParseGetLogPageCommand(&huge); n != 0xFFFFFFFC {
		t.Errorf("NUMD 0xFFFFFFFF length = %#x, want saturated 0xFFFFFFFC", n)
	}
	gf := NewGetFeatures(FeatAsyncEventConfig, 1)
	if fid, sel, _ := ParseFeaturesCommand(&gf); fid != FeatAsyncEventConfig || sel != 1 {
		t.Errorf("ParseFeaturesCommand = %d %d", fid, sel)
	}
	sf := NewSetFeatures(FeatKeepAliveTimer, 5000)
	if fid, _, v := ParseFeaturesCommand(&sf); fid != FeatKeepAliveTimer || v != 5000 {
		t.Errorf("ParseFeaturesCommand = %d %d", fid, v)
	}
	wz := NewWriteZeroes(1, 77, 65536, false)
	if slba, nlb := ParseRWCommand(&wz); slba != 77 || nlb != 65536 || wz.CDW12&RWDeallocate != 0 {
		t.Errorf("ParseRWCommand(WriteZeroes) = %d %d cdw12 %#x", slba, nlb, wz.CDW12)
	}
	d := NewDeallocate(1, 3)
	if n, attrs := ParseDSMCommand(&d); n != 3 || attrs != DSMDeallocate {
		t.Errorf("ParseDSMCommand = %d %#x", n, attrs)
	}
}

// Reference §5: DSM range = context attributes u32 @0, length u32 @4 (1's
// based), SLBA u64 @8.
func TestDSMRangeGolden(t *testing.T) {
	want := make([]byte, 16)
	put32(want, 4, 2048)
	put64(want, 8, 0xAABBCCDD00)
	got := bytes.Repeat([]byte{0xEE}, 16)
	MarshalDSMRange(got, 0xAABBCCDD00, 2048)
	if !bytes.Equal(got, want) {
		t.Fatalf("range = %x, want %x", got, want)
	}
	if slba, nlb := ParseDSMRange(want); slba != 0xAABBCCDD00 || nlb != 2048 {
		t.Fatalf("ParseDSMRange = %#x %d", slba, nlb)
	}
}
