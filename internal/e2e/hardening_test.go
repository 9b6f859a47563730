package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestResetControllerBrokenPath: `echo 1 > reset_controller` on a path whose
// target stopped listening returns what the kernel's does
// (nvme_reset_ctrl_sync): ENETRESET after the one immediate reconnect
// attempt, and EBUSY at once while the controller is not live; the other
// path keeps serving.
func TestResetControllerBrokenPath(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t, envConfig{ReconnectDelay: time.Hour})
	if err := e.setup.Ports[0].StopListening(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	msg := e.echo("sys/class/nvme/nvme0/reset_controller", "1")
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("reset_controller returned after %v", el)
	}
	if !strings.Contains(msg, "Network dropped connection on reset") {
		t.Fatalf("reset_controller on a broken path: %q, want ENETRESET", msg)
	}
	if s := e.cat("sys/class/nvme/nvme0/state"); s != "connecting" {
		t.Errorf("state %q after the failed reset, want connecting", s)
	}
	start = time.Now()
	if msg := e.echo("sys/class/nvme/nvme0/reset_controller", "1"); !strings.Contains(msg, "Device or resource busy") {
		t.Fatalf("reset_controller while connecting: %q, want EBUSY", msg)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("EBUSY after %v, want at once", el)
	}
	if out, err := run(t, "dd", "if="+e.path("nvme0n1"), "of=/dev/null", "bs=4k", "count=16", "iflag=direct", "status=none"); err != nil {
		t.Fatalf("read through the other path: %v %s", err, out)
	}
}
