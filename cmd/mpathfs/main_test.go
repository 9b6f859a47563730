package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/demo"
	"github.com/mpathfs/mpathfs/internal/hugemem"
	"github.com/mpathfs/mpathfs/internal/hugemem/hugememtest"
)

// buildBinary builds mpathfs into a temporary directory (so that
// mount.fuse3 finds it on PATH as "mpathfs").
func buildBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "mpathfs")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func requireRootFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount FUSE (CI runs as root)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("needs /dev/fuse: %v", err)
	}
}

func startTarget(t *testing.T) *demo.Setup {
	t.Helper()
	s, err := demo.Start(demo.Config{Addrs: []string{"127.0.0.1:0", "127.0.0.1:0"}, NSSize: 16 << 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func waitExists(t *testing.T, p string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s", p, timeout)
		}
		time.Sleep(20 * time.Millisecond) // the mount is another process: no event to wait on
	}
}

func TestUsageAndUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run(nil, &out, &errb); rc != 2 || !strings.Contains(errb.String(), "usage: mpathfs") {
		t.Fatalf("no args: rc %d, %q", rc, errb.String())
	}
	errb.Reset()
	if rc := run([]string{"frobnicate"}, &out, &errb); rc != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown: rc %d, %q", rc, errb.String())
	}
}

// A bad configuration is refused before anything connects, naming the key
// and its line.
func TestMountBadConfigNamesKeyAndLine(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(cfg, []byte("[multipath]\niopolicy = \"numa\"\nfence_writes = \"sometimes\"\n"), 0o600)
	var out, errb bytes.Buffer
	rc := run([]string{"mount", "-c", cfg, t.TempDir()}, &out, &errb)
	if rc != 1 || !strings.Contains(errb.String(), "bad.toml:3: multipath.fence_writes") {
		t.Fatalf("rc %d, stderr %q", rc, errb.String())
	}
	errb.Reset()
	rc = run([]string{"mount", "--connect", "traddr=127.0.0.1,nqn=x,colour=red", t.TempDir()}, &out, &errb)
	if rc != 1 || !strings.Contains(errb.String(), `unknown option "colour"`) {
		t.Fatalf("--connect with an unknown key: rc %d, %q", rc, errb.String())
	}
}

// mount -t fuse.mpathfs CONFIG MOUNTPOINT through mount.fuse3, as an fstab
// line does; umount ends the daemon cleanly.
func TestMountHelperViaMountFuse3(t *testing.T) {
	requireRootFUSE(t)
	if _, err := exec.LookPath("mount.fuse3"); err != nil {
		t.Skipf("needs mount.fuse3 (apt-get install fuse3): %v", err)
	}
	bin := buildBinary(t)
	s := startTarget(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	cfg := filepath.Join(dir, "mpathfs.toml")
	var b strings.Builder
	for _, p := range s.Ports {
		fmt.Fprintf(&b, "[[controller]]\ntraddr = \"127.0.0.1\"\ntrsvcid = \"%d\"\nnqn = %q\nkeep_alive_tmo = 2\n\n", p.Addr().Port, demo.NQN)
	}
	os.WriteFile(cfg, []byte(b.String()), 0o600)
	logf := filepath.Join(dir, "log")
	// mount(8) runs helpers with a fixed PATH, so instead of installing the
	// binary for "-t fuse.mpathfs" use mount.fuse3's equivalent PROGRAM#SOURCE
	// form with an absolute path: mpathfs is run exactly the same way.
	cmd := exec.Command("mount", "-t", "fuse", bin+"#"+cfg, mnt, "-o", "allow_other")
	cmd.Env = append(os.Environ(), "MPATHFS_LOG_FILE="+logf)
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(logf)
		t.Fatalf("mount -t fuse.mpathfs: %v\n%s\nlog:\n%s", err, out, log)
	}
	// mount returned: the helper reported ready, so the tree is there now.
	if _, err := os.Stat(filepath.Join(mnt, "nvme0n1")); err != nil {
		t.Fatalf("after mount: %v", err)
	}
	mounts, _ := os.ReadFile("/proc/mounts")
	if !strings.Contains(string(mounts), mnt+" fuse.mpathfs") {
		t.Errorf("/proc/mounts has no fuse.mpathfs entry for %s", mnt)
	}
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v %s", err, out)
	}
	// The daemon shuts its controllers down: the target sees them go.
	deadline := time.Now().Add(20 * time.Second)
	for {
		log, _ := os.ReadFile(logf)
		if strings.Contains(string(log), "nvme1: controller removed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not shut down after umount; log:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// --discover connects every subsystem entry of our target's discovery log,
// and list-subsys prints both paths.
func TestMountDiscoverAndListSubsys(t *testing.T) {
	requireRootFUSE(t)
	bin := buildBinary(t)
	s := startTarget(t)
	mnt := t.TempDir()
	cmd := exec.Command(bin, "mount", "--discover", fmt.Sprintf("traddr=127.0.0.1,trsvcid=%d", s.Ports[0].Addr().Port), mnt)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("mpathfs mount exit: %v\n%s", err, errb.String())
		}
	}()
	waitExists(t, filepath.Join(mnt, "sys/class/nvme/nvme1/state"), 20*time.Second)
	// The serving process re-executed itself (same PID) with sysmon kept awake.
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(environ, []byte("GODEBUG="+sysmonSetting+"\x00")) {
		t.Errorf("mount's environment lacks GODEBUG=%s", sysmonSetting)
	}
	// The mount's /dev/fuse buffers are huge pages of their own
	// (hugemem.Buf): a 1 MiB write goes through one.
	if hugememtest.Enabled() {
		if out, err := exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(mnt, "nvme0n1"), "bs=1M", "count=1", "oflag=direct", "conv=notrunc", "status=none").CombinedOutput(); err != nil {
			t.Fatalf("dd: %v %s", err, out)
		}
		ms, err := hugememtest.Mappings(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		huge := 0
		for _, m := range ms {
			if m.THPEligible && m.Start%hugemem.PageSize == 0 && (m.End-m.Start)%hugemem.PageSize == 0 && m.End-m.Start <= 4*hugemem.PageSize {
				huge++
				t.Logf("mapping %#x-%#x: AnonHugePages %d kB", m.Start, m.End, m.AnonHugeKB)
			}
		}
		if huge == 0 {
			t.Error("the mount has no buffer of its own on huge pages")
		}
	}
	out, err := exec.Command(bin, "list-subsys", mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("list-subsys: %v %s", err, out)
	}
	for _, p := range s.Ports {
		want := fmt.Sprintf("traddr=127.0.0.1,trsvcid=%d", p.Addr().Port)
		if !strings.Contains(string(out), want) || !strings.Contains(string(out), "NQN="+demo.NQN) {
			t.Errorf("list-subsys lacks %s:\n%s", want, out)
		}
	}
	if strings.Count(string(out), " live") != 2 {
		t.Errorf("want two live paths:\n%s", out)
	}
}
