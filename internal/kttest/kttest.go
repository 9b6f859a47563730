// Package kttest gives tests access to the Linux kernel NVMe/TCP target of
// shared/kernel-target (nvmet-tcp in a VM): it selects the tests with
// MPATHFS_KERNEL_TARGET=1, finds the harness (MPATHFS_KT_DIR, else
// shared/kernel-target beside the repository), reads `ctl env`, and holds
// an exclusive lock for the whole test so that test packages running in
// parallel (go test ./...) never drive one VM at the same time.
//
// Two instances may run side by side: Debian 12's kernel (6.1, the
// harness's default instance, [Require]) and Debian unstable's (7.2,
// [RequireUnstable]: DH-HMAC-CHAP, reservations, the kernel host's tree
// dump), the latter found through MPATHFS_KT72_RUN, the KT_RUN directory it
// was started with. .ci/run starts both with KT_HOST_REACH=1, so the guest's
// kernel host can also reach a target on this machine (10.0.2.2, 10.0.3.2,
// 10.0.4.2).
package kttest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// LockFile serializes users of the default (6.1) VM across test processes;
// the 7.2 instance uses LockFile + "72".
const LockFile = "/tmp/mpathfs-kernel-target.lock"

// Target is the running kernel target.
type Target struct {
	Dir string
	// Run is the instance's KT_RUN directory ("" for the harness default).
	Run string
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
	return require(t, "", LockFile)
}

// RequireUnstable is [Require] for the Linux 7.2 instance (KT_KERNEL=unstable),
// whose KT_RUN directory MPATHFS_KT72_RUN names. With MPATHFS_KERNEL_TARGET=1
// but no MPATHFS_KT72_RUN the test fails: .ci/run always starts both.
func RequireUnstable(t testing.TB) *Target {
	t.Helper()
	if os.Getenv("MPATHFS_KERNEL_TARGET") != "1" {
		t.Skip("Linux 7.2 kernel target interop: set MPATHFS_KERNEL_TARGET=1 and MPATHFS_KT72_RUN with the KT_KERNEL=unstable instance started (.ci/run does)")
	}
	run := os.Getenv("MPATHFS_KT72_RUN")
	if run == "" {
		t.Fatal("MPATHFS_KERNEL_TARGET=1 but MPATHFS_KT72_RUN is not set: start the KT_KERNEL=unstable instance with its own KT_RUN (see .ci/run)")
	}
	return require(t, run, LockFile+"72")
}

func require(t testing.TB, run, lockFile string) *Target {
	t.Helper()
	dir, err := filepath.Abs(Dir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ctl")); err != nil {
		t.Fatalf("MPATHFS_KERNEL_TARGET=1 but no harness at %s (MPATHFS_KT_DIR): %v", dir, err)
	}
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", lockFile, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
	k := &Target{Dir: dir, Run: run, Env: map[string]string{}}
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
	if k.Run != "" {
		cmd.Env = append(os.Environ(), "KT_RUN="+k.Run)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ctl %s: %v: %s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// GenDHCHAPKey makes a DH-HMAC-CHAP secret for nqn with Debian's nvme-cli
// (nvme gen-dhchap-key; hmac 0 none, 1 SHA-256, 2 SHA-384, 3 SHA-512), the
// independent implementation the authentication tests take keys from.
func GenDHCHAPKey(nqn string, hmac int) (string, error) {
	out, err := exec.Command("nvme", "gen-dhchap-key", "--nqn", nqn, fmt.Sprintf("--hmac=%d", hmac)).Output()
	if err != nil {
		return "", fmt.Errorf("nvme gen-dhchap-key: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
