package controlfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/target"
)

const nqn = "nqn.2026-11.io.mpathfs:ctl"

// mount starts a target with one subsystem (ns 1 in group 1, ns 2 in group
// 2) on two ports and mounts its control tree; it skips when FUSE is not
// usable here.
func mount(t *testing.T) (*target.Target, string) {
	t.Helper()
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		t.Skipf("FUSE not available: /dev/fuse: %v", err)
	} else {
		f.Close()
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		if _, err := exec.LookPath("fusermount"); err != nil {
			t.Skip("FUSE not available: no fusermount3/fusermount in PATH")
		}
	}
	tg := target.New(nil)
	t.Cleanup(func() { tg.Close() })
	s, err := tg.AddSubsystem(target.SubsystemConfig{NQN: nqn, AllowAnyHost: true, Model: "ctl-model"})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint32(1); i <= 2; i++ {
		if _, err := s.AddNamespace(target.NamespaceConfig{NSID: i, Size: 1 << 20, ANAGroup: i}); err != nil {
			t.Fatal(err)
		}
	}
	for i := uint16(1); i <= 2; i++ {
		p, err := tg.AddPort(target.PortConfig{ID: i})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.LinkSubsystem(nqn); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	srv, err := Mount(dir, tg, nil)
	if err != nil {
		t.Skipf("FUSE mount not possible here: %v", err)
	}
	t.Cleanup(func() { _ = srv.Unmount() })
	return tg, dir
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

// write mimics `echo v > p`: open with O_TRUNC, one write.
func write(p, v string) error {
	return os.WriteFile(p, []byte(v+"\n"), 0)
}

func TestTree(t *testing.T) {
	tg, dir := mount(t)
	p1, p2 := tg.Port(1), tg.Port(2)

	ents, err := os.ReadDir(filepath.Join(dir, "ports"))
	if err != nil || len(ents) != 2 || ents[0].Name() != "1" || ents[1].Name() != "2" {
		t.Fatalf("ports: %v %v", ents, err)
	}
	if got := read(t, filepath.Join(dir, "ports/1/addr_trsvcid")); got != strings.TrimSpace(strings.Split(p1.Addr().String(), ":")[1])+"\n" {
		t.Errorf("addr_trsvcid %q, want %d", got, p1.Addr().Port)
	}

	// ANA state: kernel names, per port.
	st := filepath.Join(dir, "ports/1/ana_groups/2/ana_state")
	if got := read(t, st); got != "optimized\n" {
		t.Fatalf("ana_state %q", got)
	}
	if err := write(st, "inaccessible"); err != nil {
		t.Fatal(err)
	}
	if p1.ANAState(2) != nvme.ANAInaccessible || p2.ANAState(2) != nvme.ANAOptimized {
		t.Fatalf("after write: port1 %s port2 %s", p1.ANAState(2), p2.ANAState(2))
	}
	if got := read(t, st); got != "inaccessible\n" {
		t.Errorf("ana_state reads %q", got)
	}
	if err := write(st, "sideways"); err == nil {
		t.Error("bad ANA state accepted")
	}
	if p1.ANAState(2) != nvme.ANAInaccessible {
		t.Error("bad write changed the state")
	}
	groups, _ := os.ReadDir(filepath.Join(dir, "ports/1/ana_groups"))
	if len(groups) != 2 {
		t.Errorf("ana_groups: %v", groups)
	}
	if err := os.Mkdir(filepath.Join(dir, "ports/1/ana_groups/7"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p1.ANAGroups(), 7) {
		t.Error("mkdir did not create group 7")
	}

	// Subsystem links.
	link := filepath.Join(dir, "ports/2/subsystems", nqn)
	if tgt, err := os.Readlink(link); err != nil || tgt != "../../../subsystems/"+nqn {
		t.Fatalf("readlink %q %v", tgt, err)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if len(p2.Subsystems()) != 0 {
		t.Fatal("rm did not unlink the subsystem")
	}
	if err := os.Symlink("../../../subsystems/"+nqn, link); err != nil {
		t.Fatal(err)
	}
	if got := p2.Subsystems(); len(got) != 1 || got[0] != nqn {
		t.Fatalf("ln -s: linked %v", got)
	}

	// Faults.
	if err := write(filepath.Join(dir, "ports/2/fault/stall"), "1"); err != nil || !p2.Stalled() {
		t.Fatalf("stall: %v %v", err, p2.Stalled())
	}
	if got := read(t, filepath.Join(dir, "ports/2/fault/stall")); got != "1\n" {
		t.Errorf("stall reads %q", got)
	}
	if err := write(filepath.Join(dir, "ports/2/fault/stall"), "0"); err != nil || p2.Stalled() {
		t.Fatalf("unstall: %v", err)
	}
	if err := write(filepath.Join(dir, "ports/1/fault/fail_next"), "3 0x302"); err != nil {
		t.Fatal(err)
	}
	if n, st := p1.PendingFailures(); n != 3 || st != nvme.StatusANAInaccessible {
		t.Fatalf("fail_next: %d %s", n, st)
	}
	if err := write(filepath.Join(dir, "ports/1/fault/fail_next"), "x"); err == nil {
		t.Error("bad fail_next accepted")
	}
	if err := write(filepath.Join(dir, "ports/1/fault/lose_next"), "2"); err != nil || p1.PendingLosses() != 2 {
		t.Fatalf("lose_next: %v, %d pending", err, p1.PendingLosses())
	}
	if got := read(t, filepath.Join(dir, "ports/1/fault/lose_next")); got != "2\n" {
		t.Errorf("lose_next reads %q", got)
	}
	if err := write(filepath.Join(dir, "ports/1/fault/short_read"), "4"); err != nil || p1.PendingShortReads() != 4 {
		t.Fatalf("short_read: %v, %d pending", err, p1.PendingShortReads())
	}
	if got := read(t, filepath.Join(dir, "ports/1/fault/short_read")); got != "4\n" {
		t.Errorf("short_read reads %q", got)
	}
	if err := write(filepath.Join(dir, "ports/1/fault/lose_next"), "-1"); err == nil || p1.PendingLosses() != 2 {
		t.Error("bad lose_next accepted")
	}
	p1.LoseNextCompletions(0)
	if err := write(filepath.Join(dir, "ports/1/fault/drop"), "1"); err != nil {
		t.Fatal(err)
	}
	if err := write(filepath.Join(dir, "ports/1/fault/listen"), "0"); err != nil || p1.Listening() {
		t.Fatalf("listen 0: %v", err)
	}
	if err := write(filepath.Join(dir, "ports/1/fault/listen"), "1"); err != nil || !p1.Listening() {
		t.Fatalf("listen 1: %v", err)
	}

	// Subsystems and namespaces.
	if got := read(t, filepath.Join(dir, "subsystems", nqn, "attr_model")); got != "ctl-model\n" {
		t.Errorf("attr_model %q", got)
	}
	g := filepath.Join(dir, "subsystems", nqn, "namespaces/1/ana_grpid")
	if err := write(g, "2"); err != nil {
		t.Fatal(err)
	}
	if tg.Subsystem(nqn).Namespace(1).ANAGroup() != 2 {
		t.Fatal("ana_grpid write had no effect")
	}
	if got := read(t, filepath.Join(dir, "subsystems", nqn, "namespaces/2/device_size")); got != "1048576\n" {
		t.Errorf("device_size %q", got)
	}
	// Resize and new identifiers (issue 8: revalidation on the host).
	nsdir := filepath.Join(dir, "subsystems", nqn, "namespaces/2")
	if err := write(filepath.Join(nsdir, "device_size"), "524288"); err != nil || tg.Subsystem(nqn).Namespace(2).Size() != 524288 {
		t.Fatalf("device_size write: %v, size %d", err, tg.Subsystem(nqn).Namespace(2).Size())
	}
	if err := write(filepath.Join(nsdir, "device_size"), "4194304"); err == nil {
		t.Error("a size beyond the backing store was accepted")
	}
	if err := write(filepath.Join(nsdir, "device_uuid"), "01234567-89ab-cdef-0123-456789abcdef"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(nsdir, "device_uuid")); got != "01234567-89ab-cdef-0123-456789abcdef\n" {
		t.Errorf("device_uuid after write %q", got)
	}
	if err := write(filepath.Join(nsdir, "device_nguid"), "not-hex"); err == nil {
		t.Error("a bad NGUID was accepted")
	}
	if err := write(filepath.Join(dir, "subsystems", nqn, "attr_model"), "x"); err == nil {
		t.Error("read-only attribute accepted a write")
	}
}

// namespaces/N/enable takes a namespace out of the active list and puts it
// back, as nvmet's configfs does; its data survives.
func TestNamespaceEnable(t *testing.T) {
	tg, dir := mount(t)
	s := tg.Subsystem(nqn)
	ns := s.Namespace(1)
	if _, err := ns.WriteAt([]byte("kept"), 0); err != nil {
		t.Fatal(err)
	}
	en := filepath.Join(dir, "subsystems", nqn, "namespaces", "1", "enable")
	if got := strings.TrimSpace(read(t, en)); got != "1" {
		t.Fatalf("enable = %q, want 1", got)
	}
	if err := write(en, "0"); err != nil {
		t.Fatal(err)
	}
	if s.Namespace(1) != nil || len(s.Namespaces()) != 1 {
		t.Fatal("namespace 1 still active after enable 0")
	}
	if got := strings.TrimSpace(read(t, en)); got != "0" {
		t.Fatalf("enable = %q after disabling, want 0", got)
	}
	if err := write(en, "maybe"); err == nil {
		t.Error("enable accepted garbage")
	}
	if err := write(en, "1"); err != nil {
		t.Fatal(err)
	}
	back := s.Namespace(1)
	buf := make([]byte, 4)
	if back == nil {
		t.Fatal("namespace 1 not back after enable 1")
	}
	if _, err := back.ReadAt(buf, 0); err != nil || string(buf) != "kept" {
		t.Fatalf("data after re-enable: %q %v", buf, err)
	}
}
