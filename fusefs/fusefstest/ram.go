// Package fusefstest has a RAM fusefs.BlockDevice for tests and benchmarks.
package fusefstest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mpathfs/mpathfs/internal/plug"
)

// RAM is a fusefs.BlockDevice in memory. It rejects misaligned or
// out-of-range I/O (so tests catch a caller breaking the block contract) and
// counts operations. Block writes are atomic with respect to each other.
type RAM struct {
	bs   int
	mu   sync.RWMutex
	data []byte

	hook, done atomic.Pointer[func(write bool, off int64)]

	reads, writes, flushes, zeroes, deallocs atomic.Int64
	misaligned, maxRead, maxWrite            atomic.Int64
	started, declined, plugged               atomic.Int64
	decline                                  atomic.Bool

	heldMu sync.Mutex
	held   []func() // I/Os held for a plug, started by Flush
}

// StartIO implements fusefs.AsyncBlockDevice: the I/O runs as ReadAt or
// WriteAt on a goroutine of its own (hooks included), which then completes
// it; with SetDeclineAsync it declines instead. With a plug, the I/O does
// not run before the plug's Unplug, so a caller that forgets to unplug
// waits forever.
func (r *RAM) StartIO(ctx context.Context, write bool, p []byte, off int64, done interface{ Complete(error) }, pl *plug.Plug) bool {
	if r.decline.Load() {
		r.declined.Add(1)
		return false
	}
	r.started.Add(1)
	run := func() {
		if write {
			done.Complete(r.WriteAt(ctx, p, off))
		} else {
			done.Complete(r.ReadAt(ctx, p, off))
		}
	}
	if pl == nil {
		go run()
		return true
	}
	r.plugged.Add(1)
	r.heldMu.Lock()
	r.held = append(r.held, run)
	r.heldMu.Unlock()
	pl.Hold((*ramHeld)(r))
	return true
}

// ramHeld is the plug.Flusher of a RAM's held I/Os.
type ramHeld RAM

// Flush implements plug.Flusher: the held I/Os start.
func (r *ramHeld) Flush() {
	r.heldMu.Lock()
	held := r.held
	r.held = nil
	r.heldMu.Unlock()
	for _, run := range held {
		go run()
	}
}

// Plugged is the number of I/Os StartIO held for a plug.
func (r *RAM) Plugged() int64 { return r.plugged.Load() }

// Started is the number of I/Os started with StartIO.
func (r *RAM) Started() int64 { return r.started.Load() }

// SetDeclineAsync makes StartIO decline every I/O (as a device with no
// usable path at once does), so the caller falls back to ReadAt/WriteAt.
func (r *RAM) SetDeclineAsync(on bool) { r.decline.Store(on) }

// Declined is the number of I/Os StartIO declined.
func (r *RAM) Declined() int64 { return r.declined.Load() }

// SetHook installs fn to run before every device read and write, after the
// alignment checks (nil removes it); tests use it to widen race windows or to
// observe concurrency.
func (r *RAM) SetHook(fn func(write bool, off int64)) {
	if fn == nil {
		r.hook.Store(nil)
		return
	}
	r.hook.Store(&fn)
}

// SetDoneHook installs fn to run after every device read and write has
// moved its data (nil removes it); tests use it to hold an operation between
// its device steps.
func (r *RAM) SetDoneHook(fn func(write bool, off int64)) {
	if fn == nil {
		r.done.Store(nil)
		return
	}
	r.done.Store(&fn)
}

func (r *RAM) runHook(write bool, off int64) {
	if fn := r.hook.Load(); fn != nil {
		(*fn)(write, off)
	}
}

func (r *RAM) runDone(write bool, off int64) {
	if fn := r.done.Load(); fn != nil {
		(*fn)(write, off)
	}
}

// NewRAM returns a zeroed device of size bytes with blockSize-byte blocks.
func NewRAM(size int64, blockSize int) *RAM {
	return &RAM{bs: blockSize, data: make([]byte, size)}
}

// Counts are operation counts since creation, and the largest read and write.
type Counts struct {
	Reads, Writes, Flushes, WriteZeroes, Deallocates, Misaligned int64
	MaxRead, MaxWrite                                            int64
}

// Counts returns the operation counts.
func (r *RAM) Counts() Counts {
	return Counts{r.reads.Load(), r.writes.Load(), r.flushes.Load(), r.zeroes.Load(), r.deallocs.Load(),
		r.misaligned.Load(), r.maxRead.Load(), r.maxWrite.Load()}
}

func storeMax(m *atomic.Int64, v int64) {
	for {
		cur := m.Load()
		if v <= cur || m.CompareAndSwap(cur, v) {
			return
		}
	}
}

// Size implements fusefs.BlockDevice.
func (r *RAM) Size() int64 { return int64(len(r.data)) }

// BlockSize implements fusefs.BlockDevice.
func (r *RAM) BlockSize() int { return r.bs }

func (r *RAM) check(off, n int64) error {
	if off < 0 || n < 0 || off%int64(r.bs) != 0 || n%int64(r.bs) != 0 || off+n > int64(len(r.data)) {
		r.misaligned.Add(1)
		return fmt.Errorf("ram: misaligned or out of range I/O off=%d len=%d: %w", off, n, syscall.EIO)
	}
	return nil
}

// ReadAt implements fusefs.BlockDevice.
func (r *RAM) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := r.check(off, int64(len(p))); err != nil {
		return err
	}
	r.runHook(false, off)
	r.reads.Add(1)
	storeMax(&r.maxRead, int64(len(p)))
	r.mu.RLock()
	copy(p, r.data[off:])
	r.mu.RUnlock()
	r.runDone(false, off)
	return nil
}

// WriteAt implements fusefs.BlockDevice.
func (r *RAM) WriteAt(ctx context.Context, p []byte, off int64) error {
	if err := r.check(off, int64(len(p))); err != nil {
		return err
	}
	r.runHook(true, off)
	r.writes.Add(1)
	storeMax(&r.maxWrite, int64(len(p)))
	r.mu.Lock()
	copy(r.data[off:], p)
	r.mu.Unlock()
	r.runDone(true, off)
	return nil
}

// Flush implements fusefs.BlockDevice.
func (r *RAM) Flush(ctx context.Context) error {
	r.flushes.Add(1)
	return nil
}

// WriteZeroes implements fusefs.BlockDevice.
func (r *RAM) WriteZeroes(ctx context.Context, off, length int64) error {
	if err := r.check(off, length); err != nil {
		return err
	}
	r.zeroes.Add(1)
	r.zero(off, length)
	return nil
}

// Deallocate implements fusefs.BlockDevice; deallocated blocks read as zeroes.
func (r *RAM) Deallocate(ctx context.Context, off, length int64) error {
	if err := r.check(off, length); err != nil {
		return err
	}
	r.deallocs.Add(1)
	r.zero(off, length)
	return nil
}

func (r *RAM) zero(off, length int64) {
	r.mu.Lock()
	clear(r.data[off : off+length])
	r.mu.Unlock()
}

// Snapshot returns a copy of the device content.
func (r *RAM) Snapshot() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]byte(nil), r.data...)
}
