package fusefs_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mpathfs/mpathfs/fusefs"
	"github.com/mpathfs/mpathfs/fusefs/fusefstest"
	"github.com/mpathfs/mpathfs/sysfsview"
	"github.com/mpathfs/mpathfs/sysfsview/sysfsviewtest"
)

// requireFUSE skips when this machine cannot mount FUSE.
func requireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE unavailable: %v", err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Skipf("FUSE unavailable: fusermount3 not in PATH: %v", err)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type env struct {
	mnt    string
	root   *fusefs.Root
	fix    *sysfsviewtest.Fixture
	dev    *fusefstest.RAM
	log    *syncBuf
	server *fusefs.Server
}

const nsSize = 32 << 20

// mount serves a fixture tree and a RAM namespace file nvme0n1 in a temp dir.
func mount(t *testing.T) *env {
	t.Helper()
	return mountWith(t, fusefs.Options{})
}

// mountWith is mount with options.
func mountWith(t *testing.T, opts fusefs.Options) *env {
	t.Helper()
	requireFUSE(t)
	lb := &syncBuf{}
	log := hclog.New(&hclog.LoggerOptions{Output: lb, Level: hclog.Info})
	fix, err := sysfsviewtest.NewFixture(sysfsview.NewTree(log), nsSize)
	if err != nil {
		t.Fatal(err)
	}
	root := fusefs.NewRoot(fix.Tree, log)
	dev := fusefstest.NewRAM(nsSize, 4096)
	if err := root.AddNamespace("nvme0n1", dev); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	server, err := fusefs.Mount(mnt, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unmountRetry(server); err != nil {
			t.Errorf("unmount: %v (a descriptor left open?); detaching lazily", err)
			_ = exec.Command("fusermount3", "-u", "-z", mnt).Run()
		}
	})
	return &env{mnt: mnt, root: root, fix: fix, dev: dev, log: lb, server: server}
}

func (e *env) path(p string) string { return filepath.Join(e.mnt, p) }

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), errors.Join(err, errors.New(strings.TrimSpace(errb.String())))
	}
	return out.String(), nil
}

func TestMountShowsInProcMounts(t *testing.T) {
	t.Parallel()
	e := mount(t)
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == e.mnt {
			if f[0] != "mpathfs" || f[2] != "fuse.mpathfs" {
				t.Fatalf("mount line %q, want source mpathfs type fuse.mpathfs", line)
			}
			return
		}
	}
	t.Fatalf("%s not in /proc/self/mounts", e.mnt)
}

func TestCatAttributes(t *testing.T) {
	t.Parallel()
	e := mount(t)
	e.fix.Path0.SetStat(sysfsview.IOStat{ReadIOs: 3, ReadSectors: 24, WriteIOs: 1})
	for _, p := range []string{
		"sys/class/nvme-subsystem/nvme-subsys0/iopolicy",
		"sys/class/nvme-subsystem/nvme-subsys0/model",
		"sys/class/nvme/nvme0/state",
		"sys/class/nvme/nvme0/address",
		"sys/class/nvme/nvme1/fast_io_fail_tmo",
		"sys/class/nvme/nvme0/diag/reset_count",
		"sys/block/nvme0n1/size",
		"sys/block/nvme0n1/wwid",
		"sys/block/nvme0n1/eui",
		"sys/block/nvme0c0n1/ana_state",
		"sys/block/nvme0c0n1/stat",
		"sys/block/nvme0c0n1/queue_depth",
		// through symlinks, as tools walk them
		"sys/class/nvme-subsystem/nvme-subsys0/nvme0/state",
		"sys/class/nvme-subsystem/nvme-subsys0/nvme0n1/multipath/nvme0c1n1/ana_state",
		"sys/block/nvme0c1n1/device/address",
	} {
		want, err := e.fix.Tree.Read(resolve(t, e.fix.Tree, p))
		if err != nil {
			t.Fatal(err)
		}
		got, err := run(t, "cat", e.path(p))
		if err != nil {
			t.Errorf("cat %s: %v", p, err)
			continue
		}
		if got != want {
			t.Errorf("cat %s = %q, want %q", p, got, want)
		}
	}
}

// resolve follows symlinks inside the tree, as the kernel does for the mount.
func resolve(t *testing.T, tree *sysfsview.Tree, p string) string {
	t.Helper()
	parts := strings.Split(p, "/")
	for i := 0; i < len(parts); i++ {
		cur := strings.Join(parts[:i+1], "/")
		if l, ok := tree.Lookup(cur).(*sysfsview.Symlink); ok {
			dir := parts[:i]
			for _, c := range strings.Split(l.Target, "/") {
				if c == ".." {
					dir = dir[:len(dir)-1]
				} else {
					dir = append(dir, c)
				}
			}
			parts = append(dir, parts[i+1:]...)
			i = len(dir) - 1
		}
	}
	return strings.Join(parts, "/")
}

