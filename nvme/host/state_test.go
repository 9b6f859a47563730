package host

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// TestStateNames pins the sysfs strings (landscape §2, nvme_ctrl_state_names).
func TestStateNames(t *testing.T) {
	want := map[State]string{
		StateNew: "new", StateLive: "live", StateResetting: "resetting", StateConnecting: "connecting",
		StateDeleting: "deleting", StateDeletingNoIO: "deleting (no IO)", StateDead: "dead", 99: "unknown state",
	}
	for s, n := range want {
		if got := s.String(); got != n {
			t.Errorf("State(%d).String() = %q, want %q", uint32(s), got, n)
		}
	}
}

// wantAllowed is nvme_change_ctrl_state's table (Linux 6.x), written out
// independently of the implementation.
var wantAllowed = map[[2]State]bool{
	{StateConnecting, StateLive}:       true,
	{StateNew, StateResetting}:         true,
	{StateLive, StateResetting}:        true,
	{StateNew, StateConnecting}:        true,
	{StateResetting, StateConnecting}:  true,
	{StateLive, StateDeleting}:         true,
	{StateResetting, StateDeleting}:    true,
	{StateConnecting, StateDeleting}:   true,
	{StateDeleting, StateDeletingNoIO}: true,
	{StateDead, StateDeletingNoIO}:     true,
	{StateDeleting, StateDead}:         true,
}

func testController(t *testing.T, log hclog.Logger) *Controller {
	t.Helper()
	o := fabrics.DefaultOptions()
	o.TrAddr, o.TrSvcID, o.SubsysNQN = "127.0.0.1", "1", "nqn.test"
	o.HostNQN, o.HostID = "nqn.host", [16]byte{1}
	c, err := newController(o, log, []Option{WithTransport(&refusingTransport{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.events.close)
	return c
}

// TestTransitionTable tries every (from, to) pair through changeState:
// it succeeds exactly for the kernel's allowed transitions, changes the
// state only then, logs "old -> new" and emits one StateChanged event.
func TestTransitionTable(t *testing.T) {
	for from := StateNew; from < numStates; from++ {
		for to := StateNew; to < numStates; to++ {
			t.Run(fmt.Sprintf("%s->%s", from, to), func(t *testing.T) {
				var buf bytes.Buffer
				log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
				c := testController(t, log)
				var mu sync.Mutex
				var got []Event
				c.Subscribe(func(e Event) { mu.Lock(); got = append(got, e); mu.Unlock() })
				c.mu.Lock()
				c.state = from
				c.stateA.Store(uint32(from))
				c.mu.Unlock()
				ok := c.changeState(to, nil, nil)
				want := wantAllowed[[2]State{from, to}]
				if ok != want {
					t.Fatalf("changeState(%s -> %s) = %v, want %v", from, to, ok, want)
				}
				if ok != CanTransition(from, to) {
					t.Fatalf("CanTransition disagrees with changeState")
				}
				wantState := from
				if want {
					wantState = to
				}
				if s := c.State(); s != wantState {
					t.Fatalf("state %s, want %s", s, wantState)
				}
				c.events.close()
				mu.Lock()
				defer mu.Unlock()
				if want {
					if len(got) != 1 || got[0].Kind != StateChanged || got[0].Old != from || got[0].New != to {
						t.Fatalf("events %+v, want one %s -> %s", got, from, to)
					}
					if !strings.Contains(buf.String(), fmt.Sprintf("%s -> %s", from, to)) {
						t.Fatalf("log %q lacks %q", buf.String(), fmt.Sprintf("%s -> %s", from, to))
					}
				} else if len(got) != 0 {
					t.Fatalf("refused transition emitted %+v", got)
				}
			})
		}
	}
}

// TestChangeStateStaleAssoc: a failure of an association that is no
// longer current must not reset the controller.
func TestChangeStateStaleAssoc(t *testing.T) {
	c := testController(t, nil)
	cur, old := &assoc{}, &assoc{}
	c.mu.Lock()
	c.state, c.assoc = StateLive, cur
	c.stateA.Store(uint32(StateLive))
	c.mu.Unlock()
	if c.changeState(StateResetting, old, nil) {
		t.Fatal("stale association reset the controller")
	}
	if !c.changeState(StateResetting, cur, nil) {
		t.Fatal("current association could not reset the controller")
	}
}

func TestMaxReconnects(t *testing.T) {
	for _, tc := range []struct {
		loss, delay string
		want        int
	}{{"600s", "10s", 60}, {"1s", "300ms", 4}, {"0s", "1s", 0}, {"-1s", "1s", -1}, {"1s", "1s", 1}} {
		o := fabrics.Options{CtrlLossTmo: mustDur(tc.loss), ReconnectDelay: mustDur(tc.delay)}
		if got := maxReconnects(o); got != tc.want {
			t.Errorf("maxReconnects(%s, %s) = %d, want %d", tc.loss, tc.delay, got, tc.want)
		}
	}
}

func mustDur(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}
