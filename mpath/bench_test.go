package mpath_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/mpath/mpathtest"
)

var policies = []mpath.IOPolicy{mpath.PolicyNUMA, mpath.PolicyRoundRobin, mpath.PolicyQueueDepth, mpath.PolicyServiceTime}

// benchHead returns a head with n optimized paths on alternating nodes, each
// controller with some commands in flight so queue-depth and service-time scan
// every path (no early return on an idle path).
func benchHead(b testing.TB, policy mpath.IOPolicy, n int) *testHead {
	specs := make([]pathSpec, n)
	for i := range specs {
		specs[i] = opt(i%2).depth(int64(1+(i*7)%5)).st(int64(4096*(1+(i*7)%5)), int64(100+i))
	}
	return newTestHead(b, policy, specs)
}

// BenchmarkSelect measures one path selection, as Head.Do runs it per I/O.
func BenchmarkSelect(b *testing.B) {
	for _, pol := range policies {
		for _, n := range []int{2, 4, 16} {
			b.Run(fmt.Sprintf("%s/%d", pol, n), func(b *testing.B) {
				th := benchHead(b, pol, n)
				now := mpath.Nanotime(th.s)
				if mpath.Select(th.h, 0, 4096, now) == nil {
					b.Fatal("no path")
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if mpath.Select(th.h, 0, 4096, now) == nil {
						b.Fatal("no path")
					}
				}
			})
		}
	}
}

// BenchmarkSelectRescan is the numa worst case: only non-optimized paths, so the
// cached path is re-evaluated and the list rescanned on every I/O.
func BenchmarkSelectRescan(b *testing.B) {
	for _, n := range []int{2, 4, 16} {
		b.Run(fmt.Sprintf("numa-nonoptimized/%d", n), func(b *testing.B) {
			specs := make([]pathSpec, n)
			for i := range specs {
				specs[i] = nonopt(i % 2)
			}
			th := newTestHead(b, mpath.PolicyNUMA, specs)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if mpath.Select(th.h, 0, 4096, 0) == nil {
					b.Fatal("no path")
				}
			}
		})
	}
}

// queued is a fake path shaped like the real NVMe/TCP queue: the submitter hands
// the command to the queue's single completion goroutine and sleeps until it
// answers (a channel round trip), and the data is copied to a RAM store.
type queued struct {
	*mpathtest.Driver
	calls chan *call
	pool  sync.Pool
}

type call struct {
	ctx  context.Context
	req  *mpath.Request
	done chan error
}

func newQueued(b *testing.B, name string) *queued {
	q := &queued{Driver: mpathtest.NewDriver(name), calls: make(chan *call)}
	q.Store = make([]byte, 1<<20)
	q.pool.New = func() any { return &call{done: make(chan error, 1)} }
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case c := <-q.calls:
				c.done <- q.Driver.Submit(c.ctx, c.req)
			case <-stop:
				return
			}
		}
	}()
	b.Cleanup(func() { close(stop) })
	return q
}

func (q *queued) Submit(ctx context.Context, req *mpath.Request) error {
	c := q.pool.Get().(*call)
	c.ctx, c.req = ctx, req
	q.calls <- c
	err := <-c.done
	c.ctx, c.req = nil, nil
	q.pool.Put(c)
	return err
}

type backend struct {
	name string
	make func(b *testing.B, name string) mpath.PathDriver
}

var backends = []backend{
	{"null", func(b *testing.B, name string) mpath.PathDriver { return mpathtest.NewDriver(name) }},
	{"ram4k", func(b *testing.B, name string) mpath.PathDriver {
		d := mpathtest.NewDriver(name)
		d.Store = make([]byte, 1<<20)
		return d
	}},
	{"queue", func(b *testing.B, name string) mpath.PathDriver { return newQueued(b, name) }},
	{"spin10us", func(b *testing.B, name string) mpath.PathDriver {
		d := mpathtest.NewDriver(name)
		d.SubmitHook = func(context.Context, *mpath.Request) error { spin(10 * time.Microsecond); return nil }
		return d
	}},
}

