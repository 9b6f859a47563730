package main

import (
	"flag"
	"io"

	"github.com/hashicorp/go-hclog"
)

// logFlags are the logging flags shared by the long-running commands; they
// override the [log] table of the config.
type logFlags struct {
	level, format string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "", "log level: trace, debug, info, warn, error, off (default from config, else info)")
	fs.StringVar(&l.format, "log-format", "", "log format: text or json (default from config, else text)")
}

func (l *logFlags) logger(w io.Writer, level, format string) hclog.Logger {
	if l.level != "" {
		level = l.level
	}
	if l.format != "" {
		format = l.format
	}
	if level == "" {
		level = "info"
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "mpathfs",
		Level:      hclog.LevelFromString(level),
		JSONFormat: format == "json",
		Output:     w,
	})
}
