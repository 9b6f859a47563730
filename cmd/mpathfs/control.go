package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/nvme/target"
	"github.com/mpathfs/mpathfs/nvme/target/controlfs"
)

// mountControl mounts the nvmet-configfs-shaped control tree of t at dir:
// ports/N/ana_groups/G/ana_state, ports/N/subsystems/<nqn> links and
// ports/N/fault/ (drop, stall, fail_next, listen).
func mountControl(dir string, t *target.Target, log hclog.Logger) (stop func(), err error) {
	srv, err := controlfs.Mount(dir, t, log.Named("control"))
	if err != nil {
		return nil, err
	}
	return func() { _ = srv.Unmount() }, nil
}
