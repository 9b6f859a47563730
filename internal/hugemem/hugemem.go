// Package hugemem provides memory that the kernel is asked to back with
// transparent huge pages (MADV_HUGEPAGE), for the large buffers of the
// data path.
//
// Copying a large I/O costs a page walk per 4 KiB page on each side: the
// FUSE device pins the daemon's buffer one page at a time (get_user_pages)
// while it copies a request in or a reply out, and the socket copies walk
// the same pages again. On a 2 MiB huge page each walk is one level
// shorter and the copies miss the TLB less. Where the kernel has
// transparent huge pages off ("never"), or cannot find a free huge page,
// the memory is ordinary 4 KiB pages and everything works the same.
package hugemem

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PageSize is the size of a transparent huge page (x86-64 and arm64 with
// 4 KiB base pages).
const PageSize = 2 << 20

// Buf returns a buffer of n bytes at the start of an anonymous mapping of
// its own that is aligned to PageSize, sized in whole huge pages and
// advised MADV_HUGEPAGE. The mapping is unmapped once the returned pointer
// is unreachable, so the caller keeps the pointer for as long as it, or
// anything it handed the memory to, uses the bytes. If the mapping cannot
// be made, Buf falls back to the Go heap.
func Buf(n int) *[]byte {
	if n <= 0 {
		b := make([]byte, n)
		return &b
	}
	size := uintptr(n+PageSize-1) &^ (PageSize - 1)
	base, err := mapAligned(size)
	if err != nil {
		b := make([]byte, n)
		return &b
	}
	m := unsafe.Slice((*byte)(base), size)
	_ = unix.Madvise(m, unix.MADV_HUGEPAGE)
	b := m[:n:n]
	p := &b
	runtime.AddCleanup(p, func(base unsafe.Pointer) { _ = unix.MunmapPtr(base, size) }, base)
	return p
}

// mapAligned maps size bytes (a multiple of PageSize) of anonymous memory
// aligned to PageSize: it maps a huge page more than needed and unmaps the
// unaligned ends. (The raw calls: x/sys's Mmap and Munmap track whole
// mappings and refuse to unmap a part of one.)
func mapAligned(size uintptr) (unsafe.Pointer, error) {
	p, err := unix.MmapPtr(-1, 0, nil, size+PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	a := uintptr(p)
	start := (a + PageSize - 1) &^ (PageSize - 1)
	if head := start - a; head > 0 {
		_ = unix.MunmapPtr(p, head)
	}
	if tail := PageSize - (start - a); tail > 0 {
		_ = unix.MunmapPtr(unsafe.Add(p, start+size-a), tail)
	}
	return unsafe.Add(p, start-a), nil
}

// Advise asks the kernel to back the whole huge pages inside b with
// transparent huge pages; the partial pages at its ends stay as they are.
// It is for long-lived memory that the caller does not map itself (a RAM
// namespace from make). Errors are ignored: the advice is a hint.
func Advise(b []byte) {
	if len(b) < PageSize {
		return
	}
	start := (addr(b) + PageSize - 1) &^ (PageSize - 1)
	end := (addr(b) + uintptr(len(b))) &^ (PageSize - 1)
	if end <= start {
		return
	}
	lo := int(start - addr(b))
	_ = unix.Madvise(b[lo:lo+int(end-start)], unix.MADV_HUGEPAGE)
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
