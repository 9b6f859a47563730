package e2e

import (
	"bytes"
	"os"
	"path/filepath"
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

// TestLyingTargetShortReads: a target that completes reads with success after
// half their data (our target's ShortNextReads fault, on both paths) never
// gives stale bytes to the reader: each lie kills that queue, the read goes
// to a path that answers whole, dd gets the data written, and no EIO.
func TestLyingTargetShortReads(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t, envConfig{})
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(i*7 + i>>12)
	}
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, want, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "dd", "if="+src, "of="+e.path("nvme0n1"), "bs=64k", "oflag=direct", "conv=notrunc", "status=none"); err != nil {
		t.Fatalf("dd write: %v %s", err, out)
	}
	for _, p := range e.setup.Ports {
		p.ShortNextReads(2)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if out, err := run(t, "dd", "if="+e.path("nvme0n1"), "of="+dst, "bs=64k", "count=16", "iflag=direct", "status=none"); err != nil {
		t.Fatalf("dd read with lying paths: %v %s", err, out)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read data differs from what was written: stale bytes returned as success")
	}
	if n := e.logs.Count("completed with success after"); n == 0 {
		t.Errorf("no lie detected in the log")
	}
}
