// Package controlfs serves a control tree for a running nvme/target shaped
// like the Linux kernel's nvmet configfs (/sys/kernel/config/nvmet), so the
// scripts that drive a kernel target drive ours (`mpathfs target --control
// DIR`):
//
//	ports/N/addr_traddr, addr_trsvcid, addr_trtype, addr_adrfam   (read-only)
//	ports/N/ana_groups/G/ana_state     read/write: optimized, non-optimized,
//	                                   inaccessible, persistent-loss, change
//	                                   (mkdir G creates a group, optimized)
//	ports/N/subsystems/<nqn>           symlink to ../../../subsystems/<nqn>;
//	                                   rm = unlink the subsystem from the port and
//	                                   drop its controllers there; ln -s = link
//	ports/N/fault/drop                 write 1: close every connection (TCP)
//	ports/N/fault/stall                read/write 0|1: keep TCP open, answer nothing
//	ports/N/fault/fail_next            write "COUNT [STATUS]" (STATUS like 0x302,
//	                                   default 0x300): fail the next COUNT I/Os
//	ports/N/fault/lose_next            read/write COUNT: the next COUNT I/Os
//	                                   completing without data run, then their
//	                                   connection closes instead of completing
//	ports/N/fault/short_read           read/write COUNT: the next COUNT reads
//	                                   send half their data, then success (a lie)
//	ports/N/fault/listen               read/write 0|1: stop/start listening
//	subsystems/<nqn>/attr_model, attr_serial, attr_firmware (read-only)
//	subsystems/<nqn>/attr_allow_any_host  read/write 0|1
//	subsystems/<nqn>/allowed_hosts/<hostnqn>  symlink to ../../../hosts/<hostnqn>;
//	                                   ln -s allows the host, rm disallows it
//	hosts/<hostnqn>/                   mkdir creates the host entry, rmdir removes it
//	hosts/<hostnqn>/dhchap_key, dhchap_ctrl_key   (0600) DHHC-1 secrets, empty: none
//	hosts/<hostnqn>/dhchap_hash        hmac(sha256) (default), hmac(sha384), hmac(sha512)
//	hosts/<hostnqn>/dhchap_dhgroup     null (default), ffdhe2048 ... ffdhe8192
//	subsystems/<nqn>/namespaces/<nsid>/device_path, device_size (write: resize,
//	                                   AEN), device_uuid, device_nguid (write:
//	                                   another namespace behind the NSID, AEN),
//	                                   enable (rw), ana_grpid (rw)
//
// Values read with a trailing newline; writes take the first line. A bad
// write fails with EINVAL and changes nothing.
package controlfs

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/target"
)

// Mount serves the control tree of t at dir until the returned server is
// unmounted (server.Unmount) or the process ends.
func Mount(dir string, t *target.Target, log hclog.Logger) (*fuse.Server, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	zero := time.Duration(0)
	opts := &fs.Options{
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			FsName: "mpathfs-nvmet",
			Name:   "mpathfs",
		},
	}
	srv, err := fs.Mount(dir, NewRoot(t, log), opts)
	if err != nil {
		return nil, fmt.Errorf("controlfs: mount %s: %w", dir, err)
	}
	return srv, nil
}

// NewRoot returns the root node of the control tree (for fs.Mount or
// fs.NewNodeFS).
func NewRoot(t *target.Target, log hclog.Logger) fs.InodeEmbedder {
	return &root{t: t, log: log}
}

type root struct {
	fs.Inode
	hmu sync.Mutex // serializes read-modify-write of a host's DH-HMAC-CHAP setting
	t   *target.Target
	log hclog.Logger
}

var _ = (fs.NodeOnAdder)((*root)(nil))

func (r *root) OnAdd(ctx context.Context) {
	r.AddChild("ports", r.NewPersistentInode(ctx, &portsDir{r: r}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino("ports")}), false)
	r.AddChild("subsystems", r.NewPersistentInode(ctx, &subsDir{r: r}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino("subsystems")}), false)
	r.AddChild("hosts", r.NewPersistentInode(ctx, &hostsDir{r: r}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino("hosts")}), false)
}

// ino gives every path a stable inode number so dynamic lookups of the
// same name yield the same node.
func ino(p string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(p); i++ {
		h ^= uint64(p[i])
		h *= 1099511628211
	}
	return h | 1<<63
}

