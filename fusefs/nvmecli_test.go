package fusefs_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mpathfs/mpathfs/sysfsview/sysfsviewtest"
)

// inSysNamespace runs script with sh in a private mount namespace where the
// tree's sys/class/nvme-subsystem, sys/class/nvme and sys/block replace the
// real ones (a tmpfs over /sys/class keeps the host untouched).
func inSysNamespace(t *testing.T, e *env, script string) (string, error) {
	t.Helper()
	setup := strings.Join([]string{
		"set -e",
		"mount -t tmpfs none /sys/class",
		"mkdir /sys/class/nvme-subsystem /sys/class/nvme",
		"mount --bind " + e.path("sys/class/nvme-subsystem") + " /sys/class/nvme-subsystem",
		"mount --bind " + e.path("sys/class/nvme") + " /sys/class/nvme",
		"mount --bind " + e.path("sys/block") + " /sys/block",
		script,
	}, "\n")
	return run(t, "unshare", "-m", "--propagation", "private", "sh", "-c", setup)
}

func requireNvmeCLI(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"nvme", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare -m and bind mounts")
	}
}

// TestNvmeCLIListSubsys has Debian's nvme-cli read the mounted tree as if it
// were /sys and list our subsystem and its paths as it would the kernel's.
func TestNvmeCLIListSubsys(t *testing.T) {
	t.Parallel()
	requireNvmeCLI(t)
	e := mount(t)
	e.fix.Ctrl1.SetState("connecting")
	out, err := inSysNamespace(t, e, "nvme list-subsys")
	if err != nil {
		t.Fatalf("nvme list-subsys: %v\n%s", err, out)
	}
	for _, want := range []string{
		"nvme-subsys0 - NQN=" + sysfsviewtest.FixtureNQN + "\n",
		"\n +- nvme0 tcp traddr=127.0.0.1,trsvcid=4420,src_addr=127.0.0.1 live\n",
		"\n +- nvme1 tcp traddr=127.0.0.1,trsvcid=4421,src_addr=127.0.0.1 connecting\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nvme list-subsys output lacks %q:\n%s", want, out)
		}
	}
	out, err = inSysNamespace(t, e, "nvme list-subsys -o json")
	if err != nil {
		t.Fatalf("nvme list-subsys -o json: %v\n%s", err, out)
	}
	var doc []struct {
		HostNQN    string
		Subsystems []struct {
			Name, NQN string
			Paths     []struct{ Name, Transport, Address, State string }
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(doc) != 1 || doc[0].HostNQN != sysfsviewtest.FixtureHostNQN || len(doc[0].Subsystems) != 1 {
		t.Fatalf("json: %+v", doc)
	}
	s := doc[0].Subsystems[0]
	paths := map[string]string{}
	for _, p := range s.Paths {
		paths[p.Name] = p.Transport + " " + p.State
	}
	if s.Name != "nvme-subsys0" || s.NQN != sysfsviewtest.FixtureNQN || paths["nvme0"] != "tcp live" || paths["nvme1"] != "tcp connecting" {
		t.Fatalf("json subsystem: %+v", s)
	}
}
