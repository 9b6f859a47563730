package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/config"
	"github.com/mpathfs/mpathfs/fusefs"
	"github.com/mpathfs/mpathfs/internal/daemon"
	"github.com/mpathfs/mpathfs/internal/memlimit"
	"github.com/mpathfs/mpathfs/internal/metrics"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// mountFlags are the flags of `mpathfs mount`.
type mountFlags struct {
	config   string
	connect  multiFlag
	discover multiFlag
	fuseOpts multiFlag
	metrics  string
	log      logFlags
}

func (f *mountFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "c", "", "configuration file (TOML)")
	fs.Var(&f.connect, "connect", "connect a controller: kernel fabrics options, e.g. traddr=10.0.0.1,trsvcid=4420,nqn=NQN (repeatable)")
	fs.Var(&f.discover, "discover", "connect every entry of a discovery log: traddr=ADDR[,trsvcid=8009][,persistent] (repeatable; persistent follows discovery-log-change AENs)")
	fs.Var(&f.fuseOpts, "o", "FUSE options: allow_other, debug, go_fuse_loop, max_write=N, max_background=N, max_readers=N, gomaxprocs=N, memory_limit_mib=N (comma separated, repeatable)")
	fs.StringVar(&f.metrics, "metrics-listen", "", "serve Prometheus /metrics on HOST:PORT (overrides [metrics] listen)")
	f.log.register(fs)
}

