package mpath_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/mpath/mpathtest"
)

func TestAddPathRefusesMismatchedIDs(t *testing.T) {
	base := mpath.Identity{NSID: 7, UUID: [16]byte{1}, NGUID: [16]byte{2}, EUI64: [8]byte{3}, CSI: 0}
	cases := []struct {
		name   string
		mutate func(*mpath.Identity)
	}{
		{"UUID differs", func(id *mpath.Identity) { id.UUID[15] = 9 }},
		{"NGUID differs", func(id *mpath.Identity) { id.NGUID[0] = 9 }},
		{"EUI64 differs", func(id *mpath.Identity) { id.EUI64[7] = 9 }},
		{"CSI differs", func(id *mpath.Identity) { id.CSI = 2 }},
		{"UUID missing on the new path", func(id *mpath.Identity) { id.UUID = [16]byte{} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, mpath.PolicyNUMA)
			if _, err := f.s.AddPath(base, testInfo, "a", mpath.NewController("nvme0", 0), mpathtest.NewDriver("a")); err != nil {
				t.Fatal(err)
			}
			id := base
			tc.mutate(&id)
			p, err := f.s.AddPath(id, testInfo, "b", mpath.NewController("nvme1", 0), mpathtest.NewDriver("b"))
			if p != nil || err == nil {
				t.Fatal("path with different IDs joined the head")
			}
			if err.Error() != "IDs don't match for shared namespace 7" || !errors.Is(err, mpath.ErrIDMismatch) {
				t.Fatalf("err = %q", err)
			}
			if !strings.Contains(f.log.String(), "nvme1: IDs don't match for shared namespace 7") {
				t.Errorf("not logged:\n%s", f.log)
			}
			if hs := f.s.Heads(); len(hs) != 1 || len(hs[0].Paths()) != 1 {
				t.Error("refused path was added")
			}
		})
	}
}

