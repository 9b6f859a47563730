package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mpathfs/mpathfs/internal/top"
)

// cmdTop is `mpathfs top [-d SECONDS] [-o json] [MOUNTPOINT]`; MOUNTPOINT
// "/" reads the kernel's /sys.
func cmdTop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	fs.SetOutput(stderr)
	delay := fs.Float64("d", 1, "refresh interval in seconds")
	fs.Float64Var(delay, "interval", 1, "refresh interval in seconds (same as -d)")
	format := fs.String("o", "normal", "output: normal (live view) or json (one snapshot over one interval)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 1 || *delay <= 0 || (*format != "normal" && *format != "json") {
		return fmt.Errorf("%w: top [-d SECONDS] [-o normal|json] [MOUNTPOINT]", errUsage)
	}
	root := defaultMount
	if fs.NArg() == 1 {
		root = fs.Arg(0)
	}
	interval := time.Duration(*delay * float64(time.Second))
	if *format == "json" {
		v, err := top.Snapshot(ctx, root, interval)
		if err != nil {
			return err
		}
		return v.WriteJSON(stdout)
	}
	out, ok := stdout.(*os.File)
	if !ok {
		return fmt.Errorf("top: the live view needs a file for output")
	}
	return top.Run(ctx, root, interval, os.Stdin, out)
}
