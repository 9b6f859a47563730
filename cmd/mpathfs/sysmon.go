package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// sysmonSetting keeps the Go runtime's sysmon thread out of its deep sleep.
//
// When every P of a Go process is idle, sysmon sleeps on a note, and the next
// goroutine to enter a system call wakes it (a futex wake and a thread switch),
// after which it polls every 20 µs for a millisecond before it backs off. A
// serving daemon whose Ps all idle between I/Os (our target at low queue
// depth) pays that wake-up on nearly every request: measured at 25% of the
// target's CPU at QD1, and one context switch per I/O. sysmon skips the deep
// sleep whenever schedtrace is set, and its ordinary back-off then settles at
// one wake-up per 10 ms. The trace interval is the largest the runtime takes
// (24.8 days), so the one line it prints per interval is all the tracing
// there is; GODEBUG is only read at start-up, hence the re-exec.
const sysmonSetting = "schedtrace=2147483647"

// servingCommand reports whether cmd is a long-running server, the commands
// the setting is for (the mount.fuse3 helper form starts "mount").
func servingCommand(cmd string) bool {
	switch cmd {
	case "mount", "demo", "target", "ramfs":
		return true
	}
	return false
}

// sysmonEnv returns env with sysmonSetting added to GODEBUG, or ok false when
// GODEBUG already sets schedtrace (the operator's setting wins, including
// schedtrace=0 to turn this off).
func sysmonEnv(env []string) (out []string, ok bool) {
	out = make([]string, 0, len(env)+1)
	found := false
	for _, kv := range env {
		v, isGodebug := strings.CutPrefix(kv, "GODEBUG=")
		if !isGodebug {
			out = append(out, kv)
			continue
		}
		for _, f := range strings.Split(v, ",") {
			if strings.HasPrefix(f, "schedtrace=") {
				return nil, false
			}
		}
		if v != "" {
			v += ","
		}
		out = append(out, "GODEBUG="+v+sysmonSetting)
		found = true
	}
	if !found {
		out = append(out, "GODEBUG="+sysmonSetting)
	}
	return out, true
}

// reexecWithSysmonAwake replaces the process (same PID, same arguments and
// descriptors) with one started with sysmonSetting, for serving commands only.
// It returns only if no re-exec is needed or the exec failed; a failure is
// reported on stderr and the command runs on without the setting.
func reexecWithSysmonAwake(args []string, stderr io.Writer) {
	if len(args) < 2 || !servingCommand(args[1]) {
		return
	}
	env, ok := sysmonEnv(os.Environ())
	if !ok {
		return
	}
	if err := syscall.Exec("/proc/self/exe", args, env); err != nil {
		fmt.Fprintf(stderr, "mpathfs: re-exec with GODEBUG=%s: %v (running without it)\n", sysmonSetting, err)
	}
}
