package tcp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/mpath/mpathtest"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

// TestICReq checks the ICReq a Linux host sends: PFV 0, HPDA 0, MAXR2T 0,
// digest bits as configured (reference §1.3).
func TestICReq(t *testing.T) {
	for _, c := range []struct{ hd, dd bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		f := newFakeCtrl(t)
		cfg := Config{HdrDigest: c.hd, DataDigest: c.dd}
		ch := dial(t, f, cfg)
		f.accept()
		req := f.wantICReq()
		want := pdu.ICReq{Digest: goodICResp(cfg).Digest}
		if req != want {
			t.Errorf("digests %v/%v: ICReq %+v, want %+v", c.hd, c.dd, req, want)
		}
		f.sendICResp(goodICResp(cfg))
		res := <-ch
		if res.err != nil {
			t.Fatalf("Dial: %v", res.err)
		}
		if got := res.q.MaxH2CData(); got != 4096 {
			t.Errorf("MaxH2CData = %d, want 4096", got)
		}
		res.q.Close()
	}
}

// TestICRespChecks: every field Linux checks in nvme_tcp_init_connection
// makes Dial fail when wrong.
func TestICRespChecks(t *testing.T) {
	icresp := func(mod func(b []byte)) []byte {
		b := rawPDU(pdu.TypeICResp, 0, 128, 0, 128, nil)
		binary.LittleEndian.PutUint32(b[12:], 4096)
		mod(b)
		return b
	}
	tests := []struct {
		name    string
		cfg     Config
		resp    []byte
		wantErr string
	}{
		{"wrong type", Config{}, rawPDU(pdu.TypeCapsuleResp, 0, 24, 0, 24, nil), "type CapsuleResp"},
		{"PLEN 132", Config{}, icresp(func(b []byte) { binary.LittleEndian.PutUint32(b[4:], 132) }), "PLEN"},
		{"HLEN 24", Config{}, icresp(func(b []byte) { b[2] = 24 }), "HLEN"},
		{"PFV 1", Config{}, icresp(func(b []byte) { b[8] = 1 }), "PFV"},
		{"header digest not requested", Config{}, icresp(func(b []byte) { b[11] = 1 }), "digests"},
		{"data digest dropped", Config{HdrDigest: true, DataDigest: true}, icresp(func(b []byte) { b[11] = 1 }), "digests"},
		{"header digest dropped", Config{HdrDigest: true}, icresp(func(b []byte) { b[11] = 0 }), "digests"},
		{"CPDA 1", Config{}, icresp(func(b []byte) { b[10] = 1 }), "CPDA"},
		{"MAXH2CDATA 2048", Config{}, icresp(func(b []byte) { binary.LittleEndian.PutUint32(b[12:], 2048) }), "MAXH2CDATA"},
		{"MAXH2CDATA 0", Config{}, icresp(func(b []byte) { binary.LittleEndian.PutUint32(b[12:], 0) }), "MAXH2CDATA"},
		{"MAXH2CDATA not multiple of 4", Config{}, icresp(func(b []byte) { binary.LittleEndian.PutUint32(b[12:], 8194) }), "MAXH2CDATA"},
		{"EOF", Config{}, nil, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCtrl(t)
			ch := dial(t, f, tt.cfg)
			f.accept()
			f.wantICReq()
			if tt.resp != nil {
				f.sendRaw(tt.resp)
			} else {
				f.conn.Close()
			}
			res := <-ch
			if res.err == nil {
				res.q.Close()
				t.Fatalf("Dial succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(res.err.Error(), tt.wantErr) {
				t.Errorf("Dial error %q, want it to contain %q", res.err, tt.wantErr)
			}
		})
	}
	t.Run("good with MAXH2CDATA 4 MiB and both digests", func(t *testing.T) {
		f := newFakeCtrl(t)
		cfg := Config{HdrDigest: true, DataDigest: true}
		ch := dial(t, f, cfg)
		f.accept()
		f.wantICReq()
		f.sendRaw(icresp(func(b []byte) { b[11] = 3; binary.LittleEndian.PutUint32(b[12:], 4<<20) }))
		res := <-ch
		if res.err != nil {
			t.Fatalf("Dial: %v", res.err)
		}
		defer res.q.Close()
		if res.q.MaxH2CData() != 4<<20 {
			t.Errorf("MaxH2CData = %d", res.q.MaxH2CData())
		}
	})
}

// TestDialSilentTarget: a target that accepts TCP and never answers (a
// dead path of the kernel target harness) fails Dial after ICRespTimeout.
func TestDialSilentTarget(t *testing.T) {
	f := newFakeCtrl(t)
	start := time.Now()
	ch := dial(t, f, Config{ICRespTimeout: 300 * time.Millisecond})
	f.accept()
	f.wantICReq()
	res := <-ch
	if res.err == nil {
		res.q.Close()
		t.Fatal("Dial succeeded against a silent target")
	}
	if !strings.Contains(res.err.Error(), "no ICResp within 300ms") {
		t.Errorf("error %q does not say the ICResp timed out", res.err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("Dial failed after %v, want about 300ms", d)
	}
}

// TestDialContextCancel: Dial honours ctx while waiting for ICResp.
func TestDialContextCancel(t *testing.T) {
	f := newFakeCtrl(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() {
		q, err := Dial(ctx, Config{Addr: f.addr()})
		if err == nil {
			q.Close()
		}
		ch <- err
	}()
	f.accept()
	f.wantICReq()
	cancel()
	if err := <-ch; !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial error %v, want context.Canceled", err)
	}
}

func TestDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback TCP: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Dial(context.Background(), Config{Addr: addr}); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("Dial to a closed port: %v", err)
	}
}

