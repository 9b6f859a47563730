package pdu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"unsafe"

	"github.com/mpathfs/mpathfs/nvme"
)

// TestDigestCheckValue: CRC-32C("123456789") = 0xE3069283 (reference §1.9).
func TestDigestCheckValue(t *testing.T) {
	if got := Digest([]byte("123456789")); got != 0xE3069283 {
		t.Fatalf("Digest = %#x, want 0xE3069283", got)
	}
	// The running form used by ReadData gives the same value in pieces.
	if got := crc32Update(crc32Update(0, []byte("1234")), []byte("56789")); got != 0xE3069283 {
		t.Fatalf("running digest = %#x", got)
	}
}

func TestSizes(t *testing.T) {
	if s := unsafe.Sizeof(Header{}); s != 8 {
		t.Fatalf("Header is %d bytes; keep it small and field-ordered", s)
	}
}

func TestTypeNames(t *testing.T) {
	for _, tc := range []struct {
		t    Type
		want string
	}{{TypeICReq, "ICReq"}, {TypeR2T, "R2T"}, {8, "UNKNOWN_PDU_TYPE_0x08"}, {0x42, "UNKNOWN_PDU_TYPE_0x42"}} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("%d: %q, want %q", tc.t, got, tc.want)
		}
	}
	if FES(9).String() != "UNKNOWN_FES_0x09" || FESHeaderDigest.String() != "Header Digest Error" {
		t.Error("FES names")
	}
}

