package target

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

func benchQueue(b *testing.B) (*fixture, *client) {
	b.Helper()
	tg := New(nil)
	b.Cleanup(func() { tg.Close() })
	s, _ := tg.AddSubsystem(SubsystemConfig{NQN: testNQN})
	if _, err := s.AddNamespace(NamespaceConfig{NSID: 1, Size: 64 << 20}); err != nil {
		b.Fatal(err)
	}
	p, err := tg.AddPort(PortConfig{ID: 1})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.LinkSubsystem(testNQN); err != nil {
		b.Fatal(err)
	}
	f := &fixture{t: tg, s: s, p1: p, a1: p.Addr().String()}
	adm := admin(b, f.a1, testNQN, 0, 0)
	must(b, "num queues", adm.exec(nvme.NewSetFeatures(nvme.FeatNumQueues, nvme.NumQueues(1)), nil, nil))
	q := ioQueue(b, f.a1, adm, 1, 0)
	_ = q.nc.SetDeadline(time.Time{})
	return f, q
}

// benchRW runs QD1 transfers of size bytes over one I/O queue (raw client).
func benchRW(b *testing.B, size int, write bool) {
	_, q := benchQueue(b)
	buf := make([]byte, size)
	nlb := uint32(size / 512)
	blocks := uint64(64<<20) / 512
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	var slba uint64
	for i := 0; i < b.N; i++ {
		var cmd nvme.Command
		if write {
			cmd = nvme.NewWrite(1, slba, nlb)
		} else {
			cmd = nvme.NewRead(1, slba, nlb)
		}
		var cqe nvme.Completion
		if write {
			q.send(&cmd, buf, size <= q.inCap)
			cqe, _ = q.wait(cmd.CID, nil, buf)
		} else {
			q.send(&cmd, buf, false)
			cqe, _ = q.wait(cmd.CID, buf, nil)
		}
		if cqe.Status != 0 {
			b.Fatal(cqe.Status)
		}
		slba = (slba + uint64(nlb)) % (blocks - uint64(nlb))
	}
}

func BenchmarkRead1MiB(b *testing.B)  { benchRW(b, 1<<20, false) }
func BenchmarkWrite1MiB(b *testing.B) { benchRW(b, 1<<20, true) }
func BenchmarkRead4KiB(b *testing.B)  { benchRW(b, 4096, false) }
func BenchmarkWrite4KiB(b *testing.B) { benchRW(b, 4096, true) }

// BenchmarkRead4KiBQD32 keeps 32 reads in flight on one queue.
func BenchmarkRead4KiBQD32(b *testing.B) {
	_, q := benchQueue(b)
	const qd = 32
	bufs := make([][]byte, qd)
	for i := range bufs {
		bufs[i] = make([]byte, 4096)
	}
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	inflight := 0
	sent := 0
	var cqe nvme.Completion
	for done := 0; done < b.N; {
		for inflight < qd && sent < b.N {
			cmd := nvme.NewRead(1, uint64(sent*8)%100000, 8)
			cmd.CID = uint16(sent%qd) + 1
			q.send(&cmd, bufs[sent%qd], false)
			sent++
			inflight++
		}
		h, err := q.r.Next()
		if err != nil {
			b.Fatal(err)
		}
		switch h.Type {
		case pdu.TypeC2HData:
			d := q.r.Data()
			if err := q.r.ReadData(bufs[d.CCCID-1][:d.Length]); err != nil {
				b.Fatal(err)
			}
		case pdu.TypeCapsuleResp:
			q.r.Completion(&cqe)
			if cqe.Status != 0 {
				b.Fatal(cqe.Status)
			}
			inflight--
			done++
		default:
			b.Fatalf("unexpected %s", h.Type)
		}
	}
}

// BenchmarkLoopbackTCP is the reference: one TCP stream on loopback moving
// 1 MiB writes (the ceiling the 1 MiB read figure compares to).
func BenchmarkLoopbackTCP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1<<20)
	b.SetBytes(1 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}
