package tcp

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

// gateConn records writes; while gated, each Write announces itself on
// entered and blocks until release is closed.
type gateConn struct {
	net.Conn
	mu      sync.Mutex
	writes  [][]byte
	entered chan struct{}
	release chan struct{}
	fail    error
}

func (c *gateConn) Write(p []byte) (int, error) {
	if c.entered != nil {
		c.entered <- struct{}{}
		<-c.release
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *gateConn) stream() []byte { return bytes.Join(c.writes, nil) }

// capsules parses a byte stream of CapsuleCmd PDUs (no digests) into their
// CIDs and in-capsule data.
func capsules(t *testing.T, b []byte) (cids []uint16, data [][]byte) {
	t.Helper()
	r := pdu.NewReader(bytes.NewReader(b), 1<<20)
	for {
		h, err := r.Next()
		if err != nil {
			return cids, data
		}
		if h.Type != pdu.TypeCapsuleCmd {
			t.Fatalf("PDU %s in the stream", h.Type)
		}
		var c nvme.Command
		r.Command(&c)
		d := make([]byte, r.DataLen())
		if err := r.ReadData(d); err != nil {
			t.Fatal(err)
		}
		cids, data = append(cids, c.CID), append(data, d)
	}
}

// TestSenderBatches: while one goroutine's write is in the kernel, others
// append and return without writing; the flusher then sends all of them in
// one write, in order, with the data as it was when each call returned
// (the callers scribbled over their buffers afterwards).
func TestSenderBatches(t *testing.T) {
	c := &gateConn{entered: make(chan struct{}, 16), release: make(chan struct{})}
	s := newSender(c)
	data := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 4096) }

	first := make(chan error, 1)
	go func() { first <- s.capsule(&nvme.Command{CID: 0}, data(0)) }()
	<-c.entered // the first caller is the flusher, inside Write

	for i := 1; i < 8; i++ {
		buf := data(i)
		if err := s.capsule(&nvme.Command{CID: uint16(i)}, buf); err != nil {
			t.Fatalf("capsule %d: %v", i, err)
		}
		clear(buf) // the caller owns its buffer again
	}
	close(c.release)
	if err := <-first; err != nil {
		t.Fatalf("flusher: %v", err)
	}
	if len(c.writes) != 2 {
		t.Fatalf("%d writes for 8 capsules, want 2 (the first, then the 7 queued behind it)", len(c.writes))
	}
	cids, got := capsules(t, c.stream())
	if len(cids) != 8 {
		t.Fatalf("%d capsules on the wire, want 8", len(cids))
	}
	for i := range cids {
		if cids[i] != uint16(i) || !bytes.Equal(got[i], data(i)) {
			t.Fatalf("capsule %d: CID %d, data %x..., want CID %d data %x...", i, cids[i], got[i][:4], i, data(i)[:4])
		}
	}
}

// TestSenderLargeAfterPending: a PDU with large data goes out after what
// was queued before it, and its caller returns only once it is written.
func TestSenderLargeAfterPending(t *testing.T) {
	c := &gateConn{entered: make(chan struct{}, 16), release: make(chan struct{})}
	s := newSender(c)
	first := make(chan error, 1)
	go func() { first <- s.capsule(&nvme.Command{CID: 1}, nil) }()
	<-c.entered
	if err := s.capsule(&nvme.Command{CID: 2}, nil); err != nil { // queued
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{7}, copyMax+1)
	large := make(chan error, 1)
	go func() { large <- s.capsule(&nvme.Command{CID: 3}, big) }()
	close(c.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-large; err != nil {
		t.Fatal(err)
	}
	cids, data := capsules(t, c.stream())
	if len(cids) != 3 || cids[0] != 1 || cids[1] != 2 || cids[2] != 3 || !bytes.Equal(data[2], big) {
		t.Fatalf("stream CIDs %v, want [1 2 3] with the large data last", cids)
	}
}

// TestSenderWriteError: the flusher gets the write error; the batch is
// dropped and the sender stays usable (the queue dies on the error).
func TestSenderWriteError(t *testing.T) {
	boom := errors.New("boom")
	c := &gateConn{fail: boom}
	s := newSender(c)
	if err := s.capsule(&nvme.Command{CID: 1}, make([]byte, 512)); !errors.Is(err, boom) {
		t.Fatalf("capsule = %v, want the write error", err)
	}
	if s.flushing || len(s.pend) != 0 {
		t.Fatalf("after a failed flush: flushing %v, %d bytes pending", s.flushing, len(s.pend))
	}
	if err := s.h2cData(pdu.Data{CCCID: 1}, make([]byte, copyMax+1), true); !errors.Is(err, boom) {
		t.Fatalf("h2cData = %v, want the write error", err)
	}
}
