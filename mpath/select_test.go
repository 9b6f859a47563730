package mpath_test

import (
	"fmt"
	"testing"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/mpath/mpathtest"
)

// pathSpec describes one path of a selection test head.
type pathSpec struct {
	state      mpath.AccessState
	node       int // controller NUMA node
	disabled   bool
	notReady   bool // capacity differs from the head's
	anaPending bool
	inflight   int64 // queue-depth: controller in-flight commands
	out, est   int64 // service-time: outstanding bytes, ns per KiB
}

func opt(node int) pathSpec    { return pathSpec{state: mpath.StateOptimized, node: node} }
func nonopt(node int) pathSpec { return pathSpec{state: mpath.StateNonOptimized, node: node} }
func other(node int) pathSpec  { return pathSpec{state: mpath.StateOther, node: node} }

func (p pathSpec) disable() pathSpec          { p.disabled = true; return p }
func (p pathSpec) unready() pathSpec          { p.notReady = true; return p }
func (p pathSpec) pending() pathSpec          { p.anaPending = true; return p }
func (p pathSpec) depth(n int64) pathSpec     { p.inflight = n; return p }
func (p pathSpec) st(out, est int64) pathSpec { p.out, p.est = out, est; return p }

const none = -1 // "no path" in want / cache columns

type selCase struct {
	name   string
	policy mpath.IOPolicy
	paths  []pathSpec
	node   int         // submitter node
	cached map[int]int // node -> index of its cached current path before the I/O
	want   int         // index of the selected path, or none
	// wantCache: node -> index of the cached path after the I/O (none = empty).
	wantCache map[int]int
}

type testHead struct {
	s     *mpath.Subsystem
	h     *mpath.Head
	paths []*mpath.Path
	drvs  []*mpathtest.Driver
	ctrls []*mpath.Controller
}

var testInfo = mpath.HeadInfo{Capacity: 1 << 30, BlockSize: 4096}

func newTestHead(t testing.TB, policy mpath.IOPolicy, specs []pathSpec) *testHead {
	t.Helper()
	cfg := mpath.DefaultSubsystemConfig("nqn.2026-01.io.mpathfs:test")
	cfg.Policy = policy
	cfg.Clock = mpathtest.NewClock()
	th := &testHead{s: mpath.NewSubsystem(cfg)}
	for i, sp := range specs {
		d := mpathtest.NewDriver(fmt.Sprintf("p%d", i))
		d.SetAccessState(sp.state)
		d.SetDisabled(sp.disabled)
		c := mpath.NewController(fmt.Sprintf("nvme%d", i), sp.node)
		info := testInfo
		if sp.notReady {
			info.Capacity /= 2
		}
		p, err := th.s.AddPath(mpath.Identity{NSID: 1}, info, fmt.Sprintf("nvme0c%dn1", i), c, d)
		if err != nil {
			t.Fatal(err)
		}
		d.Bind(p)
		if sp.anaPending {
			mpath.MarkANAPending(p)
		}
		mpath.SetInflight(c, sp.inflight)
		mpath.SetServiceTime(c, sp.out, sp.est, 0)
		th.paths = append(th.paths, p)
		th.drvs = append(th.drvs, d)
		th.ctrls = append(th.ctrls, c)
		th.h = p.Head()
	}
	return th
}

func (th *testHead) index(p *mpath.Path) int {
	for i, q := range th.paths {
		if q == p {
			return i
		}
	}
	return none
}

