package nvmecli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/fusefs"
	"github.com/mpathfs/mpathfs/sysfsview"
	"github.com/mpathfs/mpathfs/sysfsview/sysfsviewtest"
)

// The compatibility check with the real client (issue 4): Debian's nvme-cli, run in a private
// mount namespace where a tree's sys/class/nvme-subsystem, sys/class/nvme and sys/block are
// bind-mounted over the machine's, must list our subsystems and paths exactly as it would for
// the kernel. Needs root, util-linux's unshare and nvme-cli; gcc for the kernel-view half.
// What libnvme reads is in /work/contract/NVME-CLI-SYSFS.md.

// compatScript runs "$@" with root's tree mounted over the machine's sysfs NVMe classes.
// This host may have no /sys/class/nvme at all and sysfs refuses mkdir, so the class
// directories are then made on a tmpfs over /sys/class (visible in this namespace only).
// /dev gets a tmpfs too, so that real NVMe namespaces of the machine cannot leak in.
const compatScript = `set -e
root=$1; shift
mount --make-rprivate /
if [ ! -d /sys/class/nvme ] || [ ! -d /sys/class/nvme-subsystem ]; then
	mount -t tmpfs nvmecli-test /sys/class
	mkdir /sys/class/nvme /sys/class/nvme-subsystem
fi
mount --bind "$root/sys/class/nvme-subsystem" /sys/class/nvme-subsystem
mount --bind "$root/sys/class/nvme" /sys/class/nvme
mount --bind "$root/sys/block" /sys/block
if [ -d "$root/sys/devices" ]; then mount --bind "$root/sys/devices" /sys/devices; fi
mount -t tmpfs nvmecli-test /dev
exec "$@"
`

type nvmeCLI struct {
	nvme, unshare string
	version       string // "2.3"
	shim          string // LD_PRELOAD library faking /dev/nvmeXnY ("" without gcc)
}

