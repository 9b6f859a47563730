package host

import (
	"context"
	"runtime"
	"testing"

	"github.com/mpathfs/mpathfs/nvme/target"
	"github.com/mpathfs/mpathfs/nvme/tcp"
)

// Benchmarks host <-> our target over loopback TCP (no FUSE). Compare with
// a loopback iperf3 single stream on the same machine.
//
//	go test -run '^$' -bench . -benchmem ./nvme/host

func benchController(b *testing.B) *Controller {
	b.Helper()
	tgt := target.New(nil)
	b.Cleanup(func() { tgt.Close() })
	sub, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN, AllowAnyHost: true})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := sub.AddNamespace(target.NamespaceConfig{NSID: 1, Size: 256 << 20, BlockSize: 512}); err != nil {
		b.Fatal(err)
	}
	p, err := tgt.AddPort(target.PortConfig{ID: 1, Addr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.LinkSubsystem(testNQN); err != nil {
		b.Fatal(err)
	}
	e := &env{ports: []*target.Port{p}}
	o := e.opts(0)
	o.KeepAliveTmo = 5e9
	o.NrIOQueues = 2
	o.QueueSize = 128
	c, err := Connect(context.Background(), o, nil, WithTransport(tcp.Transport{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func benchSeq(b *testing.B, write bool, size int) {
	c := benchController(b)
	buf := make([]byte, size)
	if !write {
		if err := c.Write(context.Background(), 1, 0, make([]byte, 64<<20)); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	blocks := uint64(size / 512)
	span := uint64(64<<20) / 512
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	var lba uint64
	for i := 0; i < b.N; i++ {
		var err error
		if write {
			err = c.Write(ctx, 1, lba, buf)
		} else {
			err = c.Read(ctx, 1, lba, buf)
		}
		if err != nil {
			b.Fatal(err)
		}
		lba = (lba + blocks) % span
	}
}

func benchRandQD(b *testing.B, write bool, size, qd int) {
	c := benchController(b)
	ctx := context.Background()
	span := uint64(64<<20) / uint64(size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.SetParallelism(max(1, qd/runtime.GOMAXPROCS(0))) // qd goroutines in all
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, size)
		x := uint64(0x9E3779B97F4A7C15)
		for pb.Next() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			lba := (x % span) * uint64(size/512)
			var err error
			if write {
				err = c.Write(ctx, 1, lba, buf)
			} else {
				err = c.Read(ctx, 1, lba, buf)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkSeqRead1M(b *testing.B)  { benchSeq(b, false, 1<<20) }
func BenchmarkSeqWrite1M(b *testing.B) { benchSeq(b, true, 1<<20) }

// 4 KiB random I/O with 32 commands in flight (32 goroutines, QD1 each).
func BenchmarkRandRead4KQD32(b *testing.B)  { benchRandQD(b, false, 4096, 32) }
func BenchmarkRandWrite4KQD32(b *testing.B) { benchRandQD(b, true, 4096, 32) }
