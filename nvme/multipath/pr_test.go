package multipath

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/host"
)

var me = [16]byte{1, 2, 3}
var other = [16]byte{9, 9, 9}

// resvCtrl answers reservation commands: Exec of a Register/Acquire/
// Release returns errs in turn (nil when exhausted), a Report returns rep.
type resvCtrl struct {
	*fakeCtrl
	errs []error
	rep  nvme.ReservationStatus
	sent []uint8 // opcodes executed
}

func (c *resvCtrl) HostID() [16]byte { return me }
func (c *resvCtrl) Exec(_ context.Context, cmd *nvme.Command, data []byte) (nvme.Completion, error) {
	c.sent = append(c.sent, cmd.Opcode)
	if nvme.IOOpcode(cmd.Opcode) == nvme.IOReservationReport {
		copy(data, c.rep.AppendBinary(nil))
		return nvme.Completion{}, nil
	}
	if len(c.errs) == 0 {
		return nvme.Completion{}, nil
	}
	err := c.errs[0]
	c.errs = c.errs[1:]
	return nvme.Completion{}, err
}

// TestInDoubtReservationCommands: a reservation command lost with its path
// (no completion) is re-sent only when that is safe; otherwise the new
// path's Reservation Report decides whether it took effect.
func TestInDoubtReservationCommands(t *testing.T) {
	lost := &host.AbortedError{Cause: errors.New("connection reset")}
	reg := func(action uint8) nvme.Command { return nvme.NewReservationRegister(0, action, false, 0) }
	acq := func(action uint8) nvme.Command {
		return nvme.NewReservationAcquire(0, action, false, nvme.ResvWriteExclusive)
	}
	rel := func(action uint8) nvme.Command {
		return nvme.NewReservationRelease(0, action, false, nvme.ResvWriteExclusive)
	}
	mine := func(key uint64) nvme.RegisteredController { return nvme.RegisteredController{HostID: me, RKey: key} }
	theirs := func(key uint64) nvme.RegisteredController { return nvme.RegisteredController{HostID: other, RKey: key} }
	held := func(key uint64) nvme.RegisteredController {
		return nvme.RegisteredController{HostID: me, RKey: key, Holds: true}
	}
	for _, tc := range []struct {
		name    string
		cmd     nvme.Command
		key2    uint64
		regs    []nvme.RegisteredController
		resends bool // the second attempt re-sends the command
	}{
		{"register is idempotent: re-sent", reg(nvme.ResvRegister), 0xA1, nil, true},
		{"acquire is idempotent: re-sent", acq(nvme.ResvAcquire), 0, nil, true},
		{"release is idempotent: re-sent", rel(nvme.ResvRelease), 0, nil, true},
		{"unregister took effect", reg(nvme.ResvUnregister), 0, []nvme.RegisteredController{theirs(1)}, false},
		{"unregister did not", reg(nvme.ResvUnregister), 0, []nvme.RegisteredController{mine(0xA1)}, true},
		{"replace took effect", reg(nvme.ResvReplace), 0xA2, []nvme.RegisteredController{mine(0xA2)}, false},
		{"replace did not", reg(nvme.ResvReplace), 0xA2, []nvme.RegisteredController{mine(0xA1)}, true},
		{"preempt took effect", acq(nvme.ResvPreemptAbort), 0xB1, []nvme.RegisteredController{mine(0xA1)}, false},
		{"preempt did not", acq(nvme.ResvPreempt), 0xB1, []nvme.RegisteredController{mine(0xA1), theirs(0xB1)}, true},
		{"preempt of all registrants (PRKEY 0) took effect", acq(nvme.ResvPreempt), 0, []nvme.RegisteredController{held(0xA1)}, false},
		{"preempt of all registrants (PRKEY 0) did not", acq(nvme.ResvPreempt), 0, []nvme.RegisteredController{held(0xA1), theirs(0xB1)}, true},
		{"self-preempt (type change) took effect", acq(nvme.ResvPreempt), 0xA1, []nvme.RegisteredController{held(0xA1)}, false},
		{"self-preempt (type change) did not", acq(nvme.ResvPreempt), 0xA1, []nvme.RegisteredController{mine(0xA1)}, true},
		{"clear took effect", rel(nvme.ResvClear), 0, nil, false},
		{"clear did not", rel(nvme.ResvClear), 0, []nvme.RegisteredController{mine(0xA1), theirs(0xB1)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := &resvCtrl{fakeCtrl: newFake(), errs: []error{lost}}
			p1 := NewPath(old, old.ns, hclog.NewNullLogger())
			r := &resvCmd{cmd: tc.cmd, key2: tc.key2}
			data := make([]byte, 16)
			err := p1.submitResv(context.Background(), r, data)
			if v := p1.Classify(err, 0); !r.inDoubt || v.Action.String() != "failover" || !v.InDoubt {
				t.Fatalf("lost attempt: inDoubt %v verdict %+v", r.inDoubt, v)
			}
			nw := &resvCtrl{fakeCtrl: newFake(), rep: nvme.ReservationStatus{Gen: 7, RType: nvme.ResvWriteExclusive, Regs: tc.regs}}
			p2 := NewPath(nw, nw.ns, hclog.NewNullLogger())
			if err := p2.submitResv(context.Background(), r, data); err != nil {
				t.Fatal(err)
			}
			resent := len(nw.sent) > 0 && nvme.IOOpcode(nw.sent[len(nw.sent)-1]) != nvme.IOReservationReport
			if resent != tc.resends {
				t.Fatalf("re-sent %v, want %v (sent %x)", resent, tc.resends, nw.sent)
			}
		})
	}
}

