package sysfsview

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// Attribute modes, as the kernel uses them.
const (
	ModeRO      = 0o444 // read-only attribute
	ModeRW      = 0o644 // writable attribute
	ModeTrigger = 0o200 // write-only trigger
	ModeBin     = 0o400 // root-only binary attribute (sysfs bin_attribute)
	ModeSecret  = 0o600 // owner-only read/write attribute (keys)
)

// Node is one directory entry: *Dir, *Attr or *Symlink. Ino is unique within a
// Tree and never reused, so a server can use it as a stable inode number.
type Node interface {
	Ino() uint64
	node()
}

// Attr is one attribute file, declared as a row. Show, Store and Visible are
// called concurrently (every open reads Show; every write(2) calls Store), so
// the sources behind them must be safe for concurrent use.
type Attr struct {
	Name string
	Mode uint32 // permission bits: ModeRO, ModeRW or ModeTrigger
	// Show returns the whole file content (kernel format, usually value + "\n").
	// Nil for triggers.
	Show func() string
	// Store receives one write(2) buffer. Nil for read-only attributes. An error
	// with an Errno() syscall.Errno method (such as *StoreError) gives the errno.
	Store func(string) error
	// Visible hides the attribute when it returns false; nil means always visible.
	Visible func() bool
	// Read, for a binary attribute (a sysfs bin_attribute) whose content
	// comes from the device, returns the whole content or an error (with
	// an Errno method for its errno); each open calls it instead of Show.
	Read func(ctx context.Context) ([]byte, error)
	// Secret keeps the written value out of the log (it holds keys).
	Secret bool

	ino uint64
}

// Ino implements Node.
func (a *Attr) Ino() uint64 { return a.ino }
func (a *Attr) node()       {}

func (a *Attr) visible() bool { return a.Visible == nil || a.Visible() }

// Symlink is a relative symbolic link, like sysfs's links between objects.
type Symlink struct {
	Name   string
	Target string

	ino uint64
}

// Ino implements Node.
func (s *Symlink) Ino() uint64 { return s.ino }
func (s *Symlink) node()       {}

// Dir is a directory whose entries may change at runtime. It is safe for
// concurrent use.
type Dir struct {
	name string
	ino  uint64

	mu       sync.RWMutex
	children map[string]Node
}

// Ino implements Node.
func (d *Dir) Ino() uint64 { return d.ino }
func (d *Dir) node()       {}

// Name is the directory's name in its parent.
func (d *Dir) Name() string { return d.name }

// Lookup returns the visible entry called name, or nil.
func (d *Dir) Lookup(name string) Node {
	d.mu.RLock()
	n := d.children[name]
	d.mu.RUnlock()
	if a, ok := n.(*Attr); ok && !a.visible() {
		return nil
	}
	return n
}

// Dirent is one entry of Dir.List.
type Dirent struct {
	Name string
	Node Node
}

// List returns the visible entries sorted by name.
func (d *Dir) List() []Dirent {
	d.mu.RLock()
	out := make([]Dirent, 0, len(d.children))
	for name, n := range d.children {
		out = append(out, Dirent{Name: name, Node: n})
	}
	d.mu.RUnlock()
	vis := out[:0]
	for _, e := range out {
		if a, ok := e.Node.(*Attr); ok && !a.visible() {
			continue
		}
		vis = append(vis, e)
	}
	sort.Slice(vis, func(i, j int) bool { return vis[i].Name < vis[j].Name })
	return vis
}

func (d *Dir) put(name string, n Node) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.children[name]; ok {
		return fmt.Errorf("%s/%s: %w", d.name, name, syscall.EEXIST)
	}
	d.children[name] = n
	return nil
}

func (d *Dir) remove(name string) {
	d.mu.Lock()
	delete(d.children, name)
	d.mu.Unlock()
}

func (d *Dir) subdir(name string) *Dir {
	d.mu.RLock()
	defer d.mu.RUnlock()
	sub, _ := d.children[name].(*Dir)
	return sub
}

// Tree is the attribute tree: sys/class/nvme-subsystem, sys/class/nvme and
// sys/block, with objects added and removed at runtime. It is safe for
// concurrent use.
type Tree struct {
	log  hclog.Logger
	inos atomic.Uint64

	root, classSubsys, classNvme, block *Dir
	byID, dev                           *Dir

	mu         sync.Mutex // serializes Add*/Remove* and guards the maps
	subsys     map[string]*subsysObj
	ctrls      map[string]*ctrlObj
	heads      map[string]*headObj
	paths      map[string]*pathObj
	byIDClaims map[string][]string // disk/by-id name -> heads claiming it, oldest first
}

