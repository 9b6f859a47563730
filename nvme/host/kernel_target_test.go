package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/kttest"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/tcp"
)

// Interop with the Linux kernel target (nvmet-tcp in a VM, see
// ../shared/kernel-target/README.md). Selected by MPATHFS_KERNEL_TARGET=1;
// the harness directory is MPATHFS_KT_DIR, default ../../../shared/kernel-target
// relative to this package. The VM must be running (./start); these tests
// change its state with ./ctl and end with `ctl reset`.

type kernelTarget struct{ *kttest.Target }

func kernelTargetEnv(t *testing.T) *kernelTarget { return &kernelTarget{kttest.Require(t)} }

func (kt *kernelTarget) ctl(t *testing.T, args ...string) string { return kt.Ctl(t, args...) }

func (kt *kernelTarget) opts(path int) fabrics.Options {
	o := fabrics.DefaultOptions()
	o.Transport, o.TrAddr, o.TrSvcID, o.SubsysNQN = "tcp", "127.0.0.1", kt.Ports[path-1], kt.NQN
	o.HostNQN = testHostNQN
	o.HostID = [16]byte{0, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 15: 1}
	o.KeepAliveTmo = 2 * time.Second // nvmet rounds up to whole seconds
	o.ReconnectDelay = 200 * time.Millisecond
	o.CtrlLossTmo = fabrics.Off
	o.NrIOQueues = 2
	o.QueueSize = 32
	return o
}

