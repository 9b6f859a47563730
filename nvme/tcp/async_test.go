package tcp

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/mpath/mpathtest"
	"github.com/mpathfs/mpathfs/nvme"
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
	if !q.ExecAsync(&rd, buf, 0, done) {
		t.Fatal("read declined")
	}
	c, _ := f.wantCmd()
	f.sendC2H(c.CID, 0, pattern(4096, 5), true, true)
	if r := await(t, done); r.err != nil || !bytes.Equal(buf, pattern(4096, 5)) {
		t.Fatalf("read: %v", r.err)
	}

	wr := writeCmd(1, 0, 8)
	if !q.ExecAsync(&wr, pattern(4096, 6), 0, done) {
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
	if q.ExecAsync(&big, make([]byte, 8192), 0, done) {
		t.Fatal("a write sent on R2T was accepted: nobody would answer its R2T")
	}
	// Fill both tags: the third is declined, not queued.
	for i := 0; i < 2; i++ {
		if !q.ExecAsync(&rd, make([]byte, 4096), 0, done) {
			t.Fatalf("read %d declined", i)
		}
		f.wantCmd()
	}
	if q.ExecAsync(&rd, make([]byte, 4096), 0, done) {
		t.Fatal("accepted with no free tag")
	}
	f.conn.Close()
	for i := 0; i < 2; i++ {
		if r := await(t, done); !errors.Is(r.err, ErrQueueDead) {
			t.Fatalf("in flight at queue death: %v, want ErrQueueDead", r.err)
		}
	}
	if q.ExecAsync(&rd, make([]byte, 4096), 0, done) {
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
	if !q.ExecAsync(&rd, buf, 100*time.Millisecond, done) {
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