// load builds the configuration from -c, --connect, --discover and -o.
func (f *mountFlags) load() (*config.Config, error) {
	var cfg *config.Config
	if f.config != "" {
		c, err := config.Load(f.config)
		if err != nil {
			return nil, err
		}
		cfg = c
	} else {
		c, err := config.Parse("(defaults)", nil)
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	base := fabrics.DefaultOptions()
	base.HostNQN, base.HostID = cfg.Host.HostNQN, cfg.Host.HostID
	base.DHCHAPSecret = cfg.Host.DHCHAPSecret
	for _, s := range f.connect {
		if !strings.Contains(s, "transport=") {
			s = "transport=tcp," + s
		}
		o, err := fabrics.ParseOptions(s, base)
		if err != nil {
			return nil, fmt.Errorf("--connect %q: %w", fabrics.RedactSecrets(s), err)
		}
		if err := o.Validate(); err != nil {
			return nil, fmt.Errorf("--connect %q: %w", fabrics.RedactSecrets(s), err)
		}
		cfg.Controllers = append(cfg.Controllers, o)
	}
	for _, s := range f.discover {
		db := base
		db.TrSvcID = fabrics.DiscoveryPort
		if !strings.Contains(s, "transport=") {
			s = "transport=tcp," + s
		}
		if !strings.Contains(s, "nqn=") {
			s += ",nqn=" + nvme.DiscoveryNQN
		}
		// "persistent" is ours, not a kernel option: keep the discovery
		// controller and follow discovery-log-change AENs.
		var rest []string
		persistent := false
		for _, kv := range strings.Split(s, ",") {
			if kv == "persistent" {
				persistent = true
				continue
			}
			rest = append(rest, kv)
		}
		o, err := fabrics.ParseOptions(strings.Join(rest, ","), db)
		if err != nil {
			return nil, fmt.Errorf("--discover %q: %w", fabrics.RedactSecrets(s), err)
		}
		cfg.Discovery = append(cfg.Discovery, config.Discovery{Options: o, Persistent: persistent})
	}
	if err := applyFUSEOpts(&cfg.FUSE, f.fuseOpts); err != nil {
		return nil, err
	}
	if f.metrics != "" {
		if err := config.CheckListen(f.metrics); err != nil {
			return nil, fmt.Errorf("--metrics-listen: %w", err)
		}
		cfg.Metrics.Listen = f.metrics
	}
	return cfg, nil
}

// applyFUSEOpts applies -o options; mount(8) style options that only
// matter to mount.fuse3 (rw, dev, suid, ...) are accepted and ignored.
func applyFUSEOpts(f *config.FUSE, opts []string) error {
	for _, group := range opts {
		for _, o := range strings.Split(group, ",") {
			k, v, hasV := strings.Cut(o, "=")
			num := func(lo, hi int) (int, error) {
				n, err := strconv.Atoi(v)
				if err != nil || !hasV || n < lo || n > hi {
					return 0, fmt.Errorf("-o %s: want a number %d..%d", o, lo, hi)
				}
				return n, nil
			}
			var err error
			switch k {
			case "":
			case "allow_other":
				f.AllowOther = true
			case "debug":
				f.Debug = true
			case "go_fuse_loop":
				f.GoFuseLoop = true
			case "max_write":
				f.MaxWrite, err = num(4096, 1<<20)
			case "max_background":
				f.MaxBackground, err = num(1, 65535)
			case "max_readers":
				f.MaxReaders, err = num(0, 1024)
			case "gomaxprocs":
				f.GoMaxProcs, err = num(0, 1024)
			case "memory_limit_mib":
				f.MemoryLimitMiB, err = num(0, 1<<20)
			case "rw", "ro", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "auto", "noauto", "user", "nouser", "defaults", "_netdev", "nofail", "x-systemd.automount":
			default:
				if strings.HasPrefix(k, "x-") {
					continue
				}
				return fmt.Errorf("-o %s: unknown FUSE option", o)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func cmdMount(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mount", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var mf mountFlags
	mf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: mount [-c CONFIG] [--connect OPTS]... [--discover OPTS]... [-o OPTS] MOUNTPOINT", errUsage)
	}
	cfg, err := mf.load()
	if err != nil {
		return err
	}
	if len(cfg.Controllers) == 0 && len(cfg.Discovery) == 0 {
		return fmt.Errorf("%w: no controllers: give -c CONFIG, --connect or --discover", errUsage)
	}
	return serve(ctx, cfg, fs.Arg(0), mf.log, stderr, nil)
}

// serve connects, mounts and serves until ctx ends or the tree is
// unmounted. ready, if not nil, is called once the mount is usable.
func serve(ctx context.Context, cfg *config.Config, dir string, lf logFlags, stderr io.Writer, ready func()) error {
	log := lf.logger(stderr, cfg.Log.Level, cfg.Log.Format)
	setGoMaxProcs(cfg.FUSE, log)
	log.Debug("memory limit", "bytes", memlimit.SetLimit(cfg.FUSE.MemoryLimitMiB))
	d := daemon.New(cfg, log)
	if err := d.ConnectAll(ctx); err != nil {
		_ = d.Close(context.Background())
		return err
	}
	opts := d.FUSEOptions()
	opts.DirectMount = true
	m, err := d.Mount(dir, opts)
	if err != nil {
		_ = d.Close(context.Background())
		return err
	}
	log.Info("mounted", "dir", dir, "namespaces", len(d.Devices()))
	if cfg.Metrics.Listen != "" {
		ms, err := metrics.Listen(cfg.Metrics.Listen, d.Tree(), log.Named("metrics"))
		if err != nil {
			_ = m.Unmount()
			_ = d.Close(context.Background())
			return err
		}
		defer func() { _ = ms.Close(context.Background()) }()
	}
	if ready != nil {
		ready()
	}
	return d.Serve(ctx, m)
}

func configDefaults() (*config.Config, error) { return config.Parse("(defaults)", nil) }

// fuseOptions turns the [fuse] table into fusefs options (as the daemon
// does), for the ramfs baseline.
func fuseOptions(f config.FUSE) fusefs.Options {
	return fusefs.Options{MaxWrite: f.MaxWrite, MaxBackground: f.MaxBackground, Readers: f.MaxReaders,
		AllowOther: f.AllowOther, Debug: f.Debug, DirectMount: true, FsName: "mpathfs-ramfs"}
}

// setGoMaxProcs applies [fuse] gomaxprocs (0: 4 x CPUs, at least 8), unless
// the GOMAXPROCS environment variable is set.
func setGoMaxProcs(f config.FUSE, log hclog.Logger) {
	if os.Getenv("GOMAXPROCS") != "" && f.GoMaxProcs == 0 {
		return
	}
	n := f.GoMaxProcs
	if n == 0 {
		n = max(8, 4*runtime.NumCPU())
	}
	runtime.GOMAXPROCS(n)
	if log != nil {
		log.Debug("scheduler", "gomaxprocs", n)
	}
}
