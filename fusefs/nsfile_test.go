package fusefs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpathfs/mpathfs/fusefs"
)

func randBytes(seed int64, n int) []byte {
	p := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(p)
	return p
}

func TestNamespaceStat(t *testing.T) {
	t.Parallel()
	e := mount(t)
	fi, err := os.Stat(e.path("nvme0n1"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Size() != nsSize || st.Blksize != 4096 || !fi.Mode().IsRegular() {
		t.Fatalf("stat: size %d blksize %d mode %v", fi.Size(), st.Blksize, fi.Mode())
	}
}

func TestDD(t *testing.T) {
	t.Parallel()
	e := mount(t)
	src := t.TempDir() + "/src"
	data := randBytes(1, 8<<20)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"bs=4k buffered", []string{"bs=4k", "conv=notrunc"}},
		{"bs=1M direct", []string{"bs=1M", "conv=notrunc", "oflag=direct"}},
		{"bs=4k direct seek", []string{"bs=4k", "conv=notrunc", "oflag=direct", "seek=100"}},
	} {
		off := int64(0)
		for _, a := range tc.args {
			if a == "seek=100" {
				off = 100 * 4096
			}
		}
		args := append([]string{"if=" + src, "of=" + e.path("nvme0n1"), "status=none"}, tc.args...)
		if out, err := run(t, "dd", args...); err != nil {
			t.Fatalf("%s: dd: %v %s", tc.name, err, out)
		}
		if got := e.dev.Snapshot()[off : off+int64(len(data))]; !bytes.Equal(got, data) {
			t.Fatalf("%s: device content differs", tc.name)
		}
		// Read back with dd, direct and buffered.
		for _, iflag := range []string{"iflag=direct", "iflag=fullblock"} {
			dst := t.TempDir() + "/dst"
			skip := fmt.Sprintf("skip=%d", off/4096)
			if out, err := run(t, "dd", "if="+e.path("nvme0n1"), "of="+dst, "bs=4k", skip, fmt.Sprintf("count=%d", len(data)/4096), iflag, "status=none"); err != nil {
				t.Fatalf("%s: dd read %s: %v %s", tc.name, iflag, err, out)
			}
			if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
				t.Fatalf("%s: dd read back (%s) differs", tc.name, iflag)
			}
		}
	}
	if out, err := run(t, "dd", "if="+e.path("nvme0n1"), "of=/dev/null", "bs=1M", "count=8", "iflag=direct", "status=none"); err != nil {
		t.Fatalf("dd read bs=1M: %v %s", err, out)
	}
	if c := e.dev.Counts(); c.Misaligned != 0 || c.MaxWrite != 1<<20 || c.MaxRead != 1<<20 {
		t.Fatalf("device counts %+v: want no misaligned I/O and 1 MiB requests (max_write, max_pages)", c)
	}
}

// TestRequestsServedConcurrently holds every device read until four are in
// flight at once: it only passes if the FUSE requests are served in parallel.
func TestRequestsServedConcurrently(t *testing.T) {
	t.Parallel()
	e := mount(t)
	const n = 4
	var mu sync.Mutex
	inflight := 0
	all := make(chan struct{})
	e.dev.SetHook(func(write bool, off int64) {
		if write {
			return
		}
		mu.Lock()
		inflight++
		if inflight == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
		}
	})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		f, err := os.OpenFile(e.path("nvme0n1"), os.O_RDONLY|syscall.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			buf := make([]byte, 4096)
			if _, err := f.ReadAt(buf, int64(i)*4096); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	select {
	case <-all:
	default:
		t.Fatalf("never %d reads in flight at once", n)
	}
}

func TestUnalignedEdges(t *testing.T) {
	t.Parallel()
	e := mount(t)
	for _, flags := range []int{os.O_RDWR, os.O_RDWR | syscall.O_DIRECT} {
		f, err := os.OpenFile(e.path("nvme0n1"), flags, 0)
		if err != nil {
			t.Fatal(err)
		}
		model := e.dev.Snapshot()
		rng := rand.New(rand.NewSource(int64(flags)))
		for i := 0; i < 200; i++ {
			off := rng.Int63n(1 << 20)
			p := randBytes(int64(i), rng.Intn(3*4096)+1)
			if n, err := f.WriteAt(p, off); err != nil || n != len(p) {
				t.Fatalf("flags %#x: pwrite %d@%d: %d %v", flags, len(p), off, n, err)
			}
			copy(model[off:], p)
			roff := rng.Int63n(1 << 20)
			q := make([]byte, rng.Intn(3*4096)+1)
			if n, err := f.ReadAt(q, roff); err != nil || n != len(q) {
				t.Fatalf("flags %#x: pread %d@%d: %d %v", flags, len(q), roff, n, err)
			}
			if !bytes.Equal(q, model[roff:roff+int64(len(q))]) {
				t.Fatalf("flags %#x: pread %d@%d differs from model", flags, len(q), roff)
			}
		}
		f.Close()
		if !bytes.Equal(e.dev.Snapshot(), model) {
			t.Fatalf("flags %#x: device differs from model", flags)
		}
	}
	if c := e.dev.Counts(); c.Misaligned != 0 {
		t.Fatalf("device saw misaligned I/O: %+v", c)
	}
}

