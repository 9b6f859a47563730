package fusefs

import (
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// meta is what chmod, chown and utimes set on a namespace or attribute file:
// kept in memory for the life of the mount, as devtmpfs keeps it for a
// /dev/nvme* node and kernfs for a sysfs file.
type meta struct {
	set                 bool
	mode                uint32 // permission bits (07777)
	uid, gid            uint32
	atime, mtime, ctime time.Time
}

// metaTable holds the metadata set so far, by inode number.
type metaTable struct {
	mu sync.Mutex
	m  map[uint64]*meta
}

// apply overlays what was set on ino onto a (filled with the defaults).
func (t *metaTable) apply(ino uint64, a *fuse.Attr) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.m[ino]
	if m == nil {
		return
	}
	a.Mode = a.Mode&syscall.S_IFMT | m.mode
	a.Uid, a.Gid = m.uid, m.gid
	a.SetTimes(&m.atime, &m.mtime, &m.ctime)
}

// setattr records in's mode, owner and times on ino; a (the current
// attributes) becomes the result. The kernel has checked permissions
// (default_permissions).
func (t *metaTable) setattr(ino uint64, in *fuse.SetAttrIn, a *fuse.Attr) {
	mode, okMode := in.GetMode()
	uid, okUID := in.GetUID()
	gid, okGID := in.GetGID()
	at, okA := in.GetATime()
	mt, okM := in.GetMTime()
	if t == nil || (!okMode && !okUID && !okGID && !okA && !okM) {
		return
	}
	t.mu.Lock()
	if t.m == nil {
		t.m = map[uint64]*meta{}
	}
	m := t.m[ino]
	if m == nil {
		m = &meta{mode: a.Mode &^ syscall.S_IFMT, uid: a.Uid, gid: a.Gid}
		m.atime, m.mtime, m.ctime = a.AccessTime(), a.ModTime(), a.ChangeTime()
		t.m[ino] = m
	}
	if okMode {
		m.mode = mode & 0o7777
	}
	if okUID {
		m.uid = uid
	}
	if okGID {
		m.gid = gid
	}
	if okA {
		m.atime = at
	}
	if okM {
		m.mtime = mt
	}
	m.ctime = time.Now()
	t.mu.Unlock()
	t.apply(ino, a)
}

// truncation is what a size change on a namespace file is: FUSE sends
// open(O_TRUNC) as a size-0 SETATTR without a file handle, which truncate(2)
// to 0 also is; ftruncate(2) carries the handle.
func truncation(in *fuse.SetAttrIn) (isSize, fromOpen bool) {
	size, ok := in.GetSize()
	if !ok {
		return false, false
	}
	_, hasFh := in.GetFh()
	return true, !hasFh && size == 0
}

// setxattrErrno is what setxattr(2) gets: extended attributes are not
// stored. Like a device node, a namespace file refuses user.* with EPERM;
// like sysfs, an attribute file with EOPNOTSUPP; other namespaces
// (trusted., security.) EOPNOTSUPP on both.
func setxattrErrno(attr string, device bool) syscall.Errno {
	if device && strings.HasPrefix(attr, "user.") {
		return syscall.EPERM
	}
	return syscall.EOPNOTSUPP
}
