package controlfs

import (
	"context"
	"fmt"
	"path"
	"slices"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mpathfs/mpathfs/nvme/auth"
	"github.com/mpathfs/mpathfs/nvme/target"
)

// ---- hosts ----

// hostsDir is nvmet's hosts/: one directory per host NQN (mkdir creates
// the entry, rmdir removes it) with the DH-HMAC-CHAP attributes.
type hostsDir struct {
	fs.Inode
	r *root
}

var (
	_ = (fs.NodeReaddirer)((*hostsDir)(nil))
	_ = (fs.NodeLookuper)((*hostsDir)(nil))
	_ = (fs.NodeMkdirer)((*hostsDir)(nil))
	_ = (fs.NodeRmdirer)((*hostsDir)(nil))
)

func (d *hostsDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return dirEntries(d.r.t.Hosts(), syscall.S_IFDIR), 0
}

func (d *hostsDir) node(ctx context.Context, nqn string) *fs.Inode {
	return d.NewInode(ctx, &hostDir{r: d.r, nqn: nqn}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino("hosts/" + nqn)})
}

func (d *hostsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !slices.Contains(d.r.t.Hosts(), name) {
		return nil, syscall.ENOENT
	}
	return d.node(ctx, name), 0
}

func (d *hostsDir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if slices.Contains(d.r.t.Hosts(), name) {
		return nil, syscall.EEXIST
	}
	d.r.log.Info("control: new host", "hostnqn", name)
	d.r.t.SetHostAuth(name, target.HostAuth{})
	return d.node(ctx, name), 0
}

func (d *hostsDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if !slices.Contains(d.r.t.Hosts(), name) {
		return syscall.ENOENT
	}
	d.r.log.Info("control: remove host", "hostnqn", name)
	d.r.t.RemoveHost(name)
	return 0
}

// hostDir is hosts/<nqn>: dhchap_key and dhchap_ctrl_key (0600: DHHC-1
// secrets, empty for none), dhchap_hash and dhchap_dhgroup.
type hostDir struct {
	fs.Inode
	r   *root
	nqn string
}

var _ = (fs.NodeOnAdder)((*hostDir)(nil))

func (d *hostDir) OnAdd(ctx context.Context) {
	t, nqn := d.r.t, d.nqn
	update := func(f func(a *target.HostAuth) error) func(string) error {
		return func(v string) error {
			d.r.hmu.Lock()
			defer d.r.hmu.Unlock()
			a := t.HostAuth(nqn)
			if err := f(&a); err != nil {
				return err
			}
			t.SetHostAuth(nqn, a)
			d.r.log.Info("control: host DH-HMAC-CHAP changed", "hostnqn", nqn)
			return nil
		}
	}
	keyAttr := func(get func(a target.HostAuth) *auth.Key, set func(a *target.HostAuth, k *auth.Key)) *attrFile {
		return &attrFile{secret: true,
			show: func() string {
				if k := get(t.HostAuth(nqn)); k != nil {
					return k.Text()
				}
				return ""
			},
			store: func(v string) error {
				return update(func(a *target.HostAuth) error {
					if v == "" {
						set(a, nil)
						return nil
					}
					k, err := auth.ParseKey(v)
					if err != nil {
						return err
					}
					set(a, k)
					return nil
				})(v)
			}}
	}
	files := map[string]*attrFile{
		"dhchap_key": keyAttr(func(a target.HostAuth) *auth.Key { return a.Key }, func(a *target.HostAuth, k *auth.Key) { a.Key = k }),
		"dhchap_ctrl_key": keyAttr(func(a target.HostAuth) *auth.Key { return a.CtrlKey },
			func(a *target.HostAuth, k *auth.Key) { a.CtrlKey = k }),
		"dhchap_hash": {show: func() string { return t.HostAuth(nqn).Hash.String() },
			store: func(v string) error {
				return update(func(a *target.HostAuth) (err error) { a.Hash, err = auth.ParseHash(v); return err })(v)
			}},
		"dhchap_dhgroup": {show: func() string { return t.HostAuth(nqn).Group.String() },
			store: func(v string) error {
				return update(func(a *target.HostAuth) (err error) { a.Group, err = auth.ParseDHGroup(v); return err })(v)
			}},
	}
	for n, f := range files {
		d.AddChild(n, d.NewPersistentInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG, Ino: ino("hosts/" + nqn + "/" + n)}), false)
	}
}

// allowedHostsDir is subsystems/<nqn>/allowed_hosts: links to hosts/<nqn>;
// ln -s adds a host (it must exist under hosts/), rm removes it.
type allowedHostsDir struct {
	fs.Inode
	r *root
	s *target.Subsystem
}

var (
	_ = (fs.NodeReaddirer)((*allowedHostsDir)(nil))
	_ = (fs.NodeLookuper)((*allowedHostsDir)(nil))
	_ = (fs.NodeUnlinker)((*allowedHostsDir)(nil))
	_ = (fs.NodeSymlinker)((*allowedHostsDir)(nil))
)

func (d *allowedHostsDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return dirEntries(d.s.AllowedHosts(), syscall.S_IFLNK), 0
}

func (d *allowedHostsDir) link(ctx context.Context, nqn string) *fs.Inode {
	l := &fs.MemSymlink{Data: []byte("../../../hosts/" + nqn)}
	return d.NewInode(ctx, l, fs.StableAttr{Mode: syscall.S_IFLNK, Ino: ino(fmt.Sprintf("subsystems/%s/allowed_hosts/%s", d.s.NQN(), nqn))})
}

func (d *allowedHostsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !slices.Contains(d.s.AllowedHosts(), name) {
		return nil, syscall.ENOENT
	}
	return d.link(ctx, name), 0
}

func (d *allowedHostsDir) Unlink(ctx context.Context, name string) syscall.Errno {
	if !slices.Contains(d.s.AllowedHosts(), name) {
		return syscall.ENOENT
	}
	d.r.log.Info("control: disallow host", "nqn", d.s.NQN(), "hostnqn", name)
	d.s.DisallowHost(name)
	return 0
}

func (d *allowedHostsDir) Symlink(ctx context.Context, tgt, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if path.Base(tgt) != name {
		return nil, syscall.EINVAL
	}
	if !slices.Contains(d.r.t.Hosts(), name) {
		return nil, syscall.ENOENT
	}
	if slices.Contains(d.s.AllowedHosts(), name) {
		return nil, syscall.EEXIST
	}
	d.r.log.Info("control: allow host", "nqn", d.s.NQN(), "hostnqn", name)
	d.s.AllowHost(name)
	return d.link(ctx, name), 0
}
