package tcp

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/target"
)

const benchNQN = "nqn.2026-11.io.mpathfs:tcp-bench"

// targetBackend starts our nvme/target on loopback with a 64 MiB RAM
// namespace and connects an admin queue and one I/O queue by hand
// (Connect, CC.EN), the way nvme/host does, then benchmarks the I/O queue.
func targetBackend(b *testing.B, cfg Config) (*Queue, uint32, int) {
	b.Helper()
	tg := target.New(hclog.NewNullLogger())
	b.Cleanup(func() { tg.Close() })
	sub, err := tg.AddSubsystem(target.SubsystemConfig{NQN: benchNQN, AllowAnyHost: true})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := sub.AddNamespace(target.NamespaceConfig{NSID: 1, Size: 64 << 20, BlockSize: 512}); err != nil {
		b.Fatal(err)
	}
	port, err := tg.AddPort(target.PortConfig{ID: 1, Addr: "127.0.0.1:0"})
	if err != nil {
		b.Skipf("no loopback TCP: %v", err)
	}
	if err := port.LinkSubsystem(benchNQN); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	addr := port.Addr().String()
	cd := fabrics.ConnectData{CNTLID: fabrics.CNTLIDDynamic, SubNQN: benchNQN,
		HostNQN: "nqn.2014-08.org.nvmexpress:uuid:5b8e0a52-9d33-4a3c-8a51-2d7f3b1c9e01",
		HostID:  [16]byte{0x5b, 0x8e, 0x0a, 0x52, 0x9d, 0x33, 0x4a, 0x3c, 0x8a, 0x51, 0x2d, 0x7f, 0x3b, 0x1c, 0x9e, 0x01}}
	connect := func(q *Queue, qid, sqsize uint16) uint16 {
		data := make([]byte, fabrics.ConnectDataSize)
		cd.Marshal(data)
		cmd := fabrics.NewConnect(qid, sqsize, 0, false)
		cqe, err := q.Exec(ctx, &cmd, data)
		if err != nil || cqe.Status != 0 {
			b.Fatalf("Connect qid %d: %v %v", qid, cqe.Status, err)
		}
		return uint16(cqe.DW0)
	}

	admin, err := Dial(ctx, Config{Addr: addr, Depth: fabrics.AdminQueueDepth, InCapsuleMax: fabrics.AdminInCapsuleMax})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { admin.Close() })
	cd.CNTLID = connect(admin, 0, fabrics.AdminQueueDepth-1)
	set := fabrics.NewPropertySet(fabrics.RegCC, uint64(fabrics.CCEnable|fabrics.CCIOSQES|fabrics.CCIOCQES), false)
	if cqe, err := admin.Exec(ctx, &set, nil); err != nil || cqe.Status != 0 {
		b.Fatalf("Property Set CC: %v %v", cqe.Status, err)
	}
	get := fabrics.NewPropertyGet(fabrics.RegCSTS, false)
	if cqe, err := admin.Exec(ctx, &get, nil); err != nil || cqe.Status != 0 || fabrics.CSTS(cqe.DW0)&fabrics.CSTSRdy == 0 {
		b.Fatalf("CSTS %#x: %v %v", cqe.DW0, cqe.Status, err)
	}

	cfg.Addr = addr
	cfg.InCapsuleMax = 16384 // target default IOCCSZ: 16 KiB in-capsule
	q, err := Dial(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	connect(q, 1, 127)
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
