package target

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-acc
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func rcvlowat(t *testing.T, c net.Conn) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// waitLowat polls until c's SO_RCVLOWAT is n: a reader has raised it and
// is about to park (no event marks that).
func waitLowat(t *testing.T, c net.Conn, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for rcvlowat(t, c) != n {
		if time.Now().After(deadline) {
			t.Fatalf("SO_RCVLOWAT never raised to %d", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A large read that has to wait does so once, for the whole payload; the
// next small read is not held back.
func TestLowatReaderWaitsForWholePayload(t *testing.T) {
	client, server := tcpPair(t)
	var count atomic.Uint64
	r := newLowatReader(server, &count)
	if _, ok := r.(*lowatReader); !ok {
		t.Fatalf("newLowatReader(TCP) = %T", r)
	}
	const size = 1 << 20
	want := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	type result struct {
		n   int
		err error
	}
	got := make([]byte, size)
	res := make(chan result, 1)
	go func() {
		n, err := r.Read(got)
		res <- result{n, err}
	}()
	// The reader finds the socket empty and raises SO_RCVLOWAT before it
	// parks; wait for that (the event this test can observe).
	waitLowat(t, server, size)
	// Half the payload does not satisfy it: send the halves apart.
	if _, err := client.Write(want[:size/2]); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write(want[size/2:]); err != nil {
		t.Fatal(err)
	}
	rr := <-res
	if rr.err != nil || rr.n != size {
		t.Fatalf("Read = %d, %v; want the whole %d bytes in one read", rr.n, rr.err, size)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("payload corrupted")
	}
	if count.Load() != 1 {
		t.Fatalf("raised reads counted %d, want 1", count.Load())
	}

	// A header-sized read resets SO_RCVLOWAT and returns at once.
	if _, err := client.Write([]byte("hdr")); err != nil {
		t.Fatal(err)
	}
	small := make([]byte, 64<<10)
	n, err := r.Read(small)
	if err != nil || string(small[:n]) != "hdr" {
		t.Fatalf("small Read = %q, %v", small[:n], err)
	}
	if v := rcvlowat(t, server); v != 1 {
		t.Fatalf("SO_RCVLOWAT after a small read = %d, want 1", v)
	}

	// The peer's close ends a waiting large read with EOF.
	go func() { client.Close() }()
	if n, err := r.Read(got); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("Read after close = %d, %v; want EOF", n, err)
	}
}

// Closing the connection wakes a large read parked on SO_RCVLOWAT.
func TestLowatReaderClose(t *testing.T) {
	client, server := tcpPair(t)
	r := newLowatReader(server, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 1<<20))
		errc <- err
	}()
	waitLowat(t, server, 1<<20)
	if _, err := client.Write(make([]byte, 4096)); err != nil { // less than asked: stays parked
		t.Fatal(err)
	}
	server.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close = %v, want net.ErrClosed", err)
	}
}

// Without a socket (net.Pipe) the connection is read as it is.
func TestLowatReaderPipe(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if r := newLowatReader(a, nil); r != io.Reader(a) {
		t.Fatalf("newLowatReader(pipe) = %T, want the pipe", r)
	}
}
