package sysfsview_test

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/mpathfs/mpathfs/sysfsview"
	"github.com/mpathfs/mpathfs/sysfsview/sysfsviewtest"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimRight(l.b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func newFixture(t *testing.T) (*sysfsviewtest.Fixture, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	log := hclog.New(&hclog.LoggerOptions{Output: lb, Level: hclog.Info})
	f, err := sysfsviewtest.NewFixture(sysfsview.NewTree(log), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return f, lb
}

func TestAttributeFormats(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t)
	f.Head.SetStat(sysfsview.IOStat{ReadIOs: 5, ReadSectors: 40})
	f.Head.SetCounters(sysfsview.HeadCounters{RetryCount: 1, ErrorCount: 2, RequeueNoUsablePath: 3, FailNoAvailablePath: 4})
	f.Path0.SetCounters(sysfsview.PathCounters{FailoverCount: 7, RetryCount: 8, ErrorCount: 9})
	f.Path0.SetQueue(3, []int{0, 1})
	f.Ctrl0.SetCounters(sysfsview.ControllerCounters{CommandErrors: 11, Resets: 12, Reconnects: 13})
	for _, tc := range []struct{ path, want string }{
		{"sys/class/nvme-subsystem/nvme-subsys0/subsysnqn", sysfsviewtest.FixtureNQN + "\n"},
		{"sys/class/nvme-subsystem/nvme-subsys0/model", "mpathfs demo                            \n"},
		{"sys/class/nvme-subsystem/nvme-subsys0/serial", "0123456789          \n"},
		{"sys/class/nvme-subsystem/nvme-subsys0/firmware_rev", "1.0     \n"},
		{"sys/class/nvme-subsystem/nvme-subsys0/subsystype", "nvm\n"},
		{"sys/class/nvme-subsystem/nvme-subsys0/iopolicy", "numa\n"},
		{"sys/class/nvme/nvme0/state", "live\n"},
		{"sys/class/nvme/nvme0/transport", "tcp\n"},
		{"sys/class/nvme/nvme0/address", "traddr=127.0.0.1,trsvcid=4420,src_addr=127.0.0.1\n"},
		{"sys/class/nvme/nvme0/subsysnqn", sysfsviewtest.FixtureNQN + "\n"},
		{"sys/class/nvme/nvme0/hostnqn", sysfsviewtest.FixtureHostNQN + "\n"},
		{"sys/class/nvme/nvme0/hostid", "0f8fad5b-d9cb-469f-a165-70867728950e\n"},
		{"sys/class/nvme/nvme0/cntlid", "1\n"},
		{"sys/class/nvme/nvme0/queue_count", "3\n"},
		{"sys/class/nvme/nvme0/sqsize", "127\n"},
		{"sys/class/nvme/nvme0/kato", "5\n"},
		{"sys/class/nvme/nvme0/numa_node", "-1\n"},
		{"sys/class/nvme/nvme0/ctrl_loss_tmo", "600\n"},
		{"sys/class/nvme/nvme0/reconnect_delay", "10\n"},
		{"sys/class/nvme/nvme0/fast_io_fail_tmo", "off\n"},
		{"sys/class/nvme/nvme0/model", "mpathfs demo                            \n"},
		{"sys/class/nvme/nvme0/cntrltype", "io\n"},
		{"sys/class/nvme/nvme0/dctype", "none\n"},
		{"sys/class/nvme/nvme0/diag/command_error_count", "11\n"},
		{"sys/class/nvme/nvme0/diag/reset_count", "12\n"},
		{"sys/class/nvme/nvme0/diag/reconnect_count", "13\n"},
		{"sys/block/nvme0n1/size", "2097152\n"},
		{"sys/block/nvme0n1/nsid", "1\n"},
		{"sys/block/nvme0n1/wwid", "uuid.12345678-9abc-def0-0123-456789abcdef\n"},
		{"sys/block/nvme0n1/uuid", "12345678-9abc-def0-0123-456789abcdef\n"},
		{"sys/block/nvme0n1/nguid", "fedcba98-7654-3210-0001-020304050607\n"},
		{"sys/block/nvme0n1/eui", "00 25 38 b1 21 aa bb cc\n"},
		{"sys/block/nvme0n1/csi", "0\n"},
		{"sys/block/nvme0n1/delayed_removal_secs", "0\n"},
		{"sys/block/nvme0n1/stat", "       5        0       40        0        0        0        0        0        0        0        0        0        0        0        0        0        0\n"},
		{"sys/block/nvme0n1/diag/io_requeue_no_usable_path_count", "3\n"},
		{"sys/block/nvme0n1/diag/io_fail_no_available_path_count", "4\n"},
		{"sys/block/nvme0c0n1/ana_state", "optimized\n"},
		{"sys/block/nvme0c0n1/ana_grpid", "1\n"},
		{"sys/block/nvme0c1n1/ana_state", "non-optimized\n"},
		{"sys/block/nvme0c1n1/ana_grpid", "2\n"},
		{"sys/block/nvme0c0n1/queue_depth", ""}, // policy is numa
		{"sys/block/nvme0c0n1/numa_nodes", "0-1\n"},
		{"sys/block/nvme0c1n1/numa_nodes", "\n"}, // numa, current path of no node
		{"sys/block/nvme0c0n1/nsid", "1\n"},
		{"sys/block/nvme0c0n1/size", "2097152\n"},
		{"sys/block/nvme0c0n1/wwid", "uuid.12345678-9abc-def0-0123-456789abcdef\n"},
		{"sys/block/nvme0c0n1/diag/multipath_failover_count", "7\n"},
		{"sys/block/nvme0c0n1/diag/command_retries_count", "8\n"},
		{"sys/block/nvme0c0n1/diag/command_error_count", "9\n"},
	} {
		got, err := f.Tree.Read(tc.path)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestModes(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t)
	for _, tc := range []struct {
		path string
		mode uint32
	}{
		{"sys/class/nvme-subsystem/nvme-subsys0/iopolicy", 0o644},
		{"sys/class/nvme-subsystem/nvme-subsys0/subsysnqn", 0o444},
		{"sys/class/nvme/nvme0/state", 0o444},
		{"sys/class/nvme/nvme0/ctrl_loss_tmo", 0o644},
		{"sys/class/nvme/nvme0/reset_controller", 0o200},
		{"sys/class/nvme/nvme0/rescan_controller", 0o200},
		{"sys/class/nvme/nvme0/delete_controller", 0o200},
		{"sys/block/nvme0n1/delayed_removal_secs", 0o644},
		{"sys/block/nvme0n1/size", 0o444},
		{"sys/block/nvme0c0n1/ana_state", 0o444},
	} {
		a, ok := f.Tree.Lookup(tc.path).(*sysfsview.Attr)
		if !ok {
			t.Errorf("%s: not an attribute", tc.path)
			continue
		}
		if a.Mode != tc.mode {
			t.Errorf("%s mode = %#o, want %#o", tc.path, a.Mode, tc.mode)
		}
		if (a.Mode&0o444 != 0) != (a.Show != nil) || (a.Mode&0o200 != 0) != (a.Store != nil) {
			t.Errorf("%s: mode %#o disagrees with Show/Store", tc.path, a.Mode)
		}
	}
}

func TestSymlinks(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t)
	for _, tc := range []struct{ path, target string }{
		{"sys/class/nvme-subsystem/nvme-subsys0/nvme0", "../../nvme/nvme0"},
		{"sys/class/nvme-subsystem/nvme-subsys0/nvme1", "../../nvme/nvme1"},
		{"sys/class/nvme-subsystem/nvme-subsys0/nvme0n1", "../../../block/nvme0n1"},
		{"sys/block/nvme0n1/multipath/nvme0c0n1", "../../nvme0c0n1"},
		{"sys/block/nvme0n1/multipath/nvme0c1n1", "../../nvme0c1n1"},
		{"sys/block/nvme0c1n1/device", "../../class/nvme/nvme1"},
		{"sys/class/nvme/nvme1/nvme0c1n1", "../../../block/nvme0c1n1"},
	} {
		l, ok := f.Tree.Lookup(tc.path).(*sysfsview.Symlink)
		if !ok {
			t.Errorf("%s: not a symlink", tc.path)
			continue
		}
		if l.Target != tc.target {
			t.Errorf("%s -> %q, want %q", tc.path, l.Target, tc.target)
		}
		// The target resolves inside the tree.
		dir := tc.path[:strings.LastIndexByte(tc.path, '/')]
		if f.Tree.Lookup(joinRel(dir, l.Target)) == nil {
			t.Errorf("%s -> %s dangles", tc.path, l.Target)
		}
	}
}

func joinRel(dir, rel string) string {
	parts := strings.Split(dir, "/")
	for _, c := range strings.Split(rel, "/") {
		if c == ".." {
			parts = parts[:len(parts)-1]
		} else {
			parts = append(parts, c)
		}
	}
	return strings.Join(parts, "/")
}

func TestHiding(t *testing.T) {
	t.Parallel()
	tree := sysfsview.NewTree(nil)
	if err := tree.AddSubsystem("nvme-subsys1", sysfsview.SubsystemInfo{NQN: "n", Serial: "SN1 ", Model: "M ", VID: 0x1234},
		sysfsviewtest.NewSubsystem("numa")); err != nil {
		t.Fatal(err)
	}
	only := func(h sysfsview.HeadInfo) sysfsview.HeadInfo { h.NSID = 2; return h }
	fix := sysfsviewtest.FixtureHeadInfo()
	cases := []struct {
		name                 string
		info                 sysfsview.HeadInfo
		uuid, nguid, eui     bool
		wantUUID, wantWWIDPf string
	}{
		{"all ids", only(fix), true, true, true, "12345678-9abc-def0-0123-456789abcdef\n", "uuid."},
		{"nguid only: uuid falls back to nguid", only(sysfsview.HeadInfo{NGUID: fix.NGUID}), true, true, false, "fedcba98-7654-3210-0001-020304050607\n", "eui.fedcba98"},
		{"eui only", only(sysfsview.HeadInfo{EUI64: fix.EUI64}), false, false, true, "", "eui.002538b121aabbcc"},
		{"no ids", only(sysfsview.HeadInfo{}), false, false, false, "", "nvme.1234-534e31-4d-00000002"},
	}
	for i, tc := range cases {
		name := "nvme1n" + string(rune('1'+i))
		if err := tree.AddHead(name, "nvme-subsys1", tc.info, sysfsviewtest.NewHead(4096)); err != nil {
			t.Fatal(err)
		}
		base := "sys/block/" + name + "/"
		for attr, want := range map[string]bool{"uuid": tc.uuid, "nguid": tc.nguid, "eui": tc.eui} {
			if got := tree.Lookup(base+attr) != nil; got != want {
				t.Errorf("%s: %s visible = %v, want %v", tc.name, attr, got, want)
			}
			listed := false
			for _, e := range tree.Lookup(base).(*sysfsview.Dir).List() {
				listed = listed || e.Name == attr
			}
			if listed != want {
				t.Errorf("%s: %s listed = %v, want %v", tc.name, attr, listed, want)
			}
		}
		if tc.uuid {
			if got, _ := tree.Read(base + "uuid"); got != tc.wantUUID {
				t.Errorf("%s: uuid = %q, want %q", tc.name, got, tc.wantUUID)
			}
		}
		if got, _ := tree.Read(base + "wwid"); !strings.HasPrefix(got, tc.wantWWIDPf) {
			t.Errorf("%s: wwid = %q, want prefix %q", tc.name, got, tc.wantWWIDPf)
		}
	}
}

func TestPathPolicyDependentAttrs(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t)
	f.Path0.SetQueue(5, []int{2})
	for _, tc := range []struct{ policy, qd, nodes string }{
		{"numa", "", "2\n"},
		{"round-robin", "", ""},
		{"queue-depth", "5\n", ""},
	} {
		if err := f.Tree.Write("sys/class/nvme-subsystem/nvme-subsys0/iopolicy", tc.policy+"\n"); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.Tree.Read("sys/block/nvme0c0n1/queue_depth"); got != tc.qd {
			t.Errorf("%s: queue_depth = %q, want %q", tc.policy, got, tc.qd)
		}
		if got, _ := f.Tree.Read("sys/block/nvme0c0n1/numa_nodes"); got != tc.nodes {
			t.Errorf("%s: numa_nodes = %q, want %q", tc.policy, got, tc.nodes)
		}
	}
	// ana_state/ana_grpid are hidden when the controller does not use ANA.
	f.Path1.SetANA(false, "")
	if f.Tree.Lookup("sys/block/nvme0c1n1/ana_state") != nil || f.Tree.Lookup("sys/block/nvme0c1n1/ana_grpid") != nil {
		t.Error("ana attributes visible without ANA")
	}
	f.Path1.SetANA(true, "inaccessible")
	if got, _ := f.Tree.Read("sys/block/nvme0c1n1/ana_state"); got != "inaccessible\n" {
		t.Errorf("ana_state = %q", got)
	}
}

