package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
)

// foregroundEnv marks the re-executed mount helper child.
const foregroundEnv = "MPATHFS_HELPER_CHILD"

// cmdMountHelper serves "mpathfs CONFIG MOUNTPOINT [-o OPTS]", the form
// mount.fuse3 runs for `mount -t fuse.mpathfs CONFIG MOUNTPOINT` and for an
// fstab line. Like libfuse filesystems it daemonizes: the parent re-executes
// itself in a new session and exits 0 once the child reports the mount is
// ready (or fails with the child's error).
func cmdMountHelper(ctx context.Context, args []string, stderr io.Writer) error {
	cfgPath, dir := args[0], args[1]
	var opts multiFlag
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case "-o":
			if i+1 >= len(rest) {
				return fmt.Errorf("%w: -o needs a value", errUsage)
			}
			opts = append(opts, rest[i+1])
			i++
		case "-f":
			// foreground (for debugging): handled below
		default:
			return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[i])
		}
	}
	foreground := os.Getenv(foregroundEnv) != ""
	for _, a := range rest {
		if a == "-f" {
			foreground = true
		}
	}
	mf := mountFlags{config: cfgPath, fuseOpts: opts}
	cfg, err := mf.load()
	if err != nil {
		return err
	}
	if foreground {
		var ready func()
		if f := os.NewFile(3, "ready"); os.Getenv(foregroundEnv) != "" && f != nil {
			ready = func() { fmt.Fprintln(f, "ok"); f.Close() }
		}
		return serve(ctx, cfg, dir, mf.log, stderr, ready)
	}
	return daemonize(args, stderr)
}

func daemonize(args []string, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	logf, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if p := os.Getenv("MPATHFS_LOG_FILE"); p != "" {
		logf, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}
	if err != nil {
		return err
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), foregroundEnv+"=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	w.Close()
	logf.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	if line == "ok\n" {
		return cmd.Process.Release()
	}
	err = cmd.Wait()
	if err == nil {
		err = errors.New("exited before the mount was ready")
	}
	return fmt.Errorf("mount helper: %w (set MPATHFS_LOG_FILE for the log)", err)
}
