package multipath

import (
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/host"
)

func boundPath(t *testing.T, f *fakeCtrl) (*Path, *mpath.Path) {
	t.Helper()
	s := mpath.NewSubsystem(mpath.DefaultSubsystemConfig("nqn.test"))
	p := NewPath(f, f.ns, hclog.NewNullLogger())
	mp, err := s.AddPath(mpath.Identity{NSID: f.ns.NSID}, mpath.HeadInfo{Capacity: 1 << 20, BlockSize: 4096}, "p", mpath.NewController("c", mpath.NoNode), p)
	if err != nil {
		t.Fatal(err)
	}
	p.Bind(mp)
	return p, mp
}

// TestANAPendingClearedOnlyByListingRead (issue 8, behaviour 7): after an
// ANA error the path is ANA-pending; a controller state event does not
// clear it, an ANA log read that does not list the namespace does not
// either; a read listing it does (nvme_update_ns_ana_state). The error
// queues the controller's one coalescing re-read.
func TestANAPendingClearedOnlyByListingRead(t *testing.T) {
	f := newFake()
	f.ns.ANAListed = true
	p, mp := boundPath(t, f)
	mp.SetANAPending()
	p.RefreshANA()
	if !slices.Contains(f.calls, "ana-read") {
		t.Fatalf("no ANA re-read queued: %v", f.calls)
	}
	p.Refresh()
	if !mp.ANAPending() {
		t.Fatal("a state refresh cleared ANA-pending")
	}
	f.ns.ANAListed = false
	p.ANARead()
	if !mp.ANAPending() {
		t.Fatal("a log read not listing the namespace cleared ANA-pending")
	}
	f.ns.ANAListed = true
	p.ANARead()
	if mp.ANAPending() {
		t.Fatal("a log read listing the namespace left it ANA-pending")
	}
}

// TestANAGroupMissingFromLog (issue 8, behaviour 7, nvme_mpath_add_ns): a
// namespace whose ANA group the log does not describe is ANA-pending when
// added and the log is re-read.
func TestANAGroupMissingFromLog(t *testing.T) {
	f := newFake()
	f.ns.ANAState = 0 // group 2 not in the log
	p, mp := boundPath(t, f)
	p.added()
	if !mp.ANAPending() || mp.Usable() {
		t.Fatal("a namespace of an unknown group is usable")
	}
	if !slices.Contains(f.calls, "ana-read") {
		t.Fatalf("no ANA re-read queued: %v", f.calls)
	}
	f.ns.ANAState, f.ns.ANAListed = nvme.ANAOptimized, true
	p.ANARead()
	if mp.ANAPending() || !mp.Usable() {
		t.Fatal("the re-read describing the group did not make the path usable")
	}
}

// TestNUMADropsDeletingPath (issue 8, behaviour 10): the numa policy's
// cached current path is dropped when its controller starts deleting, and
// another optimized path is chosen.
func TestNUMADropsDeletingPath(t *testing.T) {
	s := mpath.NewSubsystem(mpath.DefaultSubsystemConfig("nqn.test"))
	var paths []*Path
	var fakes []*fakeCtrl
	for i := range 2 {
		f := newFake()
		p := NewPath(f, f.ns, hclog.NewNullLogger())
		mp, err := s.AddPath(mpath.Identity{NSID: f.ns.NSID}, mpath.HeadInfo{Capacity: 1 << 20, BlockSize: 4096},
			[]string{"a", "b"}[i], mpath.NewController([]string{"c0", "c1"}[i], mpath.NoNode), p)
		if err != nil {
			t.Fatal(err)
		}
		p.Bind(mp)
		paths, fakes = append(paths, p), append(fakes, f)
	}
	h := s.Head(paths[0].NSID())
	cur := h.FindPath(0)
	if cur == nil {
		t.Fatal("no path")
	}
	i := 0
	if cur == paths[1].MPath() {
		i = 1
	}
	fakes[i].state = host.StateDeleting
	paths[i].Refresh()
	if got := h.FindPath(0); got != paths[1-i].MPath() {
		t.Fatalf("numa kept %v, the path of a deleting controller", got.Name())
	}
}