func TestEchoIOPolicy(t *testing.T) {
	t.Parallel()
	e := mount(t)
	attr := e.path("sys/class/nvme-subsystem/nvme-subsys0/iopolicy")
	if out, err := run(t, "sh", "-c", "echo round-robin > "+attr); err != nil {
		t.Fatalf("echo round-robin: %v %s", err, out)
	}
	if got, _ := run(t, "cat", attr); got != "round-robin\n" {
		t.Fatalf("iopolicy after echo = %q", got)
	}
	if e.fix.Subsys.IOPolicy() != "round-robin" {
		t.Fatalf("source policy = %q", e.fix.Subsys.IOPolicy())
	}
	// A bad value: the shell's write fails with EINVAL and nothing changes.
	// dash reports any failed builtin echo as "I/O error"; coreutils echo names the errno.
	_, err := run(t, "sh", "-c", "/bin/echo bogus > "+attr)
	if err == nil || !strings.Contains(err.Error(), "Invalid argument") {
		t.Fatalf("echo bogus: err %v, want Invalid argument", err)
	}
	if err := os.WriteFile(attr, []byte("numa\n\n"), 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("write numa\\n\\n: %v, want EINVAL", err)
	}
	if got, _ := run(t, "cat", attr); got != "round-robin\n" {
		t.Fatalf("iopolicy after bad writes = %q", got)
	}
	rejected := 0
	for _, l := range strings.Split(e.log.String(), "\n") {
		if strings.Contains(l, "iopolicy: write") {
			rejected++
		}
	}
	if rejected != 2 {
		t.Fatalf("log has %d rejection lines, want 2:\n%s", rejected, e.log.String())
	}
}

