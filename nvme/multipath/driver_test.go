package multipath

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/mpath/mpathtest"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/host"
)

// fakeCtrl is a scriptable Controller.
type fakeCtrl struct {
	state host.State
	avail bool
	ns    host.Namespace
	id    nvme.IdentifyController
	err   error
	calls []string
}

func (f *fakeCtrl) State() host.State                  { return f.state }
func (f *fakeCtrl) Available() bool                    { return f.avail }
func (f *fakeCtrl) Identify() *nvme.IdentifyController { return &f.id }
func (f *fakeCtrl) QueueANARead()                      { f.calls = append(f.calls, "ana-read") }
func (f *fakeCtrl) Namespace(nsid uint32) (host.Namespace, bool) {
	return f.ns, nsid == f.ns.NSID
}
func (f *fakeCtrl) rec(format string, a ...any) error {
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
	return f.err
}
func (f *fakeCtrl) Read(_ context.Context, nsid uint32, slba uint64, buf []byte) error {
	return f.rec("read %d %d %d", nsid, slba, len(buf))
}
func (f *fakeCtrl) Write(_ context.Context, nsid uint32, slba uint64, buf []byte) error {
	return f.rec("write %d %d %d", nsid, slba, len(buf))
}
func (f *fakeCtrl) Flush(_ context.Context, nsid uint32) error { return f.rec("flush %d", nsid) }
func (f *fakeCtrl) WriteZeroes(_ context.Context, nsid uint32, slba, nlb uint64) error {
	return f.rec("write-zeroes %d %d %d", nsid, slba, nlb)
}
func (f *fakeCtrl) Deallocate(_ context.Context, nsid uint32, slba, nlb uint64) error {
	return f.rec("deallocate %d %d %d", nsid, slba, nlb)
}
func (f *fakeCtrl) Exec(_ context.Context, cmd *nvme.Command, data []byte) (nvme.Completion, error) {
	return nvme.Completion{}, f.rec("exec 0x%02x nsid %d", cmd.Opcode, cmd.NSID)
}

func newFake() *fakeCtrl {
	f := &fakeCtrl{state: host.StateLive, avail: true,
		ns: host.Namespace{NSID: 3, BlockSize: 4096, ANAGroup: 2, ANAState: nvme.ANAOptimized}}
	f.id.CRDT = [3]uint16{1, 5, 20}
	return f
}

