package main

import (
	"context"
	"errors"
	"io"
)

// cmdRAMFS serves one RAM file through go-fuse with the same knobs as the
// namespace files: the FUSE ceiling the benchmarks compare against.
func cmdRAMFS(ctx context.Context, args []string, stderr io.Writer) error {
	return errors.New("ramfs: not available in this build")
}