func TestDialHostTrAddr(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{HostTrAddr: "127.0.0.1"})
	if ip := q.LocalAddr().(*net.TCPAddr).IP; !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("local address %v, want 127.0.0.1", ip)
	}
	if _, err := Dial(context.Background(), Config{Addr: f.addr(), HostTrAddr: "not-an-ip"}); err == nil {
		t.Error("Dial with a bad host_traddr succeeded")
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// TestReadOneC2H: a read is a CapsuleCmd with SGL 0x5A and the length,
// one C2HData and a CapsuleResp (reference §1.13).
func TestReadOneC2H(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{})
	buf := make([]byte, 8192)
	ch := goExec(context.Background(), q, readCmd(1, 16, 16), buf)
	c, inCap := f.wantCmd()
	if inCap != nil {
		t.Errorf("read carried %d bytes in-capsule", len(inCap))
	}
	if c.Flags != nvme.FlagSGL || c.DPTR != (nvme.SGL{Length: 8192, Type: nvme.SGLTransportDataBlock}) {
		t.Errorf("read SQE flags %#x DPTR %+v", c.Flags, c.DPTR)
	}
	if c.Opcode != uint8(nvme.IORead) || c.NSID != 1 || c.CDW10 != 16 || c.CDW12 != 15 {
		t.Errorf("SQE fields changed: %+v", c)
	}
	want := pattern(8192, 1)
	f.sendC2H(c.CID, 0, want, true, false)
	f.sendResp(c.CID, 0, 42)
	r := await(t, ch)
	if r.err != nil || r.cqe.DW0 != 42 || r.cqe.CID != c.CID || r.cqe.Status != 0 {
		t.Fatalf("Exec = %+v, %v", r.cqe, r.err)
	}
	if !bytes.Equal(buf, want) {
		t.Error("read data differs")
	}
	if q.Inflight() != 0 {
		t.Errorf("Inflight = %d after completion", q.Inflight())
	}
}

// TestReadSeveralC2H: data arrives in several PDUs, in order, placed at
// DATAO straight into the buffer.
func TestReadSeveralC2H(t *testing.T) {
	for _, digests := range []bool{false, true} {
		f := newFakeCtrl(t)
		q := connect(t, f, Config{HdrDigest: digests, DataDigest: digests})
		buf := make([]byte, 10000)
		ch := goExec(context.Background(), q, readCmd(1, 0, 20), buf)
		c, _ := f.wantCmd()
		want := pattern(len(buf), 3)
		f.sendC2H(c.CID, 0, want[:4000], false, false)
		f.sendC2H(c.CID, 4000, want[4000:4004], false, false)
		f.sendC2H(c.CID, 4004, want[4004:], true, false)
		f.sendResp(c.CID, 0, 0)
		r := await(t, ch)
		if r.err != nil || r.cqe.Status != 0 {
			t.Fatalf("digests %v: Exec = %+v, %v", digests, r.cqe, r.err)
		}
		if !bytes.Equal(buf, want) {
			t.Errorf("digests %v: read data differs", digests)
		}
	}
}

// TestReadSuccessFlag: C2HData with LAST|SUCCESS completes the command
// without a CapsuleResp.
func TestReadSuccessFlag(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{})
	buf := make([]byte, 4096)
	ch := goExec(context.Background(), q, readCmd(1, 0, 8), buf)
	c, _ := f.wantCmd()
	want := pattern(4096, 9)
	f.sendC2H(c.CID, 0, want[:1024], false, false)
	f.sendC2H(c.CID, 1024, want[1024:], true, true)
	r := await(t, ch)
	if r.err != nil || r.cqe.Status != 0 || r.cqe.CID != c.CID {
		t.Fatalf("Exec = %+v, %v", r.cqe, r.err)
	}
	if !bytes.Equal(buf, want) {
		t.Error("read data differs")
	}
	select {
	case <-q.Dead():
		t.Fatalf("queue died: %v", q.Err())
	default:
	}
}

// TestSuccessWithoutLast: SUCCESS is only valid with LAST_PDU; Linux runs
// error recovery otherwise.
func TestSuccessWithoutLast(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{})
	ch := goExec(context.Background(), q, readCmd(1, 0, 8), make([]byte, 4096))
	c, _ := f.wantCmd()
	psh := make([]byte, 16)
	binary.LittleEndian.PutUint16(psh[0:], c.CID)
	binary.LittleEndian.PutUint32(psh[8:], 4096)
	f.sendRaw(append(rawPDU(pdu.TypeC2HData, pdu.FlagSuccess, 24, 24, 24+4096, psh), make([]byte, 4096)...))
	r := await(t, ch)
	if !isQueueDead(r.err) || !strings.Contains(r.err.Error(), "SUCCESS without LAST") {
		t.Fatalf("Exec error %v, want queue dead: SUCCESS without LAST", r.err)
	}
}