// spin busy-waits d: a stand-in for a device whose round trip is d, without the
// jitter of a timer wakeup.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

// BenchmarkSubmitDirect calls the fake driver's Submit directly: the baseline.
// Backends: null (no work: shows the absolute overhead), ram4k (4 KiB copy into a
// RAM store), queue (hand-off to a completion goroutine, the shape of the real
// NVMe/TCP queue), spin10us (a 10 µs device round trip).
func BenchmarkSubmitDirect(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			d := be.make(b, "p0")
			req := &mpath.Request{Op: mpath.OpWrite, Offset: 8192, Length: 4096, Buf: make([]byte, 4096)}
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := d.Submit(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSubmitHead sends the same request through Head.Do (numa policy, two
// paths): selection, accounting, statistics and the disposition plumbing.
func BenchmarkSubmitHead(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := mpath.NewSubsystem(mpath.DefaultSubsystemConfig("nqn.bench"))
			var h *mpath.Head
			for i := 0; i < 2; i++ {
				name := fmt.Sprintf("p%d", i)
				p, err := s.AddPath(mpath.Identity{NSID: 1}, testInfo, name, mpath.NewController(name, i), be.make(b, name))
				if err != nil {
					b.Fatal(err)
				}
				h = p.Head()
			}
			req := &mpath.Request{Op: mpath.OpWrite, Offset: 8192, Length: 4096, Buf: make([]byte, 4096)}
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := h.Do(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAddedLatency is a closed loop of 32 submitters on two paths, one of
// which has 4 ms of added latency (1 ms vs 5 ms: a longer route, a congested link):
// queue-depth balances commands in flight, so half of them sit on the slow path;
// service-time weighs them by measured service time. ns/op is the inverse of
// throughput; mean-µs is the mean request latency.
func BenchmarkAddedLatency(b *testing.B) {
	for _, pol := range []mpath.IOPolicy{mpath.PolicyRoundRobin, mpath.PolicyQueueDepth, mpath.PolicyServiceTime} {
		b.Run(pol.String(), func(b *testing.B) {
			cfg := mpath.DefaultSubsystemConfig("nqn.bench")
			cfg.Policy = pol
			s := mpath.NewSubsystem(cfg)
			var h *mpath.Head
			var drvs []*mpathtest.Driver
			for i, lat := range []time.Duration{time.Millisecond, 5 * time.Millisecond} {
				d := mpathtest.NewDriver(fmt.Sprintf("p%d", i))
				d.SetLatency(lat)
				p, err := s.AddPath(mpath.Identity{NSID: 1}, testInfo, d.Name(), mpath.NewController(d.Name(), mpath.NoNode), d)
				if err != nil {
					b.Fatal(err)
				}
				h = p.Head()
				drvs = append(drvs, d)
			}
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := &mpath.Request{Op: mpath.OpRead, Length: 4096, Buf: make([]byte, 4096), Node: mpath.NoNode}
				for pb.Next() {
					if err := h.Do(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			st := h.Stats()
			if st.ReadIOs > 0 {
				b.ReportMetric(float64(st.ReadTicksMs)*1000/float64(st.ReadIOs), "mean-µs")
			}
			total := drvs[0].Successes() + drvs[1].Successes()
			if total > 0 {
				b.ReportMetric(100*float64(drvs[1].Successes())/float64(total), "%slow-path")
			}
		})
	}
}

// TestDoDoesNotAllocate checks the steady-state zero-allocation claim of Head.Do
// for every policy.
func TestDoDoesNotAllocate(t *testing.T) {
	for _, pol := range policies {
		th := benchHead(t, pol, 4)
		req := &mpath.Request{Op: mpath.OpRead, Length: 4096, Buf: make([]byte, 4096)}
		ctx := context.Background()
		allocs := testing.AllocsPerRun(1000, func() {
			if err := th.h.Do(ctx, req); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: Head.Do allocates %.1f times per request", pol, allocs)
		}
		sel := testing.AllocsPerRun(1000, func() { th.h.FindPath(0) })
		if sel != 0 {
			t.Errorf("%s: selection allocates %.1f times", pol, sel)
		}
	}
}
