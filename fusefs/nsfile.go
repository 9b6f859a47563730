package fusefs

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hashicorp/go-hclog"
)

// nsAttrTimeout lets the kernel cache a namespace file's size briefly.
const nsAttrTimeout = time.Second

// nsNode is one namespace file. Requests run concurrently; the only locks are
// blockIO's per-block RMW stripe locks (taken by aligned writes only while an
// RMW of one of their blocks is in flight).
type nsNode struct {
	fs.Inode
	io      *blockIO
	log     hclog.Logger
	meta    *metaTable
	results sync.Pool // *readResult
}

// readResult hands go-fuse the bytes a read placed in go-fuse's own output
// buffer. fuse.ReadResultData would allocate one per read; these come from
// the node's pool and go back to it on Done, which go-fuse calls exactly
// once, after the reply took the bytes.
type readResult struct {
	data []byte
	home *sync.Pool
}

func (r *readResult) Size() int                          { return len(r.data) }
func (r *readResult) Bytes([]byte) ([]byte, fuse.Status) { return r.data, fuse.OK }
func (r *readResult) Done() {
	r.data = nil
	r.home.Put(r)
}

func (n *nsNode) result(data []byte) *readResult {
	r, _ := n.results.Get().(*readResult)
	if r == nil {
		r = &readResult{home: &n.results}
	}
	r.data = data
	return r
}

var _ = (fs.NodeOpener)((*nsNode)(nil))
var _ = (fs.NodeReader)((*nsNode)(nil))
var _ = (fs.NodeWriter)((*nsNode)(nil))
var _ = (fs.NodeFsyncer)((*nsNode)(nil))
var _ = (fs.NodeFlusher)((*nsNode)(nil))
var _ = (fs.NodeAllocater)((*nsNode)(nil))
var _ = (fs.NodeGetattrer)((*nsNode)(nil))
var _ = (fs.NodeSetattrer)((*nsNode)(nil))
var _ = (fs.NodeSetxattrer)((*nsNode)(nil))

func (n *nsNode) fill(a *fuse.Attr, ino uint64) {
	size := n.io.dev.Size()
	a.Ino = ino
	a.Mode = syscall.S_IFREG | 0o660
	a.Nlink = 1
	a.Size = uint64(size)
	a.Blocks = uint64(size) / 512
	a.Blksize = uint32(n.io.bs)
	n.meta.apply(ino, a)
}

// Open implements fs.NodeOpener. O_DIRECT opens bypass the page cache and let
// the kernel send parallel direct writes; buffered opens start with an empty
// cache (no FOPEN_KEEP_CACHE), since other hosts may write the namespace.
func (n *nsNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	h := &nsHandle{write: flags&syscall.O_ACCMODE != syscall.O_RDONLY}
	if flags&syscall.O_DIRECT != 0 {
		return h, fuse.FOPEN_DIRECT_IO | fuse.FOPEN_PARALLEL_DIRECT_WRITES, 0
	}
	return h, 0, 0
}

// Read implements fs.NodeReader; the data lands in go-fuse's request buffer.
func (n *nsNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	got, err := n.io.ReadAt(ctx, dest, off)
	if err != nil {
		n.log.Debug("read failed", "off", off, "len", len(dest), "error", err)
		return nil, ToErrno(err)
	}
	return n.result(dest[:got]), 0
}

// Write implements fs.NodeWriter.
func (n *nsNode) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	put, err := n.io.WriteAt(ctx, data, off)
	if err != nil {
		n.log.Debug("write failed", "off", off, "len", len(data), "error", err)
		return 0, ToErrno(err)
	}
	return uint32(put), 0
}

// Fsync implements fs.NodeFsyncer: fsync and fdatasync flush the device.
func (n *nsNode) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	return ToErrno(n.io.dev.Flush(ctx))
}

// Flush implements fs.NodeFlusher. close(2) does not flush a block device's
// cache, and writes are never held back here.
func (n *nsNode) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return 0 }

// Allocate implements fs.NodeAllocater (fallocate PUNCH_HOLE, ZERO_RANGE).
func (n *nsNode) Allocate(ctx context.Context, fh fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	return ToErrno(n.io.Allocate(ctx, int64(off), int64(size), mode))
}

// Getattr implements fs.NodeGetattrer.
func (n *nsNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fill(&out.Attr, n.StableAttr().Ino)
	out.SetTimeout(nsAttrTimeout)
	return 0
}

// Setattr implements fs.NodeSetattrer as for a block device node: open's
// O_TRUNC is ignored, truncate(2) and ftruncate(2) fail with EINVAL (but
// truncate(2) to 0 looks like O_TRUNC to FUSE and is ignored too); chmod,
// chown and utimes are kept (see meta).
func (n *nsNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	ino := n.StableAttr().Ino
	size, fromOpen := truncation(in)
	if size && !fromOpen {
		return syscall.EINVAL
	}
	n.fill(&out.Attr, ino)
	if !fromOpen {
		n.meta.setattr(ino, in, &out.Attr)
	}
	out.SetTimeout(nsAttrTimeout)
	return 0
}

// Setxattr implements fs.NodeSetxattrer: not stored (see setxattrErrno).
func (n *nsNode) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return setxattrErrno(attr, true)
}
