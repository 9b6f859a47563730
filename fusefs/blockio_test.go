package fusefs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"runtime"
	"sync"
	"syscall"
	"testing"

	"github.com/mpathfs/mpathfs/fusefs/fusefstest"
)

func newIO(t *testing.T, size int64, bs int) (*blockIO, *fusefstest.RAM) {
	t.Helper()
	dev := fusefstest.NewRAM(size, bs)
	b, err := newBlockIO(dev)
	if err != nil {
		t.Fatal(err)
	}
	return b, dev
}

// TestBlockIOMatchesModel runs random unaligned reads, writes, punches and
// zero-ranges against a byte-slice model; the device must only ever see
// aligned I/O.
func TestBlockIOMatchesModel(t *testing.T) {
	t.Parallel()
	for _, bs := range []int{512, 4096} {
		const size = 64 << 10
		b, dev := newIO(t, size, bs)
		model := make([]byte, size)
		rng := rand.New(rand.NewSource(int64(bs)))
		ctx := context.Background()
		for i := 0; i < 3000; i++ {
			off := rng.Int63n(size + 100)
			n := rng.Intn(3*bs) + 1
			switch rng.Intn(4) {
			case 0:
				p := make([]byte, n)
				rng.Read(p)
				got, err := b.WriteAt(ctx, p, off)
				switch {
				case off >= size:
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("write at %d past end: %v", off, err)
					}
				case err != nil:
					t.Fatalf("write %d@%d: %v", n, off, err)
				default:
					want := min(int64(n), size-off)
					if int64(got) != want {
						t.Fatalf("write %d@%d wrote %d, want %d", n, off, got, want)
					}
					copy(model[off:], p[:got])
				}
			case 1:
				p := make([]byte, n)
				got, err := b.ReadAt(ctx, p, off)
				if err != nil {
					t.Fatalf("read %d@%d: %v", n, off, err)
				}
				want := 0
				if off < size {
					want = int(min(int64(n), size-off))
				}
				if got != want || !bytes.Equal(p[:got], model[min(off, size):min(off, size)+int64(got)]) {
					t.Fatalf("read %d@%d: got %d bytes, want %d / content mismatch", n, off, got, want)
				}
			case 2, 3:
				mode := uint32(fallocPunchHole | fallocKeepSize)
				if rng.Intn(2) == 0 {
					mode = fallocZeroRange | fallocKeepSize
				}
				err := b.Allocate(ctx, off, int64(n), mode)
				if err != nil {
					t.Fatalf("fallocate %#x %d@%d: %v", mode, n, off, err)
				}
				if off < size {
					clear(model[off:min(size, off+int64(n))])
				}
			}
		}
		if !bytes.Equal(dev.Snapshot(), model) {
			t.Fatalf("bs %d: device content differs from model", bs)
		}
		if c := dev.Counts(); c.Misaligned != 0 || c.Deallocates == 0 || c.WriteZeroes == 0 {
			t.Fatalf("bs %d: counts %+v", bs, c)
		}
	}
}

func TestBlockIOAlignedMiddleIsOneDeviceCall(t *testing.T) {
	t.Parallel()
	b, dev := newIO(t, 1<<20, 4096)
	p := make([]byte, 3*4096+100)
	if _, err := b.WriteAt(context.Background(), p, 4096-50); err != nil {
		t.Fatal(err)
	}
	// head RMW (1 read + 1 write), 3 aligned blocks in one write, tail RMW (1+1).
	if c := dev.Counts(); c.Reads != 2 || c.Writes != 3 {
		t.Fatalf("counts %+v, want 2 reads 3 writes", c)
	}
}

