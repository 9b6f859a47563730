package multipath

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme/host"
)

// silentCtrl adds the silent-path capabilities to fakeCtrl.
type silentCtrl struct {
	*fakeCtrl
	silent bool
	within time.Duration
}

func (s *silentCtrl) Silent() bool { return s.silent }
func (s *silentCtrl) ReadWithin(ctx context.Context, nsid uint32, slba uint64, buf []byte, within time.Duration) error {
	s.within = within
	return s.rec("read-within %d %d %d", nsid, slba, len(buf))
}

// A read with a silence deadline goes through ReadWithin, one without
// through Read; a write never has one.
func TestSubmitReadWithin(t *testing.T) {
	s := &silentCtrl{fakeCtrl: newFake()}
	p := NewPath(s, s.ns, hclog.NewNullLogger())
	buf := make([]byte, 4096)
	ctx := context.Background()
	for _, r := range []mpath.Request{
		{Op: mpath.OpRead, Offset: 4096, Length: 4096, Buf: buf, SilentAfter: 150 * time.Millisecond},
		{Op: mpath.OpRead, Offset: 4096, Length: 4096, Buf: buf},
		{Op: mpath.OpWrite, Offset: 4096, Length: 4096, Buf: buf, SilentAfter: 150 * time.Millisecond},
	} {
		if err := p.Submit(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"read-within 3 1 4096", "read 3 1 4096", "write 3 1 4096"}
	if len(s.calls) != 3 || s.calls[0] != want[0] || s.calls[1] != want[1] || s.calls[2] != want[2] {
		t.Errorf("calls %q, want %q", s.calls, want)
	}
	if s.within != 150*time.Millisecond {
		t.Errorf("within %v", s.within)
	}
}

// A read given up on a silent controller fails over; the silent
// controller's path is disabled until it answers again.
func TestSilentControllerFailsOverAndDisables(t *testing.T) {
	s := &silentCtrl{fakeCtrl: newFake()}
	p := NewPath(s, s.ns, hclog.NewNullLogger())
	if v := p.Classify(host.ErrSilent, 0); v.Action != mpath.ActionFailover {
		t.Errorf("Classify(ErrSilent) = %+v, want failover", v)
	}
	if p.Disabled() {
		t.Fatal("live, answering controller disabled")
	}
	s.silent = true
	if !p.Disabled() {
		t.Error("silent controller not disabled")
	}
	if !p.Available() {
		t.Error("silent controller not available: its I/O would fail instead of waiting")
	}
}
