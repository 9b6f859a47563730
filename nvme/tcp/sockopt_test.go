package tcp

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDialerSocketOptions (issue 8, behaviour 6): host_traddr binds the
// source address, host_iface binds the socket to the interface
// (SO_BINDTODEVICE), tos sets IP_TOS, as nvme_tcp_alloc_queue does; an
// unknown interface fails with ENODEV ("invalid interface passed").
func TestDialerSocketOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	d, err := dialer(Config{HostTrAddr: "127.0.0.2", HostIface: "lo", Tos: 0x28})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if ip := conn.LocalAddr().(*net.TCPAddr).IP.String(); ip != "127.0.0.2" {
		t.Errorf("source address %s, want host_traddr 127.0.0.2", ip)
	}
	rc, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var tos int
	var dev string
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if tos, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS); serr != nil {
			return
		}
		dev, serr = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if tos != 0x28 {
		t.Errorf("IP_TOS %#x, want 0x28", tos)
	}
	if strings.TrimRight(dev, "\x00") != "lo" {
		t.Errorf("SO_BINDTODEVICE %q, want lo", dev)
	}

	_, err = dialer(Config{HostIface: "nosuch0"})
	if !errors.Is(err, syscall.ENODEV) || !strings.Contains(err.Error(), "invalid interface passed: nosuch0") {
		t.Errorf("unknown interface: %v, want ENODEV with 'invalid interface passed'", err)
	}
	if _, err := dialer(Config{HostTrAddr: "not-an-ip"}); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("bad host_traddr: %v, want EINVAL", err)
	}
}