// TestC2HDataChecks: out-of-order DATAO, data beyond the command's length,
// C2HData for a write: each is fatal.
func TestC2HDataChecks(t *testing.T) {
	tests := []struct {
		name    string
		send    func(f *fakeCtrl, cid uint16)
		write   bool
		wantErr string
	}{
		{"DATAO skips", func(f *fakeCtrl, cid uint16) { f.sendC2H(cid, 512, make([]byte, 512), false, false) }, false, "DATAO 512, expected 0"},
		{"DATAO repeats", func(f *fakeCtrl, cid uint16) {
			f.sendC2H(cid, 0, make([]byte, 512), false, false)
			f.sendC2H(cid, 0, make([]byte, 512), false, false)
		}, false, "DATAO 0, expected 512"},
		{"too much data", func(f *fakeCtrl, cid uint16) { f.sendC2H(cid, 0, make([]byte, 4100), true, false) }, false, "exceed"},
		{"C2HData for a write", func(f *fakeCtrl, cid uint16) { f.sendC2H(cid, 0, make([]byte, 512), true, false) }, true, "reads no data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCtrl(t)
			q := connect(t, f, Config{})
			cmd := readCmd(1, 0, 8)
			if tt.write {
				cmd = writeCmd(1, 0, 8)
			}
			ch := goExec(context.Background(), q, cmd, make([]byte, 4096))
			c, _ := f.wantCmd()
			tt.send(f, c.CID)
			r := await(t, ch)
			if !isQueueDead(r.err) || !strings.Contains(r.err.Error(), tt.wantErr) {
				t.Fatalf("Exec error %v, want queue dead with %q", r.err, tt.wantErr)
			}
			var pe *pdu.ProtocolError
			if !errors.As(q.Err(), &pe) {
				t.Errorf("Err() = %v, want a *pdu.ProtocolError", q.Err())
			}
		})
	}
}

// TestWriteR2TSplit: a 20 KiB write with MAXH2CDATA 4096 is answered with
// H2CData PDUs of at most 4096 bytes, LAST on the last PDU of each R2T
// (reference §1.11, §1.13).
func TestWriteR2TSplit(t *testing.T) {
	for _, digests := range []bool{false, true} {
		f := newFakeCtrl(t)
		q := connect(t, f, Config{InCapsuleMax: 4096, HdrDigest: digests, DataDigest: digests})
		data := pattern(20<<10, 5)
		ch := goExec(context.Background(), q, writeCmd(1, 0, 40), data)
		c, inCap := f.wantCmd()
		if inCap != nil || c.DPTR != (nvme.SGL{Length: 20 << 10, Type: nvme.SGLTransportDataBlock}) {
			t.Fatalf("write SQE DPTR %+v, in-capsule %d bytes", c.DPTR, len(inCap))
		}
		got := make([]byte, 0, len(data))
		// Two R2T windows: 0..6000 and 6000..20480.
		windows := [][2]uint32{{0, 6000}, {6000, 20<<10 - 6000}}
		for i, win := range windows {
			ttag := uint16(10 + i)
			f.sendR2T(c.CID, ttag, win[0], win[1])
			off := win[0]
			for off < win[0]+win[1] {
				h, d, b := f.wantH2C()
				if d.CCCID != c.CID || d.TTAG != ttag || d.Offset != off {
					t.Fatalf("H2CData %+v, want CCCID %#x TTAG %d DATAO %d", d, c.CID, ttag, off)
				}
				if len(b) > 4096 {
					t.Fatalf("H2CData of %d bytes exceeds MAXH2CDATA 4096", len(b))
				}
				off += uint32(len(b))
				wantLast := off == win[0]+win[1]
				if h.Flags.Has(pdu.FlagLast) != wantLast {
					t.Fatalf("H2CData at %d: LAST=%v, want %v", d.Offset, !wantLast, wantLast)
				}
				got = append(got, b...)
			}
		}
		f.sendResp(c.CID, 0, 0)
		if r := await(t, ch); r.err != nil || r.cqe.Status != 0 {
			t.Fatalf("Exec = %+v, %v", r.cqe, r.err)
		}
		if !bytes.Equal(got, data) {
			t.Error("written data differs")
		}
	}
}

// TestR2TChecks: R2TL 0, a window beyond the data, a window going back,
// an R2T for a read, and a second outstanding R2T are all fatal.
func TestR2TChecks(t *testing.T) {
	tests := []struct {
		name    string
		read    bool
		script  func(f *fakeCtrl, cid uint16)
		wantErr string
	}{
		{"R2TL 0", false, func(f *fakeCtrl, cid uint16) { f.sendR2T(cid, 1, 0, 0) }, "R2TL 0"},
		{"beyond length", false, func(f *fakeCtrl, cid uint16) { f.sendR2T(cid, 1, 4096, 8192) }, "exceed"},
		{"going back", false, func(f *fakeCtrl, cid uint16) {
			f.sendR2T(cid, 1, 0, 4096)
			f.wantH2C()
			f.sendR2T(cid, 1, 2048, 1024)
		}, "below"},
		{"R2T for a read", true, func(f *fakeCtrl, cid uint16) { f.sendR2T(cid, 1, 0, 512) }, "no data to send"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCtrl(t)
			q := connect(t, f, Config{})
			cmd := writeCmd(1, 0, 16)
			if tt.read {
				cmd = readCmd(1, 0, 16)
			}
			ch := goExec(context.Background(), q, cmd, make([]byte, 8192))
			c, _ := f.wantCmd()
			tt.script(f, c.CID)
			r := await(t, ch)
			if !isQueueDead(r.err) || !strings.Contains(r.err.Error(), tt.wantErr) {
				t.Fatalf("Exec error %v, want queue dead with %q", r.err, tt.wantErr)
			}
		})
	}
}

