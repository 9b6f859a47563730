package host

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/mpath/mpathtest"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/target"
)

// TestANATTRearmedOnEveryRead (issue 8, behaviour 7): every ANA log read
// that still shows a group in change re-arms the 2×ANATT timer
// (mod_timer in nvme_read_ana_log); the controller is reset only 2×ANATT
// after the last such read. Fake time; our target reports ANATT 10 s.
func TestANATTRearmedOnEveryRead(t *testing.T) {
	e := newEnv(t)
	clk := mpathtest.NewClock()
	o := e.opts(0)
	o.KeepAliveTmo = time.Minute // the target's timer runs on real time
	c := connect(t, o, WithClock(clk))
	if got := c.Identify().ANATT; got != 10 {
		t.Fatalf("ANATT %d, want our target's 10", got)
	}
	ev := record(c)
	anaRead := func() { ev.wait(t, "an ANA log read", func(e Event) bool { return e.Kind == ANAChanged }) }
	e.ports[0].SetANAState(1, nvme.ANAChange)
	anaRead()
	clk.Advance(15 * time.Second)
	e.ports[0].SetANAState(2, nvme.ANANonOptimized) // another AEN: the read still shows group 1 in change
	anaRead()
	clk.Advance(15 * time.Second) // 30 s after the first read, 15 s after the last
	if n := c.Counters().Resets; n != 0 || c.State() != StateLive {
		t.Fatalf("reset %d times (state %s) 15 s after the last read showing change", n, c.State())
	}
	clk.Advance(6 * time.Second) // 21 s after the last read
	ev.waitState(t, StateResetting)
}

// TestInvalidMNANFailsConnect (issue 8, behaviour 7): a controller using
// ANA with MNAN 0 or MNAN > NN fails the connect with EINVAL, as
// nvme_mpath_init_identify does.
func TestInvalidMNANFailsConnect(t *testing.T) {
	for _, mnan := range []uint32{0, 1 << 20} {
		f := newFakeCtrl()
		f.id.CMIC |= nvme.CMICANA
		f.id.NANAGRPID, f.id.ANAGRPMAX = 1, 1
		f.id.NN, f.id.MNAN = 16, mnan
		c, err := fakeConnect(t, f, nil)
		if err == nil {
			c.Close(context.Background())
			t.Fatalf("MNAN %d: connected", mnan)
		}
		if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "Invalid MNAN value") {
			t.Errorf("MNAN %d: %v, want EINVAL 'Invalid MNAN value'", mnan, err)
		}
	}
}

// TestFirmwareActivationNotice (issue 8, behaviour 10): a Firmware
// Activation Starting notice is handled as nvme_fw_act_work does: CSTS.PP
// is polled (on fake time) until the controller resumes, the firmware slot
// log is read (clearing the event), the controller stays live and the next
// notice is delivered too.
func TestFirmwareActivationNotice(t *testing.T) {
	e := newEnv(t)
	// The env's subsystem has no notices; a second subsystem has them.
	sub, err := e.tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN + "-fw", AllowAnyHost: true, FirmwareActivationNotices: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.AddNamespace(target.NamespaceConfig{NSID: 1, Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := e.ports[0].LinkSubsystem(testNQN + "-fw"); err != nil {
		t.Fatal(err)
	}
	clk := mpathtest.NewClock()
	o := e.opts(0)
	o.SubsysNQN = testNQN + "-fw"
	o.KeepAliveTmo = time.Minute // the target's timer runs on real time
	c := connect(t, o, WithClock(clk))
	for i := 1; i <= 2; i++ {
		sub.StartFirmwareActivation()
		clk.WaitPending(2) // keep-alive ticker + the host's 100 ms poll sleep: it saw PP set
		sub.EndFirmwareActivation()
		clk.Advance(100 * time.Millisecond)
		deadline := time.Now().Add(failAfter)
		for c.Counters().FWActivations != uint64(i) {
			if time.Now().After(deadline) {
				t.Fatalf("activation %d not handled", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if c.State() != StateLive || c.Counters().Resets != 0 {
		t.Fatalf("state %s, %d resets after firmware activations", c.State(), c.Counters().Resets)
	}
}

// TestACREAgainstOurTarget (issue 8, behaviour 8): the host enables ACRE
// only when the controller reports CRDT1, and our target keeps a status's
// CRD only for a host that did.
func TestACREAgainstOurTarget(t *testing.T) {
	e := newEnv(t)
	withCRDT, err := e.tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN + "-crdt", AllowAnyHost: true, CRDT: [3]uint16{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := withCRDT.AddNamespace(target.NamespaceConfig{NSID: 1, Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := e.ports[0].LinkSubsystem(testNQN + "-crdt"); err != nil {
		t.Fatal(err)
	}
	const crd2 = nvme.Status(2 << 11)
	for _, tc := range []struct {
		nqn  string
		acre bool
	}{{testNQN, false}, {testNQN + "-crdt", true}} {
		o := e.opts(0)
		o.SubsysNQN = tc.nqn
		c := connect(t, o)
		ctrls := e.tgt.Subsystem(tc.nqn).Controllers()
		if len(ctrls) != 1 || ctrls[0].ACRE() != tc.acre {
			t.Fatalf("%s: ACRE on the target %v, want %v", tc.nqn, ctrls[0].ACRE(), tc.acre)
		}
		e.ports[0].FailNextIO(1, nvme.StatusInternalError|crd2)
		err := c.Read(context.Background(), 1, 0, make([]byte, 512))
		var st nvme.Status
		if !errors.As(err, &st) || st.Code() != nvme.StatusInternalError {
			t.Fatalf("%s: read %v, want Internal Error", tc.nqn, err)
		}
		if want := map[bool]uint8{false: 0, true: 2}[tc.acre]; st.CRD() != want {
			t.Errorf("%s: CRD %d, want %d", tc.nqn, st.CRD(), want)
		}
		c.Close(context.Background())
	}
}

// TestANAReadsCoalesce (issue 8, design): however many ANA errors ask for
// a re-read, the controller's one worker reads the log at most once more
// than the read in progress: 100 requests cost at most 2 reads.
func TestANAReadsCoalesce(t *testing.T) {
	e := newEnv(t)
	c := connect(t, e.opts(0))
	ctl := e.tgt.Subsystem(testNQN).Controllers()[0]
	before := ctl.ANALogReads()
	ev := record(c)
	// The port answers nothing while the requests arrive, so they all meet
	// a read in progress (or about to start) however slowly this loop runs
	// next to the worker; unstalled, that read and at most one more run.
	e.ports[0].Stall(true)
	for range 100 {
		c.QueueANARead()
	}
	e.ports[0].Stall(false)
	ev.wait(t, "the queued read", func(e Event) bool { return e.Kind == ANAChanged })
	if err := c.RefreshANA(context.Background()); err != nil { // one more, synchronous
		t.Fatal(err)
	}
	ev.wait(t, "the synchronous read", func(e Event) bool { return e.Kind == ANAChanged })
	if n := ctl.ANALogReads() - before; n < 2 || n > 3 {
		t.Fatalf("%d ANA log reads for 100 requests and one synchronous read, want 2..3", n)
	}
}
