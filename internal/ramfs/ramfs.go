// Package ramfs is the FUSE ceiling baseline: a minimal go-fuse filesystem
// holding one RAM-backed regular file of fixed size, mounted with the same
// knobs as mpathfs (fusefs.Options). Comparing fio on it with fio on a
// namespace file separates FUSE's cost from mpathfs's.
package ramfs

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/mpathfs/mpathfs/fusefs"
)

// FileName is the name of the RAM file at the mount root.
const FileName = "ram"

// Mount serves a root holding FileName, size bytes of zeroes, at mountpoint.
func Mount(mountpoint string, size int64, opts fusefs.Options) (*fuse.Server, error) {
	if size <= 0 {
		return nil, fmt.Errorf("ramfs: size %d: %w", size, syscall.EINVAL)
	}
	return fusefs.NewServer(mountpoint, &root{file: &file{data: make([]byte, size)}}, opts)
}

type root struct {
	fs.Inode
	file *file
}

var _ = (fs.NodeOnAdder)((*root)(nil))

func (r *root) OnAdd(ctx context.Context) {
	r.AddChild(FileName, r.NewPersistentInode(ctx, r.file, fs.StableAttr{Mode: syscall.S_IFREG, Ino: 2}), false)
}

// file is a fixed-size RAM file: reads and writes at any offset, short read at
// the end, ENOSPC past it, O_DIRECT via FOPEN_DIRECT_IO with parallel writes.
type file struct {
	fs.Inode
	mu   sync.RWMutex
	data []byte
}

var _ = (fs.NodeOpener)((*file)(nil))
var _ = (fs.NodeReader)((*file)(nil))
var _ = (fs.NodeWriter)((*file)(nil))
var _ = (fs.NodeGetattrer)((*file)(nil))
var _ = (fs.NodeSetattrer)((*file)(nil))
var _ = (fs.NodeFsyncer)((*file)(nil))

func (f *file) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_DIRECT != 0 {
		return nil, fuse.FOPEN_DIRECT_IO | fuse.FOPEN_PARALLEL_DIRECT_WRITES, 0
	}
	return nil, 0, 0
}

func (f *file) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if off >= int64(len(f.data)) {
		return fuse.ReadResultData(nil), 0
	}
	n := copy(dest, f.data[off:])
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *file) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off >= int64(len(f.data)) {
		return 0, syscall.ENOSPC
	}
	return uint32(copy(f.data[off:], data)), 0
}

func (f *file) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o600
	out.Size = uint64(len(f.data))
	out.Blksize = 4096
	out.Blocks = uint64(len(f.data)) / 512
	out.SetTimeout(time.Hour) // fixed size: let the kernel cache it
	return 0
}

// Setattr ignores size changes: the file is fixed-size, like a device.
func (f *file) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return f.Getattr(ctx, fh, out)
}

func (f *file) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno { return 0 }