func errnoOf(err error) syscall.Errno {
	var e interface{ Errno() syscall.Errno }
	if errors.As(err, &e) {
		return e.Errno()
	}
	return 0
}

func TestIOPolicyStore(t *testing.T) {
	t.Parallel()
	const attr = "sys/class/nvme-subsystem/nvme-subsys0/iopolicy"
	for _, tc := range []struct {
		in, want string
		errno    syscall.Errno
	}{
		{"round-robin\n", "round-robin", 0},
		{"round-robin", "round-robin", 0},
		{"queue-depth\n", "queue-depth", 0},
		{"numa\n", "numa", 0},
		{"round-robin\x00", "round-robin", 0}, // C string: stops at NUL
		{"round-robin\n\n", "", syscall.EINVAL},
		{"round-robin ", "", syscall.EINVAL},
		{"Round-Robin", "", syscall.EINVAL},
		{"rr", "", syscall.EINVAL},
		{"service-time", "", syscall.EINVAL}, // not a kernel policy by default
		{"", "", syscall.EINVAL},
	} {
		f, lb := newFixture(t)
		err := f.Tree.Write(attr, tc.in)
		if got := errnoOf(err); got != tc.errno || (err == nil) != (tc.errno == 0) {
			t.Errorf("write %q: err %v (errno %v), want errno %v", tc.in, err, got, tc.errno)
		}
		want := tc.want
		if tc.errno != 0 {
			want = "numa" // unchanged
		}
		if got, _ := f.Tree.Read(attr); got != want+"\n" {
			t.Errorf("after %q: iopolicy = %q, want %q", tc.in, got, want)
		}
		lines := lb.lines()
		switch {
		case tc.errno != 0:
			if len(lines) != 1 || !strings.Contains(lines[0], "iopolicy") || !strings.Contains(lines[0], strconv.Quote(tc.in)) {
				t.Errorf("bad write %q: log = %q, want one line naming attribute and value", tc.in, lines)
			}
		default:
			// A good write is logged once, by the source (mpath logs the
			// kernel's "iopolicy changed" line), never by the tree.
			if len(lines) != 0 {
				t.Errorf("good write %q logged %q by the tree", tc.in, lines)
			}
		}
	}
}

