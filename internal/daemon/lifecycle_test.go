package daemon_test

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/demo"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/target"
)

// TestNamespaceRevalidation (issue 8, behaviour 3, nvme_validate_ns): a
// resize reported by the Namespace Attribute AEN updates size, the file
// size and the I/O bound; changed identifiers remove the paths ("identifiers
// changed for nsid %d") and so the head.
func TestNamespaceRevalidation(t *testing.T) {
	e := newEnv(t, envOpts{})
	if got := e.cat("sys/block/nvme0n1/size"); got != "32768" {
		t.Fatalf("size %s at start", got)
	}
	if err := e.setup.Subsys.Namespace(1).Resize(8 << 20); err != nil {
		t.Fatal(err)
	}
	e.waitCat("sys/block/nvme0n1/size", "16384")
	for _, p := range []string{"nvme0c0n1", "nvme0c1n1"} {
		e.waitCat("sys/block/"+p+"/size", "16384")
	}
	e.waitFor("file size 8 MiB", func() bool {
		fi, err := os.Stat(e.path("nvme0n1"))
		return err == nil && fi.Size() == 8<<20
	})
	// The new end bounds I/O: the last block reads, the first one past it
	// does not exist any more.
	if out, err := exec.Command("dd", "if="+e.path("nvme0n1"), "of=/dev/null", "bs=4096", "count=1",
		"skip="+itoa(8<<20/4096-1), "iflag=direct").CombinedOutput(); err != nil {
		t.Fatalf("read of the last block: %v: %s", err, out)
	}
	out, err := exec.Command("dd", "if=/dev/zero", "of="+e.path("nvme0n1"), "bs=4096", "count=1",
		"seek="+itoa(8<<20/4096), "oflag=direct", "conv=notrunc").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "No space left on device") {
		t.Fatalf("write past the new end: %v: %s", err, out)
	}

	// A different namespace behind NSID 2.
	var uuid, nguid [16]byte
	copy(uuid[:], "new-namespace-u2")
	copy(nguid[:], "new-namespace-n2")
	e.setup.Subsys.Namespace(2).SetIDs(uuid, nguid, [8]byte{})
	e.waitFor("nvme0n2 gone", func() bool {
		_, err := os.Lstat(e.path("nvme0n2"))
		return os.IsNotExist(err)
	})
	if n := strings.Count(e.logs.String(), "identifiers changed for nsid 2"); n != 2 {
		t.Errorf("%d 'identifiers changed for nsid 2' lines, want one per controller", n)
	}
	// rescan_controller does what the AEN did: the namespace, now new,
	// gets a path (and a head) again.
	if msg := e.echo("sys/class/nvme/nvme0/rescan_controller", "1"); msg != "" {
		t.Fatalf("rescan_controller: %s", msg)
	}
	e.waitFor("a new nvme0n2", func() bool {
		_, err := os.Lstat(e.path("sys/block/nvme0c0n2"))
		return err == nil
	})
}

// TestUnsharedNamespace (issue 8, behaviour 4, nvme_init_ns_head): a
// namespace that is not shared (NMIC bit 0 clear) seen through a second
// controller never joins the first controller's head.
func TestUnsharedNamespace(t *testing.T) {
	e := newEnv(t, envOpts{demo: demo.Config{Private: true}})
	if _, err := os.Lstat(e.path("sys/block/nvme0c0n1")); err != nil {
		t.Fatalf("first controller's path: %v", err)
	}
	for _, p := range []string{"sys/block/nvme0c1n1", "sys/block/nvme0c1n2"} {
		if _, err := os.Lstat(e.path(p)); !os.IsNotExist(err) {
			t.Errorf("%s exists (%v): an unshared namespace joined another controller's head", p, err)
		}
	}
	for _, nsid := range []string{"1", "2"} {
		if !strings.Contains(e.logs.String(), "Duplicate unshared namespace "+nsid) {
			t.Errorf("no 'Duplicate unshared namespace %s' in the log", nsid)
		}
	}
	if got := e.cat("sys/block/nvme0n1/multipath/nvme0c0n1/nsid"); got != "1" {
		t.Errorf("nsid through the only path: %q", got)
	}
}

