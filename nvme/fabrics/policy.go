package fabrics

import (
	"fmt"
	"syscall"
	"time"
)

// MaxReconnects is the kernel's max_reconnects: ceil(ctrl_loss_tmo /
// reconnect_delay) attempts, -1 = forever.
func (o Options) MaxReconnects() int {
	if o.CtrlLossTmo < 0 {
		return -1
	}
	d := o.ReconnectDelayOrDefault()
	return int((o.CtrlLossTmo + d - 1) / d)
}

// ReconnectDelayOrDefault is reconnect_delay, or 1 s when unset.
func (o Options) ReconnectDelayOrDefault() time.Duration {
	if o.ReconnectDelay <= 0 {
		return time.Second
	}
	return o.ReconnectDelay
}

// SameController reports whether o and p name the same controller
// (nvmf_ip_options_match plus nvmf_ctlr_matches_baseopts): same traddr,
// trsvcid, subsystem NQN, host_traddr and host_iface (an option given on
// one side only differs), and host NQN and host ID equal where both are
// given.
func (o Options) SameController(p Options) bool {
	if o.TrAddr != p.TrAddr || o.TrSvcID != p.TrSvcID || o.SubsysNQN != p.SubsysNQN {
		return false
	}
	if o.HostNQN != "" && p.HostNQN != "" && o.HostNQN != p.HostNQN {
		return false
	}
	if o.HostID != ([16]byte{}) && p.HostID != ([16]byte{}) && o.HostID != p.HostID {
		return false
	}
	// nvmf_ip_options_match: host_traddr and host_iface match only if
	// both give the same value or neither gives one.
	return o.HostTrAddr == p.HostTrAddr && o.HostIface == p.HostIface
}

// CheckDuplicate refuses a connect to a controller that is already
// connected (nvme_tcp_existing_controller), unless duplicate_connect is
// set: the error wraps EALREADY, as the kernel's write to
// /dev/nvme-fabrics fails.
func CheckDuplicate(o Options, existing []Options) error {
	if o.DuplicateConnect {
		return nil
	}
	for _, e := range existing {
		if o.SameController(e) {
			return fmt.Errorf("found same controller, use duplicate_connect to connect anyway (%s, nqn %s): %w",
				o.Address(), o.SubsysNQN, syscall.EALREADY)
		}
	}
	return nil
}
