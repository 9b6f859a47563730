package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// Kind is a fault kind.
type Kind string

// The fault kinds. Each acts on one target port (path) unless noted.
const (
	Drop      Kind = "drop"      // close every connection of the port
	Stall     Kind = "stall"     // keep TCP open, answer nothing, for a while
	Listen    Kind = "listen"    // stop listening and drop: the port is down for a while
	ANA       Kind = "ana"       // an ANA group goes inaccessible, non-optimized or change for a while
	FailNext  Kind = "fail_next" // the next 1..4 I/Os fail with a path status (SCT 3)
	RST       Kind = "rst"       // iptables: segments to the port get a TCP reset, for a while
	Blackhole Kind = "blackhole" // iptables: segments to and from the port vanish, for a while
	BothDown  Kind = "both_down" // both ports down (listen off + drop) within delayed_removal_secs
)

// AllKinds lists every kind; RST and Blackhole need root and iptables.
var AllKinds = []Kind{Drop, Stall, Listen, ANA, FailNext, RST, Blackhole, BothDown}

// holds is how long a kind's fault lasts (uniform in [lo, hi]); zero for
// one-shot kinds.
func holds(k Kind, kato, delayedRemoval int) (lo, hi time.Duration) {
	katoD := time.Duration(kato) * time.Second
	switch k {
	case Stall, Blackhole:
		// Mostly shorter than the keep-alive timeout (a silent path that
		// comes back), sometimes longer (keep-alive expiry, reset).
		return 50 * time.Millisecond, katoD + katoD/4
	case Listen, RST, ANA:
		return 100 * time.Millisecond, time.Second
	case BothDown:
		return 200 * time.Millisecond, min(1500*time.Millisecond, time.Duration(delayedRemoval)*time.Second/2)
	}
	return 0, 0
}

// pathStatuses are the path-related statuses (SCT 3) fail_next injects:
// internal path error, ANA inaccessible, ANA transition, controller
// pathing error, host pathing error. Each must fail over, never reach the
// caller.
var pathStatuses = []string{"0x300", "0x302", "0x303", "0x360", "0x370"}

var anaStates = []string{"inaccessible", "non-optimized", "change"}

// injector applies faults to the target's control tree and iptables.
// Faults of different kinds overlap; per-port listen and stall are
// counted so that overlapping faults restore them only when the last ends.
type injector struct {
	ctl   string
	ports [2]int
	tag   string // iptables comment marking our rules

	mu     sync.Mutex
	listen [2]int // active "listen off" faults per port
	stall  [2]int
	ana    [2][2]int // active ANA faults per port and group
	counts map[Kind]int
	errs   []error
}

func newInjector(ctl string, ports [2]int) *injector {
	return &injector{ctl: ctl, ports: ports, tag: fmt.Sprintf("mpathfs-chaos-%d", os.Getpid()), counts: map[Kind]int{}}
}

func (in *injector) note(err error) {
	if err == nil {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.errs) < 20 {
		in.errs = append(in.errs, err)
	}
}

func (in *injector) port(i int) string { return "ports/" + strconv.Itoa(i+1) + "/" }

// setListen counts a "listen off" fault on port i up (on=false) or down.
func (in *injector) setListen(i int, off bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if off {
		in.listen[i]++
		if in.listen[i] == 1 {
			in.note2(write(in.ctl, in.port(i)+"fault/listen", "0"))
		}
		in.note2(write(in.ctl, in.port(i)+"fault/drop", "1"))
		return
	}
	in.listen[i]--
	if in.listen[i] == 0 {
		in.note2(write(in.ctl, in.port(i)+"fault/listen", "1"))
	}
}

func (in *injector) setStall(i int, on bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if on {
		in.stall[i]++
		if in.stall[i] == 1 {
			in.note2(write(in.ctl, in.port(i)+"fault/stall", "1"))
		}
		return
	}
	in.stall[i]--
	if in.stall[i] == 0 {
		in.note2(write(in.ctl, in.port(i)+"fault/stall", "0"))
	}
}

// note2 records err with in.mu held.
func (in *injector) note2(err error) {
	if err != nil && len(in.errs) < 20 {
		in.errs = append(in.errs, err)
	}
}