// TestHeadInstanceReuse (issue 8, behaviour 10, ida_alloc_min): a new head
// takes the lowest free instance.
func TestHeadInstanceReuse(t *testing.T) {
	e := newEnv(t, envOpts{})
	if err := e.setup.Subsys.RemoveNamespace(1); err != nil {
		t.Fatal(err)
	}
	e.waitFor("nvme0n1 gone", func() bool {
		_, err := os.Lstat(e.path("nvme0n1"))
		return os.IsNotExist(err)
	})
	if _, err := e.setup.Subsys.AddNamespace(target.NamespaceConfig{NSID: 3, Size: 4 << 20, NGUID: [16]byte{3}}); err != nil {
		t.Fatal(err)
	}
	e.waitCat("sys/block/nvme0n1/nsid", "3")
	if got := e.cat("sys/block/nvme0n2/nsid"); got != "2" {
		t.Errorf("nvme0n2 nsid %q", got)
	}
}

// TestRescanNotLive (issue 8, behaviour 10): rescan_controller on a
// controller that is reconnecting succeeds (nvme_queue_scan does nothing).
func TestRescanNotLive(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := e.setup.Ports[0]
	if err := p.StopListening(); err != nil {
		t.Fatal(err)
	}
	p.DropConnections()
	e.waitCat("sys/class/nvme/nvme0/state", "connecting")
	if msg := e.echo("sys/class/nvme/nvme0/rescan_controller", "1"); msg != "" {
		t.Fatalf("rescan_controller while connecting: %s", msg)
	}
	if err := p.StartListening(); err != nil {
		t.Fatal(err)
	}
	e.waitCat("sys/class/nvme/nvme0/state", "live")
}

