package fusefs

import (
	"context"
	"fmt"
	"sync"
	"syscall"
)

// BlockDevice is a namespace as the FUSE file sees it. Offsets and lengths
// passed to it are multiples of BlockSize and lie within Size. Methods are
// called concurrently; they must not retain p after returning.
type BlockDevice interface {
	// Size is the capacity in bytes (a multiple of BlockSize).
	Size() int64
	// BlockSize is the logical block size in bytes; it must not change.
	BlockSize() int
	// ReadAt fills p from offset off.
	ReadAt(ctx context.Context, p []byte, off int64) error
	// WriteAt writes p at offset off.
	WriteAt(ctx context.Context, p []byte, off int64) error
	// Flush commits volatile writes (NVMe Flush).
	Flush(ctx context.Context) error
	// WriteZeroes makes the range read back as zeroes (NVMe Write Zeroes).
	WriteZeroes(ctx context.Context, off, length int64) error
	// Deallocate unmaps the range (fallocate PUNCH_HOLE). Callers expect it to
	// read back as zeroes afterwards, which Linux gets for a block device with
	// Write Zeroes + DEAC; a device without that guarantee should do so.
	Deallocate(ctx context.Context, off, length int64) error
}

// lockStripes is the number of RMW locks per device; blocks map onto them by
// index, so two read-modify-writes of one block always serialize.
const lockStripes = 256

// blockIO turns byte-granular file I/O into block I/O. Sub-block edges are
// read-modify-written under a per-block striped lock; the aligned middle goes
// to the device straight from/into the caller's buffer. No lock is held across
// device I/O other than an edge's RMW lock.
type blockIO struct {
	dev   BlockDevice
	bs    int64
	zero  []byte
	bufs  sync.Pool // *[]byte of bs bytes: edge bounce buffers
	locks [lockStripes]sync.Mutex
}

func newBlockIO(dev BlockDevice) (*blockIO, error) {
	bs := int64(dev.BlockSize())
	if bs <= 0 || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("block size %d: %w", bs, syscall.EINVAL)
	}
	b := &blockIO{dev: dev, bs: bs, zero: make([]byte, bs)}
	b.bufs.New = func() any { p := make([]byte, bs); return &p }
	return b, nil
}

func (b *blockIO) lock(blk int64) *sync.Mutex {
	return &b.locks[uint64(blk/b.bs)%lockStripes]
}

// readEdge copies the part [h, h+len(p)) of the block at blk into p.
func (b *blockIO) readEdge(ctx context.Context, p []byte, blk, h int64) error {
	bp := b.bufs.Get().(*[]byte)
	defer b.bufs.Put(bp)
	if err := b.dev.ReadAt(ctx, *bp, blk); err != nil {
		return err
	}
	copy(p, (*bp)[h:])
	return nil
}

// rmw replaces the part [h, h+len(p)) of the block at blk with p.
func (b *blockIO) rmw(ctx context.Context, p []byte, blk, h int64) error {
	mu := b.lock(blk)
	mu.Lock()
	defer mu.Unlock()
	bp := b.bufs.Get().(*[]byte)
	defer b.bufs.Put(bp)
	if err := b.dev.ReadAt(ctx, *bp, blk); err != nil {
		return err
	}
	copy((*bp)[h:], p)
	return b.dev.WriteAt(ctx, *bp, blk)
}

// span splits [off, off+n) into a leading partial block (head bytes starting
// at block headBlk), an aligned middle and a trailing partial block.
func (b *blockIO) span(off, n int64) (head, mid, tail int64) {
	if h := off % b.bs; h != 0 || n < b.bs {
		head = min(n, b.bs-h)
	}
	mid = (n - head) / b.bs * b.bs
	tail = n - head - mid
	return head, mid, tail
}

// ReadAt reads into p at off; it returns fewer bytes at the end of the device
// and 0 past it.
func (b *blockIO) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	size := b.dev.Size()
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if off >= size {
		return 0, nil
	}
	if rem := size - off; int64(len(p)) > rem {
		p = p[:rem]
	}
	return b.transfer(ctx, p, off, false)
}

// WriteAt writes p at off. A write starting at or past the end fails with
// ENOSPC; one crossing the end is cut short there, as on a block device.
func (b *blockIO) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	size := b.dev.Size()
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= size {
		return 0, syscall.ENOSPC
	}
	if rem := size - off; int64(len(p)) > rem {
		p = p[:rem]
	}
	return b.transfer(ctx, p, off, true)
}

// transfer moves p at off (within the device): partial edge blocks through
// readEdge or rmw, the aligned middle straight from or into p.
func (b *blockIO) transfer(ctx context.Context, p []byte, off int64, write bool) (int, error) {
	n := len(p)
	edge := func(q []byte, blk, h int64) error {
		if write {
			return b.rmw(ctx, q, blk, h)
		}
		return b.readEdge(ctx, q, blk, h)
	}
	head, mid, tail := b.span(off, int64(n))
	if head > 0 {
		h := off % b.bs
		if err := edge(p[:head], off-h, h); err != nil {
			return 0, err
		}
		p, off = p[head:], off+head
	}
	if mid > 0 {
		var err error
		if write {
			err = b.dev.WriteAt(ctx, p[:mid], off)
		} else {
			err = b.dev.ReadAt(ctx, p[:mid], off)
		}
		if err != nil {
			return 0, err
		}
		p, off = p[mid:], off+mid
	}
	if tail > 0 {
		if err := edge(p, off, 0); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// zeroRange makes [off, off+n) read as zeroes: partial edge blocks by RMW,
// the aligned middle by whole (WriteZeroes or Deallocate).
func (b *blockIO) zeroRange(ctx context.Context, off, n int64, whole func(context.Context, int64, int64) error) error {
	head, mid, tail := b.span(off, n)
	if head > 0 {
		h := off % b.bs
		if err := b.rmw(ctx, b.zero[:head], off-h, h); err != nil {
			return err
		}
		off += head
	}
	if mid > 0 {
		if err := whole(ctx, off, mid); err != nil {
			return err
		}
		off += mid
	}
	if tail > 0 {
		return b.rmw(ctx, b.zero[:tail], off, 0)
	}
	return nil
}

// fallocate modes (linux/falloc.h).
const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
	fallocZeroRange = 0x10
)

// Allocate implements fallocate: PUNCH_HOLE|KEEP_SIZE deallocates,
// ZERO_RANGE writes zeroes; other modes are EOPNOTSUPP. Without KEEP_SIZE a
// range past the end is ENOSPC (a device cannot grow); with it the range is
// cut at the end.
func (b *blockIO) Allocate(ctx context.Context, off, n int64, mode uint32) error {
	var whole func(context.Context, int64, int64) error
	switch mode &^ fallocKeepSize {
	case fallocPunchHole:
		if mode&fallocKeepSize == 0 {
			return syscall.EOPNOTSUPP
		}
		whole = b.dev.Deallocate
	case fallocZeroRange:
		whole = b.dev.WriteZeroes
	default:
		return syscall.EOPNOTSUPP
	}
	size := b.dev.Size()
	if off < 0 || n <= 0 {
		return syscall.EINVAL
	}
	if off+n > size {
		if mode&fallocKeepSize == 0 {
			return syscall.ENOSPC
		}
		n = size - off
	}
	if n <= 0 {
		return nil
	}
	return b.zeroRange(ctx, off, n, whole)
}
