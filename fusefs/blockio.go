package fusefs

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
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

// lockStripes is the number of RMW stripes per device; blocks map onto them
// by index, so two read-modify-writes of one block always serialize.
const lockStripes = 256

// stripe orders read-modify-writes and aligned writes of the blocks mapping
// to it. RMWs serialize on mu. Aligned writes stay lock-free while no RMW of
// the stripe is in flight: a writer announces itself in aligned, then checks
// rmw; an RMW announces itself in rmw, then waits for aligned to drain before
// its read. Go's atomics are sequentially consistent, so at least one side
// sees the other (Dekker): either the writer backs off to mu, or the RMW reads
// after the write. Each outcome is a serial order of the two writes.
type stripe struct {
	mu      sync.Mutex   // held by an RMW, or by an aligned write that backed off
	rmw     atomic.Int32 // RMWs holding or waiting for mu
	aligned atomic.Int32 // lock-free aligned writes on the device
	wmu     sync.Mutex   // guards drained's waits
	drained sync.Cond    // aligned reached 0 while rmw > 0
	_       [64]byte     // keep stripes on separate cache lines
}

// blockIO turns byte-granular file I/O into block I/O. Sub-block edges are
// read-modify-written under a per-block stripe lock; the aligned middle goes
// to the device straight from/into the caller's buffer, taking stripe locks
// only while an RMW of one of its stripes is in flight (see stripe). No lock
// is held across device I/O other than for an RMW.
type blockIO struct {
	dev     BlockDevice
	bs      int64
	zero    []byte
	bufs    sync.Pool // *[]byte of bs bytes: edge bounce buffers
	stripes [lockStripes]stripe
}

func newBlockIO(dev BlockDevice) (*blockIO, error) {
	bs := int64(dev.BlockSize())
	if bs <= 0 || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("block size %d: %w", bs, syscall.EINVAL)
	}
	b := &blockIO{dev: dev, bs: bs, zero: make([]byte, bs)}
	b.bufs.New = func() any { p := make([]byte, bs); return &p }
	for i := range b.stripes {
		b.stripes[i].drained.L = &b.stripes[i].wmu
	}
	return b, nil
}

func (b *blockIO) stripe(blk int64) *stripe {
	return &b.stripes[uint64(blk/b.bs)%lockStripes]
}

// stripeRange is the stripes of the blocks in [off, off+n), in ascending
// index order as two runs [0, wrap) and [first, last).
func (b *blockIO) stripeRange(off, n int64) (wrap, first, last int) {
	blocks := (n + b.bs - 1) / b.bs
	if blocks >= lockStripes {
		return 0, 0, lockStripes
	}
	first = int(uint64(off/b.bs) % lockStripes)
	end := first + int(blocks)
	if end > lockStripes {
		return end - lockStripes, first, lockStripes
	}
	return 0, first, end
}

// enter starts a lock-free aligned write of the whole blocks [off,
// off+n): it announces the write on their stripes and returns them for
// leave. It reports false, having left again, while an RMW of one of
// them is in flight.
func (b *blockIO) enter(off, n int64) ([3]int, bool) {
	wrap, first, last := b.stripeRange(off, n)
	busy := false
	for _, r := range [2][2]int{{0, wrap}, {first, last}} {
		for i := r[0]; i < r[1]; i++ {
			b.stripes[i].aligned.Add(1)
		}
	}
	for _, r := range [2][2]int{{0, wrap}, {first, last}} {
		for i := r[0]; i < r[1] && !busy; i++ {
			busy = b.stripes[i].rmw.Load() > 0
		}
	}
	if busy {
		// Its RMW may be waiting for us: leave the lock-free set.
		b.leave(wrap, first, last)
		return [3]int{}, false
	}
	return [3]int{wrap, first, last}, true
}

// alignedWrite runs write, which writes the whole blocks [off, off+n),
// ordered against RMWs of those blocks: lock-free unless one is in flight.
func (b *blockIO) alignedWrite(off, n int64, write func() error) error {
	if s, ok := b.enter(off, n); ok {
		err := write()
		b.leave(s[0], s[1], s[2])
		return err
	}
	wrap, first, last := b.stripeRange(off, n)
	// An RMW is in flight: take every stripe's lock in ascending order.
	for _, r := range [2][2]int{{0, wrap}, {first, last}} {
		for i := r[0]; i < r[1]; i++ {
			b.stripes[i].mu.Lock()
		}
	}
	err := write()
	for _, r := range [2][2]int{{0, wrap}, {first, last}} {
		for i := r[0]; i < r[1]; i++ {
			b.stripes[i].mu.Unlock()
		}
	}
	return err
}

// leave ends a lock-free aligned write on the stripes, waking RMWs waiting
// for them to drain.
func (b *blockIO) leave(wrap, first, last int) {
	for _, r := range [2][2]int{{0, wrap}, {first, last}} {
		for i := r[0]; i < r[1]; i++ {
			s := &b.stripes[i]
			if s.aligned.Add(-1) == 0 && s.rmw.Load() > 0 {
				s.wmu.Lock()
				s.drained.Broadcast()
				s.wmu.Unlock()
			}
		}
	}
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
	s := b.stripe(blk)
	s.mu.Lock()
	s.rmw.Add(1)
	defer func() {
		s.rmw.Add(-1)
		s.mu.Unlock()
	}()
	if s.aligned.Load() > 0 {
		s.wmu.Lock()
		for s.aligned.Load() > 0 {
			s.drained.Wait()
		}
		s.wmu.Unlock()
	}
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
			q, o := p[:mid], off
			err = b.alignedWrite(o, mid, func() error { return b.dev.WriteAt(ctx, q, o) })
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
		o := off
		if err := b.alignedWrite(o, mid, func() error { return whole(ctx, o, mid) }); err != nil {
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