// TestDeleteControllerUnderLoad (issue 8, behaviour 5,
// nvme_remove_namespaces before the queues go): fio writes with verify
// while delete_controller removes one path; the I/O drains to the other
// path with no failover, no write-fence wait and no error.
func TestDeleteControllerUnderLoad(t *testing.T) {
	if _, err := exec.LookPath("fio"); err != nil {
		t.Skip("needs fio")
	}
	e := newEnv(t, envOpts{})
	fio := exec.Command("fio", "--name=load", "--filename="+e.path("nvme0n1"), "--ioengine=libaio", "--direct=1",
		"--rw=randwrite", "--bs=4k", "--iodepth=16", "--size=8M", "--time_based", "--runtime=3",
		"--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0", "--output-format=terse")
	var out bytes.Buffer
	fio.Stdout, fio.Stderr = &out, &out
	if err := fio.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until both paths carry writes, then delete one controller.
	e.waitFor("writes on both paths", func() bool {
		return field(e.cat("sys/block/nvme0c0n1/stat"), 4) > 0 && field(e.cat("sys/block/nvme0c1n1/stat"), 4) > 0 ||
			field(e.cat("sys/block/nvme0n1/stat"), 4) > 200
	})
	if msg := e.echo("sys/class/nvme/nvme0/delete_controller", "1"); msg != "" {
		t.Fatalf("delete_controller: %s", msg)
	}
	e.waitFor("nvme0 gone", func() bool {
		_, err := os.Lstat(e.path("sys/class/nvme/nvme0"))
		return os.IsNotExist(err)
	})
	if err := fio.Wait(); err != nil {
		t.Fatalf("fio: %v\n%s", err, out.String())
	}
	if got := e.cat("sys/block/nvme0c1n1/diag/multipath_failover_count"); got != "0" {
		t.Errorf("failover count on the remaining path %s, want 0", got)
	}
	h := e.d.Devices()["nvme0n1"].Head()
	if k := h.Counters(); k.FenceWaits != 0 || k.ErrorCount != 0 {
		t.Errorf("head counters after delete under load: %+v (want no fence wait, no error)", k)
	}
	if strings.Contains(e.logs.String(), "I/O still in flight") {
		t.Error("the drain did not finish")
	}
	// As root the mount serves /dev/fuse itself: fio's writes were started
	// asynchronously (mpath.Head.Start), the drain covered them.
	if n := e.d.Devices()["nvme0n1"].Started(); os.Geteuid() == 0 && n < 1000 {
		t.Errorf("%d writes started asynchronously, want most of fio's", n)
	}
	// At depth 16 the TCP queues held commands that arrived together on
	// /dev/fuse and sent them in fewer writes.
	if held, flushes, _ := e.m.Batching(); os.Geteuid() == 0 && (held == 0 || flushes >= held) {
		t.Errorf("%d commands held in %d flushes, want some held, in fewer flushes", held, flushes)
	} else {
		t.Logf("%d commands held, sent in %d flushes", held, flushes)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// field returns field i of a stat line.
func field(stat string, i int) uint64 {
	f := strings.Fields(stat)
	if i >= len(f) {
		return 0
	}
	var v uint64
	for _, c := range f[i] {
		v = v*10 + uint64(c-'0')
	}
	return v
}

// TestACRE (issue 8, behaviour 8, nvme_configure_acre): the controller
// reports CRDT1 = 2 (200 ms), so the host enables ACRE with Set Features
// Host Behavior Support; a read failing with a retryable status carrying
// CRD=1 is retried on the same path after 200 ms and succeeds.
func TestACRE(t *testing.T) {
	e := newEnv(t, envOpts{demo: demo.Config{CRDT: [3]uint16{2, 0, 0}}})
	ctrls := e.setup.Subsys.Controllers()
	if len(ctrls) != 2 {
		t.Fatalf("%d controllers on the target", len(ctrls))
	}
	for _, c := range ctrls {
		if !c.ACRE() {
			t.Fatalf("controller %d: ACRE not enabled by the host", c.CNTLID())
		}
	}
	const crd1 = nvme.Status(1 << 11)
	for _, p := range e.setup.Ports {
		p.FailNextIO(1, nvme.StatusInternalError|crd1)
	}
	t0 := time.Now()
	if out, err := exec.Command("dd", "if="+e.path("nvme0n1"), "of=/dev/null", "bs=4096", "count=1", "iflag=direct").CombinedOutput(); err != nil {
		t.Fatalf("read with a CRD=1 failure: %v: %s", err, out)
	}
	if d := time.Since(t0); d < 200*time.Millisecond {
		t.Errorf("the retry came after %v, before CRDT1 (200 ms)", d)
	}
	var retries int
	for _, p := range []string{"nvme0c0n1", "nvme0c1n1"} {
		v, _ := strconv.Atoi(e.cat("sys/block/" + p + "/diag/command_retries_count"))
		retries += v
	}
	if retries != 1 {
		t.Errorf("%d retries, want 1", retries)
	}
}

// TestRevalidationOnReconnect (issue 8, behaviour 3): a resize while one
// controller is disconnected reaches the other through its AEN (the head
// takes the new size, the stale path is not ready); the reconnect's scan
// revalidates the first controller's path too.
func TestRevalidationOnReconnect(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := e.setup.Ports[0]
	if err := p.StopListening(); err != nil {
		t.Fatal(err)
	}
	p.DropConnections()
	e.waitCat("sys/class/nvme/nvme0/state", "connecting")
	if err := e.setup.Subsys.Namespace(1).Resize(4 << 20); err != nil {
		t.Fatal(err)
	}
	e.waitCat("sys/block/nvme0c1n1/size", "8192")
	e.waitCat("sys/block/nvme0n1/size", "8192")
	if got := e.cat("sys/block/nvme0c0n1/size"); got != "32768" {
		t.Fatalf("the disconnected controller's path already shows %s sectors", got)
	}
	if err := p.StartListening(); err != nil {
		t.Fatal(err)
	}
	e.waitCat("sys/class/nvme/nvme0/state", "live")
	e.waitCat("sys/block/nvme0c0n1/size", "8192")
	// Both paths agree again: I/O may use either.
	if out, err := exec.Command("dd", "if="+e.path("nvme0n1"), "of=/dev/null", "bs=64k", "iflag=direct").CombinedOutput(); err != nil {
		t.Fatalf("read after revalidation: %v: %s", err, out)
	}
}
