// Package kttest gives tests access to the Linux kernel NVMe/TCP target of
// shared/kernel-target (nvmet-tcp in a VM): it selects the tests with
// MPATHFS_KERNEL_TARGET=1, finds the harness (MPATHFS_KT_DIR, else
// shared/kernel-target beside the repository), reads `ctl env`, and holds
// an exclusive lock for the whole test so that test packages running in
// parallel (go test ./...) never drive the one VM at the same time.
package kttest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// LockFile serializes users of the VM across test processes.
const LockFile = "/tmp/mpathfs-kernel-target.lock"

// Target is the running kernel target.
type Target struct {
	Dir string
	NQN string
	// Ports are the host TCP ports of path 1 and path 2.
	Ports [2]string
	Env   map[string]string
}

// Dir returns the harness directory.
func Dir() string {
	if d := os.Getenv("MPATHFS_KT_DIR"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	// internal/kttest -> repository -> its parent, where shared/ sits.
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "kernel-target")
}

// Require skips t unless MPATHFS_KERNEL_TARGET=1, then locks the VM for
// the rest of the test, resets it (and again at the end) and returns it.
func Require(t testing.TB) *Target {
	t.Helper()
	if os.Getenv("MPATHFS_KERNEL_TARGET") != "1" {
		t.Skip("Linux kernel target interop: set MPATHFS_KERNEL_TARGET=1 with shared/kernel-target started (.ci/run does)")
	}
	dir, err := filepath.Abs(Dir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ctl")); err != nil {
		t.Fatalf("MPATHFS_KERNEL_TARGET=1 but no harness at %s (MPATHFS_KT_DIR): %v", dir, err)
	}
	f, err := os.OpenFile(LockFile, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", LockFile, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
	k := &Target{Dir: dir, Env: map[string]string{}}
	out := k.Ctl(t, "env")
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if key, v, ok := strings.Cut(sc.Text(), "="); ok {
			k.Env[key] = v
		}
	}
	k.NQN, k.Ports = k.Env["KT_NQN"], [2]string{k.Env["KT_PORT1"], k.Env["KT_PORT2"]}
	if k.NQN == "" || k.Ports[0] == "" || k.Ports[1] == "" {
		t.Fatalf("ctl env incomplete: %q", out)
	}
	k.Ctl(t, "reset")
	t.Cleanup(func() { k.Ctl(t, "reset") })
	return k
}

// Ctl runs ./ctl with args and returns its output; failure fails the test.
func (k *Target) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(k.Dir, "ctl"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ctl %s: %v: %s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}