// TestReservationStatusIsFinal: a device status other than a path error
// completes at once (no same-path retries, no failover), as the kernel's
// sync PR commands do; a path error fails over and is not in doubt.
func TestReservationStatusIsFinal(t *testing.T) {
	for _, tc := range []struct {
		st   nvme.Status
		want string
	}{
		{nvme.StatusReservationConflict, "complete"},
		{nvme.StatusInvalidField, "complete"},
		{nvme.StatusANAInaccessible, "failover"},
	} {
		c := &resvCtrl{fakeCtrl: newFake(), errs: []error{tc.st}}
		p := NewPath(c, c.ns, hclog.NewNullLogger())
		r := &resvCmd{cmd: nvme.NewReservationAcquire(0, nvme.ResvAcquire, false, 1)}
		err := p.submitResv(context.Background(), r, make([]byte, 16))
		if v := p.Classify(err, 0); v.Action.String() != tc.want || r.inDoubt {
			t.Errorf("%v: verdict %+v inDoubt %v, want %s", tc.st, v, r.inDoubt, tc.want)
		}
	}
}

// TestPRStatus is nvme_status_to_pr_err.
func TestPRStatus(t *testing.T) {
	for _, tc := range []struct {
		st   nvme.Status
		sts  int32
		want error
	}{
		{0, 0, nil},
		{nvme.StatusReservationConflict | nvme.StatusDNR, PRStatusReservationConflict, nil},
		{nvme.StatusANAInaccessible, PRStatusPathFailed, nil},
		{nvme.StatusHostPathError, PRStatusPathFailed, nil},
		{nvme.StatusInvalidField | nvme.StatusDNR, 0, syscall.EINVAL},
		{nvme.StatusInvalidOpcode, 0, syscall.EINVAL},
		{nvme.StatusInternalError, PRStatusIOErr, nil},
	} {
		sts, err := PRStatus(tc.st)
		if sts != tc.sts || (tc.want == nil) != (err == nil) || (err != nil && !errors.Is(err, tc.want)) {
			t.Errorf("PRStatus(%v) = %d, %v; want %d, %v", tc.st, sts, err, tc.sts, tc.want)
		}
	}
	if PRTypeToNVMe(0) != 0 || PRTypeToNVMe(7) != 0 || PRTypeToNVMe(PRExclusiveAccessAllRegs) != nvme.ResvExclusiveAccessAllRegs {
		t.Error("PRTypeToNVMe")
	}
}

func TestParseResvCommand(t *testing.T) {
	c, err := ParseResvCommand("acquire 2 3 1 0xa1 0xb1\n")
	if err != nil || c != (ResvCommand{Op: nvme.IOReservationAcquire, Action: 2, RType: 3, IEKey: true, CRKey: 0xa1, Key2: 0xb1}) {
		t.Fatalf("ParseResvCommand = %+v, %v", c, err)
	}
	for _, bad := range []string{"", "acquire 2 3 1 0xa1", "reserve 0 1 0 0 0", "register 256 0 0 0 0", "release 0 1 2 0 0", "register 0 0 0 x 0", "register 0 0 0 0 0 0"} {
		if _, err := ParseResvCommand(bad); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("ParseResvCommand(%q): %v, want EINVAL", bad, err)
		}
	}
}

func FuzzParseResvCommand(f *testing.F) {
	f.Add("register 0 0 0 0 0xa1")
	f.Add("acquire 2 3 1 0xa1 0xb1")
	f.Add("release 1 0 0 0xa1 0")
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseResvCommand(line)
		if err != nil {
			return
		}
		names := map[nvme.IOOpcode]string{nvme.IOReservationRegister: "register", nvme.IOReservationAcquire: "acquire", nvme.IOReservationRelease: "release"}
		ie := 0
		if c.IEKey {
			ie = 1
		}
		again, err := ParseResvCommand(fmt.Sprintf("%s %d %d %d %#x %#x", names[c.Op], c.Action, c.RType, ie, c.CRKey, c.Key2))
		if err != nil || again != c {
			t.Fatalf("%q -> %+v -> %+v, %v", line, c, again, err)
		}
	})
}
