package target

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// lowatMin is the smallest read for which lowatReader raises SO_RCVLOWAT:
// above the PDU reader's 64 KiB buffer, so only payloads read straight into
// their destination (large in-capsule and H2C data) wait for it.
const lowatMin = 128 << 10

// lowatReader reads a connection for the PDU reader. Before a large read it
// raises the socket's SO_RCVLOWAT to the read's size, so that if the read
// has to wait, the netpoller wakes it once, when the whole payload is queued
// (or the kernel's cap of half the largest receive buffer is, or the peer
// closes), instead of once per burst of segments, each wake-up a park, an
// epoll return and another read. A read never waits for more than it asks,
// so nothing is held back; the next small read (a PDU header) puts
// SO_RCVLOWAT back to 1 first.
//
// It is the reader goroutine's own: not safe for concurrent use.
type lowatReader struct {
	nc    net.Conn
	rc    syscall.RawConn
	lowat int            // SO_RCVLOWAT as last set
	count *atomic.Uint64 // raised reads (Port.LowatReads); may be nil
}

// newLowatReader returns the reader for nc, counting raised reads in count,
// or nc itself when it has no socket to tune (net.Pipe in tests).
func newLowatReader(nc net.Conn, count *atomic.Uint64) io.Reader {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	return &lowatReader{nc: nc, rc: rc, lowat: 1, count: count}
}

func (r *lowatReader) Read(p []byte) (int, error) {
	want := 1
	if len(p) >= lowatMin {
		want = len(p)
	}
	if r.lowat != want {
		_ = r.rc.Control(func(fd uintptr) { r.set(fd, want) })
	}
	return r.nc.Read(p)
}

// set sets SO_RCVLOWAT; on failure the reader just wakes more often.
func (r *lowatReader) set(fd uintptr, v int) {
	if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, v); err != nil {
		return
	}
	r.lowat = v
	if v > 1 && r.count != nil {
		r.count.Add(1)
	}
}
