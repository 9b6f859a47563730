package top

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/sysfsdiff"
)

// kernelSys builds a fake /sys in the kernel's layout (class entries are
// symlinks into devices/, paths live under their controller, heads under
// their subsystem; no diag/ files, as before Linux 6.17).
func kernelSys(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	w := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, rel string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	ctl := "sys/devices/virtual/nvme-fabrics/ctl/"
	sub := "sys/devices/virtual/nvme-subsystem/nvme-subsys0/"
	for i, port := range []string{"4420", "4421"} {
		c := "nvme" + string(rune('0'+i))
		w(ctl+c+"/state", "live\n")
		w(ctl+c+"/transport", "tcp\n")
		w(ctl+c+"/address", "traddr=10.0.0.1,trsvcid="+port+",src_addr=10.0.0.2\n")
		w(ctl+c+"/nvme0c"+string(rune('0'+i))+"n1/stat", stat(0, 0, 0, 0, 0, 0, 0))
		w(ctl+c+"/nvme0c"+string(rune('0'+i))+"n1/ana_state", "optimized\n")
		ln("../../devices/virtual/nvme-fabrics/ctl/"+c, "sys/class/nvme/"+c)
		ln("../../nvme-fabrics/ctl/"+c, sub+c)
	}
	w(sub+"nvme0n1/stat", stat(0, 0, 0, 0, 0, 0, 0))
	ln("../../devices/virtual/nvme-subsystem/nvme-subsys0", "sys/class/nvme-subsystem/nvme-subsys0")
	ln("../devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1", "sys/block/nvme0n1")
	return root
}

// stat renders a 17-field stat line.
func stat(rio, rsec, rms, wio, wsec, wms, inflight uint64) string {
	return strings.Join([]string{u(rio), "0", u(rsec), u(rms), u(wio), "0", u(wsec), u(wms), u(inflight),
		"0", "0", "0", "0", "0", "0", "0", "0"}, " ") + "\n"
}

func u(v uint64) string { b, _ := json.Marshal(v); return string(b) }