func TestExtraIOPolicies(t *testing.T) {
	t.Parallel()
	tree := sysfsview.NewTree(nil)
	src := sysfsviewtest.NewSubsystem("numa")
	info := sysfsview.SubsystemInfo{NQN: "n", IOPolicies: append(sysfsview.DefaultIOPolicies(), "service-time")}
	if err := tree.AddSubsystem("nvme-subsys0", info, src); err != nil {
		t.Fatal(err)
	}
	if err := tree.Write("sys/class/nvme-subsystem/nvme-subsys0/iopolicy", "service-time\n"); err != nil {
		t.Fatal(err)
	}
	if src.IOPolicy() != "service-time" {
		t.Fatalf("policy = %q", src.IOPolicy())
	}
}

func TestNumericStores(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attr, in, want string
		errno          syscall.Errno
	}{
		{"sys/block/nvme0n1/delayed_removal_secs", "30\n", "30\n", 0},
		{"sys/block/nvme0n1/delayed_removal_secs", "0x10", "16\n", 0}, // kstrtouint base 0
		{"sys/block/nvme0n1/delayed_removal_secs", "-1", "0\n", syscall.EINVAL},
		{"sys/block/nvme0n1/delayed_removal_secs", "4294967296", "0\n", syscall.ERANGE},
		{"sys/block/nvme0n1/delayed_removal_secs", "ten", "0\n", syscall.EINVAL},
		{"sys/class/nvme/nvme0/ctrl_loss_tmo", "-1\n", "off\n", 0},
		{"sys/class/nvme/nvme0/ctrl_loss_tmo", "120", "120\n", 0},
		{"sys/class/nvme/nvme0/ctrl_loss_tmo", "off", "600\n", syscall.EINVAL},
		{"sys/class/nvme/nvme0/ctrl_loss_tmo", "99999999999", "600\n", syscall.EINVAL}, // kernel maps ERANGE to EINVAL here
		{"sys/class/nvme/nvme0/fast_io_fail_tmo", "20", "20\n", 0},
		{"sys/class/nvme/nvme0/fast_io_fail_tmo", "-5", "off\n", 0},
		{"sys/class/nvme/nvme0/reconnect_delay", "5\n", "5\n", 0},
		{"sys/class/nvme/nvme0/reconnect_delay", "-1", "10\n", syscall.EINVAL},
		{"sys/class/nvme/nvme0/reconnect_delay", "4294967296", "10\n", syscall.ERANGE},
	} {
		f, lb := newFixture(t)
		err := f.Tree.Write(tc.attr, tc.in)
		if got := errnoOf(err); got != tc.errno || (err == nil) != (tc.errno == 0) {
			t.Errorf("%s <- %q: err %v, want errno %v", tc.attr, tc.in, err, tc.errno)
		}
		if got, _ := f.Tree.Read(tc.attr); got != tc.want {
			t.Errorf("%s after %q = %q, want %q", tc.attr, tc.in, got, tc.want)
		}
		if n := len(lb.lines()); (tc.errno != 0) != (n == 1) || n > 1 {
			t.Errorf("%s <- %q: %d log lines", tc.attr, tc.in, n)
		}
	}
}

