// Package demo builds the embedded demonstration setup: our NVMe/TCP target
// on loopback with one subsystem, two RAM namespaces in two ANA groups and
// two ports (two paths), and the connect options that reach it. The
// `mpathfs demo` command and the end-to-end tests share it.
package demo

import (
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/target"
)

// NQN is the demo subsystem's NQN.
const NQN = "nqn.2026-11.io.mpathfs:demo"

// Config sizes the demo.
type Config struct {
	// Addrs are the listen addresses of the ports, one path each
	// (default 127.0.0.1:4420 and 127.0.0.1:4421; use port 0 for any).
	Addrs []string
	// NSSize is the size of each namespace in bytes (default 256 MiB).
	NSSize int64
	// Namespaces is the number of namespaces (default 2); namespace N is
	// in ANA group N.
	Namespaces int
	// BlockSize is the LBA size (default 512).
	BlockSize int
	// MDTS is the target's Identify MDTS (0: no limit).
	MDTS uint8
	// MetadataNS lists namespaces formatted with 8 bytes of metadata per
	// block (reported only: hosts over TCP give them capacity 0).
	MetadataNS []uint32
	// Private presents the namespaces as not shared (NMIC bit 0 clear).
	Private bool
	// CRDT are the Command Retry Delay Times (100 ms units) Identify reports.
	CRDT [3]uint16
}

func (c Config) withDefaults() Config {
	if len(c.Addrs) == 0 {
		c.Addrs = []string{"127.0.0.1:4420", "127.0.0.1:4421"}
	}
	if c.NSSize == 0 {
		c.NSSize = 256 << 20
	}
	if c.Namespaces == 0 {
		c.Namespaces = 2
	}
	if c.BlockSize == 0 {
		c.BlockSize = 512
	}
	return c
}

// Setup is a running demo target.
type Setup struct {
	Target *target.Target
	Subsys *target.Subsystem
	Ports  []*target.Port
}

// Start starts the demo target.
func Start(cfg Config, log hclog.Logger) (*Setup, error) {
	cfg = cfg.withDefaults()
	t := target.New(log)
	t.SetDiscoveryAllPorts(true) // one discovery finds both paths
	s, err := t.AddSubsystem(target.SubsystemConfig{NQN: NQN, Model: "mpathfs demo", Serial: "mpathfs-demo-0001", Firmware: "1.0", AllowAnyHost: true, CRDT: cfg.CRDT})
	if err != nil {
		t.Close()
		return nil, err
	}
	for i := 1; i <= cfg.Namespaces; i++ {
		nc := target.NamespaceConfig{NSID: uint32(i), Size: cfg.NSSize, BlockSize: cfg.BlockSize, ANAGroup: uint32(i), Private: cfg.Private}
		if slices.Contains(cfg.MetadataNS, uint32(i)) {
			nc.MetadataSize = 8
		}
		// Fixed identifiers, like the kernel-target harness: runs compare.
		copy(nc.UUID[:], []byte{0x6d, 0x70, 0x61, 0x74, 0x68, 0x66, 0x40, 0x00, 0x80, 0, 0, 0, 0, 0, 0, byte(i)})
		copy(nc.NGUID[:], []byte{0x6d, 0x70, 0x61, 0x74, 0x68, 0x66, 0x73, 0x00, 0, 0, 0, 0, 0, 0, 0, byte(i)})
		if _, err := s.AddNamespace(nc); err != nil {
			t.Close()
			return nil, fmt.Errorf("namespace %d: %w", i, err)
		}
	}
	setup := &Setup{Target: t, Subsys: s}
	for i, a := range cfg.Addrs {
		p, err := t.AddPort(target.PortConfig{ID: uint16(i + 1), Addr: a, MDTS: cfg.MDTS})
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("port %d (%s): %w", i+1, a, err)
		}
		if err := p.LinkSubsystem(NQN); err != nil {
			t.Close()
			return nil, err
		}
		setup.Ports = append(setup.Ports, p)
	}
	return setup, nil
}

// Options returns connect options for every port, on top of base (which
// carries the host identity and timeouts).
func (s *Setup) Options(base fabrics.Options) []fabrics.Options {
	var out []fabrics.Options
	for _, p := range s.Ports {
		o := base
		o.Transport = "tcp"
		a := p.Addr()
		o.TrAddr = a.IP.String()
		o.TrSvcID = strconv.Itoa(a.Port)
		o.SubsysNQN = NQN
		out = append(out, o)
	}
	return out
}

// Close stops the target.
func (s *Setup) Close() error { return s.Target.Close() }

// PortFree reports whether addr can be listened on (for picking defaults).
func PortFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
