package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/kttest"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// requireKernelTarget locks and resets the Linux kernel target (see
// internal/kttest) and returns connect options for its two paths.
func requireKernelTarget(t *testing.T) (*kttest.Target, []fabrics.Options) {
	t.Helper()
	k := kttest.Require(t)
	requireFUSE(t, "fio", "dd")
	var opts []fabrics.Options
	for _, port := range k.Ports {
		o := fabrics.DefaultOptions()
		o.Transport, o.TrAddr, o.TrSvcID, o.SubsysNQN = "tcp", "127.0.0.1", port, k.NQN
		opts = append(opts, o)
	}
	return k, opts
}

// kernelTargetLoad suits the emulated (TCG) guest: a few thousand IOPS.
var kernelTargetLoad = load{sizeMB: 4, rateIOPS: 150, started: 50, moved: 20, wait: 60 * time.Second}

// The failover scenarios against the Linux kernel target: data integrity
// with fio --verify while path 1 is taken down (port removed), its cable is
// pulled (silence: keep-alive detects it) and its ANA group goes
// inaccessible, through ctl.
func TestKernelTargetFailover(t *testing.T) {
	k, opts := requireKernelTarget(t)
	e := newEnv(t, envConfig{Controllers: opts, KATO: 2 * time.Second, ReconnectDelay: time.Second})

	data := bytes.Repeat([]byte("kernel target interop 012345678\n"), 1<<15) // 32 B x 32768 = 1 MiB
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, data, 0o600)
	if out, err := run(t, "dd", "if="+src, "of="+e.path("nvme0n1"), "bs=1M", "oflag=direct", "conv=notrunc", "status=none"); err != nil {
		t.Fatalf("dd: %v %s", err, out)
	}
	if got := readAll(t, e.path("nvme0n1"), len(data)); !bytes.Equal(got, data) {
		t.Fatal("read back from the kernel target differs")
	}
	state := func(c string) string { return e.cat("sys/class/nvme/" + c + "/state") }

	t.Run("port-down", func(t *testing.T) {
		failoverCase(t, e, kernelTargetLoad,
			func() { k.Ctl(t, "port-down", "1") },
			func() {
				e.waitFor("nvme0 not live", 20*time.Second, func() bool { return state("nvme0") != "live" })
			},
			func() {
				k.Ctl(t, "port-up", "1")
				e.waitFor("nvme0 live again", 60*time.Second, func() bool { return state("nvme0") == "live" })
			})
	})
	t.Run("link-down", func(t *testing.T) {
		failoverCase(t, e, kernelTargetLoad,
			func() { k.Ctl(t, "link-down", "1") },
			func() {
				e.waitFor("keep-alive detects the pulled cable", 30*time.Second, func() bool { return state("nvme0") != "live" })
			},
			func() {
				k.Ctl(t, "link-up", "1")
				e.waitFor("nvme0 live again", 60*time.Second, func() bool { return state("nvme0") == "live" })
			})
	})
	t.Run("ana-inaccessible", func(t *testing.T) {
		failoverCase(t, e, kernelTargetLoad,
			func() { k.Ctl(t, "ana", "1", "1", "inaccessible") },
			func() {
				e.waitFor("ana_state inaccessible", 20*time.Second, func() bool { return e.cat(path0n1+"/ana_state") == "inaccessible" })
			},
			func() {
				k.Ctl(t, "ana", "1", "1", "optimized")
				e.waitFor("ana_state optimized", 20*time.Second, func() bool { return e.cat(path0n1+"/ana_state") == "optimized" })
			})
	})
}
