package ramfs_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mpathfs/mpathfs/fusefs"
	"github.com/mpathfs/mpathfs/internal/ramfs"
)

func mount(t *testing.T, size int64) string {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE unavailable: %v", err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Skipf("FUSE unavailable: %v", err)
	}
	mnt := t.TempDir()
	server, err := ramfs.Mount(mnt, size, fusefs.Options{FsName: "ramfs", Name: "ramfs"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := server.Unmount(); err != nil {
			t.Errorf("unmount: %v (a descriptor left open?); detaching lazily", err)
			_ = exec.Command("fusermount3", "-u", "-z", mnt).Run()
		}
	})
	return filepath.Join(mnt, ramfs.FileName)
}

// The tests of this package run one at a time: a parallel test's
// exec.Command forks while another test holds its mount's file open, and
// the child keeps that descriptor until it execs, so the unmount can find
// the mount busy (CI saw EBUSY once).

func TestReadWriteAtOffsets(t *testing.T) {
	const size = 1 << 20
	path := mount(t, size)
	for _, flags := range []int{os.O_RDWR, os.O_RDWR | syscall.O_DIRECT} {
		f, err := os.OpenFile(path, flags, 0)
		if err != nil {
			t.Fatal(err)
		}
		p := bytes.Repeat([]byte("mpathfs"), 1000)
		if _, err := f.WriteAt(p, 12345); err != nil {
			t.Fatal(err)
		}
		q := make([]byte, len(p))
		if _, err := f.ReadAt(q, 12345); err != nil || !bytes.Equal(p, q) {
			t.Fatalf("flags %#x: read back %v", flags, err)
		}
		if n, _ := f.ReadAt(q, size-10); n != 10 {
			t.Fatalf("flags %#x: read across end got %d bytes", flags, n)
		}
		if _, err := f.WriteAt(q, size); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("flags %#x: write at end: %v", flags, err)
		}
		f.Close()
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != size {
		t.Fatalf("stat: %v %v", fi, err)
	}
}

func TestFioDirect(t *testing.T) {
	if _, err := exec.LookPath("fio"); err != nil {
		t.Skipf("fio not installed: %v", err)
	}
	path := mount(t, 16<<20)
	out, err := exec.Command("fio", "--name=v", "--filename="+path, "--rw=randwrite", "--bs=4k", "--iodepth=16",
		"--ioengine=libaio", "--direct=1", "--verify=crc32c", "--verify_state_save=0", "--size=8M").CombinedOutput()
	if err != nil {
		t.Fatalf("fio: %v\n%s", err, out)
	}
}
