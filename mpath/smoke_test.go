package mpath_test

import (
	"context"
	"testing"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/mpath/mpathtest"
)

func TestDoSubmitsOnOptimizedPath(t *testing.T) {
	s := mpath.NewSubsystem(mpath.DefaultSubsystemConfig("nqn.test"))
	info := mpath.HeadInfo{Capacity: 1 << 20, BlockSize: 512}
	d0, d1 := mpathtest.NewDriver("a"), mpathtest.NewDriver("b")
	d0.SetAccessState(mpath.StateNonOptimized)
	p0, err := s.AddPath(mpath.Identity{NSID: 1}, info, "a", mpath.NewController("c0", 0), d0)
	if err != nil {
		t.Fatal(err)
	}
	d0.Bind(p0)
	p1, err := s.AddPath(mpath.Identity{NSID: 1}, info, "b", mpath.NewController("c1", 0), d1)
	if err != nil {
		t.Fatal(err)
	}
	d1.Bind(p1)
	h := p0.Head()
	if err := h.Do(context.Background(), &mpath.Request{Op: mpath.OpRead, Length: 4096, Buf: make([]byte, 4096)}); err != nil {
		t.Fatal(err)
	}
	if d1.Successes() != 1 || d0.Submits() != 0 {
		t.Fatalf("submits a=%d b=%d, want the optimized path b", d0.Submits(), d1.Successes())
	}
	if st := h.Stats(); st.ReadIOs != 1 || st.ReadSectors != 8 {
		t.Fatalf("stats %+v", st)
	}
}