func requireNvmeCLI(t *testing.T) *nvmeCLI {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare -m and bind mounts")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare (apt-get install util-linux)")
	}
	nvme, err := exec.LookPath("nvme")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nvme", "/sbin/nvme"} {
			if _, e := os.Stat(p); e == nil {
				nvme, err = p, nil
			}
		}
	}
	if err != nil {
		t.Skip("no nvme binary (apt-get install nvme-cli)")
	}
	out, err := exec.Command(nvme, "version").Output()
	if err != nil {
		t.Skipf("nvme version: %v", err)
	}
	m := regexp.MustCompile(`nvme version ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Skipf("unrecognised nvme version output %q", out)
	}
	cli := &nvmeCLI{nvme: nvme, unshare: unshare, version: string(m[1])}
	// Probe: private mount namespaces and bind mounts need CAP_SYS_ADMIN (containers may lack it).
	probe := t.TempDir()
	for _, d := range []string{"sys/class/nvme", "sys/class/nvme-subsystem", "sys/block"} {
		if err := os.MkdirAll(filepath.Join(probe, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(unshare, "-m", "sh", "-c", compatScript, "sh", probe, "true").CombinedOutput(); err != nil {
		t.Skipf("cannot bind-mount over /sys in a private mount namespace: %v: %s", err, out)
	}
	if cc, err := exec.LookPath("gcc"); err == nil {
		so := filepath.Join(t.TempDir(), "fakedev.so")
		cmd := exec.Command(cc, "-shared", "-fPIC", "-O2", "-o", so, filepath.Join("testdata", "fakedev.c"), "-ldl")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("building the /dev shim failed, kernel-view checks skipped: %v\n%s", err, out)
		} else {
			cli.shim = so
		}
	}
	return cli
}

// run runs nvme ARGS against the tree at root; with kernelView the shim makes libnvme 1.3
// see the namespaces, as it would with the kernel driver.
func (c *nvmeCLI) run(t *testing.T, root string, kernelView bool, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := []string{"-m", "sh", "-c", compatScript, "sh", root}
	if kernelView {
		argv = append(argv, "env", "LD_PRELOAD="+c.shim)
	}
	argv = append(argv, c.nvme)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, c.unshare, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nvme %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

type compatCase struct {
	args []string
	opts PrintOptions
	topo bool
}

func compatCases() []compatCase {
	return []compatCase{
		{[]string{"list-subsys"}, PrintOptions{}, false},
		{[]string{"list-subsys", "-o", "json"}, PrintOptions{JSON: true}, false},
		{[]string{"list-subsys", "/dev/nvme0n1"}, PrintOptions{Device: "/dev/nvme0n1"}, false},
		{[]string{"list-subsys", "-o", "json", "/dev/nvme0n1"}, PrintOptions{JSON: true, Device: "/dev/nvme0n1"}, false},
		{[]string{"show-topology"}, PrintOptions{}, true},
		{[]string{"show-topology", "-r", "ctrl"}, PrintOptions{Ranking: RankCtrl}, true},
		{[]string{"show-topology", "-o", "json"}, PrintOptions{JSON: true}, true},
	}
}

// expectedPaths is the issue's topology: one subsystem, nvme0 optimized, nvme1 non-optimized.
type expectedPaths struct {
	nqn, hostnqn string
	lines        []string // " +- nvme0 tcp traddr=... live optimized", with the device argument
}

// checkCompat compares the real nvme-cli with our printers on the tree at root.
func checkCompat(t *testing.T, cli *nvmeCLI, root string, want expectedPaths) {
	topo, err := ReadTopology(root)
	if err != nil {
		t.Fatal(err)
	}
	if cli.version != "2.3" {
		// Other releases: no verified dialect; check the facts, not the layout.
		out := cli.run(t, root, false, "list-subsys")
		if !strings.Contains(out, "NQN="+want.nqn) {
			t.Errorf("nvme %s list-subsys lacks NQN=%s:\n%s", cli.version, want.nqn, out)
		}
		for _, l := range want.lines {
			prefix := l[:strings.LastIndex(l, " ")] // without the ANA state
			if !strings.Contains(out, prefix) {
				t.Errorf("nvme %s list-subsys lacks %q:\n%s", cli.version, prefix, out)
			}
		}
		t.Logf("nvme-cli %s: only facts checked, no byte-exact dialect for it", cli.version)
		return
	}
	views := []struct {
		name   string
		kernel bool
		topo   *Topology
	}{
		// libnvme 1.3 creates namespace objects only from /dev/nvmeXnY block devices, so of
		// any tree not backed by the kernel driver it sees the controllers, not the heads.
		{"as-is", false, withoutNamespaces(topo)},
		{"kernel-view", true, topo},
	}
	for _, v := range views {
		if v.kernel && cli.shim == "" {
			t.Logf("%s: skipped, no gcc to build testdata/fakedev.c", v.name)
			continue
		}
		for _, c := range compatCases() {
			got := cli.run(t, root, v.kernel, c.args...)
			opts := c.opts
			opts.Dialect = Dialect23
			var ours bytes.Buffer
			write := WriteListSubsys
			if c.topo {
				write = WriteShowTopology
			}
			if err := write(&ours, v.topo, opts); err != nil {
				t.Fatal(err)
			}
			if d := diffText(got, ours.String()); d != "" {
				t.Errorf("%s: nvme %s vs WriteListSubsys/WriteShowTopology: %s\nnvme printed:\n%s",
					v.name, strings.Join(c.args, " "), d, got)
			}
		}
	}
	// The facts themselves, as the kernel would show them.
	out := cli.run(t, root, false, "list-subsys")
	if !strings.HasPrefix(out, "nvme-subsys0 - NQN="+want.nqn+"\n\\\n") {
		t.Errorf("list-subsys header:\n%s", out)
	}
	js := cli.run(t, root, false, "list-subsys", "-o", "json")
	if !strings.Contains(js, `"HostNQN":"`+want.hostnqn+`"`) {
		t.Errorf("list-subsys -o json lacks HostNQN %s:\n%s", want.hostnqn, js)
	}
	if cli.shim != "" {
		out := cli.run(t, root, true, "list-subsys", "/dev/nvme0n1")
		if want := "nvme-subsys0 - NQN=" + want.nqn + "\n\\\n" + strings.Join(want.lines, "\n") + "\n"; out != want {
			t.Errorf("kernel view, list-subsys /dev/nvme0n1:\n%s\nwant:\n%s", out, want)
		}
	}
}

// issuePaths is the issue's expected view of the fixture: nvme0 optimized, nvme1 non-optimized.
func issuePaths(nqn, hostnqn string) expectedPaths {
	return expectedPaths{nqn: nqn, hostnqn: hostnqn, lines: []string{
		" +- nvme0 tcp traddr=127.0.0.1,trsvcid=4420,src_addr=127.0.0.1 live optimized",
		" +- nvme1 tcp traddr=127.0.0.1,trsvcid=4421,src_addr=127.0.0.1 live non-optimized",
	}}
}

func TestNvmeCliListSubsysCompat(t *testing.T) {
	cli := requireNvmeCLI(t)
	t.Logf("nvme-cli %s at %s, /dev shim: %v", cli.version, cli.nvme, cli.shim != "")

	t.Run("files", func(t *testing.T) {
		ft := fakeTree{
			subsystems: []fakeSubsys{{0, sysfsviewtest.FixtureNQN, "numa"}},
			ctrls:      []fakeCtrl{{0, 0, 4420, "live", true}, {1, 0, 4421, "live", true}},
			heads:      [][2]int{{0, 1}},
			paths:      []fakePath{{0, 0, 1, "optimized"}, {0, 1, 1, "non-optimized"}},
		}
		want := issuePaths(sysfsviewtest.FixtureNQN, testHostNQN)
		checkCompat(t, cli, ft.build(t, t.TempDir()), want)
	})

	t.Run("files-two-subsystems", func(t *testing.T) {
		ft := twoSubsystems()
		for i := range ft.ctrls {
			ft.ctrls[i].srcAddr = true
		}
		ft.ctrls[2].state = "connecting"
		want := expectedPaths{nqn: "nqn.test:a", hostnqn: testHostNQN, lines: []string{
			" +- nvme0 tcp traddr=127.0.0.1,trsvcid=4420,src_addr=127.0.0.1 live optimized",
			" +- nvme1 tcp traddr=127.0.0.1,trsvcid=4421,src_addr=127.0.0.1 live inaccessible",
		}}
		root := ft.build(t, t.TempDir())
		topo, err := ReadTopology(root)
		if err != nil {
			t.Fatal(err)
		}
		// nvme-subsys1 is printed first (libnvme order), so only compare, no header check.
		for _, c := range compatCases() {
			if cli.version != "2.3" {
				break
			}
			got := cli.run(t, root, false, c.args...)
			opts := c.opts
			opts.Dialect = Dialect23
			var ours bytes.Buffer
			write := WriteListSubsys
			if c.topo {
				write = WriteShowTopology
			}
			if err := write(&ours, withoutNamespaces(topo), opts); err != nil {
				t.Fatal(err)
			}
			if d := diffText(got, ours.String()); d != "" {
				t.Errorf("nvme %s: %s\nnvme printed:\n%s", strings.Join(c.args, " "), d, got)
			}
		}
		if cli.shim != "" && cli.version == "2.3" {
			out := cli.run(t, root, true, "list-subsys", "nvme0n1")
			if want := "nvme-subsys0 - NQN=nqn.test:a\n\\\n" + strings.Join(want.lines, "\n") + "\n"; out != want {
				t.Errorf("kernel view, list-subsys nvme0n1:\n%s\nwant:\n%s", out, want)
			}
		}
	})

	// The kernel's own layout (class entries linking into sys/devices, which is then bind
	// mounted too): the real client and our printers agree on it as well.
	t.Run("kernel-layout", func(t *testing.T) {
		ft := fakeTree{
			subsystems: []fakeSubsys{{0, sysfsviewtest.FixtureNQN, "numa"}},
			ctrls:      []fakeCtrl{{0, 0, 4420, "live", true}, {1, 0, 4421, "live", true}},
			heads:      [][2]int{{0, 1}},
			paths:      []fakePath{{0, 0, 1, "optimized"}, {0, 1, 1, "non-optimized"}},
		}
		checkCompat(t, cli, ft.buildKernelShaped(t, t.TempDir()), issuePaths(sysfsviewtest.FixtureNQN, testHostNQN))
	})

	// The fs helper's attribute tree, written out as files: checks its layout (names, links,
	// formats) against the real client without FUSE.
	t.Run("sysfsview", func(t *testing.T) {
		tree := sysfsview.NewTree(nil)
		if _, err := sysfsviewtest.NewFixture(tree, 1<<30); err != nil {
			t.Fatal(err)
		}
		root := t.TempDir()
		if err := dumpTree(tree.Root(), root); err != nil {
			t.Fatal(err)
		}
		want := issuePaths(sysfsviewtest.FixtureNQN, sysfsviewtest.FixtureHostNQN)
		checkCompat(t, cli, root, want)
	})

	// The same tree served by fusefs on a real FUSE mount: what `mpathfs mount` shows.
	t.Run("fusefs", func(t *testing.T) {
		if _, err := os.Stat("/dev/fuse"); err != nil {
			t.Skipf("FUSE unavailable: %v", err)
		}
		fix, err := sysfsviewtest.NewFixture(sysfsview.NewTree(nil), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		mnt := t.TempDir()
		server, err := fusefs.Mount(mnt, fusefs.NewRoot(fix.Tree, nil), fusefs.Options{})
		if err != nil {
			t.Skipf("FUSE mount failed: %v", err)
		}
		t.Cleanup(func() {
			if err := server.Unmount(); err != nil {
				t.Errorf("unmount: %v", err)
			}
		})
		want := issuePaths(sysfsviewtest.FixtureNQN, sysfsviewtest.FixtureHostNQN)
		checkCompat(t, cli, mnt, want)

		// Live values: a path going inaccessible and a controller reconnecting show at once.
		fix.Path0.SetANA(true, "inaccessible")
		fix.Ctrl1.SetState("connecting")
		if cli.shim != "" && cli.version == "2.3" {
			out := cli.run(t, mnt, true, "list-subsys", "/dev/nvme0n1")
			want := "nvme-subsys0 - NQN=" + sysfsviewtest.FixtureNQN + "\n\\\n" +
				" +- nvme0 tcp traddr=127.0.0.1,trsvcid=4420,src_addr=127.0.0.1 live inaccessible\n" +
				" +- nvme1 tcp traddr=127.0.0.1,trsvcid=4421,src_addr=127.0.0.1 connecting non-optimized\n"
			if out != want {
				t.Errorf("after changes, list-subsys /dev/nvme0n1:\n%s\nwant:\n%s", out, want)
			}
		}
	})
}

// dumpTree writes a sysfsview directory as real files and symlinks under dir.
func dumpTree(d *sysfsview.Dir, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, e := range d.List() {
		p := filepath.Join(dir, e.Name)
		switch n := e.Node.(type) {
		case *sysfsview.Dir:
			if err := dumpTree(n, p); err != nil {
				return err
			}
		case *sysfsview.Symlink:
			if err := os.Symlink(n.Target, p); err != nil {
				return err
			}
		case *sysfsview.Attr:
			content := ""
			if n.Show != nil {
				content = n.Show()
			}
			if err := os.WriteFile(p, []byte(content), os.FileMode(n.Mode)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("dumpTree: %s: unknown node %T", p, n)
		}
	}
	return nil
}
