// Command chaosrun runs one chaos run (package chaos) and prints its
// summary line; it exits 1 when the run found a verify error, an EIO or
// any other failure. etc/chaos.sh builds mpathfs and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mpathfs/mpathfs/internal/chaos"
)

func main() {
	var cfg chaos.Config
	var kinds string
	flag.StringVar(&cfg.Bin, "bin", "mpathfs", "the mpathfs binary")
	flag.StringVar(&cfg.Dir, "dir", "/tmp/mpathfs-chaos", "work directory (logs, fio output, mount point)")
	flag.Uint64Var(&cfg.Seed, "seed", uint64(time.Now().UnixNano()), "fault schedule seed")
	flag.DurationVar(&cfg.Duration, "duration", 90*time.Second, "length of the run")
	flag.DurationVar(&cfg.Gap, "gap", 2*time.Second, "mean time between two faults of one kind (kinds overlap)")
	flag.StringVar(&kinds, "kinds", "", "comma-separated fault kinds (default all: "+joinKinds()+")")
	flag.IntVar(&cfg.NSMiB, "ns-mib", 64, "namespace size in MiB")
	flag.IntVar(&cfg.KATO, "kato", 2, "keep_alive_tmo in seconds")
	flag.IntVar(&cfg.DelayedRemoval, "delayed-removal", 10, "delayed_removal_secs")
	flag.Parse()
	if kinds != "" {
		for _, k := range strings.Split(kinds, ",") {
			cfg.Kinds = append(cfg.Kinds, chaos.Kind(k))
		}
	}
	cfg.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	fmt.Println(sum)
	for _, e := range sum.RunErrors {
		fmt.Fprintln(os.Stderr, "chaos: error:", e)
	}
	if !sum.OK() {
		fmt.Fprintf(os.Stderr, "chaos: logs in %s (mount.log, target.log, fio.err)\n", cfg.Dir)
		os.Exit(1)
	}
}

func joinKinds() string {
	var s []string
	for _, k := range chaos.AllKinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ",")
}
