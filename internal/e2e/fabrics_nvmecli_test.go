package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// nvmeNS runs nvme-cli in a private mount namespace where the daemon's
// tree replaces /sys/class/nvme-subsystem, /sys/class/nvme and /sys/block
// and its dev/nvme-fabrics replaces /dev/nvme-fabrics (on a private /dev).
func (e *env) nvmeNS(args ...string) (string, error) {
	e.t.Helper()
	script := strings.Join([]string{
		"set -e",
		"mount --make-rprivate /",
		"mount -t tmpfs none /sys/class",
		"mkdir /sys/class/nvme-subsystem /sys/class/nvme",
		"mount --bind " + e.path("sys/class/nvme-subsystem") + " /sys/class/nvme-subsystem",
		"mount --bind " + e.path("sys/class/nvme") + " /sys/class/nvme",
		"mount --bind " + e.path("sys/block") + " /sys/block",
		"mount -t tmpfs none /dev",
		"touch /dev/nvme-fabrics",
		"mount --bind " + e.path("dev/nvme-fabrics") + " /dev/nvme-fabrics",
		`exec nvme "$@"`,
	}, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "unshare", append([]string{"-m", "sh", "-c", script, "sh"}, args...)...).CombinedOutput()
	return string(out), err
}

// Debian's real nvme connect and nvme disconnect drive the running daemon
// through dev/nvme-fabrics and delete_controller; mpathfs disconnect and
// connect-all do the same from our CLI.
func TestNvmeCLIConnectDisconnect(t *testing.T) {
	requireFUSE(t, "nvme", "unshare")
	bin := mpathfsCLI(t)
	e := newEnv(t, envConfig{})
	var transcript strings.Builder
	step := func(cmdline, out string, err error) {
		fmt.Fprintf(&transcript, "$ %s\n%s", cmdline, out)
		if err != nil {
			fmt.Fprintf(&transcript, "(%v)\n", err)
		}
	}
	gone := func(name string) func() bool {
		return func() bool { _, err := os.Stat(e.path("sys/class/nvme/" + name)); return os.IsNotExist(err) }
	}
	out, err := exec.Command(bin, "disconnect", e.dir, "-d", "nvme1").CombinedOutput()
	step("mpathfs disconnect MOUNTPOINT -d nvme1", string(out), err)
	if err != nil || !gone("nvme1")() {
		t.Fatalf("mpathfs disconnect -d nvme1: %v %s", err, out)
	}
	if probe, err := e.nvmeNS("version"); err != nil {
		if strings.Contains(probe, "mount") {
			t.Skipf("cannot bind-mount over /sys and /dev in a private mount namespace: %v: %s", err, probe)
		}
		t.Fatalf("nvme version: %v: %s", err, probe)
	}
	o := e.setup.Options(fabrics.Options{})[1]
	hostnqn, hostid := e.cat("sys/class/nvme/nvme0/hostnqn"), e.cat("sys/class/nvme/nvme0/hostid")
	connect := []string{"connect", "-t", "tcp", "-a", o.TrAddr, "-s", o.TrSvcID, "-n", o.SubsysNQN, "--hostnqn=" + hostnqn, "--hostid=" + hostid}
	out2, err := e.nvmeNS(connect...)
	step("nvme "+strings.Join(connect, " "), out2, err)
	if err != nil {
		t.Fatalf("nvme connect: %v\n%s\n%s", err, out2, tail(e.logs.String(), 30))
	}
	if s := e.cat("sys/class/nvme/nvme1/state"); s != "live" {
		t.Fatalf("nvme1 after nvme connect: %q", s)
	}
	e.waitFor("nvme0c1n1 back", 10*time.Second, func() bool { _, err := os.Stat(e.path("sys/block/nvme0n1/multipath/nvme0c1n1")); return err == nil })

	out2, err = e.nvmeNS(connect...)
	step("nvme "+strings.Join(connect, " "), out2, err)
	if err == nil || !strings.Contains(out2, "already connected") {
		t.Errorf("second nvme connect: %v %q", err, out2)
	}
	refused := append([]string(nil), connect...)
	refused[6] = "1" // -s 1: nobody listens
	out2, err = e.nvmeNS(refused...)
	step("nvme "+strings.Join(refused, " "), out2, err)
	if err == nil || !strings.Contains(out2, "could not add new controller") || !strings.Contains(strings.ToLower(out2), "connection refused") {
		t.Errorf("nvme connect to a closed port: %v %q", err, out2)
	}

	out2, err = e.nvmeNS("disconnect", "-d", "nvme1")
	step("nvme disconnect -d nvme1", out2, err)
	if err != nil {
		t.Fatalf("nvme disconnect -d: %v %s", err, out2)
	}
	e.waitFor("nvme1 deleted", 10*time.Second, gone("nvme1"))
	out2, err = e.nvmeNS("disconnect", "-n", o.SubsysNQN)
	step("nvme disconnect -n "+o.SubsysNQN, out2, err)
	if err != nil || !strings.Contains(out2, "NQN:"+o.SubsysNQN+" disconnected 1 controller(s)") {
		t.Fatalf("nvme disconnect -n: %v %q", err, out2)
	}
	e.waitFor("nvme0 deleted", 10*time.Second, gone("nvme0"))
	e.waitFor("namespaces gone", 10*time.Second, func() bool { _, err := os.Stat(e.path("nvme0n1")); return os.IsNotExist(err) })

	// Our connect-all reads the target's discovery log and connects both
	// ports again; the data path works.
	p0 := e.setup.Ports[0].Addr()
	out, err = exec.Command(bin, "connect-all", e.dir, fmt.Sprintf("traddr=%s,trsvcid=%d,hostnqn=%s,keep_alive_tmo=1", p0.IP, p0.Port, hostnqn)).CombinedOutput()
	step("mpathfs connect-all MOUNTPOINT traddr=...,trsvcid=...,hostnqn=...,keep_alive_tmo=1", string(out), err)
	if err != nil || strings.Count(string(out), "device: nvme") != 2 {
		t.Fatalf("connect-all: %v %s", err, out)
	}
	e.waitFor("nvme0n1 back", 10*time.Second, func() bool { _, err := os.Stat(e.path("nvme0n1")); return err == nil })
	if out, err := run(t, "dd", "if=/dev/zero", "of="+e.path("nvme0n1"), "bs=4k", "count=8", "oflag=direct", "conv=notrunc"); err != nil {
		t.Fatalf("dd after connect-all: %v %s", err, out)
	}
	dup := fmt.Sprintf("traddr=%s,trsvcid=%d,nqn=%s,hostnqn=%s", p0.IP, p0.Port, o.SubsysNQN, hostnqn)
	out, err = exec.Command(bin, "connect", e.dir, dup).CombinedOutput()
	step("mpathfs connect MOUNTPOINT "+dup, string(out), err)
	if err == nil || !strings.Contains(string(out), "already connected") {
		t.Errorf("mpathfs connect of a connected path: %v %s", err, out)
	}
	t.Logf("transcript:\n%s", transcript.String())
}
