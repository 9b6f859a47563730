package tcp

import (
	"net"
	"sync"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

// copyMax is the largest piece of a PDU (header, in-capsule data, digest)
// that is copied into the pending batch; larger data is written from the
// caller's buffer while the caller waits.
const copyMax = 16 << 10

// sender puts the queue's PDUs on the wire. Buffer ownership is settled by
// construction: small PDUs are copied into a pending batch (so the caller's
// buffer is free as soon as the send call returns), and PDUs with large data
// are written by the calling goroutine, which returns only after the write
// ended. No goroutine of the queue ever reads a caller's buffer after the
// caller's send call returned, so a command failed at queue death (or
// abandoned) can hand its buffer back at once.
//
// Batching is flat combining: whoever appends to an idle batch becomes the
// flusher and writes the batch, and whatever other goroutines append while
// that write is in the kernel, in one system call each round; those others
// return without a system call. Commands submitted concurrently (a deep
// queue) thus share writes, and a lone command pays two uncontended locks.
type sender struct {
	conn net.Conn
	wire sync.Mutex // held while writing to conn; taken before mu

	mu       sync.Mutex // guards everything below
	w        *pdu.Writer
	pend     []byte // the batch being collected (PDU bytes, in order)
	spare    []byte // the previous batch's buffer, for reuse
	flushing bool   // a goroutine is (or is about to be) flushing pend
	direct   bool   // large pieces are written at once (wire held)
	iov      [2][]byte
	bufs     net.Buffers
}

func newSender(conn net.Conn) *sender {
	s := &sender{conn: conn, pend: make([]byte, 0, 2*copyMax), spare: make([]byte, 0, 2*copyMax)}
	s.w = pdu.NewWriter((*collector)(s))
	return s
}

// collector is the io.Writer under the sender's pdu.Writer (mu held).
type collector sender

func (c *collector) Write(p []byte) (int, error) {
	if len(p) <= copyMax || !c.direct {
		c.pend = append(c.pend, p...)
		return len(p), nil
	}
	// Large data with the wire held: what is pending, then p, in one writev.
	c.iov = [2][]byte{c.pend, p}
	c.bufs = c.iov[:]
	_, err := c.bufs.WriteTo(c.conn)
	c.iov = [2][]byte{}
	c.pend = c.pend[:0]
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// capsule sends a command capsule with its in-capsule data.
func (s *sender) capsule(cmd *nvme.Command, data []byte) error {
	if len(data) > copyMax {
		s.lockLarge()
		return s.unlockLarge(s.w.CapsuleCmd(cmd, data))
	}
	s.mu.Lock()
	return s.flushSmall(s.w.CapsuleCmd(cmd, data))
}

// hold queues a command capsule (data at most copyMax) without writing
// it: flush, or the next PDU sent, writes it.
func (s *sender) hold(cmd *nvme.Command, data []byte) error {
	s.mu.Lock()
	err := s.w.CapsuleCmd(cmd, data)
	s.mu.Unlock()
	return err
}

// flush writes what hold queued, unless another goroutine is writing (it
// writes that too) or nothing is queued.
func (s *sender) flush() error {
	s.mu.Lock()
	if len(s.pend) == 0 {
		s.mu.Unlock()
		return nil
	}
	return s.flushSmall(nil)
}

// h2cData sends one H2CData PDU.
func (s *sender) h2cData(d pdu.Data, data []byte, last bool) error {
	if len(data) > copyMax {
		s.lockLarge()
		return s.unlockLarge(s.w.H2CData(d, data, last))
	}
	s.mu.Lock()
	return s.flushSmall(s.w.H2CData(d, data, last))
}

// termReq sends an H2CTermReq, giving up after timeout.
func (s *sender) termReq(p pdu.TermReq, timeout time.Duration) error {
	s.lockLarge()
	_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
	return s.unlockLarge(s.w.TermReq(pdu.TypeH2CTermReq, p))
}

// flushSmall runs with mu held after a PDU was appended (err: appending
// failed). Unless another goroutine is flushing (it then sends this PDU
// too), it sends the batch. An error means this goroutine's write failed;
// a write that failed in another goroutine is that one's to report (the
// queue dies either way).
func (s *sender) flushSmall(err error) error {
	if err != nil || s.flushing {
		s.mu.Unlock()
		return err
	}
	s.flushing = true
	s.mu.Unlock()
	s.wire.Lock()
	err = s.flushLocked()
	s.wire.Unlock()
	return err
}

// flushLocked writes pending batches until none is left; wire is held.
func (s *sender) flushLocked() error {
	for {
		s.mu.Lock()
		if len(s.pend) == 0 {
			s.flushing = false
			s.mu.Unlock()
			return nil
		}
		buf := s.pend
		s.pend, s.spare = s.spare[:0], nil
		s.mu.Unlock()
		_, err := s.conn.Write(buf)
		s.mu.Lock()
		s.spare = buf[:0]
		if err != nil {
			s.pend = s.pend[:0]
			s.flushing = false
			s.mu.Unlock()
			return err
		}
		s.mu.Unlock()
	}
}

// lockLarge takes the wire and the batch for a PDU whose large data is
// written straight from the caller's buffer, after everything pending.
func (s *sender) lockLarge() {
	s.wire.Lock()
	s.mu.Lock()
	s.direct = true
}

// unlockLarge writes what is still pending (a data digest, or PDUs queued
// meanwhile) and releases what lockLarge took; the caller's data has been
// written when it returns.
func (s *sender) unlockLarge(err error) error {
	s.direct = false
	if err == nil && len(s.pend) > 0 {
		_, err = s.conn.Write(s.pend)
	}
	s.pend = s.pend[:0]
	s.mu.Unlock()
	s.wire.Unlock()
	return err
}
