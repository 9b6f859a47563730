package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/mpathfs/mpathfs/config"
	"github.com/mpathfs/mpathfs/internal/demo"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/target"
)

// cmdDemo starts the embedded target on loopback (one subsystem, two RAM
// namespaces, two ports = two paths), connects to it over real TCP and
// mounts the tree: README's first command.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ports := fs.String("ports", "4420,4421", "TCP ports of the two paths on 127.0.0.1 (0 = any free port)")
	size := fs.String("size", "256M", "size of each namespace (RAM)")
	kato := fs.Int("kato", 5, "keep_alive_tmo in seconds")
	reconnect := fs.Int("reconnect-delay", 2, "reconnect_delay in seconds")
	policy := fs.String("iopolicy", "numa", "initial iopolicy: numa, round-robin, queue-depth, service-time")
	queues := fs.Int("nr-io-queues", 2, "I/O queues (TCP connections) per controller")
	var fuseOpts multiFlag
	fs.Var(&fuseOpts, "o", "FUSE options (see mount)")
	metricsListen := fs.String("metrics-listen", "", "serve Prometheus /metrics on HOST:PORT")
	var lf logFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: demo [--ports 4420,4421] [--size 256M] MOUNTPOINT", errUsage)
	}
	nsSize, err := target.ParseSize(*size)
	if err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	portsSet := false
	fs.Visit(func(f *flag.Flag) { portsSet = portsSet || f.Name == "ports" })
	var addrs []string
	for _, p := range strings.Split(*ports, ",") {
		a := net.JoinHostPort("127.0.0.1", strings.TrimSpace(p))
		if !portsSet && !demo.PortFree(a) {
			fmt.Fprintf(stderr, "mpathfs demo: %s is in use, taking a free port\n", a)
			a = "127.0.0.1:0"
		}
		addrs = append(addrs, a)
	}
	cfgText := fmt.Sprintf("[multipath]\niopolicy = %q\n", *policy)
	cfg, err := config.Parse("demo", []byte(cfgText))
	if err != nil {
		return err
	}
	if err := applyFUSEOpts(&cfg.FUSE, fuseOpts); err != nil {
		return err
	}
	if err := config.CheckListen(*metricsListen); err != nil {
		return fmt.Errorf("--metrics-listen: %w", err)
	}
	cfg.Metrics.Listen = *metricsListen
	log := lf.logger(stderr, cfg.Log.Level, cfg.Log.Format)
	setup, err := demo.Start(demo.Config{Addrs: addrs, NSSize: nsSize}, log.Named("target"))
	if err != nil {
		return fmt.Errorf("demo target: %w", err)
	}
	defer setup.Close()
	base := fabrics.DefaultOptions()
	base.HostNQN, base.HostID = cfg.Host.HostNQN, cfg.Host.HostID
	base.KeepAliveTmo = secs(*kato)
	base.ReconnectDelay = secs(*reconnect)
	base.NrIOQueues = *queues
	cfg.Controllers = setup.Options(base)
	dir := fs.Arg(0)
	return serve(ctx, cfg, dir, lf, stderr, func() {
		p1, p2 := setup.Ports[0].Addr(), setup.Ports[len(setup.Ports)-1].Addr()
		fmt.Fprintf(stdout, `mpathfs demo: target %s on %s and %s (two paths), mounted at %s

  ls %[4]s                                   # nvme0n1 nvme0n2: one file per multipath namespace
  dd if=/dev/urandom of=%[4]s/nvme0n1 bs=1M count=16 oflag=direct conv=notrunc
  cat %[4]s/sys/class/nvme-subsystem/nvme-subsys0/iopolicy
  echo round-robin > %[4]s/sys/class/nvme-subsystem/nvme-subsys0/iopolicy
  cat %[4]s/sys/block/nvme0c*n1/ana_state %[4]s/sys/class/nvme/nvme*/state
  mpathfs list-subsys %[4]s

Ctrl-C (or umount %[4]s) unmounts, flushes and shuts the controllers down.
`, demo.NQN, p1, p2, dir)
	})
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }
