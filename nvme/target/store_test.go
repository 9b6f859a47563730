package target

import (
	"os"
	"testing"
	"unsafe"

	"github.com/mpathfs/mpathfs/internal/hugemem"
	"github.com/mpathfs/mpathfs/internal/hugemem/hugememtest"
)

func TestRAMStoreOnHugePages(t *testing.T) {
	hugememtest.Require(t)
	s, err := newRAMStore(8 << 20)
	if err != nil {
		t.Fatal(err)
	}
	s.writeAt(make([]byte, 1<<20), 3<<20) // what a 1 MiB write does
	a := uintptr(unsafe.Pointer(&s.data[0]))
	inner := (a + hugemem.PageSize - 1) &^ (hugemem.PageSize - 1)
	m := hugememtest.Holding(t, os.Getpid(), inner+hugemem.PageSize)
	if !m.THPEligible {
		t.Fatal("a RAM namespace's memory is not eligible for huge pages")
	}
	t.Logf("mapping %#x-%#x: AnonHugePages %d kB", m.Start, m.End, m.AnonHugeKB)
}
