package nvme

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

var sampleEntry = DiscoveryLogEntry{
	TrType: TrTypeTCP, AdrFam: AdrFamIPv4, SubType: SubTypeNVM, TReq: TReqNotRequired | TReqDisableSQFlow,
	PortID: 1, CNTLID: 0xFFFF, ASQSZ: 32, EFlags: EFlagsDuplicateReturnInfo,
	TrSvcID: "4420", SubNQN: "nqn.2014-08.org.example:subsys1", TrAddr: "192.168.1.10", SecType: SecTypeNone,
}

// Reference §4.2 discovery log entry offsets.
func goldenEntry() []byte {
	e := make([]byte, 1024)
	e[0] = 3 // TCP
	e[1] = 1 // IPv4
	e[2] = 2 // NVM subsystem
	e[3] = 2 | 4
	put16(e, 4, 1)
	put16(e, 6, 0xFFFF)
	put16(e, 8, 32)
	put16(e, 10, 1)
	copy(e[32:], "4420")
	copy(e[256:], "nqn.2014-08.org.example:subsys1")
	copy(e[512:], "192.168.1.10")
	return e
}

func TestDiscoveryLogGolden(t *testing.T) {
	want := make([]byte, 1024)
	put64(want, 0, 42) // GENCTR
	put64(want, 8, 2)  // NUMREC
	want = append(want, goldenEntry()...)
	second := goldenEntry()
	second[2] = 3 // current discovery subsystem
	copy(second[256:], DiscoveryNQN+"\x00")
	second[768] = SecTypeTLS13
	want = append(want, second...)

	e2 := sampleEntry
	e2.SubType = SubTypeCurrentDiscovery
	e2.SubNQN = DiscoveryNQN
	e2.SecType = SecTypeTLS13
	l := DiscoveryLog{GenCtr: 42, NumRec: 2, Entries: []DiscoveryLogEntry{sampleEntry, e2}}
	got := l.AppendBinary(nil)
	if !bytes.Equal(got, want) {
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("byte %d = %#x, want %#x", i, got[i], want[i])
			}
		}
		t.Fatalf("length %d, want %d", len(got), len(want))
	}
	gen, num, recfmt, err := ParseDiscoveryLogHeader(want[:20])
	if err != nil || gen != 42 || num != 2 || recfmt != 0 {
		t.Fatalf("header = %d %d %d %v", gen, num, recfmt, err)
	}
	es, err := ParseDiscoveryLogEntries(want[1024:], 2)
	if err != nil || !reflect.DeepEqual(es, l.Entries) {
		t.Fatalf("entries = %+v, %v", es, err)
	}
	all, err := ParseDiscoveryLog(want)
	if err != nil || !reflect.DeepEqual(*all, l) {
		t.Fatalf("ParseDiscoveryLog = %+v, %v", all, err)
	}
}

// Some targets pad TRSVCID/TRADDR with spaces instead of NULs.
func TestDiscoveryEntryStringsAreTrimmed(t *testing.T) {
	e := goldenEntry()
	copy(e[32:64], "4420                            ")
	copy(e[512:], "10.0.0.1   \x00garbage")
	es, err := ParseDiscoveryLogEntries(e, 1)
	if err != nil || es[0].TrSvcID != "4420" || es[0].TrAddr != "10.0.0.1" {
		t.Fatalf("entry = %q %q, %v", es[0].TrSvcID, es[0].TrAddr, err)
	}
}

func TestDiscoveryLogLengthChecks(t *testing.T) {
	if _, _, _, err := ParseDiscoveryLogHeader(make([]byte, 17)); !errors.Is(err, ErrShort) {
		t.Errorf("17-byte header err = %v", err)
	}
	if _, err := ParseDiscoveryLogEntries(make([]byte, 2047), 2); !errors.Is(err, ErrShort) {
		t.Errorf("2 entries from 2047 bytes err = %v", err)
	}
	if _, err := ParseDiscoveryLogEntries(nil, -1); err == nil {
		t.Error("n = -1 accepted")
	}
	lying := make([]byte, 2048)
	put64(lying, 8, 1<<62)
	if _, err := ParseDiscoveryLog(lying); !errors.Is(err, ErrShort) {
		t.Errorf("NUMREC 2^62 in 2048 bytes err = %v", err)
	}
	if n := allocBytes(func() { _, _ = ParseDiscoveryLog(lying) }); n > 2048 {
		t.Errorf("NUMREC 2^62: %d bytes allocated per parse", n)
	}
	if es, err := ParseDiscoveryLogEntries(nil, 0); err != nil || len(es) != 0 {
		t.Errorf("0 entries = %v, %v", es, err)
	}
}

func FuzzParseDiscoveryLog(f *testing.F) {
	l := DiscoveryLog{GenCtr: 1, NumRec: 1, Entries: []DiscoveryLogEntry{sampleEntry}}
	f.Add(l.AppendBinary(nil))
	f.Add(make([]byte, 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, _, _, err := ParseDiscoveryLogHeader(data); err != nil && len(data) >= 18 {
			t.Fatalf("header error on %d bytes: %v", len(data), err)
		}
		got, err := ParseDiscoveryLog(data)
		if err != nil {
			return
		}
		if uint64(len(got.Entries)) != got.NumRec || 1024+len(got.Entries)*1024 > len(data) {
			t.Fatalf("%d entries (NUMREC %d) from %d bytes", len(got.Entries), got.NumRec, len(data))
		}
		again, err := ParseDiscoveryLog(got.AppendBinary(nil))
		if err != nil || !reflect.DeepEqual(again.Entries, got.Entries) && len(got.Entries) > 0 {
			t.Fatalf("re-parse = %+v, %v", again, err)
		}
	})
}
