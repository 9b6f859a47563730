package kttest

import (
	"strings"
	"testing"
)

// TestInstances checks the CI wiring: with MPATHFS_KERNEL_TARGET=1 both
// instances answer, on the kernels their names promise.
func TestInstances(t *testing.T) {
	for _, c := range []struct {
		name, prefix string
		req          func(testing.TB) *Target
	}{{"6.1", "6.1.", Require}, {"7.2", "7.", RequireUnstable}} {
		t.Run(c.name, func(t *testing.T) {
			k := c.req(t)
			if got := k.Env["KT_KERNEL"]; !strings.HasPrefix(got, c.prefix) {
				t.Fatalf("KT_KERNEL = %q, want %s*", got, c.prefix)
			}
			if k.Env["KT_HOST_REACH"] != "1" {
				t.Errorf("KT_HOST_REACH = %q: the kernel host cannot reach a target on this machine", k.Env["KT_HOST_REACH"])
			}
		})
	}
}