func dirEntries(names []string, mode uint32) fs.DirStream {
	es := make([]fuse.DirEntry, len(names))
	for i, n := range names {
		es[i] = fuse.DirEntry{Name: n, Mode: mode}
	}
	return fs.NewListDirStream(es)
}

// ---- ports ----

type portsDir struct {
	fs.Inode
	r *root
}

var (
	_ = (fs.NodeReaddirer)((*portsDir)(nil))
	_ = (fs.NodeLookuper)((*portsDir)(nil))
)

func (d *portsDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	var names []string
	for _, p := range d.r.t.Ports() {
		names = append(names, strconv.Itoa(int(p.ID())))
	}
	return dirEntries(names, syscall.S_IFDIR), 0
}

func (d *portsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	id, err := strconv.ParseUint(name, 10, 16)
	if err != nil {
		return nil, syscall.ENOENT
	}
	p := d.r.t.Port(uint16(id))
	if p == nil {
		return nil, syscall.ENOENT
	}
	return d.NewInode(ctx, &portDir{r: d.r, p: p}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino("ports/" + name)}), 0
}

type portDir struct {
	fs.Inode
	r *root
	p *target.Port
}

var _ = (fs.NodeOnAdder)((*portDir)(nil))

func (d *portDir) OnAdd(ctx context.Context) {
	p := d.p
	base := fmt.Sprintf("ports/%d/", p.ID())
	addr := func(part int) func() string {
		return func() string {
			a := p.Addr()
			if a == nil {
				return ""
			}
			switch part {
			case 0:
				return a.IP.String()
			case 1:
				return strconv.Itoa(a.Port)
			case 2:
				if a.IP.To4() == nil {
					return "ipv6"
				}
				return "ipv4"
			}
			return "tcp"
		}
	}
	for i, n := range []string{"addr_traddr", "addr_trsvcid", "addr_adrfam", "addr_trtype"} {
		d.addFile(ctx, base+n, n, &attrFile{show: addr(i)})
	}
	d.AddChild("ana_groups", d.NewPersistentInode(ctx, &anaGroupsDir{r: d.r, p: p},
		fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(base + "ana_groups")}), false)
	d.AddChild("subsystems", d.NewPersistentInode(ctx, &portSubsDir{r: d.r, p: p},
		fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(base + "subsystems")}), false)
	fault := d.NewPersistentInode(ctx, &fs.Inode{}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(base + "fault")})
	d.AddChild("fault", fault, false)
	add := func(name string, f *attrFile) {
		fault.AddChild(name, fault.NewPersistentInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG, Ino: ino(base + "fault/" + name)}), false)
	}
	add("drop", &attrFile{store: func(v string) error {
		if v != "1" {
			return errors.New("write 1 to drop the connections")
		}
		d.r.log.Info("control: drop connections", "port", p.ID())
		p.DropConnections()
		return nil
	}})
	add("stall", &attrFile{
		show: func() string { return boolStr(p.Stalled()) },
		store: func(v string) error {
			on, err := parseBool(v)
			if err != nil {
				return err
			}
			d.r.log.Info("control: stall", "port", p.ID(), "on", on)
			p.Stall(on)
			return nil
		}})
	add("listen", &attrFile{
		show: func() string { return boolStr(p.Listening()) },
		store: func(v string) error {
			on, err := parseBool(v)
			if err != nil {
				return err
			}
			d.r.log.Info("control: listen", "port", p.ID(), "on", on)
			if on {
				return p.StartListening()
			}
			return p.StopListening()
		}})
	add("lose_next", &attrFile{
		show: func() string { return strconv.Itoa(p.PendingLosses()) },
		store: func(v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				return fmt.Errorf("bad count %q", v)
			}
			d.r.log.Info("control: lose next completions", "port", p.ID(), "count", n)
			p.LoseNextCompletions(n)
			return nil
		}})
	add("short_read", &attrFile{
		show: func() string { return strconv.Itoa(p.PendingShortReads()) },
		store: func(v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				return fmt.Errorf("bad count %q", v)
			}
			d.r.log.Info("control: short next reads", "port", p.ID(), "count", n)
			p.ShortNextReads(n)
			return nil
		}})
	add("fail_next", &attrFile{
		show: func() string {
			n, st := p.PendingFailures()
			return fmt.Sprintf("%d 0x%03x", n, uint16(st))
		},
		store: func(v string) error {
			f := strings.Fields(v)
			if len(f) < 1 || len(f) > 2 {
				return errors.New("write COUNT [STATUS]")
			}
			n, err := strconv.Atoi(f[0])
			if err != nil || n < 0 {
				return fmt.Errorf("bad count %q", f[0])
			}
			st := nvme.StatusInternalPathError
			if len(f) == 2 {
				v, err := strconv.ParseUint(f[1], 0, 16)
				if err != nil || v == 0 {
					return fmt.Errorf("bad status %q", f[1])
				}
				st = nvme.Status(v)
			}
			d.r.log.Info("control: fail next I/O", "port", p.ID(), "count", n, "status", st.String())
			p.FailNextIO(n, st)
			return nil
		}})
}