func TestTriggers(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t)
	for _, a := range []string{"reset_controller", "rescan_controller", "delete_controller", "reset_controller"} {
		if err := f.Tree.Write("sys/class/nvme/nvme1/"+a, "1\n"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Tree.Read("sys/class/nvme/nvme1/reset_controller"); errnoOf(err) != syscall.EACCES && !errors.Is(err, syscall.EACCES) {
		t.Errorf("reading a trigger: %v, want EACCES", err)
	}
	if r, s, d := f.Ctrl1.Triggered(); r != 2 || s != 1 || d != 1 {
		t.Errorf("triggers ran reset=%d rescan=%d delete=%d, want 2 1 1", r, s, d)
	}
	if r, _, _ := f.Ctrl0.Triggered(); r != 0 {
		t.Errorf("nvme0 reset ran %d times", r)
	}
}

func TestOptionalCapabilitiesHidden(t *testing.T) {
	t.Parallel()
	tree := sysfsview.NewTree(nil)
	if err := tree.AddSubsystem("s", sysfsview.SubsystemInfo{}, sysfsviewtest.NewSubsystem("numa")); err != nil {
		t.Fatal(err)
	}
	type only interface{ sysfsview.ControllerSource }
	var src only = struct{ sysfsview.ControllerSource }{sysfsviewtest.NewController("traddr=x")}
	if err := tree.AddController("nvme5", "s", sysfsview.ControllerInfo{}, src); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"reset_controller", "rescan_controller", "delete_controller"} {
		if tree.Lookup("sys/class/nvme/nvme5/"+a) != nil {
			t.Errorf("%s present without capability", a)
		}
	}
	a := tree.Lookup("sys/class/nvme/nvme5/ctrl_loss_tmo").(*sysfsview.Attr)
	if a.Mode != 0o444 || a.Store != nil {
		t.Errorf("ctrl_loss_tmo writable without TimeoutSetter: mode %#o", a.Mode)
	}
}

