package target

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mpathfs/mpathfs/internal/hugemem"
)

// ramChunkShift sets the size of the regions of a RAM namespace that have
// their own lock: 256 KiB.
const ramChunkShift = 18

// ramStore is a namespace kept in memory.
//
// Locking: the data slice is divided into 256 KiB chunks, each with its own
// sync.RWMutex. A read takes the read locks of the chunks it covers, a write
// the write locks, always in ascending chunk order, so two commands never
// deadlock and overlapping commands from any number of connections are
// serialized per chunk (the race detector sees every access ordered).
// Reads send C2HData straight from data while holding the read locks, so no
// copy is made; an in-capsule write without a data digest is received
// straight into data under the write locks (conn.receiveIntoRAM), any other
// write copies the received data (in a pooled buffer) in.
// The slice comes from make, i.e. zeroed anonymous memory the kernel commits
// only when touched, so a large RAM namespace costs what is written, in
// 2 MiB steps: it is advised for transparent huge pages (hugemem.Advise),
// which makes the copies of large I/O into and out of it cheaper.
type ramStore struct {
	data  []byte
	locks []sync.RWMutex
}

func newRAMStore(size int64) (*ramStore, error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, fmt.Errorf("ram namespace: bad size %d", size)
	}
	n := (size + 1<<ramChunkShift - 1) >> ramChunkShift
	data := make([]byte, size)
	hugemem.Advise(data)
	return &ramStore{data: data, locks: make([]sync.RWMutex, n)}, nil
}

func (s *ramStore) chunks(off, n int64) (first, last int64) {
	return off >> ramChunkShift, (off + n - 1) >> ramChunkShift
}

// rlock read-locks [off, off+n) and returns the slice; runlock undoes it.
func (s *ramStore) rlock(off, n int64) []byte {
	f, l := s.chunks(off, n)
	for i := f; i <= l; i++ {
		s.locks[i].RLock()
	}
	return s.data[off : off+n]
}

func (s *ramStore) runlock(off, n int64) {
	f, l := s.chunks(off, n)
	for i := f; i <= l; i++ {
		s.locks[i].RUnlock()
	}
}

func (s *ramStore) lock(off, n int64) []byte {
	f, l := s.chunks(off, n)
	for i := f; i <= l; i++ {
		s.locks[i].Lock()
	}
	return s.data[off : off+n]
}

func (s *ramStore) unlock(off, n int64) {
	f, l := s.chunks(off, n)
	for i := f; i <= l; i++ {
		s.locks[i].Unlock()
	}
}

func (s *ramStore) writeAt(p []byte, off int64) {
	copy(s.lock(off, int64(len(p))), p)
	s.unlock(off, int64(len(p)))
}

// readAt copies out (used by tests and reservation-free paths that need a
// private copy).
func (s *ramStore) readAt(p []byte, off int64) {
	copy(p, s.rlock(off, int64(len(p))))
	s.runlock(off, int64(len(p)))
}

func (s *ramStore) zero(off, n int64) {
	clear(s.lock(off, n))
	s.unlock(off, n)
}

// fileStore is a namespace backed by a regular file (created sparse if
// missing). The kernel orders concurrent pread/pwrite, so no lock is held
// here; data goes through pooled buffers.
type fileStore struct {
	f    *os.File
	size int64

	zerosOnce sync.Once
	zeros     []byte // read-only once made
}

// openFileStore opens path, creating a sparse file of size bytes if it does
// not exist. An existing file keeps its size (size, if given, must not be
// larger). It returns the size in use.
func openFileStore(path string, size int64) (*fileStore, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if size <= 0 {
			return nil, fmt.Errorf("file namespace %s does not exist and no size given to create it", path)
		}
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create file namespace: %w", err)
		}
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("size file namespace %s: %w", path, err)
		}
		return &fileStore{f: f, size: size}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open file namespace: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat file namespace: %w", err)
	}
	fsize := st.Size()
	if !st.Mode().IsRegular() {
		// A block device: its size is where Seek(End) lands.
		if fsize, err = f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, fmt.Errorf("size of %s: %w", path, err)
		}
	}
	if size > 0 && size != fsize {
		if size > fsize && st.Mode().IsRegular() {
			if err := f.Truncate(size); err != nil {
				f.Close()
				return nil, fmt.Errorf("grow file namespace %s: %w", path, err)
			}
			fsize = size
		} else if size > fsize {
			f.Close()
			return nil, fmt.Errorf("file namespace %s: %d bytes, %d requested", path, fsize, size)
		} else {
			fsize = size
		}
	}
	if fsize <= 0 {
		f.Close()
		return nil, fmt.Errorf("file namespace %s is empty", path)
	}
	return &fileStore{f: f, size: fsize}, nil
}

func (s *fileStore) readAt(p []byte, off int64) error {
	_, err := s.f.ReadAt(p, off)
	if err == io.EOF {
		err = nil // a short sparse tail reads as zeroes
	}
	return err
}

func (s *fileStore) writeAt(p []byte, off int64) error {
	_, err := s.f.WriteAt(p, off)
	return err
}

// punch deallocates [off, off+n): a hole reads back as zeroes.
func (s *fileStore) punch(off, n int64) error {
	err := unix.Fallocate(int(s.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == nil {
		return nil
	}
	return s.writeZeroes(off, n)
}

// zero makes [off, off+n) read as zeroes, keeping it allocated if possible.
func (s *fileStore) zero(off, n int64) error {
	if unix.Fallocate(int(s.f.Fd()), unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n) == nil {
		return nil
	}
	return s.punch(off, n)
}

func (s *fileStore) writeZeroes(off, n int64) error {
	s.zerosOnce.Do(func() { s.zeros = make([]byte, 64<<10) })
	b := s.zeros
	for n > 0 {
		k := min(n, int64(len(b)))
		if _, err := s.f.WriteAt(b[:k], off); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}

func (s *fileStore) sync() error { return s.f.Sync() }

func (s *fileStore) close() error { return s.f.Close() }

// Buffer pool: power-of-two size classes from 4 KiB to 16 MiB. Received
// write data and file reads go through these, so the steady-state I/O path
// allocates nothing. Larger requests are allocated (and dropped) directly.
const (
	minBufShift = 12
	maxBufShift = 24
)

// bufPools is one sync.Pool per size class; the Target owns one.
type bufPools [maxBufShift - minBufShift + 1]sync.Pool

func bufClass(n int) int {
	c := 0
	for (1 << (minBufShift + c)) < n {
		c++
	}
	return c
}

// getBuf returns a buffer of at least n bytes, sliced to n.
func (pools *bufPools) get(n int) *[]byte {
	c := bufClass(n)
	if c >= len(pools) {
		b := make([]byte, n)
		return &b
	}
	if v := pools[c].Get(); v != nil {
		bp := v.(*[]byte)
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n, 1<<(minBufShift+c))
	return &b
}

func (pools *bufPools) put(bp *[]byte) {
	if bp == nil {
		return
	}
	c := cap(*bp)
	for i := range pools {
		if c == 1<<(minBufShift+i) {
			pools[i].Put(bp)
			return
		}
	}
}
