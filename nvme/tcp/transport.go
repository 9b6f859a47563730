package tcp

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// Transport is the NVMe/TCP fabrics.Transport the host core dials queues
// with.
type Transport struct {
	// ICRespTimeout bounds the wait for ICResp (0: DefaultICRespTimeout).
	ICRespTimeout time.Duration
}

var (
	_ fabrics.Transport    = Transport{}
	_ fabrics.Queue        = (*Queue)(nil)
	_ fabrics.SilentExecer = (*Queue)(nil)
)

// Dial connects one NVMe/TCP queue.
func (t Transport) Dial(ctx context.Context, cfg fabrics.QueueConfig) (fabrics.Queue, error) {
	q, err := Dial(ctx, Config{
		Addr:          cfg.Addr,
		HostTrAddr:    cfg.HostTrAddr,
		HostIface:     cfg.HostIface,
		Tos:           max(cfg.Tos, 0),
		HdrDigest:     cfg.HdrDigest,
		DataDigest:    cfg.DataDigest,
		Depth:         cfg.Depth,
		InCapsuleMax:  cfg.InCapsuleMax,
		ICRespTimeout: t.ICRespTimeout,
		CmdTimeout:    cfg.CmdTimeout,
		Clock:         cfg.Clock,
		Log:           cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}

// dialer binds the source address (host_traddr) and the interface
// (host_iface, SO_BINDTODEVICE) and sets IP_TOS (tos), as
// nvme_tcp_alloc_queue does.
func dialer(cfg Config) (*net.Dialer, error) {
	d := &net.Dialer{}
	if cfg.HostTrAddr != "" {
		ip := net.ParseIP(cfg.HostTrAddr)
		if ip == nil {
			return nil, fmt.Errorf("nvme-tcp: invalid host_traddr %q: %w", cfg.HostTrAddr, syscall.EINVAL)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	if cfg.HostIface != "" {
		if _, err := net.InterfaceByName(cfg.HostIface); err != nil {
			return nil, fmt.Errorf("nvme-tcp: invalid interface passed: %s: %w", cfg.HostIface, syscall.ENODEV)
		}
	}
	if cfg.HostIface == "" && cfg.Tos <= 0 {
		return d, nil
	}
	d.Control = func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if cfg.HostIface != "" {
				if serr = unix.BindToDevice(int(fd), cfg.HostIface); serr != nil {
					serr = fmt.Errorf("SO_BINDTODEVICE %s: %w", cfg.HostIface, serr)
					return
				}
			}
			if cfg.Tos > 0 {
				if network == "tcp6" {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_TCLASS, cfg.Tos)
				} else {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, cfg.Tos)
				}
				if serr != nil {
					serr = fmt.Errorf("IP_TOS %d: %w", cfg.Tos, serr)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
	return d, nil
}
