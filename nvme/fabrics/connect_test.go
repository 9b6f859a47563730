package fabrics

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
)

func sqe(c nvme.Command) []byte {
	b := make([]byte, nvme.SQESize)
	c.Marshal(b)
	return b
}

// Reference §3 and §3.1: byte 0 = 0x7F, byte 4 = FCTYPE 0x01, RECFMT @40,
// QID @42, SQSIZE @44, CATTR @46, KATO (ms) @48.
func TestConnectCommandGolden(t *testing.T) {
	want := make([]byte, nvme.SQESize)
	want[0] = 0x7F
	want[1] = 0x40
	want[4] = 0x01
	binary.LittleEndian.PutUint16(want[42:], 0)
	binary.LittleEndian.PutUint16(want[44:], 31)
	binary.LittleEndian.PutUint32(want[48:], 5000)
	if got := sqe(NewConnect(0, AdminQueueDepth-1, 5*time.Second, false)); !bytes.Equal(got, want) {
		t.Fatalf("admin Connect:\n got %x\nwant %x", got, want)
	}

	io := NewConnect(3, 127, 0, true)
	b := sqe(io)
	if binary.LittleEndian.Uint16(b[42:]) != 3 || binary.LittleEndian.Uint16(b[44:]) != 127 || b[46] != 0x04 || binary.LittleEndian.Uint32(b[48:]) != 0 {
		t.Fatalf("I/O Connect bytes 40..51 = %x", b[40:52])
	}
	var back nvme.Command
	if err := back.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if back.FCType() != nvme.FabricsConnect {
		t.Fatalf("FCType = %v", back.FCType())
	}
	qid, sqsize, kato, cattr, recfmt := ParseConnect(&back)
	if qid != 3 || sqsize != 127 || kato != 0 || cattr != CATTRDisableSQFlow || recfmt != 0 {
		t.Fatalf("ParseConnect = %d %d %v %#x %d", qid, sqsize, kato, cattr, recfmt)
	}
	if c := NewConnect(0, 31, 1500*time.Millisecond, false); c.CDW12 != 1500 {
		t.Fatalf("KATO 1.5 s = %d ms", c.CDW12)
	}
	if c := NewConnect(0, 31, -time.Second, false); c.CDW12 != 0 {
		t.Fatalf("negative KATO = %d ms, want 0", c.CDW12)
	}
}

// Reference §3.1 Connect data: HOSTID @0, CNTLID @16, SUBNQN @256, HOSTNQN @512.
func TestConnectDataGolden(t *testing.T) {
	hostID := [16]byte{0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	want := make([]byte, ConnectDataSize)
	copy(want[0:], hostID[:])
	binary.LittleEndian.PutUint16(want[16:], 0xFFFF)
	copy(want[256:], "nqn.2014-08.org.example:subsys1")
	copy(want[512:], "nqn.2014-08.org.nvmexpress:uuid:deadbeef-0102-0304-0506-0708090a0b0c")

	d := ConnectData{HostID: hostID, CNTLID: CNTLIDDynamic, SubNQN: "nqn.2014-08.org.example:subsys1",
		HostNQN: "nqn.2014-08.org.nvmexpress:uuid:deadbeef-0102-0304-0506-0708090a0b0c"}
	got := bytes.Repeat([]byte{0xAA}, ConnectDataSize)
	d.Marshal(got)
	if !bytes.Equal(got, want) {
		t.Fatalf("Connect data:\n got %x\nwant %x", got, want)
	}
	back, err := ParseConnectData(want)
	if err != nil || back != d {
		t.Fatalf("ParseConnectData = %+v, %v", back, err)
	}
	if _, err := ParseConnectData(want[:1023]); !errors.Is(err, nvme.ErrShort) {
		t.Fatalf("1023 bytes err = %v", err)
	}
}

// The Linux target terminates each NQN field at byte 255 whatever it holds.
func TestConnectDataUnterminatedNQN(t *testing.T) {
	b := bytes.Repeat([]byte{'a'}, ConnectDataSize)
	d, err := ParseConnectData(b)
	if err != nil || len(d.SubNQN) != 255 || len(d.HostNQN) != 255 {
		t.Fatalf("= %d/%d bytes, %v", len(d.SubNQN), len(d.HostNQN), err)
	}
}

// Reference §3.2: ATTRIB @40 (0 = 4 bytes, 1 = 8 bytes), OFST @44, VALUE @48.
func TestPropertyCommandsGolden(t *testing.T) {
	want := make([]byte, nvme.SQESize)
	want[0], want[1], want[4] = 0x7F, 0x40, 0x04
	want[40] = 1
	if got := sqe(NewPropertyGet(RegCAP, true)); !bytes.Equal(got, want) {
		t.Fatalf("Property Get CAP:\n got %x\nwant %x", got, want)
	}
	want = make([]byte, nvme.SQESize)
	want[0], want[1], want[4] = 0x7F, 0x40, 0x00
	want[44] = 0x14
	binary.LittleEndian.PutUint32(want[48:], 0x00460001)
	set := NewPropertySet(RegCC, 0x00460001, false)
	if got := sqe(set); !bytes.Equal(got, want) {
		t.Fatalf("Property Set CC:\n got %x\nwant %x", got, want)
	}
	if off, size8, v := ParseProperty(&set); off != RegCC || size8 || v != 0x00460001 {
		t.Fatalf("ParseProperty = %#x %v %#x", off, size8, v)
	}
	get := NewPropertyGet(RegCSTS, false)
	if off, size8, _ := ParseProperty(&get); off != RegCSTS || size8 || get.FCType() != nvme.FabricsPropertyGet {
		t.Fatalf("ParseProperty(get CSTS) = %#x %v", off, size8)
	}
	if v := PropertyValue(&nvme.Completion{DW0: 0x0F0103FF, DW1: 0x20}); v != 0x200F0103FF {
		t.Fatalf("PropertyValue = %#x", v)
	}
}

func FuzzParseConnectData(f *testing.F) {
	b := make([]byte, ConnectDataSize)
	(&ConnectData{CNTLID: 0xFFFF, SubNQN: "nqn.a", HostNQN: "nqn.b"}).Marshal(b)
	f.Add(b)
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseConnectData(data)
		if err != nil {
			if len(data) >= ConnectDataSize {
				t.Fatalf("error on %d bytes: %v", len(data), err)
			}
			return
		}
		out := make([]byte, ConnectDataSize)
		d.Marshal(out)
		d2, err := ParseConnectData(out)
		if err != nil || d2 != d {
			t.Fatalf("re-parse = %+v, %v; want %+v", d2, err, d)
		}
	})
}

func TestAuthCommands(t *testing.T) {
	c := NewAuthSend(72)
	var b [nvme.SQESize]byte
	c.Marshal(b[:])
	// struct nvmf_auth_send_command: fctype 4, spsp0 41, spsp1 42, secp 43, tl 44.
	if b[0] != nvme.OpFabrics || b[4] != 0x05 || b[40] != 0 || b[41] != 1 || b[42] != 1 || b[43] != 0xE9 || b[44] != 72 {
		t.Fatalf("auth send %x", b)
	}
	r := NewAuthReceive(4096)
	if secp, s0, s1, al := ParseAuth(&r); r.FCType() != nvme.FabricsAuthRecv || secp != 0xE9 || s0 != 1 || s1 != 1 || al != 4096 {
		t.Fatalf("auth receive %+v", r)
	}
}