// TestInCapsuleWrite: writes up to InCapsuleMax go in the capsule with SGL
// type 0x01; Fabrics commands use 8 KiB even on a queue without in-capsule
// data (reference §1.11, §1.12).
func TestInCapsuleWrite(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{InCapsuleMax: 0})
	connect := nvme.Command{Opcode: nvme.OpFabrics}
	connect.SetFCType(nvme.FabricsConnect)
	data := pattern(1024, 2)
	ch := goExec(context.Background(), q, connect, data)
	c, inCap := f.wantCmd()
	if c.DPTR != (nvme.SGL{Length: 1024, Type: nvme.SGLDataBlockOffset}) || !bytes.Equal(inCap, data) {
		t.Fatalf("Connect DPTR %+v, in-capsule %d bytes", c.DPTR, len(inCap))
	}
	if c.FCType() != nvme.FabricsConnect {
		t.Errorf("FCTYPE %v", c.FCType())
	}
	f.sendResp(c.CID, 0, 7)
	if r := await(t, ch); r.err != nil || r.cqe.DW0 != 7 {
		t.Fatalf("Connect = %+v, %v", r.cqe, r.err)
	}

	q.SetInCapsuleMax(8192)
	data = pattern(8192, 4)
	ch = goExec(context.Background(), q, writeCmd(1, 0, 16), data)
	c, inCap = f.wantCmd()
	if c.DPTR != (nvme.SGL{Length: 8192, Type: nvme.SGLDataBlockOffset}) || !bytes.Equal(inCap, data) {
		t.Fatalf("write DPTR %+v, in-capsule %d bytes", c.DPTR, len(inCap))
	}
	f.sendResp(c.CID, nvme.StatusLBARange, 0)
	if r := await(t, ch); r.err != nil || r.cqe.Status != nvme.StatusLBARange {
		t.Fatalf("write = %+v, %v; want status returned in the completion", r.cqe, r.err)
	}

	// One byte over the limit goes by R2T.
	ch = goExec(context.Background(), q, writeCmd(1, 0, 17), make([]byte, 8193))
	c, inCap = f.wantCmd()
	if c.DPTR.Type != nvme.SGLTransportDataBlock || inCap != nil {
		t.Fatalf("8193-byte write DPTR %+v, in-capsule %d", c.DPTR, len(inCap))
	}
	f.sendResp(c.CID, 0, 0)
	await(t, ch)
}

// TestNoDataCommand: a command without data has SGL 0x5A length 0; data
// for a no-data opcode and bidirectional opcodes are refused up front.
func TestNoDataCommand(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{})
	ch := goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.AdminKeepAlive)}, nil)
	c, _ := f.wantCmd()
	if c.DPTR != (nvme.SGL{Type: nvme.SGLTransportDataBlock}) {
		t.Errorf("Keep Alive DPTR %+v", c.DPTR)
	}
	f.sendResp(c.CID, 0, 0)
	if r := await(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
	if _, err := q.Exec(context.Background(), &nvme.Command{Opcode: uint8(nvme.IOFlush)}, make([]byte, 8)); err == nil {
		t.Error("Flush with data accepted")
	}
	if _, err := q.Exec(context.Background(), &nvme.Command{Opcode: 0x83}, make([]byte, 8)); err == nil {
		t.Error("bidirectional opcode accepted")
	}
	if q.Inflight() != 0 {
		t.Errorf("Inflight = %d", q.Inflight())
	}
}

// TestOutOfOrderCompletions: completions are matched by CID in any order.
func TestOutOfOrderCompletions(t *testing.T) {
	const n = 8
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: n})
	chans := make([]<-chan execResult, n)
	for i := range chans {
		chans[i] = goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.IOFlush), CDW10: uint32(i)}, nil)
	}
	cids := make(map[uint32]uint16)
	seen := make(map[uint16]bool)
	for range n {
		c, _ := f.wantCmd()
		if seen[c.CID] {
			t.Fatalf("CID %#x used twice while in flight", c.CID)
		}
		seen[c.CID] = true
		cids[c.CDW10] = c.CID
	}
	if q.Inflight() != n {
		t.Errorf("Inflight = %d, want %d", q.Inflight(), n)
	}
	for i := n - 1; i >= 0; i-- {
		f.sendResp(cids[uint32(i)], 0, uint32(i)+100)
	}
	for i, ch := range chans {
		r := await(t, ch)
		if r.err != nil || r.cqe.DW0 != uint32(i)+100 {
			t.Errorf("command %d: %+v, %v", i, r.cqe, r.err)
		}
	}
}

