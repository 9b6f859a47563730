package tcp

import (
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/nvme/target"
)

const benchNQN = "nqn.2026-11.io.mpathfs:tcp-bench"

// targetBackend starts our nvme/target on loopback with a 64 MiB RAM
// namespace and connects an admin queue and one I/O queue by hand
// (Connect, CC.EN), the way nvme/host does, then benchmarks the I/O queue.
func targetBackend(b *testing.B, cfg Config) (*Queue, uint32, int) {
	return startTarget(b, cfg)
}

// startTarget serves a 64 MiB RAM namespace (NSID 1, 512-byte blocks) from
// our target and returns a connected I/O queue.
func startTarget(tb testing.TB, cfg Config) (*Queue, uint32, int) {
	tb.Helper()
	tg := target.New(hclog.NewNullLogger())
	tb.Cleanup(func() { tg.Close() })
	sub, err := tg.AddSubsystem(target.SubsystemConfig{NQN: benchNQN, AllowAnyHost: true})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := sub.AddNamespace(target.NamespaceConfig{NSID: 1, Size: 64 << 20, BlockSize: 512}); err != nil {
		tb.Fatal(err)
	}
	port, err := tg.AddPort(target.PortConfig{ID: 1, Addr: "127.0.0.1:0"})
	if err != nil {
		tb.Skipf("no loopback TCP: %v", err)
	}
	if err := port.LinkSubsystem(benchNQN); err != nil {
		tb.Fatal(err)
	}
	cfg.InCapsuleMax = 16384 // target default IOCCSZ: 16 KiB in-capsule
	q := fabricsConnect(tb, port.Addr().String(), benchNQN, cfg)
	return q, 1, 512
}

func BenchmarkQueueRead1M(b *testing.B)  { benchSeq(b, targetBackend, false, 1<<20) }
func BenchmarkQueueWrite1M(b *testing.B) { benchSeq(b, targetBackend, true, 1<<20) }
func BenchmarkQueueRandRead4K_QD32(b *testing.B) {
	benchRandQD(b, targetBackend, false, 4096, 32)
}
func BenchmarkQueueRandWrite4K_QD32(b *testing.B) {
	benchRandQD(b, targetBackend, true, 4096, 32)
}
