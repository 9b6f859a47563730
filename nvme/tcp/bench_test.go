package tcp

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
)

// benchBackend connects a queue for a benchmark; cfg.Addr is filled in by
// the backend. Backends: the in-test RAM controller here, our nvme/target
// in target_bench_test.go.
type benchBackend func(b *testing.B, cfg Config) (q *Queue, nsid uint32, blockSize int)

func ramBackend(b *testing.B, cfg Config) (*Queue, uint32, int) {
	q, _ := startRAM(b, cfg, 64<<20, 4<<20, nil) // MAXH2CDATA 4 MiB like Linux
	return q, 1, ramBlock
}

// benchSeq runs b.N sequential transfers of size bytes at queue depth 1.
func benchSeq(b *testing.B, be benchBackend, write bool, size int) {
	q, nsid, bs := be(b, Config{Depth: 32, InCapsuleMax: 8192, CmdTimeout: 30 * time.Second})
	buf := make([]byte, size)
	nlb := uint32(size / bs)
	cmd := readCmd(nsid, 0, nlb)
	if write {
		cmd = writeCmd(nsid, 0, nlb)
	}
	ctx := context.Background()
	if _, err := q.Exec(ctx, &cmd, buf); err != nil { // warm up: timers, buffers
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		cqe, err := q.Exec(ctx, &cmd, buf)
		if err != nil || cqe.Status != 0 {
			b.Fatalf("Exec: %v %v", cqe.Status, err)
		}
	}
}

// benchRandQD runs b.N transfers of size bytes at random block addresses
// from qd goroutines (qd commands in flight).
func benchRandQD(b *testing.B, be benchBackend, write bool, size, qd int) {
	q, nsid, bs := be(b, Config{Depth: qd, InCapsuleMax: 8192, CmdTimeout: 30 * time.Second})
	const span = 32 << 20 // addresses within the first 32 MiB
	nlb := uint32(size / bs)
	blocks := uint64(span / bs)
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, qd)
	bufs := make([][]byte, qd)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for w := range qd {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			x := uint64(w)*0x9E3779B97F4A7C15 + 1
			var cmd nvme.Command
			for next.Add(1) <= int64(b.N) {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				lba := x % (blocks - uint64(nlb))
				if write {
					cmd = writeCmd(nsid, lba, nlb)
				} else {
					cmd = readCmd(nsid, lba, nlb)
				}
				cqe, err := q.Exec(ctx, &cmd, bufs[w])
				if err != nil || cqe.Status != 0 {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errc)
	for err := range errc {
		b.Fatalf("Exec: %v", err)
	}
}

func BenchmarkFakeQueueRead1M(b *testing.B)  { benchSeq(b, ramBackend, false, 1<<20) }
func BenchmarkFakeQueueWrite1M(b *testing.B) { benchSeq(b, ramBackend, true, 1<<20) }
func BenchmarkFakeQueueRandRead4K_QD32(b *testing.B) {
	benchRandQD(b, ramBackend, false, 4096, 32)
}
func BenchmarkFakeQueueRandWrite4K_QD32(b *testing.B) {
	benchRandQD(b, ramBackend, true, 4096, 32)
}
