package target_test

import (
	"fmt"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/target"
)

// A subsystem with one RAM namespace reachable through two ports (two
// paths), then a path fault: group 1 goes inaccessible on port 2.
func Example() {
	t := target.New(nil)
	defer t.Close()
	s, _ := t.AddSubsystem(target.SubsystemConfig{NQN: "nqn.2026-11.io.mpathfs:example", AllowAnyHost: true})
	_, _ = s.AddNamespace(target.NamespaceConfig{NSID: 1, Size: 64 << 20, ANAGroup: 1})
	p1, _ := t.AddPort(target.PortConfig{ID: 1, Addr: "127.0.0.1:0"})
	p2, _ := t.AddPort(target.PortConfig{ID: 2, Addr: "127.0.0.1:0"})
	_ = p1.LinkSubsystem(s.NQN())
	_ = p2.LinkSubsystem(s.NQN())

	p2.SetANAState(1, nvme.ANAInaccessible) // AEN to port 2's controllers
	p1.FailNextIO(1, nvme.StatusInternalPathError)
	fmt.Println(p1.ANAState(1), p2.ANAState(1))
	// Output: optimized inaccessible
}
