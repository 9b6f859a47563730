package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/top"
)

// tmux runs a tmux command on a private server socket.
func tmux(t *testing.T, sock string, args ...string) string {
	t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", sock}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

// `mpathfs top` on a real mount under tmux: the screen shows the
// controllers, paths and namespaces with live rates while fio runs, q
// quits cleanly (exit 0, terminal restored), Ctrl-C too; -o json gives
// one snapshot.
func TestTopUnderTmux(t *testing.T) {
	requireFUSE(t, "tmux", "fio")
	bin := mpathfsCLI(t)
	e := newEnv(t, envConfig{})
	sock := t.TempDir() + "/tmux.sock"
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", sock, "kill-server").Run() })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fio := exec.CommandContext(ctx, "fio", "--name=load", "--filename="+e.path("nvme0n1"), "--ioengine=libaio", "--direct=1",
		"--rw=randrw", "--bs=4k", "--iodepth=4", "--size=8M", "--time_based", "--runtime=15", "--rate_iops=300")
	fio.Cancel = func() error { return fio.Process.Signal(os.Interrupt) } // fio stops its job processes too
	if err := fio.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = fio.Wait() }()

	start := func(name string) {
		tmux(t, sock, "new-session", "-d", "-s", name, "-x", "150", "-y", "40",
			fmt.Sprintf("TERM=xterm %s top -d 0.2 %s; echo \"top exited rc=$?\"; sleep 60", bin, e.dir))
	}
	capture := func(name string) string { return tmux(t, sock, "capture-pane", "-p", "-t", name) }
	start("q")
	live := regexp.MustCompile(`(?m)^nvme0n1\s+nvme-subsys0\s+[1-9]\d*\s`)
	var screen string
	e.waitFor("top shows nvme0n1 with I/O", 20*time.Second, func() bool {
		screen = capture("q")
		return live.MatchString(screen)
	})
	for _, want := range []string{"mpathfs top - " + e.dir, "CTRL", "nvme0    nvme-subsys0   live", "nvme1    nvme-subsys0   live",
		"nvme0c0n1   nvme0n1   nvme0  optimized", "nvme0c1n1   nvme0n1   nvme1", "%", "INFLIGHT"} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q:\n%s", want, screen)
		}
	}
	t.Logf("%v top screen:\n%s", time.Now().Format("15:04:05.000"), screen)
	tmux(t, sock, "send-keys", "-t", "q", "q")
	e.waitFor("top exits on q", 10*time.Second, func() bool { return strings.Contains(capture("q"), "top exited rc=0") })
	if s := capture("q"); strings.Contains(s, "CTRL") {
		t.Errorf("the alternate screen was not left:\n%s", s)
	}

	start("c")
	e.waitFor("second top running", 20*time.Second, func() bool { return strings.Contains(capture("c"), "nvme0c1n1") })
	tmux(t, sock, "send-keys", "-t", "c", "C-c")
	e.waitFor("top exits on Ctrl-C", 10*time.Second, func() bool { return strings.Contains(capture("c"), "top exited rc=0") })

	out, err := exec.Command(bin, "top", "-o", "json", "-d", "0.3", e.dir).Output()
	if err != nil {
		t.Fatalf("top -o json: %v", err)
	}
	var v top.View
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(v.Controllers) != 2 || len(v.Paths) != 4 || len(v.Namespaces) != 2 || v.Controllers[0].Resets == nil || v.IntervalSec < 0.3 {
		t.Errorf("json view: %s", out)
	}
}