func TestAddRemove(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t)
	tree := f.Tree
	names := func(p string) string {
		var n []string
		for _, e := range tree.Lookup(p).(*sysfsview.Dir).List() {
			n = append(n, e.Name)
		}
		return strings.Join(n, " ")
	}
	if got, want := names("sys/block"), "nvme0c0n1 nvme0c1n1 nvme0n1"; got != want {
		t.Fatalf("block = %q, want %q", got, want)
	}
	if got, want := names("sys/class/nvme-subsystem/nvme-subsys0"), "firmware_rev iopolicy model nvme0 nvme0n1 nvme1 serial subsysnqn subsystype"; got != want {
		t.Fatalf("subsys = %q, want %q", got, want)
	}
	if err := tree.AddPath("nvme0c0n1", "nvme0n1", "nvme0", f.Path0); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("duplicate path: %v", err)
	}
	if err := tree.AddPath("nvme9c0n1", "nvme9n1", "nvme0", f.Path0); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("path of missing head: %v", err)
	}
	ino := tree.Lookup("sys/block/nvme0c1n1").Ino()
	if err := tree.RemovePath("nvme0c1n1"); err != nil {
		t.Fatal(err)
	}
	if got, want := names("sys/block/nvme0n1/multipath"), "nvme0c0n1"; got != want {
		t.Fatalf("multipath after remove = %q, want %q", got, want)
	}
	if tree.Lookup("sys/class/nvme/nvme1/nvme0c1n1") != nil {
		t.Fatal("controller still links the removed path")
	}
	if err := tree.AddPath("nvme0c1n1", "nvme0n1", "nvme1", f.Path1); err != nil {
		t.Fatal(err)
	}
	if tree.Lookup("sys/block/nvme0c1n1").Ino() == ino {
		t.Fatal("re-added path reuses its old inode number")
	}
	// Removing a controller removes its paths.
	if err := tree.RemoveController("nvme1"); err != nil {
		t.Fatal(err)
	}
	if got, want := names("sys/block"), "nvme0c0n1 nvme0n1"; got != want {
		t.Fatalf("block after controller removal = %q, want %q", got, want)
	}
	// Removing the subsystem removes everything below it.
	if err := tree.RemoveSubsystem("nvme-subsys0"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"sys/block", "sys/class/nvme", "sys/class/nvme-subsystem"} {
		if got := names(p); got != "" {
			t.Errorf("%s after subsystem removal = %q", p, got)
		}
	}
	if err := tree.RemoveHead("nvme0n1"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("removing a removed head: %v", err)
	}
}

