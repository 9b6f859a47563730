package main

import (
	"errors"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/nvme/target"
)

// mountControl mounts the nvmet-configfs-shaped control tree of t at dir.
func mountControl(dir string, t *target.Target, log hclog.Logger) (stop func(), err error) {
	return nil, errors.New("--control: the control tree is not available in this build")
}