func TestKernelSysfs(t *testing.T) {
	root := kernelSys(t)
	a, err := Read(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Controllers) != 2 || len(a.Paths) != 2 || len(a.Namespaces) != 1 {
		t.Fatalf("reading: %+v", a)
	}
	if c := a.Controllers[1]; c.Subsystem != "nvme-subsys0" || c.Address != "traddr=10.0.0.1,trsvcid=4421,src_addr=10.0.0.2" || c.Resets != nil {
		t.Errorf("controller: %+v", c)
	}
	// In 2 s: 300 reads + 100 writes through nvme0 (4 KiB each, 1 ms each),
	// 100 writes through nvme1; the head saw all 500, 2 in flight; nvme1 is
	// connecting.
	w := func(rel, s string) {
		if err := os.WriteFile(filepath.Join(root, rel), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w("sys/devices/virtual/nvme-fabrics/ctl/nvme0/nvme0c0n1/stat", stat(300, 2400, 300, 100, 800, 100, 0))
	w("sys/devices/virtual/nvme-fabrics/ctl/nvme1/nvme0c1n1/stat", stat(0, 0, 0, 100, 800, 300, 0))
	w("sys/devices/virtual/nvme-fabrics/ctl/nvme1/state", "connecting\n")
	w("sys/devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1/stat", stat(300, 2400, 300, 200, 1600, 400, 2))
	b, err := Read(root)
	if err != nil {
		t.Fatal(err)
	}
	a.Time = time.Unix(100, 0)
	b.Time = time.Unix(102, 0)
	v := Compute(a, b)
	c0, c1 := v.Controllers[0], v.Controllers[1]
	if c0.IOPS != 200 || c0.ReadIOPS != 150 || c0.LatencyMs != 1 || c0.BytesPerSec != 400*4096/2 {
		t.Errorf("nvme0: %+v", c0)
	}
	if c1.State != "connecting" || c1.IOPS != 50 || c1.LatencyMs != 3 {
		t.Errorf("nvme1: %+v", c1)
	}
	if p := v.Paths[0]; p.Name != "nvme0c0n1" || p.Namespace != "nvme0n1" || p.Share != 0.8 || p.ANAState != "optimized" {
		t.Errorf("path 0: %+v", p)
	}
	if p := v.Paths[1]; p.Share != 0.2 || p.Retries != nil {
		t.Errorf("path 1: %+v", p)
	}
	if n := v.Namespaces[0]; n.IOPS != 250 || n.WriteIOPS != 100 || n.InFlight != 2 || n.LatencyMs != 1.4 || n.Subsystem != "nvme-subsys0" {
		t.Errorf("namespace: %+v", n)
	}
	var text bytes.Buffer
	if err := v.WriteText(&text, "/"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nvme1    nvme-subsys0   connecting  -       -       -              50     3.00", "nvme0c0n1   nvme0n1   nvme0  optimized", "80%", "nvme0n1   nvme-subsys0         250"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("screen lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := v.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back View
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Paths[0].Share != 0.8 || back.Controllers[0].Resets != nil || !strings.Contains(js.String(), `"resets": null`) {
		t.Errorf("json: %v\n%s", err, js.String())
	}
}

func TestParseStatShortForms(t *testing.T) {
	s, err := ParseStat("1 0 8 2 3 0 24 4 5 6 7\n") // 11 fields (before 4.18)
	if err != nil || s.ReadIOs != 1 || s.WriteSectors != 24 || s.InFlight != 5 {
		t.Errorf("%+v %v", s, err)
	}
	if _, err := ParseStat("1 2 3"); err == nil {
		t.Error("3 fields accepted")
	}
	if _, err := ParseStat("1 0 8 2 3 0 24 4 x 6 7"); err == nil {
		t.Error("non-number accepted")
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add("       5        0       40        1        0        0        0        0        0        1        1        0        0        0        0        0        0\n")
	f.Add("1 0 8 2 3 0 24 4 5 6 7")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseStat(s)
		if err == nil && len(strings.Fields(s)) < 11 {
			t.Fatalf("accepted %q as %+v", s, st)
		}
	})
}

// The Linux 7.2 kernel host's real sysfs (ctl khost-sysfs with two paths
// and two namespaces, captured by internal/e2e TestTopReadsLinux72Sysfs
// with MPATHFS_TOP_CAPTURE): top finds every object and the kernel's diag
// counters.
func TestLinux72SysfsCapture(t *testing.T) {
	f, err := os.Open("testdata/linux72-khost-sysfs.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := sysfsdiff.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := sysfsdiff.Materialize(d, root); err != nil {
		t.Fatal(err)
	}
	r, err := Read(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Controllers) != 2 || len(r.Paths) != 4 || len(r.Namespaces) != 2 {
		t.Fatalf("%d controllers, %d paths, %d namespaces", len(r.Controllers), len(r.Paths), len(r.Namespaces))
	}
	c := r.Controllers[1]
	if c.Name != "nvme1" || c.State != "live" || c.Subsystem != "nvme-subsys0" || c.Address != "traddr=10.0.4.15,trsvcid=4431,src_addr=10.0.4.15" || c.Resets == nil || c.Transport != "tcp" {
		t.Errorf("nvme1: %+v", c)
	}
	p := r.Paths[0]
	if p.Name != "nvme0c0n1" || p.Namespace != "nvme0n1" || p.Controller != "nvme0" || p.ANAState != "optimized" || p.Failovers == nil || p.Retries == nil {
		t.Errorf("path: %+v", p)
	}
	var text bytes.Buffer
	if err := Compute(r, r).WriteText(&text, "/"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "nvme0c1n2") || !strings.Contains(text.String(), "nvme0n2   nvme-subsys0") {
		t.Errorf("screen:\n%s", text.String())
	}
}
