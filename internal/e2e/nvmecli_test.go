package e2e

import (
	"bytes"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/nvmecli"
)

// Debian's nvme-cli, in a private mount namespace where the daemon's tree
// replaces /sys/class/nvme-subsystem, /sys/class/nvme and /sys/block, lists
// our subsystem and both paths (one of them down) exactly as our own
// list-subsys prints them for nvme-cli 2.3.
func TestNvmeCLIReadsDaemonTree(t *testing.T) {
	requireFUSE(t, "nvme", "unshare")
	e := newEnv(t, envConfig{})
	p1 := e.setup.Ports[1]
	if err := p1.StopListening(); err != nil {
		t.Fatal(err)
	}
	p1.DropConnections()
	e.waitFor("nvme1 not live", 10*time.Second, func() bool { return e.cat("sys/class/nvme/nvme1/state") != "live" })
	// Hold the state still while both readers look at it.
	e.waitFor("nvme1 connecting", 10*time.Second, func() bool { return e.cat("sys/class/nvme/nvme1/state") == "connecting" })

	script := strings.Join([]string{
		"set -e",
		"mount -t tmpfs none /sys/class",
		"mkdir /sys/class/nvme-subsystem /sys/class/nvme",
		"mount --bind " + e.path("sys/class/nvme-subsystem") + " /sys/class/nvme-subsystem",
		"mount --bind " + e.path("sys/class/nvme") + " /sys/class/nvme",
		"mount --bind " + e.path("sys/block") + " /sys/block",
		"nvme list-subsys",
	}, "\n")
	out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "mount") {
			t.Skipf("cannot bind-mount over /sys in a private mount namespace: %v: %s", err, out)
		}
		t.Fatalf("nvme list-subsys: %v\n%s", err, out)
	}
	topo, err := nvmecli.ReadTopology(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var ours bytes.Buffer
	if err := nvmecli.WriteListSubsys(&ours, topo, nvmecli.PrintOptions{Dialect: nvmecli.Dialect23}); err != nil {
		t.Fatal(err)
	}
	// Without /dev/nvmeXnY nodes nvme-cli 2.3 cannot see the namespaces, so
	// it prints no ANA column (our printer leaves its trailing blank) and
	// lists controllers in its own scan order; compare the lines as sets.
	// internal/nvmecli's compat test checks the byte-exact kernel view with
	// faked device nodes.
	if a, b := lineSet(string(out)), lineSet(ours.String()); a != b {
		t.Fatalf("nvme list-subsys:\n%s\nmpathfs list-subsys --dialect 2.3:\n%s", out, ours.String())
	}
	for _, want := range []string{"nvme-subsys0 - NQN=nqn.2026-11.io.mpathfs:demo", " +- nvme0 tcp traddr=127.0.0.1,trsvcid=", " live", " connecting"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nvme list-subsys lacks %q:\n%s", want, out)
		}
	}
}

func lineSet(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimRight(l, " "); l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
