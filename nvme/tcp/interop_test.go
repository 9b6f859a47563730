package tcp

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/mpathfs/mpathfs/internal/kttest"
)

// rwSizes cover in-capsule (≤ 16 KiB on both targets), R2T with one
// H2CData, and (on our target) a transfer larger than MAXH2CDATA (4 MiB)
// split into several H2CData PDUs. Linux nvmet 6.1 refuses transfers
// above 4 MiB with Data SGL Length Invalid (DNR) although it reports
// MDTS 0, so the kernel target gets sizes up to 4 MiB.
var (
	rwSizes       = []int{512, 4096, 16384, 16896, 128 << 10, 1 << 20, 5<<20 + 512}
	rwSizesKernel = []int{512, 4096, 16384, 16896, 128 << 10, 1 << 20, 4 << 20}
)

// writeReadVerify writes random data of every size at lba and reads it back.
func writeReadVerify(t *testing.T, q *Queue, nsid uint32, bs int, lba uint64, sizes []int) {
	t.Helper()
	ctx := context.Background()
	for _, n := range sizes {
		w := make([]byte, n)
		for i := range w {
			w[i] = byte(rand.Uint32())
		}
		cqe, err := q.Exec(ctx, ptr(writeCmd(nsid, lba, uint32(n/bs))), w)
		if err != nil || cqe.Status != 0 {
			t.Fatalf("write %d bytes: %v %v", n, cqe.Status, err)
		}
		r := make([]byte, n)
		cqe, err = q.Exec(ctx, ptr(readCmd(nsid, lba, uint32(n/bs))), r)
		if err != nil || cqe.Status != 0 {
			t.Fatalf("read %d bytes: %v %v", n, cqe.Status, err)
		}
		if !bytes.Equal(r, w) {
			t.Fatalf("%d bytes: read back differs", n)
		}
	}
}

var digestModes = []struct{ hd, dd bool }{{false, false}, {true, false}, {false, true}, {true, true}}

// TestTargetReadWrite: our nvme/target on loopback, every digest mode.
func TestTargetReadWrite(t *testing.T) {
	for _, m := range digestModes {
		t.Run(fmt.Sprintf("hdgst=%v,ddgst=%v", m.hd, m.dd), func(t *testing.T) {
			q, nsid, bs := startTarget(t, Config{Depth: 32, HdrDigest: m.hd, DataDigest: m.dd})
			writeReadVerify(t, q, nsid, bs, 100, rwSizes)
		})
	}
}

// TestKernelTarget: interop with the Linux kernel target (nvmet-tcp in a
// VM, ../shared/kernel-target), selected by MPATHFS_KERNEL_TARGET=1 like
// nvme/host's tests (harness directory MPATHFS_KT_DIR). It does not change
// the target's state; it writes only to the last 8 MiB of namespace 2.
func TestKernelTarget(t *testing.T) {
	k := kttest.Require(t) // skips without MPATHFS_KERNEL_TARGET=1; locks the VM
	env := k.Env
	if env["KT_NSMB"] == "" {
		env["KT_NSMB"] = "256"
	}
	nsmb, err := strconv.Atoi(env["KT_NSMB"])
	if err != nil || env["KT_NQN"] == "" || env["KT_PORT1"] == "" || env["KT_PORT2"] == "" {
		t.Fatalf("ctl env: unexpected values %q", env)
	}
	lba := uint64(nsmb-8) << 20 / 512
	for _, port := range []string{env["KT_PORT1"], env["KT_PORT2"]} {
		for _, m := range digestModes {
			t.Run(fmt.Sprintf("port=%s,hdgst=%v,ddgst=%v", port, m.hd, m.dd), func(t *testing.T) {
				q := fabricsConnect(t, "127.0.0.1:"+port, env["KT_NQN"], Config{Depth: 32, InCapsuleMax: 16384, HdrDigest: m.hd, DataDigest: m.dd})
				if q.MaxH2CData() != 4<<20 {
					t.Errorf("Linux target MAXH2CDATA = %d, want 4 MiB", q.MaxH2CData())
				}
				writeReadVerify(t, q, 2, 512, lba, rwSizesKernel)
			})
		}
	}
}
