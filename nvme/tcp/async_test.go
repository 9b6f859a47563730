package tcp

import (
	"bytes"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/plug"
	"github.com/mpathfs/mpathfs/mpath/mpathtest"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

// chanDone is a fabrics.Completer that hands the result to a channel.
type chanDone chan execResult

func (c chanDone) CommandDone(cqe nvme.Completion, err error) { c <- execResult{cqe, err} }

// TestExecAsync: a read and an in-capsule write complete through the
// Completer with their data; a write owing R2T data, a full queue and a
// dead queue are declined with nothing sent; queue death completes what is
// in flight.
func TestExecAsync(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: 2, InCapsuleMax: 4096})
	done := make(chanDone, 2)

	buf := make([]byte, 4096)
	rd := readCmd(1, 0, 8)
	if !q.ExecAsync(&rd, buf, 0, done, nil) {
		t.Fatal("read declined")
	}
	c, _ := f.wantCmd()
	f.sendC2H(c.CID, 0, pattern(4096, 5), true, true)
	if r := await(t, done); r.err != nil || !bytes.Equal(buf, pattern(4096, 5)) {
		t.Fatalf("read: %v", r.err)
	}

	wr := writeCmd(1, 0, 8)
	if !q.ExecAsync(&wr, pattern(4096, 6), 0, done, nil) {
		t.Fatal("in-capsule write declined")
	}
	c, data := f.wantCmd()
	if !bytes.Equal(data, pattern(4096, 6)) {
		t.Fatal("in-capsule data differs")
	}
	f.sendResp(c.CID, nvme.StatusInvalidOpcode, 0)
	if r := await(t, done); r.err != nil || r.cqe.Status != nvme.StatusInvalidOpcode {
		t.Fatalf("write: %v status %v, want the controller's status", r.err, r.cqe.Status)
	}

	big := writeCmd(1, 0, 16)
	if q.ExecAsync(&big, make([]byte, 8192), 0, done, nil) {
		t.Fatal("a write sent on R2T was accepted: nobody would answer its R2T")
	}
	// Fill both tags: the third is declined, not queued.
	for i := 0; i < 2; i++ {
		if !q.ExecAsync(&rd, make([]byte, 4096), 0, done, nil) {
			t.Fatalf("read %d declined", i)
		}
		f.wantCmd()
	}
	if q.ExecAsync(&rd, make([]byte, 4096), 0, done, nil) {
		t.Fatal("accepted with no free tag")
	}
	f.conn.Close()
	for i := 0; i < 2; i++ {
		if r := await(t, done); !errors.Is(r.err, ErrQueueDead) {
			t.Fatalf("in flight at queue death: %v, want ErrQueueDead", r.err)
		}
	}
	if q.ExecAsync(&rd, make([]byte, 4096), 0, done, nil) {
		t.Fatal("accepted on a dead queue")
	}
}

// TestExecAsyncSilent: an asynchronous read on a silent queue is given up
// with ErrSilent after its bound (injected clock); its tag stays reserved
// and its late data is discarded.
func TestExecAsyncSilent(t *testing.T) {
	clk := mpathtest.NewClock()
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: 2, Clock: clk})
	done := make(chanDone, 1)
	buf := make([]byte, 4096)
	rd := readCmd(1, 0, 8)
	if !q.ExecAsync(&rd, buf, 100*time.Millisecond, done, nil) {
		t.Fatal("declined")
	}
	c, _ := f.wantCmd()
	clk.Advance(99 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("completed before the bound: %v", r.err)
	case <-time.After(20 * time.Millisecond): // real time: waiting for an absence
	}
	clk.Advance(time.Millisecond)
	if r := await(t, done); !errors.Is(r.err, ErrSilent) {
		t.Fatalf("%v, want ErrSilent", r.err)
	}
	if q.Inflight() != 1 {
		t.Fatalf("Inflight %d after giving up, want 1", q.Inflight())
	}
	f.sendC2H(c.CID, 0, pattern(4096, 9), true, true)
	fl := goExec(t.Context(), q, nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil)
	c2, _ := f.wantCmd()
	f.sendResp(c2.CID, 0, 0)
	if r := await(t, fl); r.err != nil {
		t.Fatal(r.err)
	}
	if !bytes.Equal(buf, make([]byte, 4096)) {
		t.Error("late data of an abandoned read was written")
	}
	select {
	case r := <-done:
		t.Fatalf("a second completion: %v", r.err)
	default:
	}
}

