package fusefs

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkThreadWake measures what handing one completion to another OS
// thread costs on this machine: two locked threads ping-pong through
// eventfds, each blocked in read(2), and ns/wake is half a round trip. It
// is the price per I/O of any design in which the goroutine that receives
// an NVMe completion may not write the FUSE reply itself, such as FUSE over
// io_uring, whose commits must be issued by the ring's own thread (README,
// Performance). The devLoop writes replies from the completing goroutine
// to avoid exactly this.
func BenchmarkThreadWake(b *testing.B) {
	ping, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(ping)
	pong, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(pong)
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	n := b.N
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var buf [8]byte
		for i := 0; i < n; i++ {
			if _, err := unix.Read(ping, buf[:]); err != nil {
				errc <- err
				return
			}
			if _, err := unix.Write(pong, one); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var buf [8]byte
	b.ResetTimer()
	for i := 0; i < n; i++ {
		if _, err := unix.Write(ping, one); err != nil {
			b.Fatal(err)
		}
		if _, err := unix.Read(pong, buf[:]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/2, "ns/wake")
}
