package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"

	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/host"
	"github.com/mpathfs/mpathfs/nvme/multipath"
	"github.com/mpathfs/mpathfs/sysfsview"
)

// FabricsDevice is the name of the connect device under MOUNTPOINT/dev.
const FabricsDevice = "nvme-fabrics"

// fabricsOptionTokens are the option patterns a read of dev/nvme-fabrics
// lists before any write, as nvmf_show_options does; libnvme passes only
// the options listed.
var fabricsOptionTokens = []string{
	"transport=%s", "traddr=%s", "trsvcid=%s", "nqn=%s", "queue_size=%d",
	"nr_io_queues=%d", "reconnect_delay=%d", "ctrl_loss_tmo=%d",
	"keep_alive_tmo=%d", "hostnqn=%s", "host_traddr=%s", "host_iface=%s",
	"hostid=%s", "duplicate_connect", "disable_sqflow", "hdr_digest",
	"data_digest", "nr_write_queues=%d", "nr_poll_queues=%d", "tos=%d",
	"fast_io_fail_tmo=%d", "discovery", "dhchap_secret=%s", "dhchap_ctrl_secret=%s",
}

// fabricsDev serializes connects through dev/nvme-fabrics, as the kernel's
// nvmf_dev_mutex does.
type fabricsDev struct {
	d  *Daemon
	mu sync.Mutex
}

// fabricsSession is one open descriptor of dev/nvme-fabrics: one write
// creates one controller, reads then show "instance=N,cntlid=M".
type fabricsSession struct {
	dev  *fabricsDev
	ctrl *multipath.Ctrl
}

func (f *fabricsDev) open() sysfsview.DeviceSession { return &fabricsSession{dev: f} }

// errnoError carries the errno a write fails with.
type errnoError struct {
	errno syscall.Errno
	err   error
}

func (e *errnoError) Error() string              { return e.err.Error() }
func (e *errnoError) Unwrap() error              { return e.err }
func (e *errnoError) Errno() syscall.Errno       { return e.errno }
func withErrno(n syscall.Errno, err error) error { return &errnoError{errno: n, err: err} }

// Show implements sysfsview.DeviceSession.
func (s *fabricsSession) Show() (string, error) {
	s.dev.mu.Lock()
	defer s.dev.mu.Unlock()
	if s.ctrl == nil {
		return "instance=-1,cntlid=-1," + strings.Join(fabricsOptionTokens, ",") + "\n", nil
	}
	return fmt.Sprintf("instance=%d,cntlid=%d\n", s.ctrl.Instance(), s.ctrl.Host().CNTLID()), nil
}

// Write implements sysfsview.DeviceSession with nvmf_dev_write's semantics:
// a second write on the descriptor, a bad option string or a missing
// required option fail with EINVAL; a live controller with the same
// address, subsystem and host (without duplicate_connect) with EALREADY;
// a refused or unreachable target with the socket's errno; an NVMe error
// status from Connect with EIO.
func (s *fabricsSession) Write(p []byte) error {
	f := s.dev
	f.mu.Lock()
	defer f.mu.Unlock()
	log := f.d.log.Named("nvme_fabrics")
	if s.ctrl != nil {
		return withErrno(syscall.EINVAL, errors.New("nvme-fabrics: this descriptor already created a controller"))
	}
	if len(p) > 4096 {
		return withErrno(syscall.ENOMEM, errors.New("nvme-fabrics: option string longer than a page"))
	}
	base := fabrics.DefaultOptions()
	base.HostNQN, base.HostID = f.d.cfg.Host.HostNQN, f.d.cfg.Host.HostID
	o, err := fabrics.ParseOptions(strings.TrimRight(string(p), "\x00"), base)
	if err == nil {
		err = o.Validate()
	}
	if err != nil {
		log.Error(err.Error())
		return withErrno(syscall.EINVAL, err)
	}
	if !o.DuplicateConnect {
		if name := f.d.sameController(o); name != "" {
			err := fmt.Errorf("%s: already connected to %s nqn %s (duplicate_connect not given)", name, o.Address(), o.SubsysNQN)
			log.Warn(err.Error())
			return withErrno(syscall.EALREADY, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), triggerTimeout)
	defer cancel()
	c, err := f.d.connect(ctx, o)
	if err != nil {
		log.Error("controller creation failed", "error", err)
		return withErrno(connectErrno(err), err)
	}
	s.ctrl = c
	return nil
}

// connectErrno is the errno the kernel's write returns for a failed
// connect: the socket's own error, ETIMEDOUT for a timeout, EIO for an
// NVMe status or anything else.
func connectErrno(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno) && errno != 0:
		return errno
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT
	}
	return syscall.EIO
}

// sameController names a controller that nvmf_ip_options_match would call
// the same as o (fabrics.Options.SameController), not being deleted.
func (d *Daemon) sameController(o fabrics.Options) string {
	for _, c := range d.core.Controllers() {
		switch c.Host().State() {
		case host.StateDeleting, host.StateDeletingNoIO, host.StateDead:
			continue
		}
		if o.SameController(c.Host().Options()) {
			return c.Name()
		}
	}
	return ""
}