// iptables inserts (add) or deletes one rule for port p.
func (in *injector) iptables(add bool, rule ...string) error {
	op := "-D"
	if add {
		op = "-I"
	}
	args := append([]string{"-w", op, "INPUT", "-i", "lo"}, rule...)
	args = append(args, "-m", "comment", "--comment", in.tag)
	if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("iptables %v: %w: %s", args, err, out)
	}
	return nil
}

func (in *injector) rules(k Kind, p int) [][]string {
	ps := strconv.Itoa(p)
	if k == RST {
		return [][]string{{"-p", "tcp", "--dport", ps, "-j", "REJECT", "--reject-with", "tcp-reset"}}
	}
	return [][]string{{"-p", "tcp", "--dport", ps, "-j", "DROP"}, {"-p", "tcp", "--sport", ps, "-j", "DROP"}}
}

// apply starts one fault of kind k on port i and returns its undo (nil
// for one-shot faults).
func (in *injector) apply(k Kind, i int, rng *rand.Rand) func() {
	switch k {
	case Drop:
		in.note(write(in.ctl, in.port(i)+"fault/drop", "1"))
	case FailNext:
		st := pathStatuses[rng.IntN(len(pathStatuses))]
		in.note(write(in.ctl, in.port(i)+"fault/fail_next", fmt.Sprintf("%d %s", 1+rng.IntN(4), st)))
	case Stall:
		in.setStall(i, true)
		return func() { in.setStall(i, false) }
	case Listen:
		in.setListen(i, true)
		return func() { in.setListen(i, false) }
	case BothDown:
		in.setListen(0, true)
		in.setListen(1, true)
		return func() { in.setListen(0, false); in.setListen(1, false) }
	case ANA:
		g := rng.IntN(2)
		f := in.port(i) + "ana_groups/" + strconv.Itoa(g+1) + "/ana_state"
		in.mu.Lock()
		in.ana[i][g]++
		in.note2(write(in.ctl, f, anaStates[rng.IntN(len(anaStates))]))
		in.mu.Unlock()
		return func() {
			in.mu.Lock()
			defer in.mu.Unlock()
			in.ana[i][g]--
			if in.ana[i][g] == 0 {
				in.note2(write(in.ctl, f, "optimized"))
			}
		}
	case RST, Blackhole:
		rs := in.rules(k, in.ports[i])
		for _, r := range rs {
			in.note(in.iptables(true, r...))
		}
		return func() {
			for _, r := range rs {
				in.note(in.iptables(false, r...))
			}
		}
	}
	return nil
}

// run injects faults of kind k until ctx ends: one every gap on average
// (uniform in [gap/2, 3gap/2]) on a random port, each held for its hold
// time independently of the next, so faults of one kind may overlap too.
// Every fault is undone before run returns.
func (in *injector) run(ctx context.Context, k Kind, seed uint64, gap time.Duration, kato, delayedRemoval int) {
	rng := rand.New(rand.NewPCG(seed, uint64(len(k))))
	lo, hi := holds(k, kato, delayedRemoval)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		t := time.NewTimer(gap/2 + time.Duration(rng.Int64N(int64(gap)+1)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		i := rng.IntN(2)
		undo := in.apply(k, i, rng)
		in.mu.Lock()
		in.counts[k]++
		in.mu.Unlock()
		if undo == nil {
			continue
		}
		hold := lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTimer(hold)
			defer t.Stop()
			select { // undo early when the run ends
			case <-ctx.Done():
			case <-t.C:
			}
			undo()
		}()
	}
}

// cleanup removes any iptables rule left with our tag (after a crash of a
// previous run with the same pid it is harmless) and restores every port.
func (in *injector) cleanup() {
	for i := range 2 {
		_ = write(in.ctl, in.port(i)+"fault/listen", "1")
		_ = write(in.ctl, in.port(i)+"fault/stall", "0")
		for g := 1; g <= 2; g++ {
			_ = write(in.ctl, in.port(i)+"ana_groups/"+strconv.Itoa(g)+"/ana_state", "optimized")
		}
		for _, k := range []Kind{RST, Blackhole} {
			for _, r := range in.rules(k, in.ports[i]) {
				for in.iptables(false, r...) == nil {
				}
			}
		}
	}
}

// haveIPTables reports whether iptables rules can be added here.
func haveIPTables() bool {
	if os.Geteuid() != 0 {
		return false
	}
	_, err := exec.LookPath("iptables")
	if err != nil {
		return false
	}
	return exec.Command("iptables", "-w", "-S", "INPUT").Run() == nil
}