func (d *portDir) addFile(ctx context.Context, p, name string, f *attrFile) {
	d.AddChild(name, d.NewPersistentInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG, Ino: ino(p)}), false)
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func parseBool(v string) (bool, error) {
	switch v {
	case "1", "y", "Y", "on":
		return true, nil
	case "0", "n", "N", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not 0 or 1", v)
}

// ---- ports/N/ana_groups ----

type anaGroupsDir struct {
	fs.Inode
	r *root
	p *target.Port
}

var (
	_ = (fs.NodeReaddirer)((*anaGroupsDir)(nil))
	_ = (fs.NodeLookuper)((*anaGroupsDir)(nil))
	_ = (fs.NodeMkdirer)((*anaGroupsDir)(nil))
)

func (d *anaGroupsDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	var names []string
	for _, g := range d.p.ANAGroups() {
		names = append(names, strconv.Itoa(int(g)))
	}
	return dirEntries(names, syscall.S_IFDIR), 0
}

func (d *anaGroupsDir) group(ctx context.Context, g uint32) *fs.Inode {
	p := d.p
	base := fmt.Sprintf("ports/%d/ana_groups/%d", p.ID(), g)
	dir := d.NewInode(ctx, &fs.Inode{}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(base)})
	st := &attrFile{
		show: func() string { return p.ANAState(g).String() },
		store: func(v string) error {
			s, err := nvme.ParseANAState(v)
			if err != nil {
				return err
			}
			d.r.log.Info("control: ANA state", "port", p.ID(), "group", g, "state", s.String())
			p.SetANAState(g, s)
			return nil
		}}
	dir.AddChild("ana_state", dir.NewInode(ctx, st, fs.StableAttr{Mode: syscall.S_IFREG, Ino: ino(base + "/ana_state")}), true)
	return dir
}

func (d *anaGroupsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	g, err := strconv.ParseUint(name, 10, 32)
	if err != nil {
		return nil, syscall.ENOENT
	}
	for _, have := range d.p.ANAGroups() {
		if have == uint32(g) {
			return d.group(ctx, have), 0
		}
	}
	return nil, syscall.ENOENT
}

// Mkdir creates ANA group G on the port (state optimized), like mkdir in
// the kernel's ana_groups.
func (d *anaGroupsDir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	g, err := strconv.ParseUint(name, 10, 32)
	if err != nil || g < 1 || g > target.MaxANAGroups {
		return nil, syscall.EINVAL
	}
	for _, have := range d.p.ANAGroups() {
		if have == uint32(g) {
			return nil, syscall.EEXIST
		}
	}
	d.p.SetANAState(uint32(g), nvme.ANAOptimized)
	return d.group(ctx, uint32(g)), 0
}

// ---- ports/N/subsystems ----

type portSubsDir struct {
	fs.Inode
	r *root
	p *target.Port
}

var (
	_ = (fs.NodeReaddirer)((*portSubsDir)(nil))
	_ = (fs.NodeLookuper)((*portSubsDir)(nil))
	_ = (fs.NodeUnlinker)((*portSubsDir)(nil))
	_ = (fs.NodeSymlinker)((*portSubsDir)(nil))
)

func (d *portSubsDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return dirEntries(d.p.Subsystems(), syscall.S_IFLNK), 0
}

func (d *portSubsDir) link(ctx context.Context, nqn string) *fs.Inode {
	l := &fs.MemSymlink{Data: []byte("../../../subsystems/" + nqn)}
	return d.NewInode(ctx, l, fs.StableAttr{Mode: syscall.S_IFLNK, Ino: ino(fmt.Sprintf("ports/%d/subsystems/%s", d.p.ID(), nqn))})
}

