package mpath_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoNVMeImports enforces the libmultipath boundary: mpath and its subpackages
// know nothing of NVMe (style rule 9).
func TestNoNVMeImports(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH; cannot list the import graph")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-test",
		"github.com/mpathfs/mpathfs/mpath/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list returned no packages")
	}
	for _, d := range deps {
		if d == "github.com/mpathfs/mpathfs/nvme" || strings.HasPrefix(d, "github.com/mpathfs/mpathfs/nvme/") {
			t.Errorf("mpath depends on %s", d)
		}
	}
}
