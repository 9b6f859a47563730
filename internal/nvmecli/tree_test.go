package nvmecli

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The fake trees below are built with real files and relative symlinks, shaped like mpathfs's
// tree (issue 4) plus the entries libnvme needs (NVME-CLI-SYSFS.md): path links inside the
// controller directories.

const (
	testHostNQN = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
	testHostID  = "11111111-2222-3333-4444-555555555555"
)

type fakeSubsys struct {
	idx      int
	nqn      string
	iopolicy string
}

type fakeCtrl struct {
	idx, subsys int
	port        int
	state       string
	srcAddr     bool
}

type fakePath struct {
	subsys, ctrl, nsid int
	ana                string
}

type fakeTree struct {
	subsystems []fakeSubsys
	ctrls      []fakeCtrl
	heads      [][2]int // subsys, nsid
	paths      []fakePath
	// noMultipathDir leaves out sys/block/nvmeXnY/multipath (pre-6.15 kernels).
	noMultipathDir bool
}

// twoSubsystems is the tree the nvmecli23-* goldens were captured from with /usr/sbin/nvme.
func twoSubsystems() fakeTree {
	return fakeTree{
		subsystems: []fakeSubsys{{0, "nqn.test:a", "numa"}, {1, "nqn.test:b", "round-robin"}},
		ctrls: []fakeCtrl{
			{0, 0, 4420, "live", false}, {1, 0, 4421, "live", false}, {2, 1, 4422, "live", false},
		},
		heads: [][2]int{{0, 1}, {0, 2}, {1, 1}},
		paths: []fakePath{
			{0, 0, 1, "optimized"}, {0, 1, 1, "inaccessible"},
			{0, 0, 2, "non-optimized"}, {0, 1, 2, "optimized"},
			{1, 2, 1, "optimized"},
		},
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// build writes the tree under root and returns root.
func (ft fakeTree) build(t testing.TB, root string) string {
	t.Helper()
	cls := filepath.Join(root, "sys", "class")
	blk := filepath.Join(root, "sys", "block")
	for _, d := range []string{filepath.Join(cls, "nvme"), filepath.Join(cls, "nvme-subsystem"), blk} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	nqn := map[int]string{}
	for _, s := range ft.subsystems {
		nqn[s.idx] = s.nqn
		dir := filepath.Join(cls, "nvme-subsystem", fmt.Sprintf("nvme-subsys%d", s.idx))
		writeFile(t, filepath.Join(dir, "subsysnqn"), s.nqn+"\n")
		writeFile(t, filepath.Join(dir, "model"), fmt.Sprintf("%-40s\n", "mpathfs"))
		writeFile(t, filepath.Join(dir, "serial"), fmt.Sprintf("%-20s\n", fmt.Sprintf("SN%d", s.idx)))
		writeFile(t, filepath.Join(dir, "firmware_rev"), fmt.Sprintf("%-8s\n", "1.0"))
		writeFile(t, filepath.Join(dir, "subsystype"), "nvm\n")
		writeFile(t, filepath.Join(dir, "iopolicy"), s.iopolicy+"\n")
	}
	for _, c := range ft.ctrls {
		name := fmt.Sprintf("nvme%d", c.idx)
		dir := filepath.Join(cls, "nvme", name)
		addr := fmt.Sprintf("traddr=127.0.0.1,trsvcid=%d", c.port)
		if c.srcAddr {
			addr += ",src_addr=127.0.0.1"
		}
		for k, v := range map[string]string{
			"state": c.state, "transport": "tcp", "address": addr, "subsysnqn": nqn[c.subsys],
			"hostnqn": testHostNQN, "hostid": testHostID, "cntlid": fmt.Sprint(c.idx + 1),
			"queue_count": "3", "sqsize": "127", "kato": "5", "numa_node": "-1", "cntrltype": "io",
			"model": fmt.Sprintf("%-40s", "mpathfs"), "serial": fmt.Sprintf("%-20s", fmt.Sprintf("SN%d", c.subsys)),
			"firmware_rev": fmt.Sprintf("%-8s", "1.0"),
		} {
			writeFile(t, filepath.Join(dir, k), v+"\n")
		}
		symlink(t, "../../nvme/"+name, filepath.Join(cls, "nvme-subsystem", fmt.Sprintf("nvme-subsys%d", c.subsys), name))
	}
	for _, h := range ft.heads {
		name := fmt.Sprintf("nvme%dn%d", h[0], h[1])
		dir := filepath.Join(blk, name)
		writeFile(t, filepath.Join(dir, "nsid"), fmt.Sprintf("%d\n", h[1]))
		writeFile(t, filepath.Join(dir, "size"), "2097152\n")
		writeFile(t, filepath.Join(dir, "csi"), "0\n")
		if !ft.noMultipathDir {
			if err := os.MkdirAll(filepath.Join(dir, "multipath"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		symlink(t, "../../../block/"+name, filepath.Join(cls, "nvme-subsystem", fmt.Sprintf("nvme-subsys%d", h[0]), name))
	}
	for _, p := range ft.paths {
		name := fmt.Sprintf("nvme%dc%dn%d", p.subsys, p.ctrl, p.nsid)
		dir := filepath.Join(blk, name)
		writeFile(t, filepath.Join(dir, "ana_state"), p.ana+"\n")
		writeFile(t, filepath.Join(dir, "ana_grpid"), "1\n")
		writeFile(t, filepath.Join(dir, "nsid"), fmt.Sprintf("%d\n", p.nsid))
		writeFile(t, filepath.Join(dir, "numa_nodes"), "0\n")
		writeFile(t, filepath.Join(dir, "queue_depth"), "\n")
		symlink(t, fmt.Sprintf("../../class/nvme/nvme%d", p.ctrl), filepath.Join(dir, "device"))
		// libnvme finds paths only inside the controller directory.
		symlink(t, "../../../block/"+name, filepath.Join(cls, "nvme", fmt.Sprintf("nvme%d", p.ctrl), name))
		if !ft.noMultipathDir {
			symlink(t, "../../"+name, filepath.Join(blk, fmt.Sprintf("nvme%dn%d", p.subsys, p.nsid), "multipath", name))
		}
	}
	return root
}

// withoutNamespaces is what libnvme 1.3 sees of any non-kernel tree: it can only create
// namespace objects by opening /dev/nvmeXnY as an NVMe block device.
func withoutNamespaces(t *Topology) *Topology {
	out := &Topology{}
	for _, s := range t.Subsystems {
		c := *s
		c.Namespaces = nil
		out.Subsystems = append(out.Subsystems, &c)
	}
	return out
}

// buildKernelShaped writes ft the way the kernel lays sysfs out: class and block entries are
// symlinks into sys/devices, heads are directories of the subsystem device and path disks
// directories of their controller device, without our extra links.
func (ft fakeTree) buildKernelShaped(t testing.TB, root string) string {
	t.Helper()
	flat := ft.build(t, t.TempDir())
	dev := filepath.Join(root, "sys", "devices", "virtual")
	copyAttrs := func(from, to string) {
		ents, err := os.ReadDir(from)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(from, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(to, e.Name()), string(b))
		}
	}
	for _, s := range ft.subsystems {
		name := fmt.Sprintf("nvme-subsys%d", s.idx)
		copyAttrs(filepath.Join(flat, "sys/class/nvme-subsystem", name), filepath.Join(dev, "nvme-subsystem", name))
		symlink(t, "../../devices/virtual/nvme-subsystem/"+name, filepath.Join(root, "sys/class/nvme-subsystem", name))
	}
	for _, c := range ft.ctrls {
		name := fmt.Sprintf("nvme%d", c.idx)
		copyAttrs(filepath.Join(flat, "sys/class/nvme", name), filepath.Join(dev, "nvme-fabrics/ctl", name))
		symlink(t, "../../devices/virtual/nvme-fabrics/ctl/"+name, filepath.Join(root, "sys/class/nvme", name))
		symlink(t, "../../nvme-fabrics/ctl/"+name, filepath.Join(dev, "nvme-subsystem", fmt.Sprintf("nvme-subsys%d", c.subsys), name))
	}
	for _, h := range ft.heads {
		name := fmt.Sprintf("nvme%dn%d", h[0], h[1])
		sub := fmt.Sprintf("nvme-subsys%d", h[0])
		copyAttrs(filepath.Join(flat, "sys/block", name), filepath.Join(dev, "nvme-subsystem", sub, name))
		if err := os.MkdirAll(filepath.Join(dev, "nvme-subsystem", sub, name, "multipath"), 0o755); err != nil {
			t.Fatal(err)
		}
		symlink(t, "../devices/virtual/nvme-subsystem/"+sub+"/"+name, filepath.Join(root, "sys/block", name))
	}
	for _, p := range ft.paths {
		name := fmt.Sprintf("nvme%dc%dn%d", p.subsys, p.ctrl, p.nsid)
		ctrl := fmt.Sprintf("nvme%d", p.ctrl)
		copyAttrs(filepath.Join(flat, "sys/block", name), filepath.Join(dev, "nvme-fabrics/ctl", ctrl, name))
		symlink(t, "../../"+ctrl, filepath.Join(dev, "nvme-fabrics/ctl", ctrl, name, "device"))
		symlink(t, "../devices/virtual/nvme-fabrics/ctl/"+ctrl+"/"+name, filepath.Join(root, "sys/block", name))
		head := fmt.Sprintf("nvme%dn%d", p.subsys, p.nsid)
		symlink(t, "../../../../nvme-fabrics/ctl/"+ctrl+"/"+name,
			filepath.Join(dev, "nvme-subsystem", fmt.Sprintf("nvme-subsys%d", p.subsys), head, "multipath", name))
	}
	return root
}
