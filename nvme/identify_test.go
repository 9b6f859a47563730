package nvme

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// linuxTargetController is what the Linux target reports (reference §8).
func linuxTargetController() *IdentifyController {
	return &IdentifyController{
		VID: 0, SSVID: 0,
		SerialNumber: "a1b2c3d4e5f6a7b8c9d0",
		ModelNumber:  "Linux" + strings.Repeat(" ", 35),
		FirmwareRev:  "6.15.0  ",
		RAB:          6, IEEE: [3]byte{0x00, 0x14, 0x01}, CMIC: 0x0B, MDTS: 0, CNTLID: 0x0001,
		Version: 0x00020100, OAES: AENCfgNSAttr | AENCfgANAChange, CTRATT: CTRATTHostID128 | CTRATTTBKAS,
		CNTRLTYPE: CtrlTypeIO, CRDT: [3]uint16{1, 20, 300}, OACS: 0, ACL: 3, AERL: 3, FRMW: 3, LPA: 0x02, ELPE: 127,
		KAS: 10, ANATT: 10, ANACAP: 0x1F, ANAGRPMAX: 128, NANAGRPID: 128,
		SQES: 0x66, CQES: 0x44, MAXCMD: 1024, NN: 1024,
		ONCS: ONCSDSM | ONCSWriteZeroes | ONCSReservations, VWC: 1, SGLS: 0x00100001, MNAN: 1024,
		SubNQN: "nqn.2014-08.org.example:subsys1", IOCCSZ: 1028, IORCSZ: 1, ICDOFF: 0, FCATT: 0, MSDBD: 1, OFCS: 1,
	}
}

// Reference §4.1 Identify Controller offsets, and §9.3 (ANATT @342).
func TestIdentifyControllerGoldenOffsets(t *testing.T) {
	b := make([]byte, IdentifyDataSize)
	for i := range b {
		b[i] = 0xA5 // Marshal must overwrite every byte
	}
	linuxTargetController().Marshal(b)
	u8 := func(off int) uint64 { return uint64(b[off]) }
	u16 := func(off int) uint64 { return uint64(b[off]) | uint64(b[off+1])<<8 }
	u32 := func(off int) uint64 { return u16(off) | u16(off+2)<<16 }
	tests := []struct {
		name string
		got  uint64
		want uint64
	}{
		{"RAB @72", u8(72), 6},
		{"IEEE OUI @73..75", u8(73) | u8(74)<<8 | u8(75)<<16, 0x011400},
		{"CMIC @76", u8(76), 0x0B},
		{"CNTLID @78", u16(78), 1},
		{"VER @80", u32(80), 0x00020100},
		{"OAES @92", u32(92), 1<<8 | 1<<11},
		{"CTRATT @96", u32(96), 1<<0 | 1<<6},
		{"CNTRLTYPE @111", u8(111), 1},
		{"CRDT1 @128", u16(128), 1},
		{"CRDT3 @132", u16(132), 300},
		{"ACL @258", u8(258), 3},
		{"AERL @259", u8(259), 3},
		{"LPA @261", u8(261), 2},
		{"KAS @320", u16(320), 10},
		{"ANATT @342", u8(342), 10},
		{"ANACAP @343", u8(343), 0x1F},
		{"ANAGRPMAX @344", u32(344), 128},
		{"NANAGRPID @348", u32(348), 128},
		{"SQES @512", u8(512), 0x66},
		{"CQES @513", u8(513), 0x44},
		{"MAXCMD @514", u16(514), 1024},
		{"NN @516", u32(516), 1024},
		{"ONCS @520", u16(520), 0x2C},
		{"VWC @525", u8(525), 1},
		{"SGLS @536", u32(536), 0x00100001},
		{"MNAN @540", u32(540), 1024},
		{"IOCCSZ @1792", u32(1792), 1028},
		{"IORCSZ @1796", u32(1796), 1},
		{"ICDOFF @1800", u16(1800), 0},
		{"MSDBD @1803", u8(1803), 1},
		{"OFCS @1804", u16(1804), 1},
		{"reserved @352 zeroed", u32(352), 0},
		{"PSD0 @2048 zeroed", u32(2048), 0},
		{"last byte zeroed", u8(4095), 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
	if s := string(b[4:24]); s != "a1b2c3d4e5f6a7b8c9d0" {
		t.Errorf("SN @4 = %q", s)
	}
	if s := string(b[24:64]); s != "Linux"+strings.Repeat(" ", 35) {
		t.Errorf("MN @24 = %q", s)
	}
	if s := string(b[64:72]); s != "6.15.0  " {
		t.Errorf("FR @64 = %q", s)
	}
	nqn := "nqn.2014-08.org.example:subsys1"
	if s := string(b[768 : 768+len(nqn)]); s != nqn || b[768+len(nqn)] != 0 || b[1023] != 0 {
		t.Errorf("SUBNQN @768 = %q, NUL-terminated %v", s, b[768+len(nqn)] == 0)
	}
}

func TestIdentifyControllerRoundTrip(t *testing.T) {
	want := linuxTargetController()
	b := make([]byte, IdentifyDataSize)
	want.Marshal(b)
	got, err := ParseIdentifyController(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestIdentifyControllerMarshalPadsStrings(t *testing.T) {
	c := IdentifyController{SerialNumber: "SN1", ModelNumber: "M", FirmwareRev: "1.0"}
	b := make([]byte, IdentifyDataSize)
	c.Marshal(b)
	got, err := ParseIdentifyController(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.SerialNumber != "SN1"+strings.Repeat(" ", 17) || got.ModelNumber != "M"+strings.Repeat(" ", 39) || got.FirmwareRev != "1.0     " {
		t.Fatalf("padded strings = %q %q %q", got.SerialNumber, got.ModelNumber, got.FirmwareRev)
	}
}

func TestIdentifyRejectsShortBuffers(t *testing.T) {
	short := make([]byte, IdentifyDataSize-1)
	if _, err := ParseIdentifyController(short); !errors.Is(err, ErrShort) {
		t.Errorf("ParseIdentifyController(4095 B) err = %v, want ErrShort", err)
	}
	if _, err := ParseIdentifyNamespace(short); !errors.Is(err, ErrShort) {
		t.Errorf("ParseIdentifyNamespace(4095 B) err = %v, want ErrShort", err)
	}
}

func sampleNamespace() *IdentifyNamespace {
	n := &IdentifyNamespace{
		NSZE: 0x200000, NCAP: 0x200000, NUSE: 0x1000, NSFEAT: 0x04, NLBAF: 1, FLBAS: 0x01,
		NMIC: NMICShared, RESCAP: 0xFF, DLFEAT: 0x09, ANAGRPID: 2, NSATTR: 0,
		NGUID: [16]byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x01},
		EUI64: [8]byte{0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8},
	}
	n.LBAF[0] = LBAFormat{LBADS: 9}
	n.LBAF[1] = LBAFormat{MS: 8, LBADS: 12, RP: 2}
	return n
}

// Reference §4.1 Identify Namespace offsets.
func TestIdentifyNamespaceGoldenOffsets(t *testing.T) {
	want := make([]byte, IdentifyDataSize)
	put64(want, 0, 0x200000)
	put64(want, 8, 0x200000)
	put64(want, 16, 0x1000)
	want[24] = 0x04
	want[25] = 1
	want[26] = 0x01
	want[30] = 1
	want[31] = 0xFF
	want[33] = 0x09
	put32(want, 92, 2)
	copy(want[104:], []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x01})
	copy(want[120:], []byte{0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8})
	put32(want, 128, 9<<16)          // LBAF0: 512 B
	put32(want, 132, 2<<24|12<<16|8) // LBAF1: 4096 B, 8 B metadata, RP 2
	got := make([]byte, IdentifyDataSize)
	sampleNamespace().Marshal(got)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("byte %d = %#x, want %#x", i, got[i], want[i])
		}
	}
	n, err := ParseIdentifyNamespace(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(n, sampleNamespace()) {
		t.Fatalf("parse:\n got %+v\nwant %+v", n, sampleNamespace())
	}
}

func TestIdentifyNamespaceBlockSize(t *testing.T) {
	tests := []struct {
		name  string
		flbas uint8
		lbads uint8
		want  uint32
	}{
		{"format 0, 512 B", 0x00, 9, 512},
		{"format 1 (FLBAS 3:0), 4 KiB", 0x01, 12, 4096},
		{"format 17 (FLBAS 6:5 high bits), 4 KiB", 0x21, 12, 4096},
		{"extended metadata bit4 ignored", 0x10, 9, 512},
		{"LBADS 32 is bogus", 0x00, 32, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n IdentifyNamespace
			n.FLBAS = tt.flbas
			n.LBAF[n.FormatIndex()].LBADS = tt.lbads
			if got := n.BlockSize(); got != tt.want {
				t.Fatalf("BlockSize = %d, want %d (index %d)", got, tt.want, n.FormatIndex())
			}
		})
	}
}

func FuzzParseIdentifyController(f *testing.F) {
	b := make([]byte, IdentifyDataSize)
	linuxTargetController().Marshal(b)
	f.Add(b)
	f.Add(b[:100])
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseIdentifyController(data)
		if err != nil {
			if len(data) >= IdentifyDataSize {
				t.Fatalf("error on %d bytes: %v", len(data), err)
			}
			return
		}
		out := make([]byte, IdentifyDataSize)
		c.Marshal(out)
		c2, err := ParseIdentifyController(out)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-parse differs: %v\n%+v\n%+v", err, c, c2)
		}
	})
}