func (d *portSubsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	for _, nqn := range d.p.Subsystems() {
		if nqn == name {
			return d.link(ctx, nqn), 0
		}
	}
	return nil, syscall.ENOENT
}

// Unlink takes the subsystem off the port and drops its controllers there.
func (d *portSubsDir) Unlink(ctx context.Context, name string) syscall.Errno {
	d.r.log.Info("control: unlink subsystem", "port", d.p.ID(), "nqn", name)
	if err := d.p.UnlinkSubsystem(name); err != nil {
		return syscall.ENOENT
	}
	return 0
}

// Symlink links a subsystem to the port; the link target must name it
// (…/subsystems/<nqn>), as with `ln -s ../../../subsystems/NQN`.
func (d *portSubsDir) Symlink(ctx context.Context, tgt, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if path.Base(tgt) != name {
		return nil, syscall.EINVAL
	}
	d.r.log.Info("control: link subsystem", "port", d.p.ID(), "nqn", name)
	if err := d.p.LinkSubsystem(name); err != nil {
		if errors.Is(err, target.ErrExists) {
			return nil, syscall.EEXIST
		}
		return nil, syscall.ENOENT
	}
	return d.link(ctx, name), 0
}

// ---- subsystems ----

type subsDir struct {
	fs.Inode
	r *root
}

var (
	_ = (fs.NodeReaddirer)((*subsDir)(nil))
	_ = (fs.NodeLookuper)((*subsDir)(nil))
)

func (d *subsDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	var names []string
	for _, s := range d.r.t.Subsystems() {
		names = append(names, s.NQN())
	}
	return dirEntries(names, syscall.S_IFDIR), 0
}

func (d *subsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	s := d.r.t.Subsystem(name)
	if s == nil {
		return nil, syscall.ENOENT
	}
	base := "subsystems/" + name
	dir := d.NewInode(ctx, &fs.Inode{}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(base)})
	cfg := s.Config()
	for n, v := range map[string]string{"attr_model": cfg.Model, "attr_serial": cfg.Serial, "attr_firmware": cfg.Firmware} {
		v := v
		dir.AddChild(n, dir.NewInode(ctx, &attrFile{show: func() string { return v }}, fs.StableAttr{Mode: syscall.S_IFREG, Ino: ino(base + "/" + n)}), true)
	}
	anyHost := &attrFile{show: func() string { return boolStr(s.AllowAnyHost()) }, store: func(v string) error {
		switch v {
		case "0", "1":
			d.r.log.Info("control: attr_allow_any_host", "nqn", name, "value", v)
			s.SetAllowAnyHost(v == "1")
			return nil
		}
		return fmt.Errorf("attr_allow_any_host: %q", v)
	}}
	dir.AddChild("attr_allow_any_host", dir.NewInode(ctx, anyHost, fs.StableAttr{Mode: syscall.S_IFREG, Ino: ino(base + "/attr_allow_any_host")}), true)
	dir.AddChild("allowed_hosts", dir.NewInode(ctx, &allowedHostsDir{r: d.r, s: s}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(base + "/allowed_hosts")}), true)
	dir.AddChild("namespaces", dir.NewInode(ctx, &nsDir{r: d.r, s: s}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(base + "/namespaces")}), true)
	return dir, 0
}

type nsDir struct {
	fs.Inode
	r *root
	s *target.Subsystem
}

var (
	_ = (fs.NodeReaddirer)((*nsDir)(nil))
	_ = (fs.NodeLookuper)((*nsDir)(nil))
)

func (d *nsDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	var names []string
	for _, ns := range d.s.Namespaces() {
		names = append(names, strconv.Itoa(int(ns.NSID())))
	}
	for _, id := range d.s.DisabledNamespaces() {
		names = append(names, strconv.Itoa(int(id)))
	}
	return dirEntries(names, syscall.S_IFDIR), 0
}