// TestCIDGeneration: a reused tag gets the next generation in CID bits
// 15:12; a CQE with the old generation is fatal.
func TestCIDGeneration(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: 1})
	var prev uint16
	for i := range 20 {
		ch := goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil)
		c, _ := f.wantCmd()
		if c.CID&0xFFF != 0 {
			t.Fatalf("CID %#x on a depth-1 queue", c.CID)
		}
		if i > 0 && c.CID>>12 != (prev>>12+1)&0xF {
			t.Fatalf("CID %#x after %#x: generation not incremented", c.CID, prev)
		}
		prev = c.CID
		f.sendResp(c.CID, 0, 0)
		await(t, ch)
	}
	ch := goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil)
	c, _ := f.wantCmd()
	f.sendResp(c.CID^0x1000, 0, 0)
	if r := await(t, ch); !isQueueDead(r.err) || !strings.Contains(r.err.Error(), "generation") {
		t.Fatalf("Exec error %v, want queue dead: generation mismatch", r.err)
	}
}

// TestUnknownCIDKillsQueue: a CQE for a CID not in flight kills the queue
// and every in-flight command fails exactly once with ErrQueueDead.
func TestUnknownCIDKillsQueue(t *testing.T) {
	const n = 6
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: 16})
	chans := make([]<-chan execResult, n)
	bufs := make([][]byte, n)
	for i := range chans {
		bufs[i] = make([]byte, 4096)
		chans[i] = goExec(context.Background(), q, readCmd(1, uint64(i), 8), bufs[i])
	}
	for range n {
		f.wantCmd()
	}
	f.sendResp(15, 0, 0) // tag 15 is not in flight
	for i, ch := range chans {
		r := await(t, ch)
		if !isQueueDead(r.err) || !strings.Contains(r.err.Error(), "not in flight") {
			t.Errorf("command %d: %v, want queue dead: CID not in flight", i, r.err)
		}
		select {
		case r := <-ch:
			t.Errorf("command %d completed twice: %+v", i, r)
		default:
		}
	}
	awaitDead(t, q)
	if q.Inflight() != 0 || len(q.free) != 16 {
		t.Errorf("Inflight = %d, %d free tags after the queue died; want 0 and 16", q.Inflight(), len(q.free))
	}
	if _, err := q.Exec(context.Background(), &nvme.Command{}, nil); !isQueueDead(err) {
		t.Errorf("Exec on a dead queue: %v", err)
	}
	// The host reports the violation in an H2CTermReq (FES 1, FEI 8: the
	// CID field) carrying the offending header, then closes: EOF.
	f.next(pdu.TypeH2CTermReq)
	tr, err := f.r.TermReq()
	if err != nil || tr.FES != pdu.FESInvalidHeaderField || tr.FEI != 8 {
		t.Errorf("H2CTermReq %+v, %v; want FES 1 FEI 8", tr, err)
	}
	if len(tr.Header) < pdu.CapsuleRespHLen || pdu.Type(tr.Header[0]) != pdu.TypeCapsuleResp {
		t.Errorf("H2CTermReq carries %x, want the offending CapsuleResp header", tr.Header)
	}
	if _, err := f.r.Next(); err == nil {
		t.Error("controller can still read from the connection")
	}
}

// TestUnexpectedPDU: a PDU type a host never receives is fatal.
func TestUnexpectedPDU(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{})
	ch := goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil)
	f.wantCmd()
	if err := f.w.ICResp(pdu.ICResp{MaxH2CData: 4096}); err != nil {
		t.Fatal(err)
	}
	if r := await(t, ch); !isQueueDead(r.err) || !strings.Contains(r.err.Error(), "unexpected PDU type ICResp") {
		t.Fatalf("Exec error %v", r.err)
	}
}

// TestSocketKilledMidR2T: the socket dies while a write is answering an R2T
// and reads are in flight; every command completes exactly once.
func TestSocketKilledMidR2T(t *testing.T) {
	const n = 5
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: 8})
	wch := goExec(context.Background(), q, writeCmd(1, 0, 64), pattern(32<<10, 1))
	c, _ := f.wantCmd()
	chans := []<-chan execResult{wch}
	for i := range n {
		chans = append(chans, goExec(context.Background(), q, readCmd(1, uint64(i), 8), make([]byte, 4096)))
	}
	for range n {
		f.wantCmd()
	}
	f.sendR2T(c.CID, 1, 0, 32<<10)
	f.wantH2C() // first of 8 PDUs, then the cable is pulled
	f.conn.Close()
	for i, ch := range chans {
		r := await(t, ch)
		if !isQueueDead(r.err) {
			t.Errorf("command %d: %+v, %v; want ErrQueueDead", i, r.cqe, r.err)
		}
		select {
		case r := <-ch:
			t.Errorf("command %d completed twice: %+v", i, r)
		default:
		}
	}
	if q.Inflight() != 0 || len(q.free) != 8 {
		t.Errorf("Inflight = %d, %d free tags; want 0 and 8 (each released once)", q.Inflight(), len(q.free))
	}
	if err := q.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestTermReq: a C2HTermReq is logged with its FES and kills the queue.
func TestTermReq(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{})
	ch := goExec(context.Background(), q, readCmd(1, 0, 8), make([]byte, 4096))
	f.wantCmd()
	if err := f.w.TermReq(pdu.TypeC2HTermReq, pdu.TermReq{FES: pdu.FESHeaderDigest, FEI: 0, Header: make([]byte, 72)}); err != nil {
		t.Fatal(err)
	}
	r := await(t, ch)
	if !isQueueDead(r.err) || !strings.Contains(r.err.Error(), "C2HTermReq: FES 0x3 (Header Digest Error)") {
		t.Fatalf("Exec error %v", r.err)
	}
	awaitDead(t, q)
	if !strings.Contains(q.Err().Error(), "C2HTermReq") {
		t.Errorf("Err() = %v", q.Err())
	}
}

