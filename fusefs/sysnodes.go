package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/mpathfs/mpathfs/sysfsview"
)

// sysfs reports every attribute file as 4096 bytes long.
const attrFileSize = 4096

// newChild makes (or finds, by inode number) the inode serving n under parent
// and fills out. Nothing is cached by the kernel: entries and attributes time
// out at once, so Add/Remove in the tree are seen by the next lookup.
func newChild(ctx context.Context, parent *fs.Inode, n sysfsview.Node, out *fuse.EntryOut, mt *metaTable) (*fs.Inode, syscall.Errno) {
	var ops fs.InodeEmbedder
	var mode uint32
	switch n := n.(type) {
	case *sysfsview.Dir:
		ops, mode = &dirNode{dir: n, meta: mt}, syscall.S_IFDIR
		fillDir(&out.Attr)
	case *sysfsview.Attr:
		ops, mode = &attrNode{attr: n, meta: mt}, syscall.S_IFREG
		fillAttr(&out.Attr, n)
		mt.apply(n.Ino(), &out.Attr)
	case *sysfsview.Symlink:
		ops, mode = &linkNode{link: n}, syscall.S_IFLNK
		fillLink(&out.Attr, n)
	case *sysfsview.Device:
		ops, mode = &devNode{dev: n}, syscall.S_IFREG
		fillDev(&out.Attr, n)
	default:
		return nil, syscall.ENOENT
	}
	out.Attr.Ino = n.Ino()
	out.SetEntryTimeout(0)
	out.SetAttrTimeout(0)
	return parent.NewInode(ctx, ops, fs.StableAttr{Mode: mode, Ino: n.Ino()}), 0
}

func dirEntries(d *sysfsview.Dir) []fuse.DirEntry {
	list := d.List()
	out := make([]fuse.DirEntry, 0, len(list))
	for _, e := range list {
		var mode uint32
		switch e.Node.(type) {
		case *sysfsview.Dir:
			mode = syscall.S_IFDIR
		case *sysfsview.Attr:
			mode = syscall.S_IFREG
		case *sysfsview.Symlink:
			mode = syscall.S_IFLNK
		case *sysfsview.Device:
			mode = syscall.S_IFREG
		}
		out = append(out, fuse.DirEntry{Name: e.Name, Ino: e.Node.Ino(), Mode: mode})
	}
	return out
}

func fillDir(a *fuse.Attr) {
	a.Mode = syscall.S_IFDIR | 0o755
	a.Nlink = 2
}

func fillAttr(a *fuse.Attr, at *sysfsview.Attr) {
	a.Mode = syscall.S_IFREG | at.Mode&0o777
	a.Size = attrFileSize
	a.Nlink = 1
}

func fillLink(a *fuse.Attr, l *sysfsview.Symlink) {
	a.Mode = syscall.S_IFLNK | 0o777
	a.Size = uint64(len(l.Target))
	a.Nlink = 1
}

// dirNode serves a sysfsview.Dir, looked up and listed live.
type dirNode struct {
	fs.Inode
	dir  *sysfsview.Dir
	meta *metaTable
}

var _ = (fs.NodeLookuper)((*dirNode)(nil))
var _ = (fs.NodeReaddirer)((*dirNode)(nil))
var _ = (fs.NodeGetattrer)((*dirNode)(nil))

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return newChild(ctx, &d.Inode, d.dir.Lookup(name), out, d.meta)
}

func (d *dirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return fs.NewListDirStream(dirEntries(d.dir)), 0
}

func (d *dirNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillDir(&out.Attr)
	return 0
}

// linkNode serves a sysfsview.Symlink.
type linkNode struct {
	fs.Inode
	link *sysfsview.Symlink
}

var _ = (fs.NodeReadlinker)((*linkNode)(nil))
var _ = (fs.NodeGetattrer)((*linkNode)(nil))

func (l *linkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	return []byte(l.link.Target), 0
}

func (l *linkNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillLink(&out.Attr, l.link)
	return 0
}

// attrNode serves a sysfsview.Attr. Each open takes a snapshot of Show, so a
// reader sees one consistent value however it splits its reads; the handle
// is FOPEN_DIRECT_IO so the page cache never serves a stale value. Each
// write(2) is one Store, as in sysfs.
type attrNode struct {
	fs.Inode
	attr *sysfsview.Attr
	meta *metaTable
}

type attrHandle struct{ snapshot []byte }

var _ = (fs.NodeOpener)((*attrNode)(nil))
var _ = (fs.NodeReader)((*attrNode)(nil))
var _ = (fs.NodeWriter)((*attrNode)(nil))
var _ = (fs.NodeGetattrer)((*attrNode)(nil))
var _ = (fs.NodeSetattrer)((*attrNode)(nil))
var _ = (fs.NodeSetxattrer)((*attrNode)(nil))

func (a *attrNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	acc := flags & syscall.O_ACCMODE
	reads := acc == syscall.O_RDONLY || acc == syscall.O_RDWR
	writes := acc == syscall.O_WRONLY || acc == syscall.O_RDWR
	if (reads && a.attr.Show == nil && a.attr.Read == nil) || (writes && a.attr.Store == nil) {
		return nil, 0, syscall.EACCES // as kernfs_fop_open
	}
	h := &attrHandle{}
	switch {
	case reads && a.attr.Read != nil:
		b, err := a.attr.Read(ctx)
		if err != nil {
			return nil, 0, ToErrno(err)
		}
		h.snapshot = b
	case reads:
		h.snapshot = []byte(a.attr.Show())
	}
	return h, fuse.FOPEN_DIRECT_IO, 0
}

func (a *attrNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*attrHandle)
	if !ok {
		return nil, syscall.EBADF
	}
	if off >= int64(len(h.snapshot)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(int64(len(h.snapshot)), off+int64(len(dest)))
	return fuse.ReadResultData(h.snapshot[off:end]), 0
}

// maxAttrWrite is sysfs's limit on one write to an attribute: kernfs cuts a
// longer write to PAGE_SIZE and returns that short count.
const maxAttrWrite = 4096

func (a *attrNode) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if a.attr.Store == nil {
		return 0, syscall.EACCES
	}
	if len(data) > maxAttrWrite {
		data = data[:maxAttrWrite]
	}
	if err := a.attr.Store(string(data)); err != nil {
		return 0, ToErrno(err)
	}
	return uint32(len(data)), 0
}

func (a *attrNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, a.attr)
	a.meta.apply(a.attr.Ino(), &out.Attr)
	return 0
}

// Setattr does what sysfs does: truncation is accepted and ignored (shell
// ">" opens with O_TRUNC), chmod, chown and utimes are kept.
func (a *attrNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, a.attr)
	a.meta.apply(a.attr.Ino(), &out.Attr)
	a.meta.setattr(a.attr.Ino(), in, &out.Attr)
	return 0
}

// Setxattr implements fs.NodeSetxattrer: not stored (see setxattrErrno).
func (a *attrNode) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return setxattrErrno(attr, false)
}
