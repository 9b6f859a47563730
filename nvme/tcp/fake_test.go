package tcp

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

// fakeCtrl plays the controller side of one connection with a real pdu
// Reader and Writer, in the style of x/net/http2's connframes_test: the
// test scripts it with want* (read and check the next PDU) and send*
// helpers. It runs on the test goroutine unless a test starts a server.
type fakeCtrl struct {
	t    testing.TB
	ln   net.Listener
	conn net.Conn
	r    *pdu.Reader
	w    *pdu.Writer
}

func newFakeCtrl(t testing.TB) *fakeCtrl {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback TCP: %v", err)
	}
	f := &fakeCtrl{t: t, ln: ln}
	t.Cleanup(func() {
		ln.Close()
		if f.conn != nil {
			f.conn.Close()
		}
	})
	return f
}

func (f *fakeCtrl) addr() string { return f.ln.Addr().String() }

// accept takes the next connection and wraps it in a Reader and Writer.
func (f *fakeCtrl) accept() {
	f.t.Helper()
	c, err := f.ln.Accept()
	if err != nil {
		f.t.Fatalf("accept: %v", err)
	}
	f.conn = c
	f.r = pdu.NewReader(c, 1<<30)
	f.w = pdu.NewWriter(c)
}

func (f *fakeCtrl) setDigests(hd, dd bool) {
	var d pdu.DigestFlags
	if hd {
		d |= pdu.DigestHeader
	}
	if dd {
		d |= pdu.DigestData
	}
	f.r.SetDigests(d)
	f.w.SetDigests(d)
}

func (f *fakeCtrl) next(want pdu.Type) pdu.Header {
	f.t.Helper()
	h, err := f.r.Next()
	if err != nil {
		f.t.Fatalf("controller: reading %s: %v", want, err)
	}
	if h.Type != want {
		f.t.Fatalf("controller: got %s, want %s", h.Type, want)
	}
	return h
}

func (f *fakeCtrl) wantICReq() pdu.ICReq {
	f.t.Helper()
	f.next(pdu.TypeICReq)
	return f.r.ICReq()
}

func (f *fakeCtrl) sendICResp(p pdu.ICResp) {
	f.t.Helper()
	if err := f.w.ICResp(p); err != nil {
		f.t.Fatalf("controller: send ICResp: %v", err)
	}
}

// wantCmd reads a CapsuleCmd and its in-capsule data.
func (f *fakeCtrl) wantCmd() (nvme.Command, []byte) {
	f.t.Helper()
	f.next(pdu.TypeCapsuleCmd)
	var c nvme.Command
	f.r.Command(&c)
	var data []byte
	if n := f.r.DataLen(); n > 0 {
		data = make([]byte, n)
		if err := f.r.ReadData(data); err != nil {
			f.t.Fatalf("controller: in-capsule data: %v", err)
		}
	}
	return c, data
}

// wantH2C reads one H2CData PDU.
func (f *fakeCtrl) wantH2C() (pdu.Header, pdu.Data, []byte) {
	f.t.Helper()
	h := f.next(pdu.TypeH2CData)
	d := f.r.Data()
	data := make([]byte, f.r.DataLen())
	if err := f.r.ReadData(data); err != nil {
		f.t.Fatalf("controller: H2CData: %v", err)
	}
	return h, d, data
}

func (f *fakeCtrl) sendResp(cid uint16, st nvme.Status, dw0 uint32) {
	f.t.Helper()
	if err := f.w.CapsuleResp(&nvme.Completion{CID: cid, Status: st, DW0: dw0, SQHD: 0xFFFF}); err != nil {
		f.t.Fatalf("controller: send CapsuleResp: %v", err)
	}
}

func (f *fakeCtrl) sendC2H(cid uint16, off uint32, data []byte, last, success bool) {
	f.t.Helper()
	if err := f.w.C2HData(pdu.Data{CCCID: cid, Offset: off}, data, last, success); err != nil {
		f.t.Fatalf("controller: send C2HData: %v", err)
	}
}