func TestConcurrentAddRemoveAndRead(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, e := range f.Tree.Lookup("sys/block").(*sysfsview.Dir).List() {
				if d, ok := e.Node.(*sysfsview.Dir); ok {
					for _, a := range d.List() {
						if at, ok := a.Node.(*sysfsview.Attr); ok && at.Show != nil {
							_ = at.Show()
						}
					}
				}
			}
		}
	}()
	for i := 0; i < 200; i++ {
		if err := f.Tree.RemovePath("nvme0c1n1"); err != nil {
			t.Fatal(err)
		}
		if err := f.Tree.AddPath("nvme0c1n1", "nvme0n1", "nvme1", f.Path1); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

// geoHead is a head source with the optional BlockGeometry capability.
type geoHead struct{ *sysfsviewtest.Head }

func (geoHead) Limits() sysfsview.QueueLimits {
	return sysfsview.QueueLimits{LogicalBlockSize: 4096, PhysicalBlockSize: 8192, MetadataBytes: 8}
}
func (geoHead) NUse() uint64 { return 262144 }

// nuse, metadata_bytes and queue/ appear only when the source can back them.
func TestHeadBlockGeometry(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t)
	if f.Tree.Lookup("sys/block/nvme0n1/nuse") != nil || f.Tree.Lookup("sys/block/nvme0n1/queue") != nil {
		t.Fatal("geometry attributes shown for a source without BlockGeometry")
	}
	if err := f.Tree.AddHead("nvme0n2", "nvme-subsys0", sysfsview.HeadInfo{NSID: 2}, geoHead{sysfsviewtest.NewHead(1 << 30)}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"sys/block/nvme0n2/nuse":                      "262144\n",
		"sys/block/nvme0n2/metadata_bytes":            "8\n",
		"sys/block/nvme0n2/queue/logical_block_size":  "4096\n",
		"sys/block/nvme0n2/queue/physical_block_size": "8192\n",
		"sys/block/nvme0n2/hidden":                    "0\n",
		"sys/block/nvme0n2/integrity/format":          "none\n",
	} {
		if got, err := f.Tree.Read(p); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
}