func TestConcurrentUnalignedWritersSameBlock(t *testing.T) {
	t.Parallel()
	e := mount(t)
	const writers, rounds, span = 8, 100, 97
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		f, err := os.OpenFile(e.path("nvme0n1"), os.O_RDWR|syscall.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		wg.Add(1)
		go func(w int, f *os.File) {
			defer wg.Done()
			p := make([]byte, span)
			for r := 0; r < rounds; r++ {
				for i := range p {
					p[i] = byte(w*rounds + r)
				}
				if _, err := f.WriteAt(p, 8192+int64(w)*(span+3)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w, f)
	}
	wg.Wait()
	data := e.dev.Snapshot()
	for w := 0; w < writers; w++ {
		want := byte(w*rounds + rounds - 1)
		off := 8192 + w*(span+3)
		if got := data[off : off+span]; !bytes.Equal(got, bytes.Repeat([]byte{want}, span)) {
			t.Fatalf("writer %d's bytes torn: %v", w, got[:8])
		}
	}
}

func TestEndOfDevice(t *testing.T) {
	t.Parallel()
	e := mount(t)
	for _, flags := range []int{os.O_RDWR, os.O_RDWR | syscall.O_DIRECT} {
		f, err := os.OpenFile(e.path("nvme0n1"), flags, 0)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8192)
		if n, err := f.ReadAt(buf, nsSize); n != 0 {
			t.Errorf("flags %#x: read at end: %d %v, want 0 bytes", flags, n, err)
		}
		if n, _ := f.ReadAt(buf, nsSize-100); n != 100 {
			t.Errorf("flags %#x: read across end: %d bytes, want 100", flags, n)
		}
		if _, err := f.WriteAt(buf[:10], nsSize); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("flags %#x: write at end: %v, want ENOSPC", flags, err)
		}
		if _, err := f.WriteAt(buf[:4096], nsSize+4096); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("flags %#x: write past end: %v, want ENOSPC", flags, err)
		}
		// A write across the end is cut there, as on a block device.
		if n, err := unix.Pwrite(int(f.Fd()), buf, nsSize-4096); n != 4096 || err != nil {
			t.Errorf("flags %#x: write across end: %d %v, want 4096 bytes", flags, n, err)
		}
		f.Close()
	}
	if fi, _ := os.Stat(e.path("nvme0n1")); fi.Size() != nsSize {
		t.Fatalf("size changed to %d", fi.Size())
	}
}

func TestFallocateAndFsync(t *testing.T) {
	t.Parallel()
	e := mount(t)
	f, err := os.OpenFile(e.path("nvme0n1"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ones := bytes.Repeat([]byte{0xff}, 64<<10)
	if _, err := f.WriteAt(ones, 0); err != nil {
		t.Fatal(err)
	}
	fd := int(f.Fd())
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 1000, 10000); err != nil {
		t.Fatalf("punch: %v", err)
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE, 30000, 9000); err != nil {
		t.Fatalf("zero range: %v", err)
	}
	if err := unix.Fallocate(fd, 0, 0, 4096); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("plain fallocate: %v, want EOPNOTSUPP", err)
	}
	want := bytes.Repeat([]byte{0xff}, 64<<10)
	clear(want[1000:11000])
	clear(want[30000:39000])
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("content after punch/zero differs")
	}
	c := e.dev.Counts()
	if c.Deallocates != 1 || c.WriteZeroes != 1 {
		t.Fatalf("counts after fallocate %+v, want 1 deallocate 1 write-zeroes", c)
	}
	for i := 0; i < 3; i++ {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Fdatasync(fd); err != nil {
		t.Fatal(err)
	}
	if got := e.dev.Counts().Flushes; got != 4 {
		t.Fatalf("flushes = %d, want 4", got)
	}
}

