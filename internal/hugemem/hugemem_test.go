package hugemem

import (
	"os"
	"runtime"
	"testing"

	"github.com/mpathfs/mpathfs/internal/hugemem/hugememtest"
)

func TestBufIsAlignedAdvisedAndWhole(t *testing.T) {
	hugememtest.Require(t)
	const n = 1<<20 + 4176 // a FUSE read buffer for max_write 1 MiB
	p := Buf(n)
	b := *p
	if len(b) != n || cap(b) != n {
		t.Fatalf("len %d cap %d, want %d", len(b), cap(b), n)
	}
	if addr(b)%PageSize != 0 {
		t.Fatalf("buffer at %#x is not aligned to a huge page", addr(b))
	}
	for i := range b {
		b[i] = byte(i)
	}
	for i := range b {
		if b[i] != byte(i) {
			t.Fatalf("byte %d reads %d", i, b[i])
		}
	}
	m := hugememtest.Holding(t, os.Getpid(), addr(b))
	if m.Start != addr(b) || m.End-m.Start != PageSize {
		t.Fatalf("mapping %#x-%#x, want one huge page at %#x", m.Start, m.End, addr(b))
	}
	if !m.THPEligible {
		t.Fatal("the buffer's mapping is not eligible for huge pages (MADV_HUGEPAGE not applied)")
	}
	t.Logf("AnonHugePages %d kB", m.AnonHugeKB)
	runtime.KeepAlive(p)
}

func TestBufUnmappedWhenUnreachable(t *testing.T) {
	p := Buf(4096)
	a := addr(*p)
	(*p)[0] = 1
	p = nil
	for i := 0; ; i++ {
		runtime.GC()
		ms, err := hugememtest.Mappings(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := hugememtest.Containing(ms, a); !ok {
			return
		}
		if i == 100 {
			t.Fatal("the mapping of an unreachable buffer is still there after 100 collections")
		}
		runtime.Gosched()
	}
}

func TestAdviseWholeHugePagesInside(t *testing.T) {
	hugememtest.Require(t)
	b := make([]byte, 5*PageSize)
	Advise(b)
	start := (addr(b) + PageSize - 1) &^ (PageSize - 1)
	m := hugememtest.Holding(t, os.Getpid(), start)
	if !m.THPEligible {
		t.Fatal("the advised range is not eligible for huge pages")
	}
	if m.Start < addr(b) || m.End > addr(b)+uintptr(len(b)) {
		t.Fatalf("advice reaches outside the slice: mapping %#x-%#x, slice %#x-%#x", m.Start, m.End, addr(b), addr(b)+uintptr(len(b)))
	}
	if m.End-m.Start < 4*PageSize {
		t.Fatalf("advised %d bytes, want at least 4 huge pages", m.End-m.Start)
	}
	Advise(b[:PageSize-1]) // too small: nothing to do, no panic
	runtime.KeepAlive(b)
}
