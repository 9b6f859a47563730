package e2e

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// kernelTarget is the Linux kernel NVMe/TCP target of shared/kernel-target
// (nvmet-tcp in a VM), selected with MPATHFS_KERNEL_TARGET=1.
type kernelTarget struct {
	dir string
	env map[string]string
}

func kernelTargetDir() string {
	if d := os.Getenv("MPATHFS_KT_DIR"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	// internal/e2e -> repo -> work tree root, where shared/ sits beside it.
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "kernel-target")
}

func requireKernelTarget(t *testing.T) *kernelTarget {
	t.Helper()
	if os.Getenv("MPATHFS_KERNEL_TARGET") != "1" {
		t.Skip("Linux kernel target interop: set MPATHFS_KERNEL_TARGET=1 with shared/kernel-target started (.ci/run does)")
	}
	requireFUSE(t, "fio", "dd")
	k := &kernelTarget{dir: kernelTargetDir(), env: map[string]string{}}
	out, err := exec.Command(filepath.Join(k.dir, "ctl"), "env").Output()
	if err != nil {
		t.Fatalf("MPATHFS_KERNEL_TARGET=1 but %s/ctl env failed: %v", k.dir, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k2, v, ok := strings.Cut(sc.Text(), "="); ok {
			k.env[k2] = v
		}
	}
	k.ctl(t, "reset")
	t.Cleanup(func() { k.ctl(t, "reset") })
	return k
}

func (k *kernelTarget) ctl(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(k.dir, "ctl"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (k *kernelTarget) options() []fabrics.Options {
	var out []fabrics.Options
	for _, port := range []string{k.env["KT_PORT1"], k.env["KT_PORT2"]} {
		o := fabrics.DefaultOptions()
		o.Transport, o.TrAddr, o.TrSvcID, o.SubsysNQN = "tcp", "127.0.0.1", port, k.env["KT_NQN"]
		out = append(out, o)
	}
	return out
}

// The failover scenarios against the Linux kernel target: data integrity
// with fio --verify while path 1 is taken down (port removed), its cable is
// pulled (silence: keep-alive detects it) and its ANA group goes
// inaccessible, through ctl.
func TestKernelTargetFailover(t *testing.T) {
	k := requireKernelTarget(t)
	e := newEnv(t, envConfig{Controllers: k.options(), KATO: 2 * time.Second, ReconnectDelay: time.Second})

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
		kernelFailover(t, e,
			func() { k.ctl(t, "port-down", "1") },
			func() {
				e.waitFor("nvme0 not live", 20*time.Second, func() bool { return state("nvme0") != "live" })
			},
			func() {
				k.ctl(t, "port-up", "1")
				e.waitFor("nvme0 live again", 60*time.Second, func() bool { return state("nvme0") == "live" })
			})
	})
	t.Run("link-down", func(t *testing.T) {
		kernelFailover(t, e,
			func() { k.ctl(t, "link-down", "1") },
			func() {
				e.waitFor("keep-alive detects the pulled cable", 30*time.Second, func() bool { return state("nvme0") != "live" })
			},
			func() {
				k.ctl(t, "link-up", "1")
				e.waitFor("nvme0 live again", 60*time.Second, func() bool { return state("nvme0") == "live" })
			})
	})
	t.Run("ana-inaccessible", func(t *testing.T) {
		kernelFailover(t, e,
			func() { k.ctl(t, "ana", "1", "1", "inaccessible") },
			func() {
				e.waitFor("ana_state inaccessible", 20*time.Second, func() bool { return e.cat(path0n1+"/ana_state") == "inaccessible" })
			},
			func() {
				k.ctl(t, "ana", "1", "1", "optimized")
				e.waitFor("ana_state optimized", 20*time.Second, func() bool { return e.cat(path0n1+"/ana_state") == "optimized" })
			})
	})
}

// kernelFailover is failoverCase sized for the emulated (TCG) guest.
func kernelFailover(t *testing.T, e *env, fault, seen, heal func()) {
	t.Helper()
	type result struct {
		out string
		err error
	}
	res := make(chan result, 1)
	go func() {
		out, err := e.fio(verifyJob(e.path("nvme0n1"), 4, 150)...)
		res <- result{out, err}
	}()
	e.waitFor("fio writing on nvme0c0n1", 60*time.Second, func() bool { return e.statField(path0n1, 4) > 50 })
	fault()
	seen()
	w1 := e.statField(path1n1, 4)
	e.waitFor("I/O continuing on nvme0c1n1", 60*time.Second, func() bool { return e.statField(path1n1, 4) > w1+20 })
	heal()
	r := <-res
	if r.err != nil || !strings.Contains(r.out, "err= 0") {
		t.Fatalf("fio verify across the failover: %v\n%s", r.err, r.out)
	}
}