// writeCounter counts the writes to a queue's connection.
type writeCounter struct {
	net.Conn
	n atomic.Int32
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.n.Add(1)
	return w.Conn.Write(p)
}

// TestExecAsyncPlugged: commands started with a plug are not written
// until the plug is unplugged, then all in one write, in order and with
// their in-capsule data; a command sent at once meanwhile takes the held
// ones with it.
func TestExecAsyncPlugged(t *testing.T) {
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: 4, InCapsuleMax: 4096})
	wc := &writeCounter{Conn: q.s.conn}
	q.s.wire.Lock()
	q.s.conn = wc
	q.s.wire.Unlock()
	done := make(chanDone, 4)
	var pl plug.Plug

	rd1, wr, rd2 := readCmd(1, 0, 8), writeCmd(1, 8, 8), readCmd(1, 16, 8)
	bufs := [][]byte{make([]byte, 4096), pattern(4096, 7), make([]byte, 4096)}
	for i, cmd := range []*nvme.Command{&rd1, &wr, &rd2} {
		if !q.ExecAsync(cmd, bufs[i], 0, done, &pl) {
			t.Fatalf("command %d declined", i)
		}
	}
	if n := wc.n.Load(); n != 0 {
		t.Fatalf("%d writes before Unplug, want 0", n)
	}
	if !pl.Held() {
		t.Fatal("the queue did not hold")
	}
	pl.Unplug()
	if n := wc.n.Load(); n != 1 {
		t.Fatalf("%d writes for three held commands, want 1", n)
	}
	var cids []uint16
	for i, want := range []uint64{0, 8, 16} {
		c, data := f.wantCmd()
		if slba, _ := nvme.ParseRWCommand(&c); slba != want {
			t.Fatalf("command %d: slba %d, want %d (order)", i, slba, want)
		}
		if i == 1 && !bytes.Equal(data, bufs[1]) {
			t.Fatal("held write's in-capsule data differs")
		}
		cids = append(cids, c.CID)
	}
	f.sendC2H(cids[0], 0, pattern(4096, 1), true, true)
	f.sendResp(cids[1], 0, 0)
	f.sendC2H(cids[2], 0, pattern(4096, 2), true, true)
	for range 3 {
		if r := await(t, done); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if !bytes.Equal(bufs[0], pattern(4096, 1)) || !bytes.Equal(bufs[2], pattern(4096, 2)) {
		t.Fatal("read data differs")
	}

	// Held, then one sent at once: both leave in that send.
	if !q.ExecAsync(&rd1, bufs[0], 0, done, &pl) || !q.ExecAsync(&rd2, bufs[2], 0, done, nil) {
		t.Fatal("declined")
	}
	if n := wc.n.Load(); n != 2 {
		t.Fatalf("%d writes, want 2: the unplugged send carries the held command", n)
	}
	for range 2 {
		c, _ := f.wantCmd()
		f.sendC2H(c.CID, 0, pattern(4096, 3), true, true)
	}
	for range 2 {
		if r := await(t, done); r.err != nil {
			t.Fatal(r.err)
		}
	}
	pl.Unplug() // nothing left to write
	if n := wc.n.Load(); n != 2 {
		t.Fatalf("%d writes after an Unplug with nothing held, want 2", n)
	}
}

// bigGate passes writes to the connection, holding each of at least big
// bytes until gate is closed.
type bigGate struct {
	net.Conn
	big  int
	gate chan struct{}
}

func (g *bigGate) Write(p []byte) (int, error) {
	if len(p) >= g.big {
		<-g.gate
	}
	return g.Conn.Write(p)
}

