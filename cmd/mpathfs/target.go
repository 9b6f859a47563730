package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mpathfs/mpathfs/nvme/target"
)

// cmdTarget runs our NVMe/TCP target from an nvmetcli JSON file until
// interrupted.
func cmdTarget(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("target", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "nvmetcli JSON configuration (required)")
	control := fs.String("control", "", "mount a control tree shaped like nvmet configfs at this directory")
	var lf logFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgPath == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: target -c nvmet.json [--control DIR]", errUsage)
	}
	log := lf.logger(stderr, "info", "text").Named("target")
	f, err := os.Open(*cfgPath)
	if err != nil {
		return err
	}
	cfg, err := target.LoadNvmetcliJSON(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", *cfgPath, err)
	}
	t := target.New(log)
	defer t.Close()
	if err := t.Apply(cfg); err != nil {
		return fmt.Errorf("%s: %w", *cfgPath, err)
	}
	for _, p := range t.Ports() {
		log.Info("listening", "port", p.ID(), "addr", p.Addr().String(), "subsystems", p.Subsystems())
	}
	if *control != "" {
		stop, err := mountControl(*control, t, log)
		if err != nil {
			return err
		}
		defer stop()
		log.Info("control tree mounted", "dir", *control)
	}
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}