// NewTree returns a tree with the fixed skeleton and no objects. Rejected
// writes are logged to log (nil: discarded).
func NewTree(log hclog.Logger) *Tree {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	t := &Tree{
		log:    log,
		subsys: map[string]*subsysObj{},
		ctrls:  map[string]*ctrlObj{},
		heads:  map[string]*headObj{},
		paths:  map[string]*pathObj{},

		byIDClaims: map[string][]string{},
	}
	t.inos.Store(1) // 1 is the FUSE root
	t.root = t.newDir("")
	sys := t.mkdir(t.root, "sys")
	class := t.mkdir(sys, "class")
	t.classSubsys = t.mkdir(class, "nvme-subsystem")
	t.classNvme = t.mkdir(class, "nvme")
	t.block = t.mkdir(sys, "block")
	t.byID = t.mkdir(t.mkdir(t.root, "disk"), "by-id")
	t.dev = t.mkdir(t.root, "dev")
	return t
}

// Root is the top directory; it holds "sys", "disk/by-id" (udev's stable
// names, links to the namespace files next to the tree) and "dev".
func (t *Tree) Root() *Dir { return t.root }

func (t *Tree) newDir(name string) *Dir {
	return &Dir{name: name, ino: t.inos.Add(1), children: map[string]Node{}}
}

func (t *Tree) mkdir(parent *Dir, name string) *Dir {
	d := t.newDir(name)
	if err := parent.put(name, d); err != nil {
		panic(err) // skeleton and fresh object directories only
	}
	return d
}

// addAttrs inserts rows into d. Each Store is wrapped so a rejected write is
// logged exactly once, naming the attribute and the value.
func (t *Tree) addAttrs(d *Dir, where string, attrs ...*Attr) {
	for _, a := range attrs {
		a.ino = t.inos.Add(1)
		if st := a.Store; st != nil {
			name := where + "/" + a.Name
			a.Store = func(v string) error {
				if err := st(v); err != nil {
					shown := quoteShort(v)
					if a.Secret {
						shown = "(value not logged)"
					}
					t.log.Warn(fmt.Sprintf("%s: write %s rejected: %s", name, shown, reason(err)))
					return fmt.Errorf("%s: %w", name, err)
				}
				return nil
			}
		}
		if err := d.put(a.Name, a); err != nil {
			panic(err) // duplicate row name: a programming error in this package
		}
	}
}

// maxLoggedValue is how much of a rejected value is logged.
const maxLoggedValue = 64

// quoteShort quotes v for a log line, cut to maxLoggedValue bytes with its
// length named when longer.
func quoteShort(v string) string {
	if len(v) <= maxLoggedValue {
		return strconv.Quote(v)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(v[:maxLoggedValue]), len(v))
}

func (t *Tree) link(d *Dir, name, target string) error {
	return d.put(name, &Symlink{Name: name, Target: target, ino: t.inos.Add(1)})
}

// Lookup resolves a slash-separated path below the root without following
// symlinks; it returns nil if any component is missing or hidden.
func (t *Tree) Lookup(p string) Node {
	var n Node = t.root
	for _, c := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if c == "" {
			continue
		}
		d, ok := n.(*Dir)
		if !ok {
			return nil
		}
		if n = d.Lookup(c); n == nil {
			return nil
		}
	}
	return n
}

// Read returns the content of the attribute at p, as cat would see it.
func (t *Tree) Read(p string) (string, error) {
	a, ok := t.Lookup(p).(*Attr)
	if !ok {
		return "", fmt.Errorf("%s: %w", p, syscall.ENOENT)
	}
	if a.Show == nil {
		return "", fmt.Errorf("%s: %w", p, syscall.EACCES)
	}
	return a.Show(), nil
}

// Write stores v into the attribute at p, as one write(2) would.
func (t *Tree) Write(p, v string) error {
	a, ok := t.Lookup(p).(*Attr)
	if !ok {
		return fmt.Errorf("%s: %w", p, syscall.ENOENT)
	}
	if a.Store == nil {
		return fmt.Errorf("%s: %w", p, syscall.EACCES)
	}
	return a.Store(v)
}

// reason is the errno text of a store error if it has one, else the error.
func reason(err error) string {
	var e interface{ Errno() syscall.Errno }
	if errors.As(err, &e) {
		return e.Errno().Error()
	}
	return err.Error()
}

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("bad object name %q: %w", name, syscall.EINVAL)
	}
	return nil
}
