package daemon_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/demo"
	"github.com/mpathfs/mpathfs/mpath/mpathtest"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/host"
)

// TestAssembly: the daemon connects both ports, groups them in one
// subsystem and publishes the tree and one file per namespace.
func TestAssembly(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, f := range []string{"nvme0n1", "nvme0n2",
		"sys/class/nvme-subsystem/nvme-subsys0/nvme0", "sys/class/nvme-subsystem/nvme-subsys0/nvme1",
		"sys/block/nvme0c0n1", "sys/block/nvme0c1n1", "sys/block/nvme0c0n2", "sys/block/nvme0c1n2"} {
		if _, err := os.Lstat(e.path(f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if got := e.cat("sys/class/nvme-subsystem/nvme-subsys0/subsysnqn"); got != demo.NQN {
		t.Errorf("subsysnqn %q", got)
	}
	for _, c := range []string{"nvme0", "nvme1"} {
		if got := e.cat("sys/class/nvme/" + c + "/state"); got != "live" {
			t.Errorf("%s state %q", c, got)
		}
	}
	if fi, err := os.Stat(e.path("nvme0n1")); err != nil || fi.Size() != 16<<20 {
		t.Errorf("nvme0n1: %v, %v", fi, err)
	}
}

// TestControllerDiagCounters (issue 8, behaviour 1): diag/reset_count,
// reconnect_count and command_error_count count, read with cat on a real
// mount after echo 1 > reset_controller, a dropped connection and a failed
// command.
func TestControllerDiagCounters(t *testing.T) {
	e := newEnv(t, envOpts{})
	diag := "sys/class/nvme/nvme0/diag/"
	for _, f := range []string{"reset_count", "reconnect_count", "command_error_count"} {
		if got := e.cat(diag + f); got != "0" {
			t.Fatalf("%s = %q at start", f, got)
		}
	}
	if msg := e.echo("sys/class/nvme/nvme0/reset_controller", "1"); msg != "" {
		t.Fatalf("reset_controller: %s", msg)
	}
	e.waitCat("sys/class/nvme/nvme0/state", "live")
	if got := e.cat(diag + "reset_count"); got != "1" {
		t.Errorf("reset_count after reset_controller = %q, want 1", got)
	}
	if got := e.cat(diag + "reconnect_count"); got != "1" {
		t.Errorf("reconnect_count after reset_controller = %q, want 1", got)
	}

	// A lost connection: error recovery (a reset) and one reconnect after
	// reconnect_delay.
	e.setup.Ports[0].DropConnections()
	e.waitCat(diag+"reconnect_count", "2")
	e.waitCat("sys/class/nvme/nvme0/state", "live")
	if got := e.cat(diag + "reset_count"); got != "2" {
		t.Errorf("reset_count after error recovery = %q, want 2", got)
	}

	// One I/O command completes with an error status (DNR: not retried).
	for _, p := range e.setup.Ports {
		p.FailNextIO(1, nvme.StatusInvalidField|nvme.StatusDNR)
	}
	out, err := exec.Command("dd", "if="+e.path("nvme0n1"), "of=/dev/null", "bs=4096", "count=1", "iflag=direct").CombinedOutput()
	if err == nil {
		t.Fatalf("dd read succeeded despite the injected error: %s", out)
	}
	n := 0
	for _, c := range []string{"nvme0", "nvme1"} {
		v, _ := strconv.Atoi(e.cat("sys/class/nvme/" + c + "/diag/command_error_count"))
		n += v
	}
	if n != 1 {
		t.Errorf("command_error_count summed over both controllers = %d, want 1", n)
	}
}

// TestDuplicateConnect (issue 8, behaviour 6): connecting a controller
// that is already connected fails with EALREADY unless duplicate_connect.
func TestDuplicateConnect(t *testing.T) {
	e := newEnv(t, envOpts{})
	o := e.setup.Options(e.base)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := e.d.Connect(ctx, o)
	if !errors.Is(err, syscall.EALREADY) {
		t.Fatalf("duplicate connect: %v, want EALREADY", err)
	}
	if !strings.Contains(e.logs.String(), "found same controller") {
		t.Error("no 'found same controller' in the log")
	}
	o.DuplicateConnect = true
	if err := e.d.Connect(ctx, o); err != nil {
		t.Fatalf("duplicate_connect: %v", err)
	}
	e.waitCat("sys/class/nvme/nvme2/state", "live")
	if _, err := os.Lstat(e.path("sys/block/nvme0c2n1")); err != nil {
		t.Errorf("third path: %v", err)
	}
}

// TestHostAddressOptions (issue 8, behaviour 6): host_traddr, host_iface
// and tos reach the sockets of a real connection (the target sees the
// source address, sysfs address shows them), an unknown host_iface fails
// the connect with ENODEV.
func TestHostAddressOptions(t *testing.T) {
	e := newEnv(t, envOpts{})
	o := e.setup.Options(e.base)[0]
	o.HostTrAddr, o.HostIface, o.Tos = "127.0.0.2", "lo", 0x28
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.d.Connect(ctx, o); err != nil {
		t.Fatalf("connect with host_traddr, host_iface, tos: %v", err)
	}
	e.waitCat("sys/class/nvme/nvme2/state", "live")
	addr := e.cat("sys/class/nvme/nvme2/address")
	for _, want := range []string{"host_traddr=127.0.0.2", "host_iface=lo", "src_addr=127.0.0.2"} {
		if !strings.Contains(addr, want) {
			t.Errorf("address %q lacks %s", addr, want)
		}
	}
	if !strings.Contains(e.logs.String(), "remote=127.0.0.2:") {
		t.Error("the target saw no connection from 127.0.0.2")
	}
	o.HostTrAddr, o.HostIface = "", "nosuch0"
	err := e.d.Connect(ctx, o)
	if !errors.Is(err, syscall.ENODEV) || !strings.Contains(err.Error(), "invalid interface passed") {
		t.Errorf("unknown host_iface: %v, want ENODEV", err)
	}
}

// TestRetryConnectOnInjectedClock: one clock given to the daemon (through
// host.WithClock) drives the background retry of a controller that could
// not be reached at start: no retry until it advances by reconnect_delay.
func TestRetryConnectOnInjectedClock(t *testing.T) {
	clk := mpathtest.NewClock()
	e := newEnv(t, envOpts{hostOpts: []host.Option{host.WithClock(clk)}, kato: time.Minute, down: []int{0}})
	if got := e.cat("sys/class/nvme/nvme0/state"); got != "live" {
		t.Fatalf("nvme0 (port 2) %q", got)
	}
	if err := e.setup.Ports[0].StartListening(); err != nil {
		t.Fatal(err)
	}
	clk.WaitPending(2) // nvme0's keep-alive ticker and the retry timer
	if _, err := os.Lstat(e.path("sys/class/nvme/nvme1")); !os.IsNotExist(err) {
		t.Fatalf("retried before reconnect_delay passed on the daemon's clock (%v)", err)
	}
	clk.Advance(100 * time.Millisecond) // reconnect_delay
	e.waitCat("sys/class/nvme/nvme1/state", "live")
	if _, err := os.Lstat(e.path("sys/block/nvme0c1n1")); err != nil {
		t.Errorf("the retried controller's path: %v", err)
	}
}

// TestWriteProtectedIsEIO (issue 8, behaviour 10): status 0x20 (Namespace
// is Write Protected) reaches the reader as EIO, as nvme_error_status maps
// it (not EROFS).
func TestWriteProtectedIsEIO(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, p := range e.setup.Ports {
		p.FailNextIO(1, nvme.StatusNSWriteProtected|nvme.StatusDNR)
	}
	out, err := exec.Command("dd", "if="+e.path("nvme0n1"), "of=/dev/null", "bs=4096", "count=1", "iflag=direct").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Input/output error") {
		t.Fatalf("read failing with 0x20: %v: %s", err, out)
	}
}
