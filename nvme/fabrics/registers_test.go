package fabrics

import (
	"testing"
	"time"
)

// Reference §3.2: Linux target CAP = bit37 | bit43 | TO 15 | MQES 1023.
func TestCAPLinuxTarget(t *testing.T) {
	c := CAP(1<<37 | 1<<43 | 15<<24 | 1023)
	if c != MakeCAP(1023, 15, CAPCSSNVM|CAPCSSIOCS) {
		t.Fatalf("MakeCAP = %#x, want %#x", MakeCAP(1023, 15, CAPCSSNVM|CAPCSSIOCS), c)
	}
	if c.MQES() != 1023 || c.TO() != 7500*time.Millisecond || c.CSS() != 0x41 || c.CQR() || c.NSSRS() {
		t.Fatalf("CAP fields: MQES %d TO %v CSS %#x", c.MQES(), c.TO(), c.CSS())
	}
	c = CAP(1<<16 | 0xA<<32 | 1<<36 | 3<<48 | 5<<52 | 2<<59)
	if !c.CQR() || c.DSTRD() != 0xA || !c.NSSRS() || c.MPSMIN() != 3 || c.MPSMAX() != 5 || c.CRMS() != 2 {
		t.Fatalf("CAP fields: %v %d %v %d %d %d", c.CQR(), c.DSTRD(), c.NSSRS(), c.MPSMIN(), c.MPSMAX(), c.CRMS())
	}
}

// Reference §3.3: CC for NVM with I/O command sets = 0x00460000 | EN.
func TestCCEnableValue(t *testing.T) {
	cc := CCCSSIOCS | CCIOSQES | CCIOCQES
	if cc != 0x00460060 {
		// CSS=6 sits in bits 6:4 -> 0x60.
		t.Fatalf("CC = %#x", cc)
	}
	cc = CCIOSQES | CCIOCQES | CCEnable
	if cc != 0x00460001 || !cc.EN() || cc.IOSQES() != 6 || cc.IOCQES() != 4 || cc.CSS() != 0 || cc.MPS() != 0 || cc.AMS() != 0 {
		t.Fatalf("CC = %#x", cc)
	}
	if s := (cc | CCShnNormal).SHN(); s != 1 {
		t.Fatalf("SHN normal = %d", s)
	}
	if s := (cc | CCShnAbrupt).SHN(); s != 2 {
		t.Fatalf("SHN abrupt = %d", s)
	}
}

func TestCSTS(t *testing.T) {
	tests := []struct {
		name string
		v    CSTS
		rdy  bool
		cfs  bool
		shst uint8
	}{
		{"ready", CSTSRdy, true, false, 0},
		{"fatal", CSTSRdy | CSTSCFS, true, true, 0},
		{"shutdown complete", CSTSShstComplete, false, false, 2},
		{"shutdown occurring", CSTSShstOccurring, false, false, 1},
	}
	for _, tt := range tests {
		if tt.v.RDY() != tt.rdy || tt.v.CFS() != tt.cfs || tt.v.SHST() != tt.shst {
			t.Errorf("%s: RDY %v CFS %v SHST %d", tt.name, tt.v.RDY(), tt.v.CFS(), tt.v.SHST())
		}
	}
	if v := CSTS(CSTSNSSRO | CSTSPP); !v.NSSRO() || !v.PP() {
		t.Error("NSSRO/PP")
	}
}

func TestVS(t *testing.T) {
	if v := MakeVS(1, 3, 0); v != 0x00010300 || v.String() != "1.3" {
		t.Fatalf("VS 1.3 = %#x %q", uint32(v), v.String())
	}
	if v := VS(0x00020101); v.Major() != 2 || v.Minor() != 1 || v.Tertiary() != 1 || v.String() != "2.1.1" {
		t.Fatalf("VS = %q", v.String())
	}
}
