package nvmecli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func readGolden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func diffText(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "first difference at line " + strconv.Itoa(i+1) + ":\nwant " + strconv.Quote(wl) + "\ngot  " + strconv.Quote(gl)
		}
	}
	return ""
}

// The nvmecli23-* goldens are the output of Debian 12's /usr/sbin/nvme (nvme-cli 2.3,
// libnvme 1.3) on the twoSubsystems tree: "kernel" with testdata/fakedev.c preloaded so that
// libnvme sees the namespaces as the kernel driver would expose them, "nons" without it (what
// libnvme 1.3 can see of any tree not backed by the kernel driver).
func TestWriteGolden23(t *testing.T) {
	for _, multipathDir := range []bool{true, false} {
		ft := twoSubsystems()
		ft.noMultipathDir = !multipathDir
		topo, err := ReadTopology(ft.build(t, t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			golden string
			nons   bool
			topo   bool // show-topology rather than list-subsys
			opts   PrintOptions
		}{
			{"nvmecli23-kernel-list-subsys.txt", false, false, PrintOptions{}},
			{"nvmecli23-kernel-list-subsys-v.txt", false, false, PrintOptions{Verbose: true}},
			{"nvmecli23-kernel-list-subsys.json", false, false, PrintOptions{JSON: true}},
			{"nvmecli23-kernel-list-subsys-nvme0n2.txt", false, false, PrintOptions{Device: "/dev/nvme0n2"}},
			{"nvmecli23-kernel-list-subsys-nvme0n2.json", false, false, PrintOptions{Device: "nvme0n2", JSON: true}},
			{"nvmecli23-kernel-show-topology.txt", false, true, PrintOptions{}},
			{"nvmecli23-kernel-show-topology-ctrl.txt", false, true, PrintOptions{Ranking: RankCtrl}},
			{"nvmecli23-kernel-show-topology.json", false, true, PrintOptions{JSON: true}},
			{"nvmecli23-nons-list-subsys.txt", true, false, PrintOptions{}},
			{"nvmecli23-nons-list-subsys.json", true, false, PrintOptions{JSON: true}},
			{"nvmecli23-nons-list-subsys-nvme0n2.txt", true, false, PrintOptions{Device: "/dev/nvme0n2"}},
			{"nvmecli23-nons-show-topology.txt", true, true, PrintOptions{}},
			{"nvmecli23-nons-show-topology-ctrl.txt", true, true, PrintOptions{Ranking: RankCtrl}},
			{"nvmecli23-nons-show-topology.json", true, true, PrintOptions{JSON: true}},
		}
		for _, c := range cases {
			tp := topo
			if c.nons {
				tp = withoutNamespaces(topo)
			}
			c.opts.Dialect = Dialect23
			var buf bytes.Buffer
			write := WriteListSubsys
			if c.topo {
				write = WriteShowTopology
			}
			if err := write(&buf, tp, c.opts); err != nil {
				t.Fatalf("%s: %v", c.golden, err)
			}
			if d := diffText(readGolden(t, c.golden), buf.String()); d != "" {
				t.Errorf("multipath dir %v, %s: %s\nfull output:\n%s", multipathDir, c.golden, d, buf.String())
			}
		}
	}
}

// TestWriteCurrent pins the post-2.3 shapes from the landscape doc §2.
func TestWriteCurrent(t *testing.T) {
	ft := twoSubsystems()
	ft.ctrls[1].srcAddr = true
	topo, err := ReadTopology(ft.build(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	const hostLine = "               hostnqn=" + testHostNQN + "\n"
	cases := []struct {
		name string
		topo bool
		opts PrintOptions
		want string
	}{
		{"list-subsys", false, PrintOptions{}, "" +
			"nvme-subsys1 - NQN=nqn.test:b\n" + hostLine +
			"               iopolicy=round-robin\n" +
			"\\\n" +
			" +- nvme2 tcp traddr=127.0.0.1,trsvcid=4422 live\n" +
			"\n" +
			"nvme-subsys0 - NQN=nqn.test:a\n" + hostLine +
			"               iopolicy=numa\n" +
			"\\\n" +
			" +- nvme1 tcp traddr=127.0.0.1,trsvcid=4421,src_addr=127.0.0.1 live\n" +
			" +- nvme0 tcp traddr=127.0.0.1,trsvcid=4420 live\n"},
		{"list-subsys -v nvme0n1", false, PrintOptions{Verbose: true, Device: "nvme0n1"}, "" +
			"nvme-subsys0 - NQN=nqn.test:a\n" + hostLine +
			"               iopolicy=numa\n" +
			"               model=mpathfs\n" +
			"               serial=SN0\n" +
			"               firmware=1.0\n" +
			"               type=nvm\n" +
			"\\\n" +
			" +- nvme0 tcp traddr=127.0.0.1,trsvcid=4420 live optimized\n" +
			" +- nvme1 tcp traddr=127.0.0.1,trsvcid=4421,src_addr=127.0.0.1 live inaccessible\n"},
		{"show-topology", true, PrintOptions{}, "" +
			"nvme-subsys1 - NQN=nqn.test:b\n" + hostLine +
			"               iopolicy=round-robin\n" +
			"\\\n" +
			" +- ns 1\n" +
			" \\\n" +
			"  +- nvme2 tcp traddr=127.0.0.1,trsvcid=4422 live optimized\n" +
			"nvme-subsys0 - NQN=nqn.test:a\n" + hostLine +
			"               iopolicy=numa\n" +
			"\\\n" +
			" +- ns 2\n" +
			" \\\n" +
			"  +- nvme0 tcp traddr=127.0.0.1,trsvcid=4420 live non-optimized\n" +
			"  +- nvme1 tcp traddr=127.0.0.1,trsvcid=4421,src_addr=127.0.0.1 live optimized\n" +
			" +- ns 1\n" +
			" \\\n" +
			"  +- nvme0 tcp traddr=127.0.0.1,trsvcid=4420 live optimized\n" +
			"  +- nvme1 tcp traddr=127.0.0.1,trsvcid=4421,src_addr=127.0.0.1 live inaccessible\n"},
		{"show-topology -r multipath", true, PrintOptions{Ranking: RankMultipath}, "" +
			"nvme-subsys1 - NQN=nqn.test:b\n" + hostLine +
			"               iopolicy=round-robin\n" +
			"\\\n" +
			" +- nvme1n1 (ns 1)\n" +
			" \\\n" +
			"  +- nvme1c2n1 optimized nvme2 tcp traddr=127.0.0.1,trsvcid=4422 live\n" +
			"nvme-subsys0 - NQN=nqn.test:a\n" + hostLine +
			"               iopolicy=numa\n" +
			"\\\n" +
			" +- nvme0n2 (ns 2)\n" +
			" \\\n" +
			"  +- nvme0c0n2 non-optimized 0 nvme0 tcp traddr=127.0.0.1,trsvcid=4420 live\n" +
			"  +- nvme0c1n2 optimized 0 nvme1 tcp traddr=127.0.0.1,trsvcid=4421,src_addr=127.0.0.1 live\n" +
			" +- nvme0n1 (ns 1)\n" +
			" \\\n" +
			"  +- nvme0c0n1 optimized 0 nvme0 tcp traddr=127.0.0.1,trsvcid=4420 live\n" +
			"  +- nvme0c1n1 inaccessible 0 nvme1 tcp traddr=127.0.0.1,trsvcid=4421,src_addr=127.0.0.1 live\n"},
		{"list-subsys -o json nvme1n1", false, PrintOptions{JSON: true, Device: "/dev/nvme1n1"}, `[
  {
    "HostNQN":"` + testHostNQN + `",
    "HostID":"` + testHostID + `",
    "Subsystems":[
      {
        "Name":"nvme-subsys1",
        "NQN":"nqn.test:b",
        "Paths":[
          {
            "Name":"nvme2",
            "Transport":"tcp",
            "Address":"traddr=127.0.0.1,trsvcid=4422",
            "AddressDetails":{
              "traddr":"127.0.0.1",
              "trsvcid":"4422"
            },
            "State":"live",
            "ANAState":"optimized"
          }
        ]
      }
    ]
  }
]
`},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		write := WriteListSubsys
		if c.topo {
			write = WriteShowTopology
		}
		if err := write(&buf, topo, c.opts); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if d := diffText(c.want, buf.String()); d != "" {
			t.Errorf("%s: %s\nfull output:\n%s", c.name, d, buf.String())
		}
	}
}

func TestWriteListSubsysBadDevice(t *testing.T) {
	err := WriteListSubsys(&bytes.Buffer{}, &Topology{}, PrintOptions{Device: "foo"})
	if !errors.Is(err, ErrBadDevice) {
		t.Fatalf("Device foo: got %v, want ErrBadDevice", err)
	}
}

// TestWriteJSONEscaping checks json-c's escaping, '/' included.
func TestWriteJSONEscaping(t *testing.T) {
	var b strings.Builder
	writeJSON(&b, jobject{{"a/b", "x\"y\\z\n\x01"}, {"n", int64(-3)}, {"e", jarray{}}, {"z", nil}})
	want := "{\n  \"a\\/b\":\"x\\\"y\\\\z\\n\\u0001\",\n  \"n\":-3,\n  \"e\":[\n  ],\n  \"z\":null\n}\n"
	if b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}
}

func TestParseRankingDialect(t *testing.T) {
	for s, want := range map[string]Ranking{"": RankNamespace, "namespace": RankNamespace, "ctrl": RankCtrl, "multipath": RankMultipath} {
		if got, err := ParseRanking(s); err != nil || got != want {
			t.Errorf("ParseRanking(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseRanking("path"); err == nil {
		t.Error("ParseRanking(path) accepted")
	}
	for s, want := range map[string]Dialect{"": DialectCurrent, "current": DialectCurrent, "2.3": Dialect23} {
		if got, err := ParseDialect(s); err != nil || got != want {
			t.Errorf("ParseDialect(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseDialect("2.4"); err == nil {
		t.Error("ParseDialect(2.4) accepted")
	}
}

// Measured with nvme-cli 2.3: a path without ana_state is "optimized", a controller without
// state prints "(null)" (and crashes nvme-cli's JSON output, so the tree must always have it).
func TestWriteMissingAttrs23(t *testing.T) {
	ft := twoSubsystems()
	root := ft.build(t, t.TempDir())
	for _, p := range []string{"sys/block/nvme0c1n1/ana_state", "sys/class/nvme/nvme1/state"} {
		if err := os.Remove(filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	topo, err := ReadTopology(root)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteListSubsys(&b, topo, PrintOptions{Dialect: Dialect23, Device: "nvme0n1"}); err != nil {
		t.Fatal(err)
	}
	want := "nvme-subsys0 - NQN=nqn.test:a\n\\\n" +
		" +- nvme0 tcp traddr=127.0.0.1,trsvcid=4420 live optimized\n" +
		" +- nvme1 tcp traddr=127.0.0.1,trsvcid=4421 (null) optimized\n"
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