func TestAddPathRefusesDuplicateIDsAcrossNSIDs(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	c := mpath.NewController("nvme0", 0)
	if _, err := f.s.AddPath(mpath.Identity{NSID: 1, NGUID: [16]byte{5}}, testInfo, "a", c, mpathtest.NewDriver("a")); err != nil {
		t.Fatal(err)
	}
	_, err := f.s.AddPath(mpath.Identity{NSID: 2, NGUID: [16]byte{5}}, testInfo, "b", c, mpathtest.NewDriver("b"))
	if err == nil || err.Error() != "duplicate IDs in subsystem for nsid 2" || !errors.Is(err, mpath.ErrDuplicateIDs) {
		t.Fatalf("err = %v", err)
	}
	// All-zero IDs are not duplicates.
	if _, err := f.s.AddPath(mpath.Identity{NSID: 3}, testInfo, "c", c, mpathtest.NewDriver("c")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.AddPath(mpath.Identity{NSID: 4}, testInfo, "d", c, mpathtest.NewDriver("d")); err != nil {
		t.Fatal(err)
	}
}

func TestAddPathRefusesASecondPathOfOneController(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	c := mpath.NewController("nvme0", 0)
	f.add(t, 1, c)
	_, err := f.s.AddPath(mpath.Identity{NSID: 1}, testInfo, "x", c, mpathtest.NewDriver("x"))
	if !errors.Is(err, mpath.ErrDuplicatePath) {
		t.Fatalf("err = %v", err)
	}
}

func TestAddPathGroupsByNSID(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	c0, c1 := mpath.NewController("0", 0), mpath.NewController("1", 0)
	a, _ := f.add(t, 1, c0)
	b, _ := f.add(t, 1, c1)
	c, _ := f.add(t, 2, c0)
	if a.Head() != b.Head() || a.Head() == c.Head() {
		t.Fatal("wrong grouping")
	}
	hs := f.s.Heads()
	if len(hs) != 2 || hs[0].Identity().NSID != 1 || hs[1].Identity().NSID != 2 || hs[0].Name() != "nvme0n1" {
		t.Fatalf("heads %v", hs)
	}
	if got := <-f.added; got != a.Head() {
		t.Error("OnHeadAdded order")
	}
	if got := <-f.added; got != c.Head() || len(f.added) != 0 {
		t.Error("OnHeadAdded called for a joining path")
	}
	if ps := c0.Paths(); len(ps) != 2 || ps[0] != a || ps[1] != c {
		t.Errorf("controller paths %v", ps)
	}
}

func TestCapacityMismatchMarksPathNotReady(t *testing.T) {
	f := newFixture(t, mpath.PolicyRoundRobin)
	p0, _ := f.add(t, 1, mpath.NewController("0", 0))
	small := testInfo
	small.Capacity -= 4096
	d1 := mpathtest.NewDriver("b")
	p1, err := f.s.AddPath(mpath.Identity{NSID: 1}, small, "b", mpath.NewController("1", 0), d1)
	if err != nil {
		t.Fatal(err)
	}
	h := p0.Head()
	if p1.Ready() || p1.Usable() || !p0.Ready() {
		t.Fatal("capacity mismatch not flagged")
	}
	for i := 0; i < 4; i++ {
		if err := h.Do(context.Background(), read()); err != nil {
			t.Fatal(err)
		}
	}
	if d1.Submits() != 0 {
		t.Fatal("I/O sent to a not-ready path")
	}
	// The namespace was resized and p0 rescanned first: the head takes p0's new
	// geometry, which p1 already had (nvme_mpath_revalidate_paths).
	p0.UpdateInfo(small)
	if !p1.Ready() || p0.Info() != small || h.Info() != small {
		t.Fatal("revalidation did not make p1 ready")
	}
	if !p0.Ready() {
		t.Fatal("p0 not ready with the head's geometry")
	}
	bs := small
	bs.BlockSize = 512
	p1.UpdateInfo(bs)
	if p0.Ready() || !p1.Ready() {
		t.Fatal("block size mismatch not flagged")
	}
}

func TestSetIOPolicyClearsCachedPathsAndLogs(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, _ := f.add(t, 1, mpath.NewController("0", 0))
	q0, _ := f.add(t, 2, mpath.NewController("1", 1))
	for _, node := range []int{0, 1, mpath.NoNode} {
		p0.Head().FindPath(node)
		q0.Head().FindPath(node)
	}
	if mpath.Current(p0.Head(), 1) == nil || mpath.Current(q0.Head(), mpath.NoNode) == nil {
		t.Fatal("setup: nothing cached")
	}
	f.s.SetIOPolicy(mpath.PolicyRoundRobin)
	if f.s.IOPolicy() != mpath.PolicyRoundRobin {
		t.Fatal("policy not set")
	}
	for _, h := range f.s.Heads() {
		for _, node := range []int{0, 1, mpath.NoNode} {
			if mpath.Current(h, node) != nil {
				t.Errorf("%s node %d still cached", h.Name(), node)
			}
		}
	}
	const line = "subsysnqn nqn.2026-01.io.mpathfs:fx iopolicy changed from numa to round-robin"
	if !strings.Contains(f.log.String(), line) {
		t.Fatalf("log lacks %q:\n%s", line, f.log)
	}
	f.s.SetIOPolicy(mpath.PolicyRoundRobin) // no change: no log
	f.s.SetIOPolicy(mpath.IOPolicy(200))    // invalid: ignored
	if n := f.log.count("iopolicy changed"); n != 1 || f.s.IOPolicy() != mpath.PolicyRoundRobin {
		t.Fatalf("logged %d changes, policy %v", n, f.s.IOPolicy())
	}
	f.s.SetIOPolicy(mpath.PolicyServiceTime)
	if !strings.Contains(f.log.String(), "iopolicy changed from round-robin to service-time") {
		t.Fatal("second change not logged")
	}
}

func TestParseIOPolicy(t *testing.T) {
	cases := []struct {
		in   string
		want mpath.IOPolicy
		ok   bool
	}{
		{"numa", mpath.PolicyNUMA, true},
		{"round-robin", mpath.PolicyRoundRobin, true},
		{"queue-depth\n", mpath.PolicyQueueDepth, true},
		{"service-time", mpath.PolicyServiceTime, true},
		{"numa\n\n", 0, false},
		{"numa ", 0, false},
		{" numa", 0, false},
		{"NUMA", 0, false},
		{"round", 0, false}, // no prefix match (sysfs_streq, unlike the module parameter)
		{"", 0, false},
		{"\n", 0, false},
	}
	for _, tc := range cases {
		got, err := mpath.ParseIOPolicy(tc.in)
		if tc.ok != (err == nil) || (tc.ok && got != tc.want) {
			t.Errorf("ParseIOPolicy(%q) = %v, %v", tc.in, got, err)
		}
		if !tc.ok && !errors.Is(err, mpath.ErrInvalid) {
			t.Errorf("ParseIOPolicy(%q) error %v does not wrap ErrInvalid", tc.in, err)
		}
	}
	for p := mpath.PolicyNUMA; p <= mpath.PolicyServiceTime; p++ {
		if q, err := mpath.ParseIOPolicy(p.String() + "\n"); err != nil || q != p {
			t.Errorf("round trip of %v: %v %v", p, q, err)
		}
	}
	if s := mpath.IOPolicy(9).String(); s != "UNKNOWN_iopolicy_0x9" {
		t.Errorf("unknown policy prints %q", s)
	}
}

func FuzzParseIOPolicy(f *testing.F) {
	for _, s := range []string{"numa", "round-robin\n", "queue-depth", "service-time", "numa\n\n", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := mpath.ParseIOPolicy(s)
		if err != nil {
			if !errors.Is(err, mpath.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if p.String() != strings.TrimSuffix(s, "\n") {
			t.Fatalf("ParseIOPolicy(%q) = %v", s, p)
		}
	})
}

func TestQueueDepthIsCountedPerController(t *testing.T) {
	f := newFixture(t, mpath.PolicyQueueDepth)
	c0, c1 := mpath.NewController("0", 0), mpath.NewController("1", 0)
	a0, da0 := f.add(t, 1, c0)
	f.add(t, 1, c1)
	b0, db0 := f.add(t, 2, c0) // namespace 2 shares controller 0
	release := make(chan struct{})
	started := make(chan struct{})
	db0.SubmitHook = func(context.Context, *mpath.Request) error {
		close(started)
		<-release
		return nil
	}
	done := do(b0.Head(), read())
	<-started
	if c0.Inflight() != 1 {
		t.Fatalf("controller 0 in flight = %d", c0.Inflight())
	}
	// Namespace 1 sees controller 0 busy through namespace 2's I/O.
	if got := a0.Head().FindPath(0); got.Controller() != c1 {
		t.Fatalf("queue-depth chose %s, want the idle controller", got.Controller().Name())
	}
	close(release)
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	if c0.Inflight() != 0 || a0.Head().FindPath(0) != a0 || da0.Submits() != 0 {
		t.Fatal("in-flight count not released")
	}
}

func TestStatsAccounting(t *testing.T) {
	f := newFixture(t, mpath.PolicyNUMA)
	p0, d0 := f.add(t, 1, mpath.NewController("0", 0))
	p1, d1 := f.add(t, 1, mpath.NewController("1", 1))
	h := p0.Head()
	d0.SubmitHook = func(context.Context, *mpath.Request) error {
		f.clock.Advance(3e6) // 3 ms on the path
		return nil
	}
	reqs := []*mpath.Request{
		{Op: mpath.OpRead, Length: 8192},
		{Op: mpath.OpWrite, Length: 4096},
		{Op: mpath.OpWriteZeroes, Length: 1 << 20},
		{Op: mpath.OpDiscard, Length: 1 << 20},
		{Op: mpath.OpFlush},
		{Op: mpath.OpOther},
	}
	for _, r := range reqs {
		if err := h.Do(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	want := mpath.IOStat{
		ReadIOs: 1, ReadSectors: 16, ReadTicksMs: 3,
		WriteIOs: 2, WriteSectors: 8 + 2048, WriteTicksMs: 6,
		IOTicksMs: 15, TimeInQueueMs: 15,
		DiscardIOs: 1, DiscardSectors: 2048, DiscardTicksMs: 3,
		FlushIOs: 1, FlushTicksMs: 3,
	}
	if got := h.Stats(); got != want {
		t.Errorf("head stats\n got %+v\nwant %+v", got, want)
	}
	if got := p0.Stats(); got != want {
		t.Errorf("path stats\n got %+v\nwant %+v", got, want)
	}
	// A failed-over request counts once on the head and once per attempt on paths.
	d0.SubmitHook = func(context.Context, *mpath.Request) error {
		d0.SetDisabled(true)
		return &mpathtest.Fault{Verdict: mpath.Verdict{Action: mpath.ActionFailover}}
	}
	if err := h.Do(context.Background(), read()); err != nil {
		t.Fatal(err)
	}
	if h.Stats().ReadIOs != 2 || p0.Stats().ReadIOs != 2 || p1.Stats().ReadIOs != 1 || d1.Successes() != 1 {
		t.Errorf("after failover: head %+v p0 %+v p1 %+v", h.Stats(), p0.Stats(), p1.Stats())
	}
	if h.Stats().InFlight != 0 || p0.Stats().InFlight != 0 {
		t.Error("in-flight not zero when idle")
	}
}

func TestErrorErrno(t *testing.T) {
	if e := (&mpath.Error{Head: "h", Err: mpath.ErrNoPath}); e.Errno() != 5 || e.Error() != "mpath: h: no available path" {
		t.Errorf("%v %v", e, e.Errno())
	}
	if e := (&mpath.Error{Head: "h", Err: context.DeadlineExceeded}); e.Errno() != 110 {
		t.Errorf("deadline errno %v", e.Errno())
	}
}
