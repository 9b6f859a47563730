package nvmecli

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadTopology(t *testing.T) {
	ft := twoSubsystems()
	ft.ctrls = append(ft.ctrls, fakeCtrl{10, 0, 4430, "connecting", true})
	ft.paths = append(ft.paths, fakePath{0, 10, 1, "change"})
	topo, err := ReadTopology(ft.build(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Subsystems) != 2 {
		t.Fatalf("got %d subsystems, want 2", len(topo.Subsystems))
	}
	s := topo.Subsystems[0]
	if s.Name != "nvme-subsys0" || s.NQN != "nqn.test:a" || s.IOPolicy != "numa" ||
		s.Model != "mpathfs" || s.Serial != "SN0" || s.Firmware != "1.0" || s.Type != "nvm" {
		t.Errorf("subsystem 0 = %+v", *s)
	}
	var names []string
	for _, c := range s.Controllers {
		names = append(names, c.Name)
	}
	if want := []string{"nvme0", "nvme1", "nvme10"}; !reflect.DeepEqual(names, want) {
		t.Errorf("controllers %v, want %v (natural order)", names, want)
	}
	c := s.Controllers[2]
	if c.State != "connecting" || c.Transport != "tcp" || c.HostNQN != testHostNQN ||
		c.HostID != testHostID || c.CNTLID != "11" || c.Model != "mpathfs" {
		t.Errorf("nvme10 = %+v", *c)
	}
	a, err := c.AddressFields()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := a.Get("src_addr"); v != "127.0.0.1" {
		t.Errorf("src_addr = %q", v)
	}
	if v, _ := a.Get("trsvcid"); v != "4430" {
		t.Errorf("trsvcid = %q", v)
	}
	if len(s.Namespaces) != 2 || s.Namespaces[0].Name != "nvme0n1" || s.Namespaces[0].NSID != 1 ||
		s.Namespaces[1].NSID != 2 {
		t.Fatalf("namespaces %+v", s.Namespaces)
	}
	var got []string
	for _, p := range s.Namespaces[0].Paths {
		got = append(got, p.Name+"@"+p.Controller.Name+"="+p.ANAState)
	}
	want := []string{"nvme0c0n1@nvme0=optimized", "nvme0c1n1@nvme1=inaccessible", "nvme0c10n1@nvme10=change"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paths %v, want %v", got, want)
	}
	if p := s.Namespaces[0].Paths[0]; p.NUMANodes != "0" || p.QueueDepth != "" || p.ANAGroup != "1" {
		t.Errorf("path attrs %+v", *p)
	}
}

// A path whose name does not say its controller is tied to it through the device link.
func TestReadTopologyDeviceLink(t *testing.T) {
	ft := twoSubsystems()
	root := ft.build(t, t.TempDir())
	blk := filepath.Join(root, "sys", "block")
	if err := os.Rename(filepath.Join(blk, "nvme1c2n1"), filepath.Join(blk, "nvme1c7n1")); err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(blk, "nvme1n1", "multipath")
	if err := os.Remove(filepath.Join(mp, "nvme1c2n1")); err != nil {
		t.Fatal(err)
	}
	symlink(t, "../../nvme1c7n1", filepath.Join(mp, "nvme1c7n1"))
	topo, err := ReadTopology(root)
	if err != nil {
		t.Fatal(err)
	}
	p := topo.Subsystems[1].Namespaces[0].Paths[0]
	if p.Name != "nvme1c7n1" || p.Controller == nil || p.Controller.Name != "nvme2" {
		t.Fatalf("path %+v, want nvme1c7n1 on nvme2", *p)
	}
}

func TestReadTopologyEmptyAndErrors(t *testing.T) {
	topo, err := ReadTopology(t.TempDir())
	if err != nil || len(topo.Subsystems) != 0 {
		t.Fatalf("empty root: %v, %+v", err, topo)
	}
	ft := twoSubsystems()
	root := ft.build(t, t.TempDir())
	if err := os.Remove(filepath.Join(root, "sys/class/nvme-subsystem/nvme-subsys1/subsysnqn")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTopology(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing subsysnqn: got %v, want ErrNotExist", err)
	}
}

func TestParseAddress(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		err  bool
	}{
		{"traddr=10.0.0.1,trsvcid=4420,src_addr=10.0.0.9\n", "traddr=10.0.0.1|trsvcid=4420|src_addr=10.0.0.9", false},
		{"trsvcid=4420,traddr=fe80::1%eth0", "trsvcid=4420|traddr=fe80::1%eth0", false},
		{"traddr=a,,host_iface=eth0,", "traddr=a|host_iface=eth0", false},
		{"traddr=a=b", "traddr=a=b", false},
		{"", "", false},
		{"traddr", "", true},
		{"=x", "", true},
	} {
		a, err := ParseAddress(c.in)
		if (err != nil) != c.err {
			t.Errorf("%q: err %v", c.in, err)
			continue
		}
		if c.err {
			if !errors.Is(err, ErrBadAddress) {
				t.Errorf("%q: %v does not wrap ErrBadAddress", c.in, err)
			}
			continue
		}
		var parts []string
		for _, f := range a {
			parts = append(parts, f.Key+"="+f.Value)
		}
		if got := strings.Join(parts, "|"); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzParseAddress(f *testing.F) {
	f.Add("traddr=127.0.0.1,trsvcid=4420,src_addr=127.0.0.1")
	f.Add("traddr=fe80::1%eth0,trsvcid=4420,host_traddr=fe80::2,host_iface=eth0")
	f.Add(",,=,")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		// Round trip: formatting and reparsing gives the same fields.
		b, err := ParseAddress(a.String())
		if err != nil {
			t.Fatalf("reparse of %q: %v", a.String(), err)
		}
		if !reflect.DeepEqual(a, b) && !(len(a) == 0 && len(b) == 0) {
			t.Fatalf("round trip %q: %v != %v", s, a, b)
		}
		for _, fld := range a {
			if fld.Key == "" || strings.Contains(fld.Key, ",") || strings.Contains(fld.Key, "=") {
				t.Fatalf("bad key %q from %q", fld.Key, s)
			}
		}
	})
}

func FuzzNames(f *testing.F) {
	for _, s := range []string{"nvme0", "nvme-subsys3", "nvme0n1", "nvme0c1n2", "nvme", "nvme01c", "nvme99999999999n1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kinds := 0
		if isCtrlName(s) {
			kinds++
		}
		if isHeadName(s) {
			kinds++
		}
		if isPathName(s) {
			kinds++
		}
		if _, ok := parseSubsysName(s); ok {
			kinds++
		}
		if kinds > 1 {
			t.Fatalf("%q matches %d name kinds", s, kinds)
		}
		if naturalLess(s, s) {
			t.Fatalf("naturalLess(%q, %q)", s, s)
		}
	})
}

// The kernel's own layout (symlinks into sys/devices) reads into the same Topology as our
// flat layout, so `mpathfs list-subsys /` works on a Linux host too.
func TestReadTopologyKernelLayout(t *testing.T) {
	ft := twoSubsystems()
	flat, err := ReadTopology(ft.build(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	kern, err := ReadTopology(ft.buildKernelShaped(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []PrintOptions{{JSON: true, Dialect: Dialect23}, {JSON: true, Verbose: true, Ranking: RankMultipath}} {
		var a, b strings.Builder
		if err := WriteShowTopology(&a, flat, o); err != nil {
			t.Fatal(err)
		}
		if err := WriteShowTopology(&b, kern, o); err != nil {
			t.Fatal(err)
		}
		if a.String() != b.String() {
			t.Errorf("kernel layout differs: %s", diffText(a.String(), b.String()))
		}
		if !strings.Contains(b.String(), `"ANAState":"inaccessible"`) {
			t.Errorf("kernel layout lost ANA states:\n%s", b.String())
		}
	}
}