// TestHeaderDigestCorruption: a header digest mismatch is fatal
// (reference §1.9).
func TestHeaderDigestCorruption(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{HdrDigest: true})
	ch := goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil)
	c, _ := f.wantCmd()
	psh := make([]byte, 16)
	binary.LittleEndian.PutUint16(psh[12:], c.CID)
	b := rawPDU(pdu.TypeCapsuleResp, pdu.FlagHDGST, 24, 0, 28, psh)
	b = binary.LittleEndian.AppendUint32(b, pdu.Digest(b)^1)
	f.sendRaw(b)
	r := await(t, ch)
	var pe *pdu.ProtocolError
	if !isQueueDead(r.err) || !errors.As(r.err, &pe) || pe.FES != pdu.FESHeaderDigest {
		t.Fatalf("Exec error %v, want queue dead by a header digest error", r.err)
	}
}

// TestDataDigestCorruption: a data digest mismatch fails that command with
// Data Transfer Error; the connection stays up (reference §1.9).
func TestDataDigestCorruption(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{DataDigest: true, Depth: 4})
	buf1, buf2 := make([]byte, 4096), make([]byte, 4096)
	ch1 := goExec(context.Background(), q, readCmd(1, 0, 8), buf1)
	c1, _ := f.wantCmd()
	ch2 := goExec(context.Background(), q, readCmd(1, 8, 8), buf2)
	c2, _ := f.wantCmd()

	data := pattern(4096, 8)
	psh := make([]byte, 16)
	binary.LittleEndian.PutUint16(psh[0:], c1.CID)
	binary.LittleEndian.PutUint32(psh[8:], 4096)
	b := rawPDU(pdu.TypeC2HData, pdu.FlagDDGST|pdu.FlagLast, 24, 24, 24+4096+4, psh)
	b = append(b, data...)
	b = binary.LittleEndian.AppendUint32(b, pdu.Digest(data)^0x8000)
	f.sendRaw(b)
	f.sendResp(c1.CID, 0, 0)

	f.sendC2H(c2.CID, 0, data, true, true) // SUCCESS, good digest
	r1, r2 := await(t, ch1), await(t, ch2)
	if r1.err != nil || r1.cqe.Status != nvme.StatusDataTransferError {
		t.Errorf("corrupted read: %+v, %v; want status Data Transfer Error", r1.cqe, r1.err)
	}
	if r2.err != nil || r2.cqe.Status != 0 || !bytes.Equal(buf2, data) {
		t.Errorf("good read: %+v, %v", r2.cqe, r2.err)
	}
	select {
	case <-q.Dead():
		t.Fatalf("queue died: %v", q.Err())
	default:
	}

	// Same with SUCCESS on the corrupted PDU.
	ch3 := goExec(context.Background(), q, readCmd(1, 0, 8), buf1)
	c3, _ := f.wantCmd()
	binary.LittleEndian.PutUint16(b[8:], c3.CID)
	b[1] |= byte(pdu.FlagSuccess)
	f.sendRaw(b)
	if r := await(t, ch3); r.err != nil || r.cqe.Status != nvme.StatusDataTransferError {
		t.Errorf("corrupted read with SUCCESS: %+v, %v", r.cqe, r.err)
	}
}

// TestCmdTimeout: a command without completion within CmdTimeout fails
// with ErrTimeout, the queue dies and the others fail with ErrQueueDead.
func TestCmdTimeout(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{CmdTimeout: 200 * time.Millisecond})
	// A command that completes in time leaves a stopped timer behind.
	ch := goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil)
	c, _ := f.wantCmd()
	f.sendResp(c.CID, 0, 0)
	if r := await(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
	// An AER-like command without a timeout, then one that times out.
	aer := make(chan execResult, 1)
	go func() {
		cqe, err := q.ExecTimeout(context.Background(), &nvme.Command{Opcode: uint8(nvme.AdminAsyncEvent)}, nil, 0)
		aer <- execResult{cqe, err}
	}()
	f.wantCmd()
	start := time.Now()
	ch = goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil)
	f.wantCmd()
	r := await(t, ch)
	if !errors.Is(r.err, ErrTimeout) || isQueueDead(r.err) {
		t.Fatalf("Exec error %v, want ErrTimeout", r.err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("timed out after %v", d)
	}
	if ra := await(t, aer); !isQueueDead(ra.err) {
		t.Errorf("AER: %v, want ErrQueueDead", ra.err)
	}
	awaitDead(t, q)
	if !errors.Is(q.Err(), ErrTimeout) {
		t.Errorf("Err() = %v, want ErrTimeout", q.Err())
	}
}