func TestFioVerify(t *testing.T) {
	t.Parallel()
	e := mount(t)
	if _, err := exec.LookPath("fio"); err != nil {
		t.Skipf("fio not installed: %v", err)
	}
	out, err := run(t, "fio", "--name=v", "--filename="+e.path("nvme0n1"), "--rw=randwrite", "--bs=4k",
		"--iodepth=16", "--ioengine=libaio", "--direct=1", "--verify=crc32c", "--verify_state_save=0", "--size=16M")
	if err != nil { // fio exits non-zero on any I/O or verify error
		t.Fatalf("fio: %v\n%s", err, out)
	}
	if c := e.dev.Counts(); c.Writes < 4096 || c.Misaligned != 0 {
		t.Fatalf("device counts %+v after fio", c)
	}
	// As root the mount serves /dev/fuse itself: the aligned I/O went the
	// asynchronous way.
	if os.Geteuid() == 0 && e.dev.Started() < 4096 {
		t.Fatalf("%d I/Os started asynchronously, want all %d aligned ones", e.dev.Started(), e.dev.Counts().Writes)
	}
	// At depth 16 requests queue up on /dev/fuse: some were held for a
	// plug (the RAM device runs them only at Unplug, so a reader that
	// failed to unplug would have hung fio).
	if os.Geteuid() == 0 && e.dev.Plugged() == 0 {
		t.Fatal("no I/O was held for a plug at iodepth 16")
	}
	t.Logf("%d of %d I/Os held for a plug", e.dev.Plugged(), e.dev.Started())
}

