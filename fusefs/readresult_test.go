package fusefs

import (
	"bytes"
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/fusefs/fusefstest"
)

// TestReadDoesNotAllocate: a namespace read hands go-fuse its bytes without
// a heap allocation (the read result is pooled and returned on Done), and
// the result carries exactly what the device holds.
func TestReadDoesNotAllocate(t *testing.T) {
	dev := fusefstest.NewRAM(1<<20, 512)
	io, err := newBlockIO(dev)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{0xA5}, 4096)
	if _, err := io.WriteAt(context.Background(), want, 8192); err != nil {
		t.Fatal(err)
	}
	n := &nsNode{io: io, log: hclog.NewNullLogger()}
	dest := make([]byte, 4096)
	read := func() {
		rr, errno := n.Read(context.Background(), nil, dest, 8192)
		if errno != 0 {
			t.Fatal(errno)
		}
		got, st := rr.Bytes(nil)
		if !st.Ok() || !bytes.Equal(got, want) || rr.Size() != len(want) {
			t.Fatalf("read result: %d bytes, status %v, equal %v", rr.Size(), st, bytes.Equal(got, want))
		}
		rr.Done()
	}
	if a := testing.AllocsPerRun(200, read); a != 0 {
		t.Errorf("%v allocations per read, want 0", a)
	}
}