// Byte offsets become LBAs of the namespace's block size; each op maps to
// its NVMe command.
func TestSubmitMapsOps(t *testing.T) {
	f := newFake()
	p := NewPath(f, f.ns, hclog.NewNullLogger())
	ctx := context.Background()
	buf := make([]byte, 8192)
	for _, r := range []mpath.Request{
		{Op: mpath.OpRead, Offset: 3 * 4096, Length: 8192, Buf: buf},
		{Op: mpath.OpWrite, Offset: 4096, Length: 4096, Buf: buf},
		{Op: mpath.OpFlush},
		{Op: mpath.OpWriteZeroes, Offset: 8192, Length: 3 * 4096},
		{Op: mpath.OpDiscard, Offset: 0, Length: 4096},
		{Op: mpath.OpOther, Arg: &nvme.Command{Opcode: 0x0D}},
	} {
		if err := p.Submit(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"read 3 3 8192", "write 3 1 4096", "flush 3", "write-zeroes 3 2 3", "deallocate 3 0 1", "exec 0x0d nsid 3"}
	if fmt.Sprint(f.calls) != fmt.Sprint(want) {
		t.Fatalf("calls %q\nwant  %q", f.calls, want)
	}
	if err := p.Submit(ctx, &mpath.Request{Op: mpath.OpOther}); err == nil {
		t.Fatal("OpOther without a command accepted")
	}
}

// Classification follows nvme_decide_disposition (reference §6.2).
func TestClassify(t *testing.T) {
	f := newFake()
	p := NewPath(f, f.ns, hclog.NewNullLogger())
	aborted := &host.AbortedError{LostAt: time.Now(), KATO: time.Second}
	for _, tc := range []struct {
		name    string
		err     error
		retries int
		want    mpath.Verdict
	}{
		{"path error fails over", nvme.StatusInternalPathError, 0, mpath.Verdict{Action: mpath.ActionFailover}},
		{"ANA inaccessible fails over and re-reads ANA", nvme.StatusANAInaccessible, 0, mpath.Verdict{Action: mpath.ActionFailover, ANA: true}},
		{"ANA transition with More bit", nvme.StatusANATransition | nvme.StatusMore, 0, mpath.Verdict{Action: mpath.ActionFailover, ANA: true}},
		{"path error with DNR completes", nvme.StatusANAInaccessible | nvme.StatusDNR, 0, mpath.Verdict{Action: mpath.ActionComplete}},
		{"host path error (never sent) fails over, not in doubt", nvme.StatusHostPathError, 0, mpath.Verdict{Action: mpath.ActionFailover}},
		{"aborted by error recovery fails over in doubt", aborted, 0, mpath.Verdict{Action: mpath.ActionFailover, InDoubt: true}},
		{"wrapped abort", fmt.Errorf("read: %w", aborted), 0, mpath.Verdict{Action: mpath.ActionFailover, InDoubt: true}},
		{"generic error retried on the same path", nvme.StatusInternalError, 0, mpath.Verdict{Action: mpath.ActionRetry}},
		{"CRD 2 waits CRDT2 x 100 ms", nvme.StatusInternalError | 2<<11, 1, mpath.Verdict{Action: mpath.ActionRetry, RetryDelay: 500 * time.Millisecond}},
		{"retries exhausted completes", nvme.StatusInternalError, nvme.MaxRetries, mpath.Verdict{Action: mpath.ActionComplete}},
		{"DNR completes", nvme.StatusLBARange | nvme.StatusDNR, 0, mpath.Verdict{Action: mpath.ActionComplete}},
		{"cancelled completes", context.Canceled, 0, mpath.Verdict{Action: mpath.ActionComplete}},
		{"unknown host failure fails over in doubt", errors.New("boom"), 0, mpath.Verdict{Action: mpath.ActionFailover, InDoubt: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Classify(tc.err, tc.retries); got != tc.want {
				t.Fatalf("Classify(%v) = %+v, want %+v", tc.err, got, tc.want)
			}
		})
	}
}

func TestAccessStateAndDisabled(t *testing.T) {
	f := newFake()
	p := NewPath(f, f.ns, hclog.NewNullLogger())
	for _, tc := range []struct {
		ana  nvme.ANAState
		want mpath.AccessState
	}{
		{nvme.ANAOptimized, mpath.StateOptimized},
		{nvme.ANANonOptimized, mpath.StateNonOptimized},
		{nvme.ANAInaccessible, mpath.StateOther},
		{nvme.ANAPersistentLoss, mpath.StateOther},
		{nvme.ANAChange, mpath.StateOther},
		{0, mpath.StateOther},
	} {
		f.ns.ANAState = tc.ana
		if !p.Refresh() {
			t.Fatal("namespace reported gone")
		}
		if got := p.AccessState(); got != tc.want {
			t.Errorf("ANA %v: access %v, want %v", tc.ana, got, tc.want)
		}
	}
	for _, tc := range []struct {
		s        host.State
		disabled bool
	}{
		{host.StateLive, false}, {host.StateDeleting, false}, {host.StateResetting, true},
		{host.StateConnecting, true}, {host.StateDead, true}, {host.StateNew, true},
	} {
		f.state = tc.s
		if got := p.Disabled(); got != tc.disabled {
			t.Errorf("state %v: Disabled %v, want %v", tc.s, got, tc.disabled)
		}
	}
	f.ns.NSID = 9
	if p.Refresh() {
		t.Error("Refresh did not notice the namespace went away")
	}
}

// An in-doubt write is fenced until LostAt + KATO + CQT; other errors are not.
func TestFence(t *testing.T) {
	f := newFake()
	p := NewPath(f, f.ns, hclog.NewNullLogger())
	clk := mpathtest.NewClock()
	p.clk = clk // fake time
	ctx := context.Background()
	if err := p.Fence(ctx, nvme.StatusANAInaccessible); err != nil {
		t.Fatal(err)
	}
	lost := clk.Now()
	done := make(chan error, 1)
	go func() {
		done <- p.Fence(ctx, &host.AbortedError{LostAt: lost, KATO: 150 * time.Millisecond, CQT: 50 * time.Millisecond})
	}()
	clk.WaitPending(1)
	clk.Advance(199 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("fence returned (%v) before LostAt+KATO+CQT (200ms)", err)
	default:
	}
	clk.Advance(time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Already past: no wait (no timer armed).
	if err := p.Fence(ctx, &host.AbortedError{LostAt: lost.Add(-time.Hour), KATO: time.Second}); err != nil || clk.Pending() != 0 {
		t.Fatalf("stale fence waited or failed: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Fence(cctx, &host.AbortedError{LostAt: clk.Now(), KATO: time.Hour}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled fence: %v", err)
	}
}

type reauthCtrl struct {
	*fakeCtrl
	reauths int
}

func (r *reauthCtrl) RequestReauth() { r.reauths++ }

// TestClassifyAuthRequired: Authentication Required without DNR is
// nvme_decide_disposition's AUTHENTICATE: the controller re-authenticates
// and the command is retried on the same path; with DNR it completes.
func TestClassifyAuthRequired(t *testing.T) {
	f := &reauthCtrl{fakeCtrl: newFake()}
	p := NewPath(f, f.ns, hclog.NewNullLogger())
	if got := p.Classify(nvme.StatusAuthRequired, 0); got != (mpath.Verdict{Action: mpath.ActionRetry}) || f.reauths != 1 {
		t.Fatalf("0x191: %+v, %d re-authentications", got, f.reauths)
	}
	if got := p.Classify(nvme.StatusAuthRequired|nvme.StatusDNR, 0); got != (mpath.Verdict{Action: mpath.ActionComplete}) || f.reauths != 1 {
		t.Fatalf("0x191 DNR: %+v, %d re-authentications", got, f.reauths)
	}
}
