package fusefs

import (
	"context"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mpathfs/mpathfs/sysfsview"
)

func fillDev(a *fuse.Attr, d *sysfsview.Device) {
	a.Mode = syscall.S_IFREG | d.Mode&0o777
	a.Nlink = 1
}

// devNode serves a sysfsview.Device: each open gets its own session and
// each write(2) is one session Write. Reads follow the descriptor's own
// cursor, not the file offset: the kernel's FUSE client advances the offset
// by every write, while a misc device's write leaves it alone, so libnvme
// reads the answer "at 0" right after writing the options. The first read
// (after open or a write) takes the session's Show; later reads continue
// that snapshot until it is used up. Handles are FOPEN_DIRECT_IO, so
// nothing is cached.
type devNode struct {
	fs.Inode
	dev *sysfsview.Device
}

type devHandle struct {
	mu   sync.Mutex
	sess sysfsview.DeviceSession
	buf  []byte // nil: no snapshot yet
	pos  int    // read cursor in buf
}

var _ = (fs.NodeOpener)((*devNode)(nil))
var _ = (fs.NodeReader)((*devNode)(nil))
var _ = (fs.NodeWriter)((*devNode)(nil))
var _ = (fs.NodeGetattrer)((*devNode)(nil))
var _ = (fs.NodeSetattrer)((*devNode)(nil))

func (d *devNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return &devHandle{sess: d.dev.Open()}, fuse.FOPEN_DIRECT_IO, 0
}

func (d *devNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*devHandle)
	if !ok {
		return nil, syscall.EBADF
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.buf == nil {
		s, err := h.sess.Show()
		if err != nil {
			return nil, ToErrno(err)
		}
		h.buf, h.pos = []byte(s), 0
	}
	n := copy(dest, h.buf[h.pos:])
	h.pos += n
	return fuse.ReadResultData(dest[:n]), 0
}

func (d *devNode) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	h, ok := fh.(*devHandle)
	if !ok {
		return 0, syscall.EBADF
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.sess.Write(data); err != nil {
		return 0, ToErrno(err)
	}
	h.buf = nil // the next read shows the new state
	return uint32(len(data)), 0
}

func (d *devNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillDev(&out.Attr, d.dev)
	return 0
}

// Setattr accepts and ignores truncation (shell ">" opens with O_TRUNC).
func (d *devNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	fillDev(&out.Attr, d.dev)
	return 0
}
