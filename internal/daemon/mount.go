package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/mpathfs/mpathfs/fusefs"
	"github.com/mpathfs/mpathfs/internal/memlimit"
)

// Mount is a served mpathfs tree.
type Mount struct {
	d      *Daemon
	root   *fusefs.Root
	server *fusefs.Server
	dir    string
}

type rootListener struct{ m *Mount }

func (l rootListener) HeadAdded(name string, dev *Device) {
	if err := l.m.root.AddNamespace(name, dev); err != nil {
		l.m.d.log.Error("fuse: add namespace file", "name", name, "error", err)
	}
}

func (l rootListener) HeadRemoved(name string) {
	if err := l.m.root.RemoveNamespace(name); err != nil {
		l.m.d.log.Debug("fuse: remove namespace file", "name", name, "error", err)
	}
}

// FUSEOptions turns the [fuse] configuration into fusefs options.
func (d *Daemon) FUSEOptions() fusefs.Options {
	f := d.cfg.FUSE
	return fusefs.Options{
		MaxWrite:      f.MaxWrite,
		MaxBackground: f.MaxBackground,
		Readers:       f.MaxReaders,
		AllowOther:    f.AllowOther,
		Debug:         f.Debug,
		GoFuseLoop:    f.GoFuseLoop,
		Logger:        d.log.Named("fuse"),
	}
}

// Mount serves the namespace files and the sys/ tree at dir.
func (d *Daemon) Mount(dir string, opts fusefs.Options) (*Mount, error) {
	m := &Mount{d: d, dir: dir, root: fusefs.NewRoot(d.tree, d.log.Named("fuse"))}
	d.SetListener(rootListener{m})
	srv, err := fusefs.Mount(dir, m.root, opts)
	if err != nil {
		return nil, err
	}
	m.server = srv
	return m, nil
}

// ioCount is the number of I/Os completed and in flight on every head: the
// activity the memory trimmer watches to give buffers back when I/O stops.
func (d *Daemon) ioCount() uint64 {
	var n uint64
	for _, dev := range d.Devices() {
		s := dev.Head().Stats()
		n += s.ReadIOs + s.WriteIOs + s.DiscardIOs + s.FlushIOs + s.InFlight
	}
	return n
}

// Batching is fusefs.Server.Batching: commands held back to leave
// together, the flushes that sent them, and the queue writes those took.
func (m *Mount) Batching() (held, flushes, writes uint64) { return m.server.Batching() }

// Dir is the mount point.
func (m *Mount) Dir() string { return m.dir }

// Wait blocks until the filesystem is unmounted (umount, fusermount3 -u or
// Unmount).
func (m *Mount) Wait() { m.server.Wait() }

// Unmount unmounts. If the mount is busy (files still open, I/O in
// flight) it is detached lazily: it disappears from the namespace at once,
// open files keep working until they are closed, and the server ends with
// the last close, so no in-flight write is cut short.
func (m *Mount) Unmount() error {
	err := m.server.Unmount()
	if err == nil {
		return nil
	}
	if os.Geteuid() == 0 {
		if derr := syscall.Unmount(m.dir, syscall.MNT_DETACH); derr == nil {
			m.d.log.Info("mount busy, detached lazily: serving open files until they close", "dir", m.dir)
			return nil
		}
	} else if out, derr := exec.Command("fusermount3", "-uz", m.dir).CombinedOutput(); derr == nil {
		return nil
	} else {
		err = fmt.Errorf("%w; fusermount3 -uz: %s", err, out)
	}
	return fmt.Errorf("unmount %s: %w", m.dir, err)
}

// Serve runs until ctx is done or the filesystem is unmounted from
// outside, then shuts down cleanly: unmount (in-flight requests finish),
// Flush every namespace, shut every controller down with CC.SHN.
func (d *Daemon) Serve(ctx context.Context, m *Mount) error {
	tctx, stopTrim := context.WithCancel(context.Background())
	defer stopTrim()
	go (&memlimit.Trimmer{}).Run(tctx, time.Second, d.ioCount)
	done := make(chan struct{})
	go func() {
		m.Wait()
		close(done)
	}()
	select {
	case <-ctx.Done():
		d.log.Info("signal received, unmounting", "dir", m.dir)
		if err := m.Unmount(); err != nil {
			d.log.Error("unmount failed", "error", err)
		}
		<-done
	case <-done:
		d.log.Info("unmounted", "dir", m.dir)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return d.Close(sctx)
}
