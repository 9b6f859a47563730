package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/kttest"
	"github.com/mpathfs/mpathfs/internal/sysfsdiff"
	"github.com/mpathfs/mpathfs/internal/top"
)

// top reads the Linux 7.2 kernel host's real NVMe sysfs (its khost-sysfs
// dump, materialized as a directory): both controllers, their paths with
// ANA states and diag counters, and the namespaces. MPATHFS_TOP_CAPTURE=FILE
// saves the dump (internal/top/testdata keeps one for the VM-less test).
func TestTopReadsLinux72Sysfs(t *testing.T) {
	k := kttest.RequireUnstable(t)
	k.Ctl(t, "khost", "connect")
	t.Cleanup(func() { k.Ctl(t, "khost", "disconnect") })
	var dump string
	deadline := time.Now().Add(20 * time.Second)
	for { // the kernel scans namespaces asynchronously after the connect
		dump = k.Ctl(t, "khost-sysfs")
		if strings.Count(dump, "/nsid\t") >= 2*4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := os.Getenv("MPATHFS_TOP_CAPTURE"); out != "" {
		if err := os.WriteFile(out, []byte(dump), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := sysfsdiff.Parse(strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := sysfsdiff.Materialize(d, root); err != nil {
		t.Fatal(err)
	}
	r, err := top.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Controllers) != 2 || len(r.Paths) != 4 || len(r.Namespaces) != 2 {
		t.Fatalf("read %d controllers, %d paths, %d namespaces from the kernel's sysfs: %+v", len(r.Controllers), len(r.Paths), len(r.Namespaces), r)
	}
	for _, c := range r.Controllers {
		if c.State != "live" || c.Resets == nil || c.Subsystem == "" || !strings.HasPrefix(c.Address, "traddr=") {
			t.Errorf("controller %+v", c)
		}
	}
	for _, p := range r.Paths {
		if p.ANAState == "" || p.Failovers == nil || p.Namespace == "" {
			t.Errorf("path %+v", p)
		}
	}
}