// Reference: landscape doc §1.1 (Linux drivers/nvme/host/multipath.c).
var selCases = []selCase{
	// The predicate shared by all policies (nvme_path_is_disabled + ANA state).
	{name: "numa/disabled path is never selected", policy: mpath.PolicyNUMA,
		paths: []pathSpec{opt(0).disable(), nonopt(1)}, node: 0, want: 1},
	{name: "numa/inaccessible (other) path is never selected", policy: mpath.PolicyNUMA,
		paths: []pathSpec{other(0), nonopt(1)}, node: 0, want: 1},
	{name: "numa/not-ready path (capacity mismatch) is never selected", policy: mpath.PolicyNUMA,
		paths: []pathSpec{nonopt(1), opt(0).unready()}, node: 0, want: 0},
	{name: "numa/ANA-pending path is never selected", policy: mpath.PolicyNUMA,
		paths: []pathSpec{opt(0).pending(), nonopt(1)}, node: 0, want: 1},
	{name: "queue-depth/disabled idle path is never selected", policy: mpath.PolicyQueueDepth,
		paths: []pathSpec{opt(0).disable(), opt(0).depth(7)}, want: 1},
	{name: "service-time/inaccessible idle path is never selected", policy: mpath.PolicyServiceTime,
		paths: []pathSpec{other(0), opt(0).st(1<<20, 1000)}, want: 1},

	// numa
	{name: "numa/empty cache rescans and caches the nearest optimized path", policy: mpath.PolicyNUMA,
		paths: []pathSpec{opt(1), opt(0)}, node: 0, want: 1, wantCache: map[int]int{0: 1, 1: none}},
	{name: "numa/a remote optimized path beats a local non-optimized one", policy: mpath.PolicyNUMA,
		paths: []pathSpec{nonopt(0), opt(1)}, node: 0, want: 1, wantCache: map[int]int{0: 1}},
	{name: "numa/without optimized paths the nearest non-optimized one is used and cached", policy: mpath.PolicyNUMA,
		paths: []pathSpec{nonopt(1), nonopt(0), other(0)}, node: 0, want: 1, wantCache: map[int]int{0: 1}},
	{name: "numa/equal distance keeps list order", policy: mpath.PolicyNUMA,
		paths: []pathSpec{opt(2), opt(3)}, node: 0, want: 0},
	{name: "numa/a cached optimized path is kept though a nearer one exists", policy: mpath.PolicyNUMA,
		paths: []pathSpec{opt(1), opt(0)}, node: 0, cached: map[int]int{0: 0}, want: 0, wantCache: map[int]int{0: 0}},
	{name: "numa/a cached non-optimized path is re-evaluated on every I/O", policy: mpath.PolicyNUMA,
		paths: []pathSpec{nonopt(0), opt(1)}, node: 0, cached: map[int]int{0: 0}, want: 1, wantCache: map[int]int{0: 1}},
	{name: "numa/a cached path that became disabled is replaced", policy: mpath.PolicyNUMA,
		paths: []pathSpec{opt(0).disable(), nonopt(0)}, node: 0, cached: map[int]int{0: 0}, want: 1, wantCache: map[int]int{0: 1}},
	{name: "numa/a cached path that became inaccessible is replaced", policy: mpath.PolicyNUMA,
		paths: []pathSpec{other(0), opt(1)}, node: 0, cached: map[int]int{0: 0}, want: 1},
	{name: "numa/unknown submitter node: all paths equal, first optimized wins", policy: mpath.PolicyNUMA,
		paths: []pathSpec{nonopt(0), opt(1), opt(0)}, node: mpath.NoNode, want: 1},
	{name: "numa/controller with unknown node is at local distance", policy: mpath.PolicyNUMA,
		paths: []pathSpec{opt(1), opt(mpath.NoNode)}, node: 0, want: 1},
	{name: "numa/the cache is per node", policy: mpath.PolicyNUMA,
		paths: []pathSpec{opt(0), opt(1)}, node: 1, cached: map[int]int{0: 0}, want: 1, wantCache: map[int]int{0: 0, 1: 1}},
	{name: "numa/no usable path returns nil and caches nothing", policy: mpath.PolicyNUMA,
		paths: []pathSpec{other(0), opt(0).disable()}, node: 0, want: none, wantCache: map[int]int{0: none}},

	// round-robin
	{name: "round-robin/empty cache: first optimized in list order, no distances", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{nonopt(0), opt(1), opt(0)}, node: 0, want: 1, wantCache: map[int]int{0: 1}},
	{name: "round-robin/starts at the path after the current one", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{opt(0), opt(0), opt(0)}, cached: map[int]int{0: 0}, want: 1, wantCache: map[int]int{0: 1}},
	{name: "round-robin/wraps round", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{opt(0), opt(0), opt(0)}, cached: map[int]int{0: 2}, want: 0, wantCache: map[int]int{0: 0}},
	{name: "round-robin/skips disabled paths", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{opt(0), opt(0).disable(), opt(0)}, cached: map[int]int{0: 0}, want: 2, wantCache: map[int]int{0: 2}},
	{name: "round-robin/the first optimized path wins over an earlier non-optimized one", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{opt(0), nonopt(0), opt(0)}, cached: map[int]int{0: 0}, want: 2, wantCache: map[int]int{0: 2}},
	{name: "round-robin/without optimized paths the last non-optimized one seen is used", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{opt(0).disable(), nonopt(0), nonopt(0)}, cached: map[int]int{0: 0}, want: 2, wantCache: map[int]int{0: 2}},
	{name: "round-robin/falls back to the current path when it is the only optimized one", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{opt(0), nonopt(0), nonopt(0)}, cached: map[int]int{0: 0}, want: 0, wantCache: map[int]int{0: 0}},
	{name: "round-robin/a current non-optimized path is kept when nothing else is usable", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{nonopt(0), other(0), opt(0).disable()}, cached: map[int]int{0: 0}, want: 0, wantCache: map[int]int{0: 0}},
	{name: "round-robin/a current non-optimized path yields to another non-optimized one", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{nonopt(0), nonopt(0)}, cached: map[int]int{0: 0}, want: 1, wantCache: map[int]int{0: 1}},
	{name: "round-robin/a current inaccessible path is not a fallback", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{other(0), other(0)}, cached: map[int]int{0: 0}, want: none, wantCache: map[int]int{0: 0}},
	{name: "round-robin/a single path is returned", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{nonopt(0)}, cached: map[int]int{0: 0}, want: 0},
	{name: "round-robin/a single disabled path is not returned", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{opt(0).disable()}, cached: map[int]int{0: 0}, want: none},
	{name: "round-robin/a single inaccessible path is not returned (stricter than Linux)", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{other(0)}, cached: map[int]int{0: 0}, want: none},
	{name: "round-robin/the rotation is per node", policy: mpath.PolicyRoundRobin,
		paths: []pathSpec{opt(0), opt(0), opt(0)}, node: 1, cached: map[int]int{0: 0, 1: 1}, want: 2, wantCache: map[int]int{0: 0, 1: 2}},

	// queue-depth
	{name: "queue-depth/fewest in-flight among optimized paths", policy: mpath.PolicyQueueDepth,
		paths: []pathSpec{opt(0).depth(5), opt(0).depth(2), opt(0).depth(3)}, want: 1},
	{name: "queue-depth/a busy optimized path beats an idle non-optimized one", policy: mpath.PolicyQueueDepth,
		paths: []pathSpec{nonopt(0), opt(0).depth(9)}, want: 1},
	{name: "queue-depth/without optimized paths the least busy non-optimized one", policy: mpath.PolicyQueueDepth,
		paths: []pathSpec{nonopt(0).depth(4), nonopt(0).depth(1), other(0)}, want: 1},
	{name: "queue-depth/an idle optimized path ends the scan", policy: mpath.PolicyQueueDepth,
		paths: []pathSpec{opt(0).depth(3), opt(0), opt(0)}, want: 1},
	{name: "queue-depth/equal depth keeps list order", policy: mpath.PolicyQueueDepth,
		paths: []pathSpec{opt(0).depth(2), opt(0).depth(2)}, want: 0},
	{name: "queue-depth/keeps no cache and ignores NUMA", policy: mpath.PolicyQueueDepth,
		paths: []pathSpec{opt(0).depth(1), opt(1)}, node: 0, want: 1, wantCache: map[int]int{0: none}},

	// service-time (beyond the kernel)
	{name: "service-time/unmeasured idle paths: first optimized", policy: mpath.PolicyServiceTime,
		paths: []pathSpec{nonopt(0), opt(0), opt(0)}, want: 1},
	{name: "service-time/lowest expected completion wins", policy: mpath.PolicyServiceTime,
		paths: []pathSpec{opt(0).st(64<<10, 100), opt(0).st(0, 1000)}, want: 1},
	{name: "service-time/a fast path with work queued beats an idle slow one", policy: mpath.PolicyServiceTime,
		paths: []pathSpec{opt(0).st(0, 10000), opt(0).st(16<<10, 100)}, want: 1},
	{name: "service-time/optimized beats non-optimized", policy: mpath.PolicyServiceTime,
		paths: []pathSpec{nonopt(0).st(0, 1), opt(0).st(1<<20, 1000)}, want: 1},
	{name: "service-time/keeps no cache", policy: mpath.PolicyServiceTime,
		paths: []pathSpec{opt(0), opt(0)}, want: 0, wantCache: map[int]int{0: none}},
}

