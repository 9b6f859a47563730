package fusefs

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hashicorp/go-hclog"
	"github.com/mpathfs/mpathfs/sysfsview"
)

// nsInoBase starts the inode numbers of namespace files, far above the
// attribute tree's.
const nsInoBase = 1 << 48

// Root is the mount's top directory: one file per namespace (added and removed
// at runtime) next to the attribute tree's "sys", "disk" and "dev". Lookups and listings are
// answered live with zero entry timeouts, so additions and removals are
// visible at once.
type Root struct {
	fs.Inode

	tree *sysfsview.Tree
	log  hclog.Logger

	mu      sync.RWMutex
	ns      map[string]*nsEntry
	nextIno uint64

	meta metaTable // chmod, chown, utimes of namespace and attribute files
}

type nsEntry struct {
	ino uint64
	io  *blockIO
}

var _ = (fs.NodeLookuper)((*Root)(nil))
var _ = (fs.NodeReaddirer)((*Root)(nil))
var _ = (fs.NodeGetattrer)((*Root)(nil))

// NewRoot returns a root serving tree (nil: no "sys") and no namespaces yet.
// I/O errors are logged to log at debug level (nil: discarded).
func NewRoot(tree *sysfsview.Tree, log hclog.Logger) *Root {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Root{tree: tree, log: log, ns: map[string]*nsEntry{}, nextIno: nsInoBase}
}

// AddNamespace adds the file name (e.g. "nvme0n1") backed by dev.
func (r *Root) AddNamespace(name string, dev BlockDevice) error {
	if name == "" || name == "." || name == ".." || (r.tree != nil && r.tree.Root().Lookup(name) != nil) {
		return fmt.Errorf("namespace file %q: %w", name, syscall.EINVAL)
	}
	for _, c := range name {
		if c == '/' || c == 0 {
			return fmt.Errorf("namespace file %q: %w", name, syscall.EINVAL)
		}
	}
	io, err := newBlockIO(dev)
	if err != nil {
		return fmt.Errorf("namespace file %s: %w", name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ns[name]; ok {
		return fmt.Errorf("namespace file %s: %w", name, syscall.EEXIST)
	}
	r.nextIno++
	r.ns[name] = &nsEntry{ino: r.nextIno, io: io}
	return nil
}

// RemoveNamespace removes the file name. Descriptors already open keep
// reaching the device, which decides what they get.
func (r *Root) RemoveNamespace(name string) error {
	r.mu.Lock()
	_, ok := r.ns[name]
	delete(r.ns, name)
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("namespace file %s: %w", name, syscall.ENOENT)
	}
	return nil // entries have a zero timeout: the next lookup fails
}

// blockIOByIno returns the namespace file with inode number ino, or nil.
func (r *Root) blockIOByIno(ino uint64) *blockIO {
	if ino <= nsInoBase {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, e := range r.ns {
		if e.ino == ino {
			return e.io
		}
	}
	return nil
}

// Getattr implements fs.NodeGetattrer.
func (r *Root) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o755
	return 0
}

// Lookup implements fs.NodeLookuper.
func (r *Root) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	r.mu.RLock()
	e := r.ns[name]
	r.mu.RUnlock()
	if e != nil {
		n := &nsNode{io: e.io, log: r.log, meta: &r.meta}
		n.fill(&out.Attr, e.ino)
		out.SetEntryTimeout(0)
		out.SetAttrTimeout(nsAttrTimeout)
		return r.NewInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFREG, Ino: e.ino}), 0
	}
	if r.tree == nil {
		return nil, syscall.ENOENT
	}
	return newChild(ctx, &r.Inode, r.tree.Root().Lookup(name), out, &r.meta)
}

// Readdir implements fs.NodeReaddirer.
func (r *Root) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	var list []fuse.DirEntry
	r.mu.RLock()
	for name, e := range r.ns {
		list = append(list, fuse.DirEntry{Name: name, Ino: e.ino, Mode: syscall.S_IFREG})
	}
	r.mu.RUnlock()
	if r.tree != nil {
		list = append(list, dirEntries(r.tree.Root())...)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return fs.NewListDirStream(list), 0
}