func (d *nsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	id, err := strconv.ParseUint(name, 10, 32)
	if err != nil {
		return nil, syscall.ENOENT
	}
	ns := d.s.Namespace(uint32(id))
	if ns == nil {
		if ns = d.s.DisabledNamespace(uint32(id)); ns == nil {
			return nil, syscall.ENOENT
		}
	}
	base := "subsystems/" + d.s.NQN() + "/namespaces/" + name
	dir := d.NewInode(ctx, &fs.Inode{}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(base)})
	cfg := ns.Config()
	devPath := cfg.Path
	if devPath == "" {
		devPath = "ram:" + strconv.FormatInt(ns.Size(), 10)
	}
	files := map[string]*attrFile{
		"device_path": {show: func() string { return devPath }},
		"device_size": {
			show: func() string { return strconv.FormatInt(ns.Size(), 10) },
			store: func(v string) error {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return err
				}
				d.r.log.Info("control: namespace resized", "nsid", ns.NSID(), "bytes", n)
				return ns.Resize(n)
			}},
		"device_uuid": {
			show: func() string { return uuidStr(ns.IDs().UUID) },
			store: func(v string) error {
				u, err := parseUUID(v)
				if err != nil {
					return err
				}
				ids := ns.IDs()
				ns.SetIDs(u, ids.NGUID, ids.EUI64)
				return nil
			}},
		"device_nguid": {
			show: func() string { return uuidStr(ns.IDs().NGUID) },
			store: func(v string) error {
				u, err := parseUUID(v)
				if err != nil {
					return err
				}
				ids := ns.IDs()
				ns.SetIDs(ids.UUID, u, ids.EUI64)
				return nil
			}},
		"enable": {
			show: func() string { return boolStr(d.s.Namespace(ns.NSID()) != nil) },
			store: func(v string) error {
				on, err := strconv.ParseBool(v)
				if err != nil {
					return err
				}
				d.r.log.Info("control: namespace enable", "nsid", ns.NSID(), "enable", on)
				return d.s.SetNamespaceEnabled(ns.NSID(), on)
			}},
		"ana_grpid": {
			show: func() string { return strconv.Itoa(int(ns.ANAGroup())) },
			store: func(v string) error {
				g, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					return err
				}
				d.r.log.Info("control: namespace ANA group", "nsid", ns.NSID(), "group", g)
				return ns.SetANAGroup(uint32(g))
			}},
	}
	for n, f := range files {
		dir.AddChild(n, dir.NewInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG, Ino: ino(base + "/" + n)}), true)
	}
	return dir, 0
}

// parseUUID reads the 16 bytes uuidStr prints (dashes optional).
func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		return u, fmt.Errorf("bad identifier %q", s)
	}
	copy(u[:], b)
	return u, nil
}

func uuidStr(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// ---- attribute files ----

// attrFile is a configfs-style attribute: show renders the value (a
// newline is added), store parses a write. A nil store makes the file
// read-only (0444), a nil show write-only (0200).
type attrFile struct {
	fs.Inode
	show   func() string
	store  func(string) error
	secret bool // 0600: holds a key

	mu sync.Mutex
}

var (
	_ = (fs.NodeOpener)((*attrFile)(nil))
	_ = (fs.NodeReader)((*attrFile)(nil))
	_ = (fs.NodeWriter)((*attrFile)(nil))
	_ = (fs.NodeGetattrer)((*attrFile)(nil))
	_ = (fs.NodeSetattrer)((*attrFile)(nil))
)

func (f *attrFile) mode() uint32 {
	if f.secret {
		return 0o600
	}
	var m uint32
	if f.show != nil {
		m |= 0o444
	}
	if f.store != nil {
		m |= 0o200
	}
	return m
}

func (f *attrFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | f.mode()
	out.Size = 4096 // like sysfs/configfs: the real length is known only on read
	return 0
}

// Setattr accepts the truncation of `echo value > file`.
func (f *attrFile) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok && sz != 0 {
		return syscall.EINVAL
	}
	return f.Getattr(ctx, fh, out)
}

func (f *attrFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	acc := flags & syscall.O_ACCMODE
	if (acc == syscall.O_WRONLY || acc == syscall.O_RDWR) && f.store == nil {
		return nil, 0, syscall.EACCES
	}
	if (acc == syscall.O_RDONLY || acc == syscall.O_RDWR) && f.show == nil {
		return nil, 0, syscall.EACCES
	}
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *attrFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if f.show == nil {
		return nil, syscall.EACCES
	}
	v := []byte(f.show() + "\n")
	if off >= int64(len(v)) {
		return fuse.ReadResultData(nil), 0
	}
	return fuse.ReadResultData(v[off:]), 0
}

func (f *attrFile) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if f.store == nil {
		return 0, syscall.EACCES
	}
	v := string(data)
	if i := strings.IndexByte(v, '\n'); i >= 0 {
		v = v[:i]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.store(strings.TrimSpace(v)); err != nil {
		return 0, syscall.EINVAL
	}
	return uint32(len(data)), 0
}