func TestAttributeModesAndAccess(t *testing.T) {
	t.Parallel()
	e := mount(t)
	for _, tc := range []struct {
		p    string
		mode os.FileMode
	}{
		{"sys/class/nvme/nvme0/state", 0o444},
		{"sys/class/nvme-subsystem/nvme-subsys0/iopolicy", 0o644},
		{"sys/class/nvme/nvme0/reset_controller", 0o200},
		{"sys/block/nvme0n1/delayed_removal_secs", 0o644},
		{"sys/block/nvme0n1/diag", os.ModeDir | 0o755},
		{"sys/block/nvme0c0n1/device", os.ModeSymlink | 0o777},
	} {
		fi, err := os.Lstat(e.path(tc.p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != tc.mode {
			t.Errorf("%s mode %v, want %v", tc.p, fi.Mode(), tc.mode)
		}
	}
	if target, err := os.Readlink(e.path("sys/block/nvme0n1/multipath/nvme0c0n1")); err != nil || target != "../../nvme0c0n1" {
		t.Errorf("readlink = %q, %v", target, err)
	}
	// Like kernfs, reading a trigger or writing a read-only file is EACCES, even for root.
	if _, err := os.ReadFile(e.path("sys/class/nvme/nvme0/reset_controller")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("read trigger: %v, want EACCES", err)
	}
	if err := os.WriteFile(e.path("sys/class/nvme/nvme0/state"), []byte("dead"), 0); !errors.Is(err, syscall.EACCES) {
		t.Errorf("write read-only: %v, want EACCES", err)
	}
	if out, err := run(t, "sh", "-c", "echo 1 > "+e.path("sys/class/nvme/nvme1/reset_controller")); err != nil {
		t.Fatalf("reset: %v %s", err, out)
	}
	if r, _, _ := e.fix.Ctrl1.Triggered(); r != 1 {
		t.Errorf("reset ran %d times", r)
	}
}

func TestAttributeSnapshotPerOpen(t *testing.T) {
	t.Parallel()
	e := mount(t)
	f, err := os.Open(e.path("sys/class/nvme/nvme0/state"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e.fix.Ctrl0.SetState("connecting")
	buf := make([]byte, 2)
	var got []byte
	for {
		n, err := f.Read(buf) // small reads see the value taken at open
		got = append(got, buf[:n]...)
		if err != nil || n == 0 {
			break
		}
	}
	if string(got) != "live\n" {
		t.Errorf("open before change read %q, want live", got)
	}
	if now, _ := os.ReadFile(e.path("sys/class/nvme/nvme0/state")); string(now) != "connecting\n" {
		t.Errorf("open after change read %q, want connecting (no stale cache)", now)
	}
}

func names(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return strings.Join(n, " ")
}

func TestTreeChangesAreVisible(t *testing.T) {
	t.Parallel()
	e := mount(t)
	mp := e.path("sys/block/nvme0n1/multipath")
	if got := names(t, mp); got != "nvme0c0n1 nvme0c1n1" {
		t.Fatalf("multipath = %q", got)
	}
	if _, err := os.ReadFile(e.path("sys/block/nvme0c1n1/ana_state")); err != nil {
		t.Fatal(err)
	}
	if err := e.fix.Tree.RemovePath("nvme0c1n1"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, mp); got != "nvme0c0n1" {
		t.Fatalf("multipath after remove = %q", got)
	}
	if _, err := os.Stat(e.path("sys/block/nvme0c1n1/ana_state")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("removed path still reachable: %v", err)
	}
	if err := e.fix.Tree.AddPath("nvme0c1n1", "nvme0n1", "nvme1", e.fix.Path1); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(e.path("sys/block/nvme0c1n1/ana_state")); err != nil || string(got) != "non-optimized\n" {
		t.Fatalf("re-added path: %q %v", got, err)
	}
	// Hidden attributes follow their predicate live.
	e.fix.Path1.SetANA(false, "")
	if _, err := os.Stat(e.path("sys/block/nvme0c1n1/ana_state")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ana_state visible without ANA: %v", err)
	}
	if strings.Contains(names(t, e.path("sys/block/nvme0c1n1")), "ana_state") {
		t.Fatal("ana_state listed without ANA")
	}
	// Namespace files come and go.
	if got := names(t, e.mnt); got != "dev disk nvme0n1 sys" {
		t.Fatalf("root = %q", got)
	}
	if err := e.root.AddNamespace("nvme0n2", fusefstest.NewRAM(1<<20, 512)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(e.path("nvme0n2")); err != nil || fi.Size() != 1<<20 {
		t.Fatalf("nvme0n2: %v %v", fi, err)
	}
	if err := e.root.RemoveNamespace("nvme0n2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.path("nvme0n2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("removed namespace still there: %v", err)
	}
	if got := names(t, e.mnt); got != "dev disk nvme0n1 sys" {
		t.Fatalf("root after remove = %q", got)
	}
}

func TestParallelTreeReads(t *testing.T) {
	t.Parallel()
	e := mount(t)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if _, err := os.ReadDir(e.path("sys/block/nvme0n1")); err != nil {
					t.Error(err)
					return
				}
				if b, err := os.ReadFile(e.path("sys/block/nvme0n1/size")); err != nil || string(b) != "65536\n" {
					t.Errorf("size %q %v", b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestAttributeLongWrite: as on sysfs, one write(2) stores at most a page
// (the rest is a short count: a valid value padded with NULs is taken); a
// rejected value is logged cut to 64 bytes, quoted, with its length.
func TestAttributeLongWrite(t *testing.T) {
	t.Parallel()
	e := mount(t)
	attr := e.path("sys/class/nvme-subsystem/nvme-subsys0/iopolicy")
	if err := os.WriteFile(attr, bytes.Repeat([]byte("y"), 1<<20), 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("1 MiB bad write: %v, want EINVAL", err)
	}
	log := e.log.String()
	want := `"` + strings.Repeat("y", 64) + `"... (4096 bytes)`
	if !strings.Contains(log, want) || strings.Contains(log, strings.Repeat("y", 65)) {
		t.Fatalf("log %q, want the value cut to %s", log, want)
	}
	if e.fix.Subsys.IOPolicy() != "numa" {
		t.Fatalf("iopolicy changed to %q", e.fix.Subsys.IOPolicy())
	}
	f, err := os.OpenFile(attr, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := f.Write(append([]byte("round-robin\x00"), make([]byte, 8000)...))
	if n != 4096 || e.fix.Subsys.IOPolicy() != "round-robin" {
		t.Fatalf("padded write: %d, %v, policy %q; want 4096 taken, round-robin", n, err, e.fix.Subsys.IOPolicy())
	}
}

// unmountRetry unmounts, trying again for up to a second while the mount is
// busy: these tests run in parallel, and another test's exec.Command forks
// a child that holds copies of this process's descriptors, this mount's
// open files among them, until it execs. There is no event for that, so
// this polls; a descriptor we really left open still fails.
func unmountRetry(s *fusefs.Server) error {
	var err error
	for i := 0; i < 20; i++ {
		if err = s.Unmount(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}