// TestDeclinedLargeIO: 1 MiB O_DIRECT writes and reads that the device
// declines to start go through go-fuse in the buffer they arrived in; four
// writers at once must each find their own data (a declined request's
// buffer handed back to the readers' pool while go-fuse still used it
// would mix them).
func TestDeclinedLargeIO(t *testing.T) {
	t.Parallel()
	e := mount(t)
	e.dev.SetDeclineAsync(true)
	const size, rounds = 1 << 20, 6
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.OpenFile(e.path("nvme0n1"), os.O_RDWR|syscall.O_DIRECT, 0)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			got := make([]byte, size)
			for r := 0; r < rounds; r++ {
				want := randBytes(int64(100*w+r), size)
				off := int64(w) * size
				if _, err := f.WriteAt(want, off); err != nil {
					errs <- err
					return
				}
				if _, err := f.ReadAt(got, off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, want) {
					errs <- fmt.Errorf("writer %d round %d: read back differs", w, r)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && (e.dev.Declined() < 4*rounds*2 || e.dev.Started() != 0) {
		t.Fatalf("declined %d, started %d: want every I/O offered and declined", e.dev.Declined(), e.dev.Started())
	}
}

// TestGoFuseLoop runs the namespace file on go-fuse's own loop: nothing
// is started asynchronously and the data still arrives.
func TestGoFuseLoop(t *testing.T) {
	t.Parallel()
	e := mountWith(t, fusefs.Options{GoFuseLoop: true})
	data := randBytes(7, 1<<20)
	f, err := os.OpenFile(e.path("nvme0n1"), os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, len(data)) // FUSE copies: no alignment needed
	copy(buf, data)
	if _, err := f.WriteAt(buf, 4096); err != nil {
		t.Fatal(err)
	}
	clear(buf)
	if _, err := f.ReadAt(buf, 4096); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, data) || !bytes.Equal(e.dev.Snapshot()[4096:4096+len(data)], data) {
		t.Fatal("data differs")
	}
	if n := e.dev.Started(); n != 0 {
		t.Fatalf("%d I/Os started asynchronously on go-fuse's loop", n)
	}
}

// TestRMWAndAlignedWriteSerialize races a 1-byte write (a read-modify-write
// of its block) with an aligned O_DIRECT write of the same block through the
// namespace file. The device holds the RMW after its read until the aligned
// write has reached the device (or 50 ms pass: then the aligned write is waiting for the
// RMW, as it must). The block must end as one of the two serial orders; the
// lost update (the RMW writing back the block it read before the aligned
// write) reverts an acknowledged write.
func TestRMWAndAlignedWriteSerialize(t *testing.T) {
	t.Parallel()
	e := mount(t)
	f, err := os.OpenFile(e.path("nvme0n1"), os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const bs = 4096
	for ep := 0; ep < 20; ep++ {
		blk := int64(64+ep) * bs
		old := bytes.Repeat([]byte{0xAA}, bs)
		if _, err := f.WriteAt(old, blk); err != nil {
			t.Fatal(err)
		}
		readHeld := make(chan struct{})
		alignedAtDevice := make(chan struct{})
		var once, onceW sync.Once
		e.dev.SetDoneHook(func(write bool, off int64) {
			if off != blk {
				return
			}
			if write {
				onceW.Do(func() { close(alignedAtDevice) })
				return
			}
			once.Do(func() {
				close(readHeld)
				select {
				case <-alignedAtDevice:
				case <-time.After(50 * time.Millisecond):
				}
			})
		})
		newer := bytes.Repeat([]byte{byte(ep)}, bs)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := f.WriteAt([]byte{0x55}, blk+7); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			<-readHeld
			if _, err := f.WriteAt(newer, blk); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		e.dev.SetDoneHook(nil)
		got := e.dev.Snapshot()[blk : blk+bs]
		rmwFirst := newer
		alignedFirst := append([]byte(nil), newer...)
		alignedFirst[7] = 0x55
		if !bytes.Equal(got, rmwFirst) && !bytes.Equal(got, alignedFirst) {
			t.Fatalf("episode %d: block is neither serial order (bytes 0..8: %x): the aligned write was lost", ep, got[:8])
		}
	}
}

// TestMetadataOps: namespace files answer like a block device node
// (/dev/nvme0n1 on devtmpfs), attribute files like sysfs: truncate(2) and
// ftruncate(2) are EINVAL on a namespace file (open's O_TRUNC is ignored,
// and so is truncate(2) to 0, which FUSE sends the same way) and accepted on
// an attribute; chmod, chown and utimes take effect on both;
// setxattr is EPERM for user.* on a namespace file, else EOPNOTSUPP.
func TestMetadataOps(t *testing.T) {
	t.Parallel()
	e := mount(t)
	ns := e.path("nvme0n1")
	data := randBytes(7, 4096)
	if err := e.dev.WriteAt(context.Background(), data, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(ns, 0); err != nil {
		t.Errorf("truncate(ns, 0): %v, want it ignored (FUSE sends open's O_TRUNC the same way)", err)
	}
	if err := os.Truncate(ns, nsSize); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("truncate(ns, size): %v, want EINVAL", err)
	}
	f, err := os.OpenFile(ns, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatalf("open O_TRUNC: %v", err)
	}
	if err := f.Truncate(4096); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("ftruncate: %v, want EINVAL", err)
	}
	f.Close()
	if out, err := run(t, "truncate", "-s", "1M", ns); err == nil || !strings.Contains(err.Error(), "Invalid argument") {
		t.Errorf("truncate -s 1M: %v %s, want Invalid argument", err, out)
	}
	if fi, err := os.Stat(ns); err != nil || fi.Size() != nsSize || !bytes.Equal(e.dev.Snapshot()[:4096], data) {
		t.Fatalf("after truncation attempts: %v, size %d, data kept %v", err, fi.Size(), bytes.Equal(e.dev.Snapshot()[:4096], data))
	}

	attr := e.path("sys/class/nvme-subsystem/nvme-subsys0/iopolicy")
	if err := os.Truncate(attr, 0); err != nil {
		t.Errorf("truncate(attribute): %v, want success as on sysfs", err)
	}
	mtime := time.Unix(1_600_000_000, 0)
	for _, p := range []string{ns, attr} {
		if out, err := run(t, "chmod", "0604", p); err != nil {
			t.Fatalf("chmod %s: %v %s", p, err, out)
		}
		if err := os.Chown(p, 12, 34); err != nil {
			t.Fatalf("chown %s: %v", p, err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatalf("utimes %s: %v", p, err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o604 || st.Uid != 12 || st.Gid != 34 || !fi.ModTime().Equal(mtime) || !fi.Mode().IsRegular() {
			t.Errorf("%s after chmod/chown/utimes: mode %v uid %d gid %d mtime %v", p, fi.Mode(), st.Uid, st.Gid, fi.ModTime())
		}
	}
	if got, _ := run(t, "cat", attr); got != "numa\n" {
		t.Errorf("attribute reads %q after chmod", got)
	}
	for _, tc := range []struct {
		p, name string
		want    syscall.Errno
	}{
		{ns, "user.x", syscall.EPERM},
		{ns, "trusted.x", syscall.EOPNOTSUPP},
		{attr, "user.x", syscall.EOPNOTSUPP},
		{attr, "security.x", syscall.EOPNOTSUPP},
	} {
		if err := unix.Setxattr(tc.p, tc.name, []byte("1"), 0); !errors.Is(err, tc.want) {
			t.Errorf("setxattr %s %s: %v, want %v", tc.p, tc.name, err, tc.want)
		}
		if _, err := unix.Getxattr(tc.p, tc.name, make([]byte, 16)); !errors.Is(err, syscall.ENODATA) {
			t.Errorf("getxattr %s %s: %v, want ENODATA", tc.p, tc.name, err)
		}
	}
}
