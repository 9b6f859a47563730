package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/mpathfs/mpathfs/internal/ramfs"
	"github.com/mpathfs/mpathfs/nvme/target"
)

// cmdRAMFS serves one RAM file ("ram") through go-fuse with the same knobs
// as the namespace files: the FUSE ceiling the benchmarks compare against.
func cmdRAMFS(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("ramfs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	size := fs.String("size", "1G", "size of the RAM file")
	var fuseOpts multiFlag
	fs.Var(&fuseOpts, "o", "FUSE options (see mount)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: ramfs [--size 1G] [-o OPTS] MOUNTPOINT", errUsage)
	}
	n, err := target.ParseSize(*size)
	if err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	cfg, err := configDefaults()
	if err != nil {
		return err
	}
	if err := applyFUSEOpts(&cfg.FUSE, fuseOpts); err != nil {
		return err
	}
	setGoMaxProcs(cfg.FUSE, nil) // the same scheduler setting as the daemon: a fair ceiling
	opts := fuseOptions(cfg.FUSE)
	srv, err := ramfs.Mount(fs.Arg(0), n, opts)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	select {
	case <-ctx.Done():
		_ = srv.Unmount()
		<-done
	case <-done:
	}
	return nil
}