// TestCtxCancel: a cancelled ctx stops waiting; the tag is recycled only
// when the completion arrives, and the abandoned buffer is not written.
func TestCtxCancel(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: 1})
	ctx, cancel := context.WithCancel(context.Background())
	buf := make([]byte, 4096)
	ch := goExec(ctx, q, readCmd(1, 0, 8), buf)
	c, _ := f.wantCmd()
	cancel()
	if r := await(t, ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Exec error %v, want context.Canceled", r.err)
	}
	if q.Inflight() != 1 {
		t.Errorf("Inflight = %d after cancel, want 1 (tag held until completion)", q.Inflight())
	}
	// The only tag is busy: waiting for it honours ctx.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := q.Exec(ctx2, &nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Exec waiting for a tag: %v, want DeadlineExceeded", err)
	}
	f.sendC2H(c.CID, 0, pattern(4096, 1), true, false)
	f.sendResp(c.CID, 0, 0)
	// The next command gets the recycled tag (the reader released it
	// before reading anything after the CQE).
	ch = goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil)
	c2, _ := f.wantCmd()
	if c2.CID&0xFFF != c.CID&0xFFF || c2.CID == c.CID {
		t.Errorf("CID %#x after %#x", c2.CID, c.CID)
	}
	f.sendResp(c2.CID, 0, 0)
	if r := await(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
	if !bytes.Equal(buf, make([]byte, 4096)) {
		t.Error("data of an abandoned read was written into the caller's buffer")
	}
	if q.Inflight() != 0 {
		t.Errorf("Inflight = %d", q.Inflight())
	}
}

// TestCtxCancelWriteFinishesData: a cancelled write still owing R2T data
// sends it (the buffer is the only source), then returns ctx.Err(); the
// queue stays up and the tag comes back with the completion.
func TestCtxCancelWriteFinishesData(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: 1})
	ctx, cancel := context.WithCancel(context.Background())
	data := pattern(8192, 6)
	ch := goExec(ctx, q, writeCmd(1, 0, 16), data)
	c, _ := f.wantCmd()
	cancel()
	f.sendR2T(c.CID, 1, 0, 8192)
	var got []byte
	for len(got) < len(data) {
		_, _, b := f.wantH2C()
		got = append(got, b...)
	}
	if !bytes.Equal(got, data) {
		t.Error("data sent after cancel differs")
	}
	if r := await(t, ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Exec error %v, want context.Canceled", r.err)
	}
	f.sendResp(c.CID, 0, 0)
	ch = goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil)
	c2, _ := f.wantCmd()
	f.sendResp(c2.CID, 0, 0)
	if r := await(t, ch); r.err != nil {
		t.Fatalf("queue unusable after a cancelled write: %v", r.err)
	}
	// An already-cancelled ctx submits nothing.
	if _, err := q.Exec(ctx, ptr(writeCmd(1, 0, 16)), data); !errors.Is(err, context.Canceled) {
		t.Errorf("Exec with a cancelled ctx: %v", err)
	}
	if q.Inflight() != 0 {
		t.Errorf("Inflight = %d", q.Inflight())
	}
}

// TestClose: Close fails in-flight commands and is idempotent.
func TestClose(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{})
	ch := goExec(context.Background(), q, readCmd(1, 0, 8), make([]byte, 4096))
	f.wantCmd()
	q.Close()
	if r := await(t, ch); !isQueueDead(r.err) || !errors.Is(r.err, ErrClosed) {
		t.Fatalf("Exec error %v, want ErrQueueDead wrapping ErrClosed", r.err)
	}
	if err := q.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if !errors.Is(q.Err(), ErrClosed) {
		t.Errorf("Err() = %v", q.Err())
	}
}

// TestConfigValidation: depth limits (tags are 12 bits) and defaults.
func TestConfigValidation(t *testing.T) {
	for _, d := range []int{-1, MaxDepth + 1} {
		if _, err := Dial(context.Background(), Config{Addr: "127.0.0.1:1", Depth: d}); err == nil || !strings.Contains(err.Error(), "depth") {
			t.Errorf("Depth %d: %v", d, err)
		}
	}
	if _, err := Dial(context.Background(), Config{Addr: "127.0.0.1:1", InCapsuleMax: -1}); err == nil {
		t.Error("negative InCapsuleMax accepted")
	}
	f := newFakeCtrl(t)
	q := connect(t, f, Config{})
	if q.Depth() != DefaultDepth {
		t.Errorf("Depth() = %d, want %d", q.Depth(), DefaultDepth)
	}
}

// TestAbandonedReleasedOnDeath: a command abandoned by its ctx gives its
// tag back when the queue dies, exactly once.
func TestAbandonedReleasedOnDeath(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: 2})
	ctx, cancel := context.WithCancel(context.Background())
	ch := goExec(ctx, q, readCmd(1, 0, 8), make([]byte, 4096))
	f.wantCmd()
	other := goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil)
	f.wantCmd()
	cancel()
	if r := await(t, ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Exec error %v", r.err)
	}
	if q.Inflight() != 2 {
		t.Fatalf("Inflight = %d, want 2", q.Inflight())
	}
	f.conn.Close()
	if r := await(t, other); !isQueueDead(r.err) {
		t.Fatalf("other command: %v", r.err)
	}
	q.Close() // returns once the reader failed everything
	if q.Inflight() != 0 {
		t.Errorf("Inflight = %d after death", q.Inflight())
	}
	if got := len(q.free); got != 2 {
		t.Errorf("%d tags on the free list, want 2 (each released exactly once)", got)
	}
}

