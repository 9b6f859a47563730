package sysfsview_test

import (
	"errors"
	"syscall"
	"testing"

	"github.com/mpathfs/mpathfs/sysfsview"
	"github.com/mpathfs/mpathfs/sysfsview/sysfsviewtest"
)

// FuzzStore writes arbitrary bytes to every writable attribute of the fixture:
// a store never panics, either succeeds or fails with an errno-carrying error,
// and a failed store leaves the value unchanged.
func FuzzStore(f *testing.F) {
	for _, s := range []string{"numa", "round-robin\n", "queue-depth", "rr", "", "\n", "0", "-1", "30\n",
		"0x10", "4294967296", "off", "1\x00x", "+5", "--1", "99999999999999999999"} {
		f.Add(s)
	}
	writable := []string{
		"sys/class/nvme-subsystem/nvme-subsys0/iopolicy",
		"sys/class/nvme/nvme0/ctrl_loss_tmo",
		"sys/class/nvme/nvme0/reconnect_delay",
		"sys/class/nvme/nvme0/fast_io_fail_tmo",
		"sys/block/nvme0n1/delayed_removal_secs",
	}
	f.Fuzz(func(t *testing.T, v string) {
		fix, err := sysfsviewtest.NewFixture(sysfsview.NewTree(nil), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range writable {
			before, _ := fix.Tree.Read(p)
			err := fix.Tree.Write(p, v)
			after, _ := fix.Tree.Read(p)
			if err != nil {
				var e interface{ Errno() syscall.Errno }
				if !errors.As(err, &e) || (e.Errno() != syscall.EINVAL && e.Errno() != syscall.ERANGE) {
					t.Fatalf("%s <- %q: error %v without EINVAL/ERANGE", p, v, err)
				}
				if after != before {
					t.Fatalf("%s <- %q failed but changed %q -> %q", p, v, before, after)
				}
			}
		}
	})
}
