package fusefs

import (
	"cmp"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
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
	// GoFuseLoop serves every request from go-fuse's own /dev/fuse loop
	// (one goroutine per request in flight). Otherwise Mount serves
	// /dev/fuse itself where it can mount with mount(2) (as root):
	// namespace READs and WRITEs are answered from the device's completion
	// (AsyncBlockDevice), everything else goes through go-fuse's protocol
	// server. Readers is then the number of goroutines reading /dev/fuse
	// (0: two).
	GoFuseLoop bool
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

// nodeFSOptions are the go-fuse fs options for mount options mo. Nodes set
// their own timeouts; no blanket caching.
func nodeFSOptions(mo fuse.MountOptions) *fs.Options {
	zero := time.Duration(0)
	return &fs.Options{MountOptions: mo, EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero}
}

// NewServer mounts root at mountpoint with opts and starts serving; it
// returns once the mount is usable. It is the shared helper behind Mount and
// the ramfs baseline.
func NewServer(mountpoint string, root fs.InodeEmbedder, opts Options) (*fuse.Server, error) {
	fsOpts := nodeFSOptions(opts.MountOptions())
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

// defaultLoopReaders is the devLoop's reader count when Options.Readers is
// 0. Measured on 2 cores against 1: 4 KiB QD32 +12% (read) and +28%
// (write), 1 MiB writes at QD8 +31%, QD1 latency unchanged.
const defaultLoopReaders = 2

// Server is a mounted tree.
type Server struct {
	dir  string
	gf   *fuse.Server // go-fuse's loop, or nil
	loop *devLoop     // our loop, or nil
}

// Mount serves root (the namespace files and the attribute tree) at
// mountpoint. Stop it with Unmount (or umount) and wait with Wait.
func Mount(mountpoint string, root *Root, opts Options) (*Server, error) {
	if !opts.GoFuseLoop && os.Geteuid() == 0 {
		return mountDevLoop(mountpoint, root, opts)
	}
	srv, err := NewServer(mountpoint, root, opts)
	if err != nil {
		return nil, err
	}
	return &Server{dir: mountpoint, gf: srv}, nil
}

// mountDevLoop mounts with mount(2) and serves /dev/fuse with a devLoop
// in front of go-fuse's protocol server.
func mountDevLoop(mountpoint string, root *Root, opts Options) (*Server, error) {
	opts = opts.withDefaults()
	mo := opts.MountOptions()
	// Entry replies must be seen to learn the namespace files' node IDs:
	// READDIRPLUS would hand them out unseen.
	mo.DisableReadDirPlus = true
	mo.Logger = log.New(hclogWriter{opts.Logger}, "", 0)
	fsOpts := nodeFSOptions(mo)
	ps := fuse.NewProtocolServer(fs.NewNodeFS(root, fsOpts), &fsOpts.MountOptions)

	var st syscall.Stat_t
	if err := syscall.Stat(mountpoint, &st); err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	fd, err := syscall.Open("/dev/fuse", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mount %s: /dev/fuse: %w", mountpoint, err)
	}
	data := []string{
		fmt.Sprintf("fd=%d", fd),
		fmt.Sprintf("rootmode=%o", st.Mode&syscall.S_IFMT),
		fmt.Sprintf("user_id=%d", os.Geteuid()),
		fmt.Sprintf("group_id=%d", os.Getegid()),
		fmt.Sprintf("max_read=%d", mo.MaxWrite),
	}
	data = append(data, mo.Options...)
	if mo.AllowOther {
		data = append(data, "allow_other")
	}
	err = syscall.Mount(opts.FsName, mountpoint, "fuse."+opts.Name, syscall.MS_NOSUID|syscall.MS_NODEV, strings.Join(data, ","))
	if err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	nb, err := cloneDev(fd)
	if err != nil {
		_ = syscall.Unmount(mountpoint, syscall.MNT_DETACH)
		syscall.Close(fd)
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	l := newDevLoop(os.NewFile(uintptr(fd), "/dev/fuse"), nb, ps, root, mo.MaxWrite, opts.Logger)
	l.start(cmp.Or(opts.Readers, defaultLoopReaders))
	srv := &Server{dir: mountpoint, loop: l}
	if err := pollHack(mountpoint); err != nil {
		_ = srv.Unmount()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	return srv, nil
}

// fuseDevIocClone is FUSE_DEV_IOC_CLONE, _IOR(229, 0, uint32_t)
// (linux/fuse.h).
const fuseDevIocClone = 0x8004e500

// cloneDev opens a second descriptor of fd's FUSE connection, non-blocking
// (FUSE_DEV_IOC_CLONE, Linux 4.2).
func cloneDev(fd int) (int, error) {
	nb, err := syscall.Open("/dev/fuse", syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("/dev/fuse clone: %w", err)
	}
	if err := unix.IoctlSetPointerInt(nb, fuseDevIocClone, fd); err != nil {
		syscall.Close(nb)
		return -1, fmt.Errorf("/dev/fuse clone (FUSE_DEV_IOC_CLONE): %w", err)
	}
	return nb, nil
}

// pollHack makes the kernel learn that the filesystem does not poll
// before anything in this process opens a file of it (go-fuse's
// WaitMount does the same). Otherwise the kernel sends FUSE_POLL when Go
// registers such a file with epoll, from a thread that holds a P without a
// system call: with every P stuck so, the loop that would answer never runs.
func pollHack(mountpoint string) error {
	fd, err := syscall.Open(filepath.Join(mountpoint, ".go-fuse-epoll-hack"), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("poll probe: %w", err)
	}
	defer syscall.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLPRI | unix.POLLOUT}}
	_, _ = unix.Poll(fds, 0) // FUSE_POLL, answered ENOSYS: the reply is what matters
	return nil
}

// hclogWriter turns go-fuse's log lines into debug lines of an hclog.Logger.
type hclogWriter struct{ log hclog.Logger }

func (w hclogWriter) Write(p []byte) (int, error) {
	w.log.Debug("go-fuse: " + strings.TrimSpace(string(p)))
	return len(p), nil
}

// Unmount unmounts; it fails (EBUSY) while files are open.
func (s *Server) Unmount() error {
	if s.gf != nil {
		return s.gf.Unmount()
	}
	if err := syscall.Unmount(s.dir, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", s.dir, err)
	}
	return nil
}

// Batching reports how many commands the devices held for the loop's
// plug, in how many flushes (batches) they left, and how many queue
// writes those took (see package plug); zero on go-fuse's loop, which
// holds nothing.
func (s *Server) Batching() (held, flushes, writes uint64) {
	if s.loop == nil {
		return 0, 0, 0
	}
	return s.loop.plug.Stats()
}

// Wait blocks until the filesystem is unmounted and every request was
// answered.
func (s *Server) Wait() {
	if s.gf != nil {
		s.gf.Wait()
		return
	}
	s.loop.wait()
}