// gate makes q's large writes wait for the returned channel's close.
func gate(q *Queue) chan struct{} {
	g := &bigGate{Conn: q.s.conn, big: copyMax + 1, gate: make(chan struct{})}
	q.s.wire.Lock()
	q.s.conn = g
	q.s.wire.Unlock()
	return g.gate
}

// waitDeferred waits until the reader has left the result of the command
// with tag cid to the submitter still writing it.
func waitDeferred(t *testing.T, q *Queue, cid uint16) {
	t.Helper()
	req := &q.reqs[cid&tagMask]
	deadline := time.Now().Add(10 * time.Second)
	for req.sending.Load() != sendDeferred {
		if time.Now().After(deadline) {
			t.Fatalf("the completion of cid %#04x was not deferred (sending %d)", cid, req.sending.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestExecAsyncLargeWrite: an in-capsule write above 16 KiB is written by
// the submitter when it has no plug (declined with one); its completion,
// even one that arrives while the data is still being written (a target
// that answers early, or the queue dying), is delivered only after the
// write returned, so the caller's buffer is never read after done ran.
func TestExecAsyncLargeWrite(t *testing.T) {
	const size = 64 << 10
	f := newFakeCtrl(t)
	q := connect(t, f, Config{Depth: 4, InCapsuleMax: 1 << 20})
	done := make(chanDone, 4)
	data := pattern(size, 5)
	wr := writeCmd(1, 0, size/512)

	var pl plug.Plug
	if q.ExecAsync(&wr, data, 0, done, &pl) {
		t.Fatal("a large write with a plug was accepted")
	}
	if pl.Held() || q.Inflight() != 0 {
		t.Fatal("the declined write left something behind")
	}

	// Unplugged: written before ExecAsync returns, completed as usual.
	if !q.ExecAsync(&wr, data, 0, done, nil) {
		t.Fatal("large write declined")
	}
	c, got := f.wantCmd()
	if !bytes.Equal(got, data) {
		t.Fatal("in-capsule data differs")
	}
	f.sendResp(c.CID, 0, 0)
	if r := await(t, done); r.err != nil || !r.cqe.Status.OK() {
		t.Fatalf("large write: %v %v", r.cqe.Status, r.err)
	}

	// The completion arrives while the data is still being written.
	open := gate(q)
	accepted := make(chan bool, 1)
	go func() { accepted <- q.ExecAsync(&wr, data, 0, done, nil) }()
	h := f.next(pdu.TypeCapsuleCmd)
	var cmd nvme.Command
	f.r.Command(&cmd)
	if h.PLEN == 0 {
		t.Fatal("no header")
	}
	f.sendResp(cmd.CID, 0, 0) // before reading the data
	waitDeferred(t, q, cmd.CID)
	if len(done) != 0 {
		t.Fatal("done ran while the submitter was still writing the data")
	}
	close(open)
	if got := make([]byte, size); f.r.ReadData(got) != nil || !bytes.Equal(got, data) {
		t.Fatal("in-capsule data after the early completion differs")
	}
	if !<-accepted {
		t.Fatal("ExecAsync declined a command it sent")
	}
	if r := await(t, done); r.err != nil || !r.cqe.Status.OK() {
		t.Fatalf("early completion: %v %v", r.cqe.Status, r.err)
	}

	// The queue dies while the data is still being written.
	open = gate(q)
	go func() { accepted <- q.ExecAsync(&wr, data, 0, done, nil) }()
	f.next(pdu.TypeCapsuleCmd)
	f.r.Command(&cmd)
	q.Close()
	waitDeferred(t, q, cmd.CID)
	if len(done) != 0 {
		t.Fatal("done ran while the submitter was still writing the data")
	}
	close(open)
	if !<-accepted {
		t.Fatal("ExecAsync declined a command it sent")
	}
	if r := await(t, done); !isQueueDead(r.err) {
		t.Fatalf("write on a dying queue: %v, want queue dead", r.err)
	}
	if n := q.Inflight(); n != 0 {
		t.Fatalf("%d tags still in use", n)
	}
}