func TestSelect(t *testing.T) {
	for _, tc := range selCases {
		t.Run(tc.name, func(t *testing.T) {
			th := newTestHead(t, tc.policy, tc.paths)
			for node, i := range tc.cached {
				mpath.SetCurrent(th.h, node, th.paths[i])
			}
			// A request of 4 KiB, recent enough that service-time estimates are fresh.
			got := th.index(th.h.FindPath(tc.node))
			if got != tc.want {
				t.Errorf("selected path %d, want %d", got, tc.want)
			}
			for node, want := range tc.wantCache {
				if c := th.index(mpath.Current(th.h, node)); c != want {
					t.Errorf("node %d cached path %d, want %d", node, c, want)
				}
			}
		})
	}
}

// TestRoundRobinRotates checks the steady rotation over optimized paths, skipping
// a non-optimized one.
func TestRoundRobinRotates(t *testing.T) {
	th := newTestHead(t, mpath.PolicyRoundRobin, []pathSpec{opt(0), nonopt(0), opt(0), opt(0)})
	var got []int
	for i := 0; i < 6; i++ {
		got = append(got, th.index(th.h.FindPath(0)))
	}
	want := []int{0, 2, 3, 0, 2, 3}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rotation %v, want %v", got, want)
	}
}

func TestNUMANodesReportsTheNodesUsingAPath(t *testing.T) {
	th := newTestHead(t, mpath.PolicyNUMA, []pathSpec{opt(0), opt(1)})
	for _, node := range []int{0, 1, 2, 3, mpath.NoNode} {
		th.h.FindPath(node)
	}
	// Nodes 2 and 3 are equally far from both controllers: the first path wins.
	if got := fmt.Sprint(th.paths[0].NUMANodes(), th.paths[1].NUMANodes()); got != "[0 2 3] [1]" {
		t.Fatalf("numa_nodes %s", got)
	}
}
