package fusefs

import (
	"fmt"
	"runtime"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hashicorp/go-hclog"
)

// Options are the FUSE mount knobs mpathfs owns. The zero value is usable.
type Options struct {
	// MaxWrite is the largest READ/WRITE request in bytes (go-fuse also sets
	// max_read and max_pages from it). Default 1 MiB, the kernel's maximum.
	MaxWrite int
	// MaxReadAhead bounds kernel readahead for buffered reads. Default MaxWrite
	// (the kernel caps it).
	MaxReadAhead int
	// MaxBackground is how many asynchronous requests (readahead, libaio
	// O_DIRECT) the kernel keeps in flight. go-fuse's default of 12 caps deep
	// queues, so the default here is 128.
	MaxBackground int
	// Readers is how many goroutines read requests from /dev/fuse. go-fuse has
	// no knob for it: it takes GOMAXPROCS (clamped to 2..16) when the server is
	// created. If Readers > 0, Mount sets GOMAXPROCS to Readers while creating
	// the server and restores it afterwards (not safe against concurrent
	// GOMAXPROCS changes). 0 keeps go-fuse's choice.
	Readers int
	// AllowOther lets users other than the mounting one access the mount.
	AllowOther bool
	// Debug logs every FUSE request.
	Debug bool
	// FsName is the "source" column of /proc/mounts. Default "mpathfs".
	FsName string
	// Name is the fuse.<Name> filesystem type. Default "mpathfs".
	Name string
	// DirectMount mounts with mount(2) first, falling back to fusermount3.
	DirectMount bool
	// Logger receives I/O error reports; nil discards them.
	Logger hclog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxWrite <= 0 {
		o.MaxWrite = fuse.MAX_KERNEL_WRITE
	}
	if o.MaxReadAhead <= 0 {
		o.MaxReadAhead = o.MaxWrite
	}
	if o.MaxBackground <= 0 {
		o.MaxBackground = 128
	}
	if o.FsName == "" {
		o.FsName = "mpathfs"
	}
	if o.Name == "" {
		o.Name = "mpathfs"
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o
}

// MountOptions returns the go-fuse mount options for o (defaults applied).
// default_permissions makes the kernel enforce the attribute modes.
func (o Options) MountOptions() fuse.MountOptions {
	o = o.withDefaults()
	return fuse.MountOptions{
		MaxWrite:      o.MaxWrite,
		MaxReadAhead:  o.MaxReadAhead,
		MaxBackground: o.MaxBackground,
		AllowOther:    o.AllowOther,
		Debug:         o.Debug,
		FsName:        o.FsName,
		Name:          o.Name,
		DirectMount:   o.DirectMount,
		Options:       []string{"default_permissions"},
		// ASYNC_DIO lets the kernel send the requests of one O_DIRECT
		// submission (libaio, io_uring) concurrently instead of one at a
		// time: without it fio --iodepth=32 --direct=1 reaches us at QD 1.
		ExtraCapabilities: fuse.CAP_ASYNC_DIO,
		// Replies are always in-memory buffers: go-fuse's splice attempt for
		// them only costs a pipe setup per READ (and fails above 1 MiB).
		DisableSplice: true,
	}
}

// NewServer mounts root at mountpoint with opts and starts serving; it
// returns once the mount is usable. It is the shared helper behind Mount and
// the ramfs baseline.
func NewServer(mountpoint string, root fs.InodeEmbedder, opts Options) (*fuse.Server, error) {
	mo := opts.MountOptions()
	zero := time.Duration(0)
	fsOpts := &fs.Options{
		MountOptions: mo,
		// Nodes set their own timeouts; no blanket caching.
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
	}
	rawFS := fs.NewNodeFS(root, fsOpts)
	if opts.Readers > 0 {
		prev := runtime.GOMAXPROCS(opts.Readers)
		defer runtime.GOMAXPROCS(prev)
	}
	server, err := fuse.NewServer(rawFS, mountpoint, &fsOpts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		_ = server.Unmount()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	return server, nil
}

// Mount serves root (the namespace files and the attribute tree) at
// mountpoint. Stop it with server.Unmount (or fusermount3 -u) and wait with
// server.Wait.
func Mount(mountpoint string, root *Root, opts Options) (*fuse.Server, error) {
	return NewServer(mountpoint, root, opts)
}
