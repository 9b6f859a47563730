package nvme

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"testing"
)

// Reference §1 of the landscape doc / Linux nvme_ana_state_names.
func TestANAStateNamesAreLinuxs(t *testing.T) {
	tests := []struct {
		s    ANAState
		want string
	}{
		{0, "invalid state"},
		{ANAOptimized, "optimized"},
		{ANANonOptimized, "non-optimized"},
		{ANAInaccessible, "inaccessible"},
		{ANAPersistentLoss, "persistent-loss"},
		{ANAChange, "change"},
		{0x05, "UNKNOWN_ANA_STATE_0x05"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("ANAState(%d).String() = %q, want %q", tt.s, got, tt.want)
		}
		p, err := ParseANAState(tt.want)
		named := tt.s != 0 && tt.s != 0x05
		if named && (err != nil || p != tt.s) {
			t.Errorf("ParseANAState(%q) = %v, %v", tt.want, p, err)
		}
		if !named && err == nil {
			t.Errorf("ParseANAState(%q) succeeded", tt.want)
		}
	}
	if !ANAOptimized.Usable() || !ANANonOptimized.Usable() || ANAInaccessible.Usable() || ANAChange.Usable() {
		t.Error("Usable must hold only for optimized and non-optimized (reference §7.6)")
	}
}

var sampleANALog = ANALog{
	ChangeCount: 0x0102030405060708,
	Groups: []ANAGroup{
		{ID: 1, ChangeCount: 7, State: ANAOptimized, NSIDs: []uint32{1, 2}},
		{ID: 2, ChangeCount: 9, State: ANAInaccessible, NSIDs: []uint32{3}},
	},
}

// Reference §4.2 ANA log: header CHGCNT u64 @0, NGRPS u16 @8; descriptors
// ANAGRPID @0, NNSIDS @4, CHGCNT @8, STATE @16, NSIDs @32.
func goldenANALog() []byte {
	b := make([]byte, 16+32+8+32+4)
	put64(b, 0, 0x0102030405060708)
	put16(b, 8, 2)
	g := b[16:]
	put32(g, 0, 1)
	put32(g, 4, 2)
	put64(g, 8, 7)
	g[16] = 0x01
	put32(g, 32, 1)
	put32(g, 36, 2)
	g = b[16+40:]
	put32(g, 0, 2)
	put32(g, 4, 1)
	put64(g, 8, 9)
	g[16] = 0x03
	put32(g, 32, 3)
	return b
}

func TestANALogGolden(t *testing.T) {
	want := goldenANALog()
	got := sampleANALog.AppendBinary(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("ANA log:\n got %x\nwant %x", got, want)
	}
	if n := sampleANALog.Size(); n != len(want) {
		t.Fatalf("Size = %d, want %d", n, len(want))
	}
	// The host reads a buffer sized for the maximum: trailing zeros are fine.
	l, err := ParseANALog(append(want, make([]byte, 100)...), 128)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*l, sampleANALog) {
		t.Fatalf("parse:\n got %+v\nwant %+v", *l, sampleANALog)
	}
}

func TestANALogGroupsOnly(t *testing.T) {
	l := ANALog{ChangeCount: 1, Groups: []ANAGroup{{ID: 5, State: ANAChange}}}
	b := l.AppendBinary([]byte{0xEE})
	if b[0] != 0xEE || len(b) != 1+16+32 {
		t.Fatalf("AppendBinary did not append: %d B", len(b))
	}
	got, err := ParseANALog(b[1:], 5)
	if err != nil || !reflect.DeepEqual(*got, l) {
		t.Fatalf("parse = %+v, %v", got, err)
	}
}

// Reference §4.2: Linux rejects ANAGRPID 0 or > ANAGRPMAX, STATE 0 or
// > 0x0F, and descriptors or NSID lists beyond the log.
func TestParseANALogRejectsLikeLinux(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
	}{
		{"header shorter than 16 bytes", func(b []byte) []byte { return b[:15] }},
		{"group ID 0", func(b []byte) []byte { put32(b, 16, 0); return b }},
		{"group ID above ANAGRPMAX", func(b []byte) []byte { put32(b, 16+40, 129); return b }},
		{"state 0", func(b []byte) []byte { b[16+16] = 0; return b }},
		{"state 0x10", func(b []byte) []byte { b[16+40+16] = 0x10; return b }},
		{"NGRPS larger than the groups present", func(b []byte) []byte { put16(b, 8, 3); return b }},
		{"NNSIDS beyond the buffer", func(b []byte) []byte { put32(b, 16+40+4, 2); return b }},
		{"NNSIDS 0xFFFFFFFF (lying length)", func(b []byte) []byte { put32(b, 16+4, 0xFFFFFFFF); return b }},
		{"descriptor cut short", func(b []byte) []byte { return b[:16+40+20] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseANALog(tt.mutate(goldenANALog()), 128)
			if !errors.Is(err, ErrBadANALog) {
				t.Fatalf("ParseANALog = %+v, %v; want ErrBadANALog", l, err)
			}
		})
	}
	if _, err := ParseANALog(goldenANALog(), 1); err == nil {
		t.Fatal("group 2 accepted with ANAGRPMAX 1")
	}
}

// allocBytes returns the bytes f allocates per call (averaged over 20).
func allocBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 20 {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / 20
}

// A lying count must not make the parser allocate for it: NGRPS 65535
// groups (2 MiB of descriptors) or NNSIDS 2^32-1 (16 GiB) in a 48-byte log.
func TestParseANALogDoesNotTrustLengths(t *testing.T) {
	ngrps := make([]byte, 16)
	put16(ngrps, 8, 0xFFFF)
	nnsids := goldenANALog()[:16+32]
	put32(nnsids, 16+4, 0xFFFFFFFF)
	for name, b := range map[string][]byte{"NGRPS": ngrps, "NNSIDS": nnsids} {
		if n := allocBytes(func() { _, _ = ParseANALog(b, 128) }); n > 2048 {
			t.Errorf("lying %s: %d bytes allocated per parse of %d bytes", name, n, len(b))
		}
	}
}

func TestANALogSize(t *testing.T) {
	if got := ANALogSize(128, 1024); got != 16+128*32+1024*4 {
		t.Fatalf("ANALogSize = %d", got)
	}
}

func FuzzParseANALog(f *testing.F) {
	f.Add(goldenANALog(), uint32(128))
	f.Add(goldenANALog()[:40], uint32(2))
	f.Add([]byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, data []byte, anagrpmax uint32) {
		l, err := ParseANALog(data, anagrpmax)
		if err != nil {
			return
		}
		n := 0
		for _, g := range l.Groups {
			n += 32 + 4*len(g.NSIDs)
			if g.ID == 0 || g.ID > anagrpmax || g.State == 0 || g.State > ANAChange {
				t.Fatalf("accepted group %+v (anagrpmax %d)", g, anagrpmax)
			}
		}
		if 16+n > len(data) {
			t.Fatalf("parsed %d bytes of groups from %d bytes", 16+n, len(data))
		}
		l2, err := ParseANALog(l.AppendBinary(nil), anagrpmax)
		if err != nil || !reflect.DeepEqual(l, l2) {
			t.Fatalf("re-parse = %+v, %v; want %+v", l2, err, l)
		}
	})
}