func (f *fakeCtrl) sendR2T(cid, ttag uint16, off, n uint32) {
	f.t.Helper()
	if err := f.w.R2T(pdu.R2T{CCCID: cid, TTAG: ttag, Offset: off, Length: n}); err != nil {
		f.t.Fatalf("controller: send R2T: %v", err)
	}
}

func (f *fakeCtrl) sendRaw(b []byte) {
	f.t.Helper()
	if _, err := f.conn.Write(b); err != nil {
		f.t.Fatalf("controller: raw write: %v", err)
	}
}

// goodICResp answers what cfg asks for.
func goodICResp(cfg Config) pdu.ICResp {
	var d pdu.DigestFlags
	if cfg.HdrDigest {
		d |= pdu.DigestHeader
	}
	if cfg.DataDigest {
		d |= pdu.DigestData
	}
	return pdu.ICResp{Digest: d, MaxH2CData: 4096}
}

type dialResult struct {
	q   *Queue
	err error
}

// dial starts Dial towards f and returns its result channel; the caller
// plays the handshake.
func dial(t testing.TB, f *fakeCtrl, cfg Config) <-chan dialResult {
	cfg.Addr = f.addr()
	ch := make(chan dialResult, 1)
	go func() {
		q, err := Dial(context.Background(), cfg)
		ch <- dialResult{q, err}
	}()
	return ch
}

// connect returns a live queue talking to f, after a good handshake.
func connect(t testing.TB, f *fakeCtrl, cfg Config) *Queue {
	t.Helper()
	ch := dial(t, f, cfg)
	f.accept()
	f.wantICReq()
	f.sendICResp(goodICResp(cfg))
	res := <-ch
	if res.err != nil {
		t.Fatalf("Dial: %v", res.err)
	}
	f.setDigests(cfg.HdrDigest, cfg.DataDigest)
	t.Cleanup(func() { res.q.Close() })
	return res.q
}

type execResult struct {
	cqe nvme.Completion
	err error
}

// goExec runs Exec in a goroutine; the result arrives exactly once on the
// returned channel.
func goExec(ctx context.Context, q *Queue, cmd nvme.Command, data []byte) <-chan execResult {
	ch := make(chan execResult, 1)
	go func() {
		cqe, err := q.Exec(ctx, &cmd, data)
		ch <- execResult{cqe, err}
	}()
	return ch
}

// await waits for an Exec result, failing the test after a generous bound
// (a hang is the failure being detected, not a synchronisation).
func await(t testing.TB, ch <-chan execResult) execResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("Exec did not return")
		return execResult{}
	}
}

func awaitDead(t testing.TB, q *Queue) {
	t.Helper()
	select {
	case <-q.Dead():
	case <-time.After(10 * time.Second):
		t.Fatalf("queue did not die")
	}
}

func readCmd(nsid uint32, slba uint64, blocks uint32) nvme.Command {
	return nvme.Command{Opcode: uint8(nvme.IORead), NSID: nsid, CDW10: uint32(slba), CDW11: uint32(slba >> 32), CDW12: blocks - 1}
}

func writeCmd(nsid uint32, slba uint64, blocks uint32) nvme.Command {
	c := readCmd(nsid, slba, blocks)
	c.Opcode = uint8(nvme.IOWrite)
	return c
}

// rawPDU builds a PDU by hand (no digests) for malformed-stream tests.
func rawPDU(t pdu.Type, flags pdu.Flags, hlen, pdo uint8, plen uint32, psh []byte) []byte {
	b := make([]byte, 8, int(hlen))
	b[0], b[1], b[2], b[3] = byte(t), byte(flags), hlen, pdo
	binary.LittleEndian.PutUint32(b[4:], plen)
	b = append(b, psh...)
	for len(b) < int(hlen) {
		b = append(b, 0)
	}
	return b
}

func isQueueDead(err error) bool { return errors.Is(err, ErrQueueDead) }
