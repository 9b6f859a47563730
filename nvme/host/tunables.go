package host

import (
	"time"

	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// tunables are the controller settings sysfs may change at run time, as
// Linux keeps them in nvmf_ctrl_options and nvme_ctrl: ctrl_loss_tmo is
// kept as max_reconnects (so it reads back as max_reconnects *
// reconnect_delay), reconnect_delay and fast_io_fail_tmo as given, and the
// command timeouts. A change takes effect at the next use: the running
// reconnect loop re-reads the limit and the delay before every attempt,
// fast_io_fail_tmo is armed on the next entry into CONNECTING, admin_timeout
// bounds the next admin command, io_timeout the next I/O command.
type tunables struct {
	maxReconnects  int // -1: forever
	reconnectDelay time.Duration
	fastIOFail     time.Duration // negative: off
	ioTimeout      time.Duration
	adminTimeout   time.Duration
}

func newTunables(o fabrics.Options, cfg config) *tunables {
	return &tunables{maxReconnects: maxReconnects(o), reconnectDelay: o.ReconnectDelay, fastIOFail: o.FastIOFailTmo,
		ioTimeout: cfg.ioTimeout, adminTimeout: cfg.adminTimeout}
}

// update applies fn to a copy of the tunables (copy-on-write: readers take
// a snapshot without a lock).
func (c *Controller) update(fn func(t *tunables)) {
	c.tunMu.Lock()
	defer c.tunMu.Unlock()
	t := *c.tun.Load()
	fn(&t)
	c.tun.Store(&t)
}

func (c *Controller) tunable() *tunables { return c.tun.Load() }

// SetCtrlLossTmo is ctrl_loss_tmo's store (nvme_ctrl_loss_tmo_store): a
// negative d reconnects forever, else the controller gives up after
// ceil(d / reconnect_delay) attempts.
func (c *Controller) SetCtrlLossTmo(d time.Duration) {
	c.update(func(t *tunables) {
		if d < 0 {
			t.maxReconnects = -1
			return
		}
		t.maxReconnects = maxReconnects(fabrics.Options{CtrlLossTmo: d, ReconnectDelay: t.reconnectDelay})
	})
}

// SetReconnectDelay is reconnect_delay's store; the number of attempts
// stays, so ctrl_loss_tmo reads back scaled, as in Linux.
func (c *Controller) SetReconnectDelay(d time.Duration) {
	c.update(func(t *tunables) { t.reconnectDelay = d })
}

// SetFastIOFailTmo is fast_io_fail_tmo's store: negative turns it off.
func (c *Controller) SetFastIOFailTmo(d time.Duration) {
	c.update(func(t *tunables) {
		if d < 0 {
			d = fabrics.Off
		}
		t.fastIOFail = d
	})
}

// SetIOTimeout is io_timeout's store (positive): new I/O queues get it,
// and the live association's I/O queues take it at once (nvme_set_io_timeout updates every namespace queue).
func (c *Controller) SetIOTimeout(d time.Duration) {
	c.update(func(t *tunables) { t.ioTimeout = d })
	if a := c.cur.Load(); a != nil {
		for _, q := range a.io {
			q.SetCmdTimeout(d)
		}
	}
}

// SetAdminTimeout is admin_timeout's store (positive).
func (c *Controller) SetAdminTimeout(d time.Duration) {
	c.update(func(t *tunables) { t.adminTimeout = d })
}

// IOTimeout is the I/O command timeout (sysfs io_timeout).
func (c *Controller) IOTimeout() time.Duration { return c.tunable().ioTimeout }

// AdminTimeout is the admin command timeout (sysfs admin_timeout).
func (c *Controller) AdminTimeout() time.Duration { return c.tunable().adminTimeout }
