package sysfsdiff

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kernelSample = `/sys/block/nvme0c1n1	link	-> ../devices/virtual/nvme-fabrics/ctl/nvme1/nvme0c1n1
/sys/block/nvme0c1n1/nsid	444	2\n
/sys/block/nvme0c1n1/device	link	-> ../../nvme1
/sys/block/nvme0c1n1/diag/	755	<dir>
/sys/block/nvme0c1n1/diag/command_retries_count	644	0\n
/sys/block/nvme0n1/nsid	444	2\n
/sys/block/nvme0n1/multipath/	755	<dir>
/sys/block/nvme0n1/multipath/nvme0c1n1	link	-> ../../../../nvme-fabrics/ctl/nvme1/nvme0c1n1
/sys/block/nvme0n1/stat	444	       3        0\n
/sys/class/nvme-subsystem/nvme-subsys0/subsysnqn	444	nqn.x\n
/sys/class/nvme-subsystem/nvme-subsys0/nvme1	link	-> ../../nvme-fabrics/ctl/nvme1
/sys/class/nvme-subsystem/nvme-subsys0/nvme0n1/	755	<dir>
/sys/class/nvme-subsystem/nvme-subsys0/nvme0n1/nsid	444	2\n
/sys/class/nvme/nvme1/address	444	traddr=10.0.4.15,trsvcid=4431,src_addr=10.0.4.15\n
/sys/class/nvme/nvme1/delete_controller	200	<write-only>
/sys/class/nvme/nvme1/power/	755	<dir>
`

// Our tree in the same shape, from a real directory: names differ by
// instance only, one value differs, one file is missing, one is extra.
func TestWalkCanonCompare(t *testing.T) {
	kd, err := Parse(strings.NewReader(kernelSample))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	mk := func(p, content string, mode os.FileMode) {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(full, mode)
	}
	ln := func(p, target string) {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	mk("sys/block/nvme3c5n1/nsid", "2\n", 0o444)
	mk("sys/block/nvme3c5n1/diag/command_retry_count", "0\n", 0o444)
	ln("sys/block/nvme3c5n1/device", "../../class/nvme/nvme5")
	mk("sys/block/nvme3n1/nsid", "2\n", 0o444)
	mk("sys/block/nvme3n1/stat", "       9        0\n", 0o444)
	ln("sys/block/nvme3n1/multipath/nvme3c5n1", "../../nvme3c5n1")
	mk("sys/class/nvme-subsystem/nvme-subsys3/subsysnqn", "nqn.x\n", 0o444)
	ln("sys/class/nvme-subsystem/nvme-subsys3/nvme5", "../../nvme/nvme5")
	ln("sys/class/nvme-subsystem/nvme-subsys3/nvme3n1", "../../../block/nvme3n1")
	mk("sys/class/nvme/nvme5/address", "traddr=127.0.0.1,trsvcid=4431,src_addr=127.0.0.1\n", 0o444)
	mk("sys/class/nvme/nvme5/delete_controller", "", 0o200)
	od, err := Walk(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e := od["/sys/class/nvme/nvme5/delete_controller"]; e != (Entry{"200", "<write-only>"}) {
		t.Errorf("write-only trigger: %+v", e)
	}
	kc, err := Canon(kd)
	if err != nil {
		t.Fatal(err)
	}
	oc, err := Canon(od)
	if err != nil {
		t.Fatal(err)
	}
	if e := kc["head2/multipath/path1n2"]; e.Value != "-> path1n2" {
		t.Errorf("kernel multipath link: %+v", e)
	}
	if e := oc["path1n2/device"]; e.Value != "-> ctrl1" {
		t.Errorf("our device link: %+v", e)
	}
	rules := []Rule{
		{Pattern: "*/power/**", Skip: true, Why: "test"},
		{Pattern: "ctrl/address", Value: `^traddr=`, Why: "test"},
	}
	res, err := Compare(kc, oc, rules)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range res.Diffs {
		got = append(got, d.Key)
	}
	want := "head2/stat path1n2/diag/command_retries_count path1n2/diag/command_retry_count"
	if strings.Join(got, " ") != want {
		t.Errorf("diffs %q, want %q", got, want)
	}
	if res.Compared != res.Agree+3 || res.Agree < 9 {
		t.Errorf("counts %+v", res)
	}
	if _, err := Compare(kc, oc, []Rule{{Pattern: "x"}}); err == nil {
		t.Error("a rule relaxing nothing was accepted")
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, key string
		want         bool
	}{
		{"*/power/**", "ctrl/power/", true},
		{"*/power/**", "ctrl/power/async", true},
		{"*/power/**", "ctrl/powerx", false},
		{"{head,path}/queue/{fua,zoned}", "path/queue/zoned", true},
		{"{head,path}/queue/{fua,zoned}", "ctrl/queue/zoned", false},
		{"ctrl/diag/*", "ctrl/diag/reset_count", true},
		{"ctrl/diag/*", "ctrl/diag/", false},
	} {
		if got := match(c.pattern, c.key); got != c.want {
			t.Errorf("match(%q, %q) = %v", c.pattern, c.key, got)
		}
	}
}

// FuzzParse: the dump parser never panics, and what it accepts canonicalizes.
func FuzzParse(f *testing.F) {
	f.Add(kernelSample)
	f.Add("/a\t444\tx\n")
	f.Add("/sys/block/nvme0n1/nsid\t444\tzz\n")
	f.Add("no tabs\n")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		_, _ = Canon(d)
	})
}
