// Command mpathfs is a userspace NVMe-over-TCP multipath initiator served as
// a FUSE filesystem: one file per multipath namespace and a sysfs-like tree
// of subsystems, controllers, namespaces and paths.
//
//	mpathfs mount [-c CONFIG.toml] [--connect OPTS]... [--discover OPTS]... [-o FUSEOPTS] MOUNTPOINT
//	mpathfs demo [--ports 4420,4421] [--size 256M] MOUNTPOINT
//	mpathfs target -c nvmet.json [--control DIR]
//	mpathfs list-subsys [-v] [-o json] [MOUNTPOINT]
//	mpathfs show-topology [-v] [-r namespace|ctrl|multipath] [-o json] [MOUNTPOINT]
//	mpathfs discover traddr=ADDR[,trsvcid=PORT,...]
//	mpathfs top [-d SECONDS] [-o json] [MOUNTPOINT]
//	mpathfs connect|connect-all MOUNTPOINT OPTS, mpathfs disconnect MOUNTPOINT -n NQN|-d nvmeX
//	mpathfs resv-register|resv-acquire|resv-release|resv-report NSFILE [nvme-cli options]
//	mpathfs CONFIG.toml MOUNTPOINT [-o OPTS]   (as mount.fuse3 helper: mount -t fuse.mpathfs)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: mpathfs <command> [options]

commands:
  mount [-c CONFIG.toml] [--connect OPTS]... [--discover OPTS]... [-o FUSEOPTS] [--metrics-listen HOST:PORT] MOUNTPOINT
        connect to NVMe/TCP controllers and serve the multipath tree at MOUNTPOINT
  demo [--ports 4420,4421] [--size 256M] [--iopolicy P] [--kato S] [--nr-io-queues N] [--metrics-listen HOST:PORT] MOUNTPOINT
        start the embedded target on loopback (two paths) and mount it
  target -c nvmet.json [--control DIR]
        run the userspace NVMe/TCP target from an nvmetcli JSON config
  list-subsys [-v] [-o json] [MOUNTPOINT]
  show-topology [-v] [-r namespace|ctrl|multipath] [-o json] [MOUNTPOINT]
        print the mounted tree like nvme-cli
  connect MOUNTPOINT traddr=ADDR,trsvcid=PORT,nqn=NQN[,...]
  disconnect MOUNTPOINT (-n NQN | -d nvmeX[,nvmeY])
  connect-all MOUNTPOINT traddr=ADDR[,trsvcid=8009,...]
        add or remove controllers of a running mount (MOUNTPOINT/dev/nvme-fabrics, delete_controller)
  top [-d SECONDS] [-o json] [MOUNTPOINT]
        live view of controllers, paths and namespaces (q or Ctrl-C quits; / reads the kernel's /sys)
  resv-register NSFILE [--crkey K] [--nrkey K] [--rrega 0|1|2] [--iekey]
  resv-acquire NSFILE [--crkey K] [--prkey K] [--rtype T] [--racqa 0|1|2] [--iekey]
  resv-release NSFILE [--crkey K] [--rtype T] [--rrela 0|1] [--iekey]
  resv-report NSFILE [-o json]
        persistent reservations on a namespace file, like nvme-cli's resv-*
  discover [--connect] traddr=ADDR[,trsvcid=PORT,...]
        print a discovery log like 'nvme discover'
  ramfs [--size 1G] MOUNTPOINT
        a RAM file served by go-fuse with the same FUSE knobs (the FUSE ceiling for benchmarks)

  mpathfs CONFIG.toml MOUNTPOINT [-o OPTS] is the mount.fuse3 helper form
  (mount -t fuse.mpathfs CONFIG.toml MOUNTPOINT, or an /etc/fstab line).
`)
}

func main() {
	reexecWithSysmonAwake(os.Args, os.Stderr)
	stop := startProfile()
	rc := run(os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(rc)
}

// errUsage makes run print the usage and exit 2.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "mount":
		err = cmdMount(ctx, rest, stderr)
	case "demo":
		err = cmdDemo(ctx, rest, stdout, stderr)
	case "target":
		err = cmdTarget(ctx, rest, stderr)
	case "list-subsys":
		err = cmdListSubsys(rest, stdout)
	case "show-topology":
		err = cmdShowTopology(rest, stdout)
	case "resv-register":
		err = cmdResvRegister(rest, stdout)
	case "resv-acquire":
		err = cmdResvAcquire(rest, stdout)
	case "resv-release":
		err = cmdResvRelease(rest, stdout)
	case "resv-report":
		err = cmdResvReport(rest, stdout)
	case "discover":
		err = cmdDiscover(ctx, rest, stdout, stderr)
	case "top":
		err = cmdTop(ctx, rest, stdout, stderr)
	case "connect":
		err = cmdConnect(rest, stdout, stderr)
	case "disconnect":
		err = cmdDisconnect(ctx, rest, stdout, stderr)
	case "connect-all":
		err = cmdConnectAll(ctx, rest, stdout, stderr)
	case "ramfs":
		err = cmdRAMFS(ctx, rest, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		if isMountHelperForm(args) {
			err = cmdMountHelper(ctx, args, stderr)
			break
		}
		fmt.Fprintf(stderr, "mpathfs: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "mpathfs: %v\n", err)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "mpathfs: %v\n", err)
		return 1
	}
}

// isMountHelperForm recognises "mpathfs SOURCE MOUNTPOINT [-o OPTS]" as
// run by mount.fuse3 for "mount -t fuse.mpathfs SOURCE MOUNTPOINT".
func isMountHelperForm(args []string) bool {
	if len(args) < 2 || strings.HasPrefix(args[0], "-") {
		return false
	}
	st, err := os.Stat(args[1])
	return err == nil && st.IsDir() && (strings.HasSuffix(args[0], ".toml") || fileExists(args[0]))
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