func write(t *testing.T, digests DigestFlags, fn func(w *Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.SetDigests(digests)
	if err := fn(w); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Golden vectors built by hand from the reference tables.
func TestGoldenICReq(t *testing.T) {
	got := write(t, 0, func(w *Writer) error { return w.ICReq(ICReq{HPDA: 0, Digest: DigestHeader | DigestData, MaxR2T: 0}) })
	want := make([]byte, 128)
	// §1.3: type 0, flags 0, HLEN 128, PDO 0, PLEN 128; PFV@8, HPDA@10, DGST@11, MAXR2T@12.
	copy(want, []byte{0x00, 0x00, 0x80, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 0})
	if !bytes.Equal(got, want) {
		t.Fatalf("ICReq\n got %x\nwant %x", got, want)
	}
	r := NewReader(bytes.NewReader(got), 0)
	h, err := r.Next()
	if err != nil || h.Type != TypeICReq {
		t.Fatal(h, err)
	}
	if p := r.ICReq(); p.Digest != DigestHeader|DigestData || p.MaxR2T != 0 {
		t.Fatalf("%+v", p)
	}
}

func TestGoldenICResp(t *testing.T) {
	got := write(t, 0, func(w *Writer) error { return w.ICResp(ICResp{CPDA: 0, Digest: DigestData, MaxH2CData: 0x400000}) })
	want := make([]byte, 128)
	copy(want, []byte{0x01, 0x00, 0x80, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0x00, 0x40, 0x00})
	if !bytes.Equal(got, want) {
		t.Fatalf("ICResp\n got %x\nwant %x", got, want)
	}
}

// §1.6 + §2.1: a Read of 8 blocks at LBA 0x10 on NSID 1, CID 5, SGL 0x5A len 4096, no digests.
func TestGoldenCapsuleCmdRead(t *testing.T) {
	cmd := nvme.Command{Opcode: 0x02, Flags: nvme.FlagSGL, CID: 5, NSID: 1,
		DPTR: nvme.SGL{Length: 4096, Type: nvme.SGLTransportDataBlock}, CDW10: 0x10, CDW12: 7}
	got := write(t, 0, func(w *Writer) error { return w.CapsuleCmd(&cmd, nil) })
	want := make([]byte, 72)
	copy(want, []byte{0x04, 0x00, 72, 0x00, 72, 0, 0, 0})
	sqe := want[8:]
	sqe[0], sqe[1], sqe[2] = 0x02, 0x40, 5
	sqe[4] = 1
	binary.LittleEndian.PutUint32(sqe[24+8:], 4096)
	sqe[24+15] = 0x5A
	sqe[40] = 0x10
	sqe[48] = 7
	if !bytes.Equal(got, want) {
		t.Fatalf("CapsuleCmd\n got %x\nwant %x", got, want)
	}
	var back nvme.Command
	r := NewReader(bytes.NewReader(got), 0)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	r.Command(&back)
	if back != cmd {
		t.Fatalf("round trip %+v != %+v", back, cmd)
	}
}

// §1.7 + §2.2: CQE status ANA Inaccessible 0x302 is wire 0x0604; with header digest.
func TestGoldenCapsuleRespDigest(t *testing.T) {
	cqe := nvme.Completion{DW0: 0x11223344, SQHD: 3, SQID: 1, CID: 0x1005, Status: nvme.StatusANAInaccessible}
	got := write(t, DigestHeader, func(w *Writer) error { return w.CapsuleResp(&cqe) })
	if len(got) != 28 {
		t.Fatalf("len %d, want 24+4", len(got))
	}
	want := []byte{0x05, 0x01, 24, 0, 28, 0, 0, 0, 0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0, 3, 0, 1, 0, 0x05, 0x10, 0x04, 0x06}
	if !bytes.Equal(got[:24], want) {
		t.Fatalf("CapsuleResp\n got %x\nwant %x", got[:24], want)
	}
	if d := binary.LittleEndian.Uint32(got[24:]); d != Digest(want) {
		t.Fatalf("HDGST %#x, want %#x", d, Digest(want))
	}
	r := NewReader(bytes.NewReader(got), 0)
	r.SetDigests(DigestHeader)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	var back nvme.Completion
	r.Completion(&back)
	if back != cqe {
		t.Fatalf("%+v != %+v", back, cqe)
	}
}

// §1.8: C2HData with both digests, LAST|SUCCESS; PDO = 24+4, PLEN = PDO+DATAL+4.
func TestGoldenC2HDataDigests(t *testing.T) {
	data := []byte("0123456789abcdef")
	got := write(t, DigestHeader|DigestData, func(w *Writer) error {
		return w.C2HData(Data{CCCID: 7, Offset: 4096}, data, true, true)
	})
	hdr := []byte{0x07, 0x0F, 24, 28, 48, 0, 0, 0, 7, 0, 0, 0, 0x00, 0x10, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(got[:24], hdr) {
		t.Fatalf("hdr\n got %x\nwant %x", got[:24], hdr)
	}
	if !bytes.Equal(got[28:44], data) || binary.LittleEndian.Uint32(got[44:]) != Digest(data) {
		t.Fatal("data or DDGST misplaced")
	}
	r := NewReader(bytes.NewReader(got), 1<<20)
	r.SetDigests(DigestHeader | DigestData)
	h, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if !h.Flags.Has(FlagLast|FlagSuccess) || r.DataLen() != 16 {
		t.Fatalf("%+v len %d", h, r.DataLen())
	}
	if d := r.Data(); d != (Data{CCCID: 7, Offset: 4096, Length: 16}) {
		t.Fatalf("%+v", d)
	}
	dst := make([]byte, 16)
	// Two pieces: the digest is checked after the last byte.
	if err := r.ReadData(dst[:5]); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadData(dst[5:]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst, data) {
		t.Fatal("data")
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestDataDigestMismatchIsPerCommand(t *testing.T) {
	b := write(t, DigestData, func(w *Writer) error {
		if err := w.C2HData(Data{CCCID: 1}, []byte("abcd"), true, false); err != nil {
			return err
		}
		return w.R2T(R2T{CCCID: 2, TTAG: 3, Offset: 0, Length: 8192})
	})
	b[24] ^= 0xFF // corrupt the data
	r := NewReader(bytes.NewReader(b), 1<<20)
	r.SetDigests(DigestData)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadData(make([]byte, 4)); !errors.Is(err, ErrDataDigest) {
		t.Fatalf("want ErrDataDigest, got %v", err)
	}
	h, err := r.Next()
	if err != nil || h.Type != TypeR2T || r.R2T() != (R2T{CCCID: 2, TTAG: 3, Length: 8192}) {
		t.Fatalf("stream out of sync after a data digest error: %+v %v", h, err)
	}
}

func TestCapsuleWithInCapsuleDataAndPDA(t *testing.T) {
	cmd := nvme.Command{Opcode: 0x01, CID: 9}
	data := bytes.Repeat([]byte{0xAB}, 100)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.SetPDA(7) // 32-byte alignment: PDO 96 instead of 72
	if err := w.CapsuleCmd(&cmd, data); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if b[3] != 96 || binary.LittleEndian.Uint32(b[4:]) != 196 {
		t.Fatalf("PDO %d PLEN %d", b[3], binary.LittleEndian.Uint32(b[4:]))
	}
	r := NewReader(bytes.NewReader(b), 8192)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, r.DataLen())
	if err := r.ReadData(got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("%v", err)
	}
}

func TestUnreadDataIsSkipped(t *testing.T) {
	b := write(t, DigestHeader|DigestData, func(w *Writer) error {
		if err := w.H2CData(Data{CCCID: 1, TTAG: 2}, make([]byte, 1000), true); err != nil {
			return err
		}
		return w.CapsuleResp(&nvme.Completion{CID: 4})
	})
	r := NewReader(bytes.NewReader(b), 4096)
	r.SetDigests(DigestHeader | DigestData)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadData(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	h, err := r.Next()
	if err != nil || h.Type != TypeCapsuleResp {
		t.Fatal(h, err)
	}
}

func TestTermReqRoundTrip(t *testing.T) {
	bad := bytes.Repeat([]byte{0x42}, 200)
	b := write(t, DigestHeader, func(w *Writer) error {
		return w.TermReq(TypeC2HTermReq, TermReq{FES: FESInvalidHeaderField, FEI: 2, Header: bad})
	})
	if len(b) != MaxTermReqPLEN {
		t.Fatalf("PLEN %d, want %d (header copy truncated to 128)", len(b), MaxTermReqPLEN)
	}
	// FEI is at offset 10, unaligned (reference §1.5, §9.4).
	if binary.LittleEndian.Uint32(b[10:]) != 2 {
		t.Fatal("FEI not at offset 10")
	}
	r := NewReader(bytes.NewReader(b), 0)
	r.SetDigests(DigestHeader) // TermReqs are never digested
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	tr, err := r.TermReq()
	if err != nil || tr.FES != FESInvalidHeaderField || tr.FEI != 2 || len(tr.Header) != 128 {
		t.Fatalf("%+v %v", tr, err)
	}
}

// Protocol violations are classified, fatal errors carrying FES/FEI.
func TestProtocolErrors(t *testing.T) {
	resp := func(d DigestFlags) []byte {
		return write(t, d, func(w *Writer) error { return w.CapsuleResp(&nvme.Completion{CID: 1}) })
	}
	c2h := func() []byte {
		return write(t, 0, func(w *Writer) error { return w.C2HData(Data{CCCID: 1}, make([]byte, 64), true, false) })
	}
	cases := []struct {
		name    string
		digests DigestFlags
		stream  func() []byte
		fes     FES
		fei     uint32
	}{
		{"unknown PDU type", 0, func() []byte { b := resp(0); b[0] = 8; return b }, FESInvalidHeaderField, 0},
		{"wrong HLEN for CapsuleResp", 0, func() []byte { b := resp(0); b[2] = 72; return b }, FESInvalidHeaderField, 2},
		{"header digest negotiated but HDGSTF clear", DigestHeader, func() []byte { return resp(0) }, FESInvalidHeaderField, 1},
		{"HDGSTF set without negotiation", 0, func() []byte { return resp(DigestHeader) }, FESInvalidHeaderField, 1},
		{"header digest mismatch", DigestHeader, func() []byte { b := resp(DigestHeader); b[12] ^= 1; return b }, FESHeaderDigest, 0},
		{"CapsuleResp PLEN too long", 0, func() []byte { b := resp(0); b[4] = 30; return b }, FESInvalidHeaderField, 4},
		{"ICResp PLEN not 128", 0, func() []byte {
			b := write(t, 0, func(w *Writer) error { return w.ICResp(ICResp{MaxH2CData: 4096}) })
			b[4] = 127
			return b
		}, FESInvalidHeaderField, 4},
		{"C2HData DATAL disagrees with PLEN", 0, func() []byte { b := c2h(); b[16] = 63; return b }, FESInvalidHeaderField, 16},
		{"C2HData PDO inside header", 0, func() []byte { b := c2h(); b[3] = 8; return b }, FESInvalidHeaderField, 3},
		{"C2HData more than the limit", 0, func() []byte {
			return write(t, 0, func(w *Writer) error { return w.C2HData(Data{CCCID: 1}, make([]byte, 8192), true, false) })
		}, FESR2TLimit, 4},
		{"TermReq PLEN over 152", 0, func() []byte {
			b := write(t, 0, func(w *Writer) error { return w.TermReq(TypeC2HTermReq, TermReq{FES: 1}) })
			b[4] = 153
			return b
		}, FESInvalidHeaderField, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.stream()), 4096)
			r.SetDigests(tc.digests)
			_, err := r.Next()
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("want *ProtocolError, got %v", err)
			}
			if pe.FES != tc.fes || pe.FEI != tc.fei {
				t.Fatalf("FES %v FEI %d, want %v %d (%v)", pe.FES, pe.FEI, tc.fes, tc.fei, pe)
			}
			if len(pe.Header) == 0 {
				t.Fatal("no offending header for the TermReq")
			}
		})
	}
}

func TestTruncatedStream(t *testing.T) {
	b := write(t, 0, func(w *Writer) error { return w.C2HData(Data{CCCID: 1}, make([]byte, 64), true, false) })
	for n := 1; n < len(b); n++ {
		r := NewReader(bytes.NewReader(b[:n]), 4096)
		_, err := r.Next()
		if err == nil {
			err = r.ReadData(make([]byte, 64))
		}
		if err == nil {
			t.Fatalf("truncated at %d: no error", n)
		}
	}
}

// The writer does one vectored write and never copies data; over TCP the
// bytes arrive intact and allocation-free.
func TestWriterOverTCPNoAllocs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback TCP: %v", err)
	}
	defer ln.Close()
	done := make(chan []byte)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- nil
			return
		}
		b, _ := io.ReadAll(c)
		done <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(c)
	w.SetDigests(DigestHeader | DigestData)
	data := bytes.Repeat([]byte{1, 2, 3, 4}, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		if err := w.H2CData(Data{CCCID: 1, TTAG: 1}, data, true); err != nil {
			t.Fatal(err)
		}
	})
	c.Close()
	got := <-done
	if allocs != 0 {
		t.Errorf("H2CData allocates %.1f times per PDU", allocs)
	}
	r := NewReader(bytes.NewReader(got), 1<<20)
	r.SetDigests(DigestHeader | DigestData)
	n := 0
	buf := make([]byte, len(data))
	for {
		if _, err := r.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if err := r.ReadData(buf); err != nil || !bytes.Equal(buf, data) {
			t.Fatalf("pdu %d: %v", n, err)
		}
		n++
	}
	if n != 101 { // AllocsPerRun runs once more to warm up
		t.Fatalf("read %d PDUs, want 101", n)
	}
}