// TestConcurrentRMWDoNotTear has writers update disjoint byte ranges of the
// same block at once; with the device yielding between read and write, any
// missing serialization loses updates.
func TestConcurrentRMWDoNotTear(t *testing.T) {
	t.Parallel()
	b, dev := newIO(t, 64<<10, 4096)
	dev.SetHook(func(bool, int64) { runtime.Gosched() })
	const writers, rounds, span = 8, 200, 100
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			p := make([]byte, span)
			for r := 0; r < rounds; r++ {
				for i := range p {
					p[i] = byte(w*rounds + r)
				}
				if _, err := b.WriteAt(context.Background(), p, 4096+int64(w)*(span+7)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	data := dev.Snapshot()
	for w := 0; w < writers; w++ {
		want := byte(w*rounds + rounds - 1)
		off := 4096 + w*(span+7)
		for i := 0; i < span; i++ {
			if data[off+i] != want {
				t.Fatalf("writer %d byte %d = %d, want %d (lost update)", w, i, data[off+i], want)
			}
		}
	}
}

func TestAllocateModes(t *testing.T) {
	t.Parallel()
	b, _ := newIO(t, 1<<20, 4096)
	ctx := context.Background()
	for _, tc := range []struct {
		mode uint32
		off  int64
		n    int64
		want syscall.Errno
	}{
		{fallocPunchHole | fallocKeepSize, 0, 4096, 0},
		{fallocPunchHole, 0, 4096, syscall.EOPNOTSUPP}, // the kernel requires KEEP_SIZE too
		{fallocZeroRange, 100, 5000, 0},
		{fallocZeroRange | fallocKeepSize, 1<<20 - 10, 100, 0}, // cut at the end
		{fallocZeroRange, 1<<20 - 10, 100, syscall.ENOSPC},
		{0, 0, 4096, syscall.EOPNOTSUPP},
		{fallocKeepSize, 0, 4096, syscall.EOPNOTSUPP},
		{0x08 /* COLLAPSE_RANGE */, 0, 4096, syscall.EOPNOTSUPP},
	} {
		if got := ToErrno(b.Allocate(ctx, tc.off, tc.n, tc.mode)); got != tc.want {
			t.Errorf("fallocate(mode %#x, %d, %d) = %v, want %v", tc.mode, tc.off, tc.n, got, tc.want)
		}
	}
}

type statusErr struct{}

func (statusErr) Error() string        { return "nvme status" }
func (statusErr) Errno() syscall.Errno { return syscall.ENODATA }

func TestToErrno(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{statusErr{}, syscall.ENODATA},
		{errors.Join(errors.New("wrapped"), statusErr{}), syscall.ENODATA},
		{syscall.ENOSPC, syscall.ENOSPC},
		{ctx.Err(), syscall.EINTR},
		{context.DeadlineExceeded, syscall.EINTR},
		{errors.New("boom"), syscall.EIO},
	} {
		if got := ToErrno(tc.err); got != tc.want {
			t.Errorf("ToErrno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func BenchmarkBlockIOUnalignedWrite(b *testing.B) {
	dev := fusefstest.NewRAM(16<<20, 4096)
	io, _ := newBlockIO(dev)
	p := make([]byte, 4096)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for i := 0; i < b.N; i++ {
		if _, err := io.WriteAt(ctx, p, int64(i%1000)*4096+1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBlockIOAlignedWrite(b *testing.B) {
	dev := fusefstest.NewRAM(16<<20, 4096)
	io, _ := newBlockIO(dev)
	ctx := context.Background()
	for _, n := range []int{4096, 1 << 20} {
		p := make([]byte, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for i := 0; i < b.N; i++ {
				if _, err := io.WriteAt(ctx, p, int64(i%8)*int64(n)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRMWAndAlignedStress races sub-block writes with aligned writes,
// ZERO_RANGE and PUNCH_HOLE over the same few blocks (a wide aligned write
// spans every stripe) under -race: afterwards each block must be the last
// aligned content or that plus the RMW's byte, never an older aligned
// content with the byte (the lost update).
func TestRMWAndAlignedStress(t *testing.T) {
	t.Parallel()
	const bs, blocks, rounds = 512, 4, 300
	b, dev := newIO(t, 1<<20, bs)
	dev.SetHook(func(bool, int64) { runtime.Gosched() })
	ctx := context.Background()
	for r := 0; r < rounds; r++ {
		fill := byte(r%250 + 1)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := b.WriteAt(ctx, []byte{0}, int64(r%blocks)*bs+5); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			var err error
			switch r % 3 {
			case 0:
				_, err = b.WriteAt(ctx, bytes.Repeat([]byte{fill}, (lockStripes+blocks)*bs), 0)
			case 1:
				err = b.Allocate(ctx, 0, blocks*bs, fallocZeroRange)
			case 2:
				err = b.Allocate(ctx, 0, blocks*bs, fallocPunchHole|fallocKeepSize)
			}
			if err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		want := fill
		if r%3 != 0 {
			want = 0
		}
		data := dev.Snapshot()
		for i := 0; i < blocks*bs; i++ {
			if data[i] != want && !(i == (r%blocks)*bs+5 && data[i] == 0) {
				t.Fatalf("round %d: byte %d = %d, want %d: an aligned write was reverted", r, i, data[i], want)
			}
		}
	}
}
