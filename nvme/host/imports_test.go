package host

import (
	"os/exec"
	"strings"
	"testing"
)

// TestTransportAgnostic enforces the transport boundary: the host core
// reaches a transport only through fabrics.Transport and never imports one
// (its tests may).
func TestTransportAgnostic(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH; cannot list the import graph")
	}
	out, err := exec.Command(gobin, "list", "-deps", "github.com/mpathfs/mpathfs/nvme/host").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list returned no packages")
	}
	for _, d := range deps {
		switch d {
		case "github.com/mpathfs/mpathfs/nvme/tcp", "github.com/mpathfs/mpathfs/nvme/pdu",
			"github.com/mpathfs/mpathfs/nvme/multipath", "github.com/mpathfs/mpathfs/mpath":
			t.Errorf("nvme/host depends on %s", d)
		}
	}
}