func TestWriterRoundTripAll(t *testing.T) {
	for _, d := range []DigestFlags{0, DigestHeader, DigestData, DigestHeader | DigestData} {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		w.SetDigests(d)
		cmd := nvme.Command{Opcode: 1, CID: 3, NSID: 1, DPTR: nvme.SGL{Length: 5, Type: nvme.SGLDataBlockOffset}}
		must(t, w.CapsuleCmd(&cmd, []byte("hello")))
		must(t, w.R2T(R2T{CCCID: 3, TTAG: 9, Offset: 0, Length: 5}))
		must(t, w.H2CData(Data{CCCID: 3, TTAG: 9}, []byte("hello"), true))
		must(t, w.CapsuleResp(&nvme.Completion{CID: 3}))
		r := NewReader(&buf, 1<<16)
		r.SetDigests(d)
		var types []Type
		for {
			h, err := r.Next()
			if err == io.EOF {
				break
			}
			must(t, err)
			types = append(types, h.Type)
			if r.DataLen() > 0 {
				b := make([]byte, r.DataLen())
				must(t, r.ReadData(b))
				if string(b) != "hello" {
					t.Fatalf("digests %d: data %q", d, b)
				}
			}
		}
		if want := []Type{TypeCapsuleCmd, TypeR2T, TypeH2CData, TypeCapsuleResp}; !reflect.DeepEqual(types, want) {
			t.Fatalf("digests %d: %v", d, types)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
