package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/mpathfs/mpathfs/internal/nvmecli"
)

// defaultMount is where list-subsys and show-topology look without an
// argument.
const defaultMount = "/run/mpathfs"

func cliFlags(name string, args []string, withRank bool) (root string, opts nvmecli.PrintOptions, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	verbose := fs.Bool("v", false, "verbose: model, serial, firmware, type")
	output := fs.String("o", "normal", "output format: normal or json")
	device := fs.String("d", "", "list-subsys: only the subsystem of this namespace (e.g. nvme0n1), with ANA states")
	dialect := fs.String("dialect", "current", "nvme-cli output shape: current (2.x) or 2.3 (Debian 12)")
	rank := fs.String("r", "namespace", "show-topology ranking: namespace, ctrl or multipath")
	if err := fs.Parse(args); err != nil {
		return "", opts, err
	}
	switch *output {
	case "normal":
	case "json":
		opts.JSON = true
	default:
		return "", opts, fmt.Errorf("%w: -o %q: want normal or json", errUsage, *output)
	}
	switch *dialect {
	case "current":
		opts.Dialect = nvmecli.DialectCurrent
	case "2.3":
		opts.Dialect = nvmecli.Dialect23
	default:
		return "", opts, fmt.Errorf("%w: --dialect %q: want current or 2.3", errUsage, *dialect)
	}
	if withRank {
		switch *rank {
		case "namespace":
			opts.Ranking = nvmecli.RankNamespace
		case "ctrl":
			opts.Ranking = nvmecli.RankCtrl
		case "multipath":
			opts.Ranking = nvmecli.RankMultipath
		default:
			return "", opts, fmt.Errorf("%w: -r %q: want namespace, ctrl or multipath", errUsage, *rank)
		}
	}
	opts.Verbose = *verbose
	opts.Device = *device
	root = defaultMount
	switch fs.NArg() {
	case 0:
	case 1:
		root = fs.Arg(0)
	default:
		return "", opts, fmt.Errorf("%w: %s [options] [MOUNTPOINT]", errUsage, name)
	}
	return root, opts, nil
}

func cmdListSubsys(args []string, stdout io.Writer) error {
	root, opts, err := cliFlags("list-subsys", args, false)
	if err != nil {
		return err
	}
	t, err := nvmecli.ReadTopology(root)
	if err != nil {
		return err
	}
	return nvmecli.WriteListSubsys(stdout, t, opts)
}

func cmdShowTopology(args []string, stdout io.Writer) error {
	root, opts, err := cliFlags("show-topology", args, true)
	if err != nil {
		return err
	}
	t, err := nvmecli.ReadTopology(root)
	if err != nil {
		return err
	}
	return nvmecli.WriteShowTopology(stdout, t, opts)
}