func FuzzParseIdentifyNamespace(f *testing.F) {
	b := make([]byte, IdentifyDataSize)
	sampleNamespace().Marshal(b)
	f.Add(b)
	f.Add(b[:16])
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := ParseIdentifyNamespace(data)
		if err != nil {
			return
		}
		_ = n.BlockSize()
		out := make([]byte, IdentifyDataSize)
		n.Marshal(out)
		n2, err := ParseIdentifyNamespace(out)
		if err != nil || !reflect.DeepEqual(n, n2) {
			t.Fatalf("re-parse differs: %v", err)
		}
	})
}

// Parsing hand-placed bytes, independently of Marshal (reference §4.1).
func TestParseIdentifyControllerFromHandBuiltBytes(t *testing.T) {
	b := make([]byte, IdentifyDataSize)
	put16(b, 78, 0x0102)   // CNTLID
	put16(b, 320, 10)      // KAS
	b[342] = 0x21          // ANATT
	put32(b, 344, 0x80)    // ANAGRPMAX
	put32(b, 536, 0x1)     // SGLS
	put32(b, 1792, 0x404)  // IOCCSZ
	put16(b, 1800, 0x0003) // ICDOFF
	copy(b[768:], "nqn.test\x00junk")
	c, err := ParseIdentifyController(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.CNTLID != 0x0102 || c.KAS != 10 || c.ANATT != 0x21 || c.ANAGRPMAX != 0x80 || c.SGLS != 1 ||
		c.IOCCSZ != 0x404 || c.ICDOFF != 3 || c.SubNQN != "nqn.test" {
		t.Fatalf("parsed %+v", c)
	}
}