// TestExecWithinSilentQueue: a read on a queue that receives nothing for
// the silence bound is given up with ErrSilent; the queue lives, the tag
// (CID) stays reserved until the late completion, whose data is discarded;
// then the tag is reused with a new generation.
func TestExecWithinSilentQueue(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: 1})
	buf := make([]byte, 4096)
	ch := make(chan execResult, 1)
	start := time.Now()
	go func() {
		cmd := readCmd(1, 0, 8)
		cqe, err := q.ExecWithin(context.Background(), &cmd, buf, 50*time.Millisecond)
		ch <- execResult{cqe, err}
	}()
	c, _ := f.wantCmd()
	r := await(t, ch)
	if !errors.Is(r.err, ErrSilent) {
		t.Fatalf("ExecWithin on a silent queue: %v, want ErrSilent", r.err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("gave up after %v, before the 50ms bound", d)
	}
	if q.isDead() {
		t.Fatal("the queue died: a silent command must not kill it")
	}
	if q.Inflight() != 1 {
		t.Fatalf("Inflight = %d after giving up, want 1 (CID reserved until completion)", q.Inflight())
	}
	// The late completion is discarded, then the tag is reused.
	f.sendC2H(c.CID, 0, pattern(4096, 7), true, false)
	f.sendResp(c.CID, 0, 0)
	ch2 := goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil)
	c2, _ := f.wantCmd()
	if c2.CID&0xFFF != c.CID&0xFFF || c2.CID == c.CID {
		t.Errorf("CID %#x after %#x", c2.CID, c.CID)
	}
	f.sendResp(c2.CID, 0, 0)
	if r := await(t, ch2); r.err != nil {
		t.Fatal(r.err)
	}
	if !bytes.Equal(buf, make([]byte, 4096)) {
		t.Error("late data of an abandoned read was written into the caller's buffer")
	}
}

// TestExecWithinBusyQueue: a slow read on a queue that keeps receiving
// (other commands complete) is not given up; a write never is.
func TestExecWithinBusyQueue(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: 4})
	buf := make([]byte, 4096)
	ch := make(chan execResult, 1)
	go func() {
		cmd := readCmd(1, 0, 8)
		cqe, err := q.ExecWithin(context.Background(), &cmd, buf, 300*time.Millisecond)
		ch <- execResult{cqe, err}
	}()
	slow, _ := f.wantCmd()
	// Keep the queue busy for 4 bounds with flushes completing every 100ms
	// (a third of the bound: scheduling delays of a loaded -race run must
	// not look like silence).
	for i := 0; i < 12; i++ {
		fl := goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil)
		c, _ := f.wantCmd()
		time.Sleep(100 * time.Millisecond) // the controller's service time (what is being simulated)
		f.sendResp(c.CID, 0, 0)
		if r := await(t, fl); r.err != nil {
			t.Fatal(r.err)
		}
	}
	select {
	case r := <-ch:
		t.Fatalf("slow read on a busy queue returned %v", r.err)
	default:
	}
	f.sendC2H(slow.CID, 0, pattern(4096, 3), true, true)
	if r := await(t, ch); r.err != nil {
		t.Fatalf("slow read: %v", r.err)
	}
	if !bytes.Equal(buf, pattern(4096, 3)) {
		t.Error("slow read data")
	}

	// A write with a bound waits (ExecWithin ignores it for data out).
	wch := make(chan execResult, 1)
	go func() {
		cmd := writeCmd(1, 0, 8)
		cqe, err := q.ExecWithin(context.Background(), &cmd, make([]byte, 4096), 20*time.Millisecond)
		wch <- execResult{cqe, err}
	}()
	w, _ := f.wantCmd()
	f.sendR2T(w.CID, 1, 0, 4096)
	f.wantH2C()
	select {
	case r := <-wch:
		t.Fatalf("write returned %v before its completion", r.err)
	case <-time.After(100 * time.Millisecond): // 5 bounds: it must still wait
	}
	f.sendResp(w.CID, 0, 0)
	if r := await(t, wch); r.err != nil {
		t.Fatal(r.err)
	}
}

// TestExecWithinOnInjectedClock: the silence bound runs on the queue's
// clock. On fake time a reception inside the bound re-arms it, and the
// read is given up exactly when the queue was silent for a whole bound.
func TestExecWithinOnInjectedClock(t *testing.T) {
	clk := mpathtest.NewClock()
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: 4, Clock: clk})
	ch := make(chan execResult, 1)
	go func() {
		cmd := readCmd(1, 0, 8)
		cqe, err := q.ExecWithin(context.Background(), &cmd, make([]byte, 4096), 100*time.Millisecond)
		ch <- execResult{cqe, err}
	}()
	f.wantCmd() // its timers are armed before it is sent
	notYet := func(when string) {
		t.Helper()
		select {
		case r := <-ch:
			t.Fatalf("%s: read returned %v", when, r.err)
		case <-time.After(50 * time.Millisecond): // real time: waiting for an absence
		}
	}
	clk.Advance(60 * time.Millisecond)
	fl := goExec(context.Background(), q, nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil)
	c, _ := f.wantCmd()
	f.sendResp(c.CID, 0, 0) // received at t=60ms
	if r := await(t, fl); r.err != nil {
		t.Fatal(r.err)
	}
	clk.Advance(60 * time.Millisecond) // t=120ms: a bound since submission, not since the reception
	notYet("t=120ms, last reception at 60ms")
	clk.Advance(39 * time.Millisecond)
	notYet("t=159ms")
	clk.Advance(time.Millisecond) // t=160ms: silent for the whole bound
	if r := await(t, ch); !errors.Is(r.err, ErrSilent) {
		t.Fatalf("at t=160ms: %v, want ErrSilent", r.err)
	}
}
