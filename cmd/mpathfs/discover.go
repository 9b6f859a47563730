package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/host"
	"github.com/mpathfs/mpathfs/nvme/tcp"
)

var (
	trTypes   = map[uint8]string{1: "rdma", 2: "fc", 3: "tcp", 254: "loop"}
	adrFams   = map[uint8]string{1: "ipv4", 2: "ipv6", 3: "infiniband", 4: "fibre-channel"}
	subTypes  = map[uint8]string{1: "discovery subsystem referral", 2: "nvme subsystem", 3: "current discovery subsystem"}
	secTypes  = map[uint8]string{0: "none", 1: "tls1.2", 2: "tls1.3"}
	treqNames = map[uint8]string{0: "not specified", 1: "required", 2: "not required"}
)

func name(m map[uint8]string, v uint8) string {
	if s, ok := m[v]; ok {
		return s
	}
	return "unrecognized"
}

// readDiscoveryLog reads the log of the discovery controller that the
// option string s names (transport given; trsvcid defaults to 8009, nqn to
// the discovery NQN), connecting with this host's identity.
func readDiscoveryLog(ctx context.Context, s string, log hclog.Logger) (*nvme.DiscoveryLog, error) {
	base := fabrics.DefaultOptions()
	nqn, id, err := fabrics.DefaultHostIdentity()
	if err != nil {
		return nil, err
	}
	base.HostNQN, base.HostID = nqn, id
	base.TrSvcID = fabrics.DiscoveryPort
	if !strings.Contains(s, "nqn=") {
		s += ",nqn=" + nvme.DiscoveryNQN
	}
	o, err := fabrics.ParseOptions(s, base)
	if err != nil {
		return nil, err
	}
	return host.Discover(ctx, o, log, host.WithTransport(tcp.Transport{}))
}

// cmdDiscover prints a discovery log in the shape of `nvme discover`.
func cmdDiscover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("discover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf logFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: discover traddr=ADDR[,trsvcid=PORT,...]", errUsage)
	}
	dl, err := readDiscoveryLog(ctx, withTransport(fs.Arg(0)), lf.logger(stderr, "warn", "text"))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nDiscovery Log Number of Records %d, Generation counter %d\n", len(dl.Entries), dl.GenCtr)
	for i, e := range dl.Entries {
		fmt.Fprintf(stdout, "=====Discovery Log Entry %d======\n", i)
		fmt.Fprintf(stdout, "trtype:  %s\n", name(trTypes, e.TrType))
		fmt.Fprintf(stdout, "adrfam:  %s\n", name(adrFams, e.AdrFam))
		fmt.Fprintf(stdout, "subtype: %s\n", name(subTypes, e.SubType))
		fmt.Fprintf(stdout, "treq:    %s\n", name(treqNames, e.TReq&3))
		fmt.Fprintf(stdout, "portid:  %d\n", e.PortID)
		fmt.Fprintf(stdout, "trsvcid: %s\n", e.TrSvcID)
		fmt.Fprintf(stdout, "subnqn:  %s\n", e.SubNQN)
		fmt.Fprintf(stdout, "traddr:  %s\n", e.TrAddr)
		fmt.Fprintf(stdout, "eflags:  %s\n", eflags(e.EFlags))
		if e.TrType == 3 {
			fmt.Fprintf(stdout, "sectype: %s\n", name(secTypes, e.SecType))
		}
	}
	return nil
}

func eflags(f uint16) string {
	var parts []string
	if f&1 != 0 {
		parts = append(parts, "duplicate discovery information")
	}
	if f&2 != 0 {
		parts = append(parts, "explicit discovery connections")
	}
	if f&4 != 0 {
		parts = append(parts, "connectivity")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