func ktConnect(t *testing.T, o fabrics.Options) *Controller {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	c, err := Connect(ctx, o, testLogger(t).Named("host"),
		WithTransport(tcp.Transport{ICRespTimeout: time.Second}), WithAdminTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("Connect %s: %v", o.Address(), err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestKernelTargetPaths: both paths connect, identify, and report the same
// namespaces with the same IDs; data written through one path reads back
// through the other, 4 KiB and 1 MiB, digests off and on.
func TestKernelTargetPaths(t *testing.T) {
	kt := kernelTargetEnv(t)
	for _, dg := range []bool{false, true} {
		t.Run(fmt.Sprintf("digests=%v", dg), func(t *testing.T) {
			var cs [2]*Controller
			for i := range cs {
				o := kt.opts(i + 1)
				o.HdrDigest, o.DataDigest = dg, dg
				cs[i] = ktConnect(t, o)
				id := cs[i].Identify()
				if id.SubNQN != kt.NQN || id.CMIC&nvme.CMICANA == 0 {
					t.Fatalf("path %d identify: subnqn %q cmic %#x", i+1, id.SubNQN, id.CMIC)
				}
				if trimID(id.ModelNumber) != "kernel-target-harness" {
					t.Errorf("model %q", id.ModelNumber)
				}
			}
			if cs[0].CNTLID() == cs[1].CNTLID() {
				t.Errorf("both paths got cntlid %d", cs[0].CNTLID())
			}
			n0, n1 := cs[0].Namespaces(), cs[1].Namespaces()
			if len(n0) < 2 || len(n0) != len(n1) {
				t.Fatalf("namespaces %d vs %d", len(n0), len(n1))
			}
			for i := range n0 {
				if n0[i].NSID != n1[i].NSID || !n0[i].IDs.Equal(n1[i].IDs) || n0[i].IDs.IsZero() {
					t.Fatalf("ns %d IDs differ across paths: %+v vs %+v", n0[i].NSID, n0[i].IDs, n1[i].IDs)
				}
				if !n0[i].Shared || n0[i].ANAGroup != n0[i].NSID || n0[i].ANAState != nvme.ANAOptimized {
					t.Errorf("ns %d: shared %v group %d state %s", n0[i].NSID, n0[i].Shared, n0[i].ANAGroup, n0[i].ANAState)
				}
			}
			for _, n := range []int{4096, 1 << 20} {
				w := randBuf(t, n)
				if err := cs[0].Write(context.Background(), 1, 4096, w); err != nil {
					t.Fatalf("write %d via path 1: %v", n, err)
				}
				r := make([]byte, n)
				if err := cs[1].Read(context.Background(), 1, 4096, r); err != nil {
					t.Fatalf("read %d via path 2: %v", n, err)
				}
				if !bytes.Equal(w, r) {
					t.Fatalf("%d bytes: path 2 read differs from path 1 write", n)
				}
			}
			for i, c := range cs {
				if err := c.Close(context.Background()); err != nil {
					t.Errorf("path %d: Close (CC.SHN) against nvmet: %v", i+1, err)
				}
			}
		})
	}
}

// TestKernelTargetDiscovery reads nvmet's discovery log the libnvme way.
func TestKernelTargetDiscovery(t *testing.T) {
	kt := kernelTargetEnv(t)
	o := kt.opts(1)
	o.SubsysNQN = ""
	dl, err := Discover(context.Background(), o, testLogger(t), WithTransport(tcp.Transport{ICRespTimeout: time.Second}))
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	seen := map[string]bool{}
	for _, e := range dl.Entries {
		if e.SubNQN == kt.NQN {
			seen[e.TrSvcID] = true
		}
	}
	if !seen[kt.Ports[0]] {
		t.Fatalf("discovery log lacks %s on trsvcid %s: %+v", kt.NQN, kt.Ports[0], dl.Entries)
	}
	t.Logf("genctr %d, %d records", dl.GenCtr, dl.NumRec)
}

// TestKernelTargetANA: `ctl ana 2 1 inaccessible` sends an ANA AEN on path
// 2 only; I/O to ns 1 via path 2 fails with 0x302, path 1 still works.
func TestKernelTargetANA(t *testing.T) {
	kt := kernelTargetEnv(t)
	c1, c2 := ktConnect(t, kt.opts(1)), ktConnect(t, kt.opts(2))
	ev := record(c2)
	kt.ctl(t, "ana", "2", "1", "inaccessible")
	ev.wait(t, "ANA change on path 2", func(e Event) bool { return e.Kind == ANAChanged })
	if s := c2.ANAState(1); s != nvme.ANAInaccessible {
		t.Fatalf("path 2 group 1: %s", s)
	}
	err := c2.Read(context.Background(), 1, 0, make([]byte, 4096))
	var st nvme.Status
	if !errors.As(err, &st) || st.Code() != nvme.StatusANAInaccessible {
		t.Fatalf("path 2 ns 1 read: %v, want 0x302", err)
	}
	if err := c2.Read(context.Background(), 2, 0, make([]byte, 4096)); err != nil {
		t.Fatalf("path 2 ns 2: %v", err)
	}
	if err := c1.Read(context.Background(), 1, 0, make([]byte, 4096)); err != nil {
		t.Fatalf("path 1 ns 1: %v", err)
	}
	if s := c1.ANAState(1); s != nvme.ANAOptimized {
		t.Fatalf("path 1 group 1: %s", s)
	}
}

// TestKernelTargetPortDownUp: `ctl port-down 2` closes path 2's
// connections (recovery; reconnects get EOF before ICResp), `ctl port-up
// 2` brings it back LIVE.
func TestKernelTargetPortDownUp(t *testing.T) {
	kt := kernelTargetEnv(t)
	c := ktConnect(t, kt.opts(2))
	ev := record(c)
	kt.ctl(t, "port-down", "2")
	ev.waitState(t, StateResetting)
	ev.waitState(t, StateConnecting)
	if err := c.Read(context.Background(), 1, 0, make([]byte, 512)); !errors.Is(err, nvme.StatusHostPathError) {
		t.Fatalf("read while connecting: %v", err)
	}
	kt.ctl(t, "port-up", "2")
	ev.waitState(t, StateLive)
	if err := c.Read(context.Background(), 1, 0, make([]byte, 4096)); err != nil {
		t.Fatalf("read after port-up: %v", err)
	}
}

// TestKernelTargetLinkDown: `ctl link-down 2` silences path 2 (no FIN/RST);
// only the keep-alive timeout can detect it.
func TestKernelTargetLinkDown(t *testing.T) {
	kt := kernelTargetEnv(t)
	c := ktConnect(t, kt.opts(2))
	ev := record(c)
	start := time.Now()
	kt.ctl(t, "link-down", "2")
	e := ev.waitState(t, StateResetting)
	if !strings.Contains(fmt.Sprint(e.Err), "keep alive") {
		t.Errorf("recovery cause %v, want the keep-alive timeout", e.Err)
	}
	t.Logf("link-down detected after %s (kato %s)", time.Since(start).Round(time.Millisecond), c.KATO())
	ev.waitState(t, StateConnecting)
	kt.ctl(t, "link-up", "2")
	ev.waitState(t, StateLive)
	if err := c.Read(context.Background(), 1, 0, make([]byte, 4096)); err != nil {
		t.Fatalf("read after link-up: %v", err)
	}
}
