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

// Run-time connect against the Linux kernel target: mounted with path 1
// only, Debian's nvme connect adds path 2 through dev/nvme-fabrics (the
// namespaces gain their second path and serve I/O through it), a repeat is
// EALREADY, nvme disconnect removes it again.
func TestKernelTargetRuntimeConnect(t *testing.T) {
	k, opts := requireKernelTarget(t)
	requireFUSE(t, "nvme", "unshare", "python3")
	e := newEnv(t, envConfig{Controllers: opts[:1]})
	if _, err := os.Stat(e.path("sys/block/nvme0n1/multipath/nvme0c0n1")); err != nil {
		t.Fatal(err)
	}
	hostnqn, hostid := e.cat("sys/class/nvme/nvme0/hostnqn"), e.cat("sys/class/nvme/nvme0/hostid")
	args := []string{"connect", "-t", "tcp", "-a", "127.0.0.1", "-s", k.Ports[1], "-n", k.NQN, "--hostnqn=" + hostnqn, "--hostid=" + hostid}
	if out, err := e.nvmeNS(args...); err != nil {
		t.Fatalf("nvme connect: %v %s\n%s", err, out, tail(e.logs.String(), 30))
	}
	if s := e.cat("sys/class/nvme/nvme1/state"); s != "live" {
		t.Fatalf("nvme1: %q", s)
	}
	e.waitFor("nvme0c1n1", 20*time.Second, func() bool {
		_, err := os.Stat(e.path("sys/block/nvme0n1/multipath/nvme0c1n1"))
		return err == nil
	})
	before := e.statField("sys/block/nvme0c1n1", 4)
	if msg := e.echo("sys/class/nvme-subsystem/nvme-subsys0/iopolicy", "round-robin"); msg != "" {
		t.Fatal(msg)
	}
	if out, err := run(t, "dd", "if=/dev/zero", "of="+e.path("nvme0n1"), "bs=4k", "count=16", "oflag=direct", "conv=notrunc", "status=none"); err != nil {
		t.Fatalf("dd: %v %s", err, out)
	}
	if after := e.statField("sys/block/nvme0c1n1", 4); after <= before {
		t.Errorf("no writes through the path added at run time (%d -> %d)", before, after)
	}
	dup := "transport=tcp,traddr=127.0.0.1,trsvcid=" + k.Ports[1] + ",nqn=" + k.NQN + ",hostnqn=" + hostnqn
	if got := e.fabricsWrite(dup); got != "errno 114" {
		t.Errorf("duplicate connect: %q, want EALREADY", got)
	}
	if out, err := e.nvmeNS("disconnect", "-d", "nvme1"); err != nil {
		t.Fatalf("nvme disconnect: %v %s", err, out)
	}
	e.waitFor("nvme1 removed", 20*time.Second, func() bool {
		_, err := os.Stat(e.path("sys/class/nvme/nvme1"))
		return os.IsNotExist(err)
	})
}
