package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpathfs/mpathfs/internal/demo"
	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme"
)

const (
	subsysDir = "sys/class/nvme-subsystem/nvme-subsys0"
	iopolicy  = subsysDir + "/iopolicy"
	path0n1   = "sys/block/nvme0c0n1"
	path1n1   = "sys/block/nvme0c1n1"
)

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

func readAll(t *testing.T, name string, n int) []byte {
	t.Helper()
	out, err := exec.Command("dd", "if="+name, "bs=1M", "count="+strconv.Itoa(n>>20), "iflag=direct", "status=none").Output()
	if err != nil {
		t.Fatalf("dd read %s: %v", name, err)
	}
	return out
}

// dd and fio --verify on a namespace file; the same bytes come back through
// either path alone.
func TestDDAndFioVerifyEitherPath(t *testing.T) {
	requireFUSE(t, "dd", "fio")
	e := newEnv(t, envConfig{})
	data := make([]byte, 8<<20)
	rand.Read(data)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ns := e.path("nvme0n1")
	lowat0 := e.setup.Ports[0].LowatReads() + e.setup.Ports[1].LowatReads()
	if out, err := run(t, "dd", "if="+src, "of="+ns, "bs=1M", "oflag=direct", "conv=notrunc,fsync", "status=none"); err != nil {
		t.Fatalf("dd write: %v: %s", err, out)
	}
	// The target waited for large write payloads whole (SO_RCVLOWAT).
	if n := e.setup.Ports[0].LowatReads() + e.setup.Ports[1].LowatReads() - lowat0; n == 0 {
		t.Fatal("8 MiB written in 1 MiB blocks, but the target raised SO_RCVLOWAT for no payload")
	}
	if got := readAll(t, ns, len(data)); sha(got) != sha(data) {
		t.Fatal("dd read back differs from what dd wrote")
	}

	out, err := e.fio("--name=v", "--filename="+e.path("nvme0n2"), "--ioengine=libaio", "--direct=1",
		"--rw=randwrite", "--bsrange=512-64k", "--iodepth=16", "--size=16M",
		"--verify=crc32c", "--do_verify=1", "--verify_fatal=1")
	if err != nil || !strings.Contains(out, "err= 0") {
		t.Fatalf("fio verify: %v\n%s", err, out)
	}

	// Path 0 alone: make path 1 inaccessible for ns 1 (ANA group 1).
	p0, p1 := e.setup.Ports[0], e.setup.Ports[1]
	p1.SetANAState(1, nvme.ANAInaccessible)
	e.waitFor("nvme0c1n1 inaccessible", 10*time.Second, func() bool { return e.cat(path1n1+"/ana_state") == "inaccessible" })
	before0, before1 := e.statField(path0n1, 0), e.statField(path1n1, 0)
	if got := readAll(t, ns, len(data)); sha(got) != sha(data) {
		t.Fatal("read through path 0 alone differs")
	}
	if a0, a1 := e.statField(path0n1, 0), e.statField(path1n1, 0); a0 == before0 || a1 != before1 {
		t.Fatalf("path 0 alone: reads moved %d -> %d on nvme0c0n1 and %d -> %d on nvme0c1n1", before0, a0, before1, a1)
	}
	// Path 1 alone.
	p1.SetANAState(1, nvme.ANAOptimized)
	p0.SetANAState(1, nvme.ANAInaccessible)
	e.waitFor("nvme0c0n1 inaccessible", 10*time.Second, func() bool {
		return e.cat(path0n1+"/ana_state") == "inaccessible" && e.cat(path1n1+"/ana_state") == "optimized"
	})
	before0, before1 = e.statField(path0n1, 0), e.statField(path1n1, 0)
	if got := readAll(t, ns, len(data)); sha(got) != sha(data) {
		t.Fatal("read through path 1 alone differs")
	}
	if a0, a1 := e.statField(path0n1, 0), e.statField(path1n1, 0); a1 == before1 || a0 != before0 {
		t.Fatalf("path 1 alone: reads moved %d -> %d on nvme0c0n1 and %d -> %d on nvme0c1n1", before0, a0, before1, a1)
	}
}

// load sizes the fio job of a failover scenario and how long to wait for
// each step.
type load struct {
	sizeMB, rateIOPS int
	started, moved   uint64 // writes on path 0 before the fault; on path 1 after it
	wait             time.Duration
}

// ownTarget suits our in-process target; the emulated kernel target needs
// less.
var ownTarget = load{sizeMB: 16, rateIOPS: 1200, started: 200, moved: 100, wait: 20 * time.Second}

// failoverCase runs fio --verify on nvme0n1 while fault() acts on the path
// in use (path 0 under numa), checks the tree with seen() while the fault
// holds, then heal() restores it. fio must see no error at all.
func failoverCase(t *testing.T, e *env, l load, fault, seen, heal func()) {
	t.Helper()
	type result struct {
		out string
		err error
	}
	res := make(chan result, 1)
	go func() {
		out, err := e.fio(verifyJob(e.path("nvme0n1"), l.sizeMB, l.rateIOPS)...)
		res <- result{out, err}
	}()
	e.waitFor("fio writing on nvme0c0n1", l.wait, func() bool { return e.statField(path0n1, 4) > l.started })
	fault()
	seen()
	w1 := e.statField(path1n1, 4)
	e.waitFor("I/O continuing on nvme0c1n1", l.wait, func() bool { return e.statField(path1n1, 4) > w1+l.moved })
	heal()
	r := <-res
	if r.err != nil || !strings.Contains(r.out, "err= 0") {
		t.Fatalf("fio verify across the failover: %v\n%s", r.err, r.out)
	}
	if n := e.logs.Count("no available path - failing I/O"); n != 0 {
		t.Fatalf("%d I/Os failed for lack of a path", n)
	}
}

func TestFailoverPortDropped(t *testing.T) {
	requireFUSE(t, "fio")
	e := newEnv(t, envConfig{})
	p0 := e.setup.Ports[0]
	failoverCase(t, e, ownTarget,
		func() {
			// The port dies with commands in flight: hold them, then close.
			p0.Stall(true)
			e.waitFor("commands stuck in flight on nvme0c0n1", 10*time.Second, func() bool {
				w := e.statField(path0n1, 4)
				time.Sleep(200 * time.Millisecond) // no completion event to wait on: sample twice
				return e.statField(path0n1, 8) > 0 && e.statField(path0n1, 4) == w
			})
			if err := p0.StopListening(); err != nil {
				t.Fatal(err)
			}
			p0.DropConnections()
			p0.Stall(false)
		},
		func() {
			e.waitFor("nvme0 not live", 10*time.Second, func() bool {
				s := e.cat("sys/class/nvme/nvme0/state")
				return s == "resetting" || s == "connecting"
			})
		},
		func() {
			if err := p0.StartListening(); err != nil {
				t.Fatal(err)
			}
			e.waitFor("nvme0 live again", 20*time.Second, func() bool { return e.cat("sys/class/nvme/nvme0/state") == "live" })
		})
	if n, _ := strconv.Atoi(e.cat(path0n1 + "/diag/multipath_failover_count")); n == 0 {
		t.Errorf("multipath_failover_count of nvme0c0n1 did not move")
	}
}

func TestFailoverPortStalled(t *testing.T) {
	requireFUSE(t, "fio")
	e := newEnv(t, envConfig{KATO: time.Second})
	p0 := e.setup.Ports[0]
	failoverCase(t, e, ownTarget,
		func() { p0.Stall(true) },
		func() {
			// Keep-alive (KATO 1 s) detects the silent controller.
			e.waitFor("keep-alive detects the stall", 15*time.Second, func() bool { return e.cat("sys/class/nvme/nvme0/state") != "live" })
		},
		func() {
			p0.Stall(false)
			e.waitFor("nvme0 live again", 30*time.Second, func() bool { return e.cat("sys/class/nvme/nvme0/state") == "live" })
		})
}

func TestFailoverANAInaccessible(t *testing.T) {
	requireFUSE(t, "fio")
	e := newEnv(t, envConfig{})
	p0 := e.setup.Ports[0]
	failoverCase(t, e, ownTarget,
		func() { p0.SetANAState(1, nvme.ANAInaccessible) },
		func() {
			e.waitFor("ana_state inaccessible", 10*time.Second, func() bool { return e.cat(path0n1+"/ana_state") == "inaccessible" })
			if s := e.cat("sys/class/nvme/nvme0/state"); s != "live" {
				t.Errorf("controller state %q, want live (only ANA changed)", s)
			}
		},
		func() {
			p0.SetANAState(1, nvme.ANAOptimized)
			e.waitFor("ana_state optimized", 10*time.Second, func() bool { return e.cat(path0n1+"/ana_state") == "optimized" })
		})
}

// An ANA error status on I/O (the ANA AEN not yet seen) fails over too and
// re-reads the ANA log.
func TestFailoverOnANAStatus(t *testing.T) {
	requireFUSE(t, "dd")
	e := newEnv(t, envConfig{})
	e.setup.Ports[0].FailNextIO(3, nvme.StatusANATransition)
	if out, err := run(t, "dd", "if=/dev/zero", "of="+e.path("nvme0n1"), "bs=4k", "count=16", "oflag=direct", "conv=notrunc", "status=none"); err != nil {
		t.Fatalf("dd: %v %s", err, out)
	}
	if n, _ := strconv.Atoi(e.cat(path0n1 + "/diag/multipath_failover_count")); n == 0 {
		t.Fatal("ANA transition status did not fail over")
	}
}

// A non-path error with DNR goes to the caller as EIO, unretried.
func TestDNRErrorReachesCaller(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t, envConfig{})
	e.setup.Ports[0].FailNextIO(1, nvme.StatusInternalError|nvme.StatusDNR)
	f, err := os.OpenFile(e.path("nvme0n1"), os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := alignedBuf(4096)
	_, err = f.ReadAt(buf, 0)
	if !errors.Is(errnoOf(err), syscall.EIO) {
		t.Fatalf("read with an injected DNR error: %v, want EIO", err)
	}
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatalf("next read: %v", err)
	}
	if n, _ := strconv.Atoi(e.cat(path0n1 + "/diag/command_error_count")); n != 1 {
		t.Fatalf("command_error_count %d, want 1", n)
	}
}

func alignedBuf(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		panic(err)
	}
	return b
}

// With delayed_removal_secs set, I/O with every path gone blocks, and
// completes when a port returns.
func TestAllPathsGoneQueuesWithDelayedRemoval(t *testing.T) {
	requireFUSE(t, "dd")
	e := newEnv(t, envConfig{DelayedRemoval: 30})
	for _, p := range e.setup.Ports {
		if err := p.StopListening(); err != nil {
			t.Fatal(err)
		}
		p.DropConnections()
	}
	e.waitFor("both controllers down", 10*time.Second, func() bool {
		return e.cat("sys/class/nvme/nvme0/state") != "live" && e.cat("sys/class/nvme/nvme1/state") != "live"
	})
	block := bytes.Repeat([]byte("queued! "), 512)
	src := filepath.Join(t.TempDir(), "blk")
	os.WriteFile(src, block, 0o600)
	dd := exec.Command("dd", "if="+src, "of="+e.path("nvme0n1"), "bs=4k", "seek=7", "count=1", "oflag=direct", "conv=notrunc", "status=none")
	if err := dd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- dd.Wait() }()
	e.waitFor("the write to be queued", 10*time.Second, func() bool {
		n, _ := strconv.Atoi(e.cat("sys/block/nvme0n1/diag/io_requeue_no_usable_path_count"))
		return n > 0
	})
	select {
	case err := <-done:
		t.Fatalf("dd finished with no path: %v", err)
	default:
	}
	if err := e.setup.Ports[1].StartListening(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("queued dd failed after the port returned: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("queued write did not complete after the port returned")
	}
	f, err := os.Open(e.path("nvme0n1"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, 4096)
	if _, err := f.ReadAt(got, 7*4096); err != nil || !bytes.Equal(got, block) {
		t.Fatalf("queued write not on the medium: %v", err)
	}
	if !strings.Contains(e.logs.String(), "no usable path - requeuing I/O") {
		t.Error("kernel line 'no usable path - requeuing I/O' not logged")
	}
}

// Without delayed removal, I/O fails with EIO once the controllers are lost
// for good (ctrl_loss_tmo), and the namespace file goes away.
func TestAllPathsGoneFailsAfterCtrlLoss(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t, envConfig{CtrlLossTmo: 2 * time.Second, ReconnectDelay: 500 * time.Millisecond})
	f, err := os.OpenFile(e.path("nvme0n1"), os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range e.setup.Ports {
		if err := p.StopListening(); err != nil {
			t.Fatal(err)
		}
		p.DropConnections()
	}
	start := time.Now()
	buf := alignedBuf(4096)
	_, err = f.ReadAt(buf, 0)
	if !errors.Is(errnoOf(err), syscall.EIO) {
		t.Fatalf("read with every controller lost: %v, want EIO", err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("EIO after %s: I/O should queue while a controller may reconnect (ctrl_loss_tmo 2 s)", el)
	}
	e.waitFor("namespace file removed", 10*time.Second, func() bool {
		_, err := os.Stat(e.path("nvme0n1"))
		return errors.Is(err, os.ErrNotExist)
	})
	if !strings.Contains(e.logs.String(), "no available path - failing I/O") {
		t.Error("kernel line 'no available path - failing I/O' not logged")
	}
}

func TestIOPolicySpreadsAndRejectsGarbage(t *testing.T) {
	requireFUSE(t, "fio")
	e := newEnv(t, envConfig{})
	if got := e.cat(iopolicy); got != "numa" {
		t.Fatalf("iopolicy %q, want numa", got)
	}
	for _, policy := range []string{"round-robin", "queue-depth"} {
		if msg := e.echo(iopolicy, policy); msg != "" {
			t.Fatalf("echo %s: %s", policy, msg)
		}
		if got := e.cat(iopolicy); got != policy {
			t.Fatalf("iopolicy %q after echo %s", got, policy)
		}
		r0, r1 := e.statField(path0n1, 0), e.statField(path1n1, 0)
		out, err := e.fio("--name=rr", "--filename="+e.path("nvme0n1"), "--ioengine=libaio", "--direct=1",
			"--rw=randread", "--bs=4k", "--iodepth=32", "--size=16M", "--io_size=16M")
		if err != nil {
			t.Fatalf("fio: %v\n%s", err, out)
		}
		d0, d1 := e.statField(path0n1, 0)-r0, e.statField(path1n1, 0)-r1
		if d0 < 400 || d1 < 400 {
			t.Fatalf("%s: reads per path %d and %d: not spread over both paths", policy, d0, d1)
		}
		t.Logf("%s: %d reads on nvme0c0n1, %d on nvme0c1n1", policy, d0, d1)
	}
	// Bad writes: EINVAL, value unchanged, one log line each.
	warnBefore := e.logs.Count("rejected")
	if msg := e.echo(iopolicy, "fastest"); !strings.Contains(msg, "Invalid argument") {
		t.Fatalf("echo fastest > iopolicy: %q, want Invalid argument", msg)
	}
	if err := os.WriteFile(e.path(iopolicy), []byte("round-robin-ish\n"), 0); !errors.Is(errnoOf(err), syscall.EINVAL) {
		t.Fatalf("write round-robin-ish: %v, want EINVAL", err)
	}
	if got := e.cat(iopolicy); got != "queue-depth" {
		t.Fatalf("iopolicy changed to %q by a bad write", got)
	}
	if msg := e.echo("sys/block/nvme0n1/delayed_removal_secs", "soon"); !strings.Contains(msg, "Invalid argument") {
		t.Fatalf("echo soon > delayed_removal_secs: %q", msg)
	}
	if n := e.logs.Count("rejected") - warnBefore; n != 3 {
		t.Errorf("%d log lines for 3 rejected writes, want 3", n)
	}
	if msg := e.echo("sys/block/nvme0n1/delayed_removal_secs", "15"); msg != "" || e.cat("sys/block/nvme0n1/delayed_removal_secs") != "15" {
		t.Errorf("delayed_removal_secs write: %q", msg)
	}
	if got := strings.Count(e.logs.String(), "iopolicy changed from round-robin to queue-depth"); got != 1 {
		t.Errorf("policy change logged %d times, want once", got)
	}
	_ = mpath.PolicyNUMA
}

// Clean shutdown with writes in flight: every acknowledged write is on the
// medium afterwards.
func TestCleanShutdownKeepsAcknowledgedWrites(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t, envConfig{})
	f, err := os.OpenFile(e.path("nvme0n1"), os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	const blocks = 3000
	acked := make(chan int, 1)
	started := make(chan struct{})
	go func() {
		buf := alignedBuf(4096)
		n := 0
		for ; n < blocks; n++ {
			binary.LittleEndian.PutUint64(buf, uint64(n)+1)
			if _, err := f.WriteAt(buf, int64(n)*4096); err != nil {
				break
			}
			if n == 100 {
				close(started)
			}
		}
		f.Close()
		acked <- n
	}()
	<-started
	e.stop() // SIGTERM path: unmount (lazily while busy), Flush, CC.SHN
	n := <-acked
	if n < 101 {
		t.Fatalf("only %d writes acknowledged", n)
	}
	if !strings.Contains(e.logs.String(), "connecting -> deleting") && !strings.Contains(e.logs.String(), "live -> deleting") {
		t.Errorf("controllers were not shut down (no transition to deleting in the log)")
	}
	// A fresh initiator on the same target reads every acknowledged block.
	e2 := newEnvOnTarget(t, e)
	g, err := os.OpenFile(e2.path("nvme0n1"), os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	buf := alignedBuf(4096)
	for i := 0; i < n; i++ {
		if _, err := g.ReadAt(buf, int64(i)*4096); err != nil {
			t.Fatal(err)
		}
		if v := binary.LittleEndian.Uint64(buf); v != uint64(i)+1 {
			t.Fatalf("acknowledged block %d of %d reads %d after shutdown", i, n, v)
		}
	}
	t.Logf("%d acknowledged writes, all readable after shutdown", n)
}

// A path that is down when the daemon starts does not stop the mount; it
// joins its namespaces' heads when its port comes back.
func TestPathDownAtStartJoinsLater(t *testing.T) {
	requireFUSE(t, "dd")
	e := newEnv(t, envConfig{DownAtStart: []int{1}})
	if _, err := os.Stat(e.path("sys/class/nvme/nvme1")); err == nil {
		t.Fatal("a controller for the port that is down exists")
	}
	if out, err := run(t, "dd", "if=/dev/zero", "of="+e.path("nvme0n1"), "bs=4k", "count=8", "oflag=direct", "conv=notrunc", "status=none"); err != nil {
		t.Fatalf("I/O on the one path: %v %s", err, out)
	}
	if err := e.setup.Ports[1].StartListening(); err != nil {
		t.Fatal(err)
	}
	e.waitFor("nvme1 to connect and join", 20*time.Second, func() bool {
		_, err := os.Stat(e.path("sys/block/nvme0n1/multipath/nvme0c1n1"))
		return err == nil
	})
	if s := e.cat("sys/class/nvme/nvme1/state"); s != "live" {
		t.Fatalf("nvme1 state %q", s)
	}
	if !strings.Contains(e.logs.String(), "connect failed; retrying in the background") {
		t.Error("the failed first connect was not logged")
	}
}

// A persistent discovery controller follows discovery-log-change AENs: a
// port that starts exporting the subsystem is connected as a second path.
func TestPersistentDiscoveryConnectsNewPaths(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t, envConfig{PersistentDiscovery: true, UnlinkedAtStart: []int{1}})
	if _, err := os.Stat(e.path("sys/class/nvme/nvme0/state")); err != nil {
		t.Fatalf("the discovered controller is missing: %v", err)
	}
	if _, err := os.Stat(e.path("sys/class/nvme/nvme1")); err == nil {
		t.Fatal("a controller exists for a port that does not export the subsystem")
	}
	if err := e.setup.Ports[1].LinkSubsystem(demo.NQN); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the new path from the discovery-log-change AEN", 20*time.Second, func() bool {
		_, err := os.Stat(e.path("sys/block/nvme0n1/multipath/nvme0c1n1"))
		return err == nil
	})
	if !strings.Contains(e.logs.String(), "discovery log changed") {
		t.Error("the discovery-log-change AEN was not logged")
	}
}

// The gendisk attributes and writable diag/ counters through the real
// daemon: echo sets a counter as in Linux, garbage is refused, and the
// path disks look like the kernel's hidden path disks.
func TestDiagCountersAndDiskAttributes(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t, envConfig{})
	head := "sys/block/nvme0n1"
	for _, c := range []struct{ file, value, errWant, after string }{
		{head + "/diag/io_requeue_no_usable_path_count", "5", "", "5"},
		{head + "/diag/io_requeue_no_usable_path_count", "0", "", "0"},
		{head + "/diag/io_fail_no_available_path_count", "abc", "Invalid argument", "0"},
		{path0n1 + "/diag/command_retries_count", "7", "", "7"},
		{path0n1 + "/diag/multipath_failover_count", "-1", "Invalid argument", "0"},
		{path0n1 + "/passthru_err_log_enabled", "on", "", "on"},
		{head + "/passthru_err_log_enabled", "maybe", "Invalid argument", "off"},
		{"sys/class/nvme/nvme0/passthru_err_log_enabled", "1", "", "on"},
		{"sys/class/nvme/nvme0/diag/reset_count", "3", "", "3"},
		{"sys/class/nvme/nvme0/diag/command_error_count", "0", "", "0"},
		{"sys/class/nvme/nvme0/diag/reconnect_count", "x", "Invalid argument", "0"},
	} {
		msg := e.echo(c.file, c.value)
		if (c.errWant == "") != (msg == "") || !strings.Contains(msg, c.errWant) {
			t.Errorf("echo %s > %s: %q, want error %q", c.value, c.file, msg, c.errWant)
		}
		if got := e.cat(c.file); got != c.after {
			t.Errorf("%s = %q after echo %s, want %q", c.file, got, c.value, c.after)
		}
	}
	for file, want := range map[string]string{
		head + "/hidden":                        "0",
		path0n1 + "/hidden":                     "1",
		path0n1 + "/partscan":                   "0",
		path0n1 + "/queue/logical_block_size":   "512",
		head + "/queue/logical_block_size":      "512",
		path0n1 + "/queue/io_timeout":           "10000",
		"sys/class/nvme/nvme0/io_timeout":       "10000",
		"sys/class/nvme/nvme0/admin_timeout":    "60000",
		path0n1 + "/metadata_bytes":             "0",
		path0n1 + "/integrity/format":           "none",
		path0n1 + "/queue/max_discard_segments": "256",
		path0n1 + "/queue/discard_max_hw_bytes": "2199023255040",
		head + "/queue/write_zeroes_max_bytes":  "2199023255040",
		"sys/class/nvme/nvme0/quirks":           "none",
	} {
		if got := e.cat(file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if nuse := e.cat(path0n1 + "/nuse"); nuse != e.cat(path0n1+"/size") {
		t.Errorf("nuse %s, size %s: the demo target reports NUSE = NSZE", nuse, e.cat(path0n1+"/size"))
	}
}

// ctrl_loss_tmo, reconnect_delay, fast_io_fail_tmo, io_timeout and
// admin_timeout are writable with Linux's parsing and read-back, and take
// effect: a controller whose ctrl_loss_tmo was cut to 1 s is removed about
// a second after its port goes away instead of after the configured 60 s.
func TestWritableTimeouts(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t, envConfig{}) // reconnect_delay 200 ms, ctrl_loss_tmo 60 s
	c0 := "sys/class/nvme/nvme0/"
	for _, c := range []struct{ file, value, errWant, after string }{
		{"ctrl_loss_tmo", "-1", "", "off"},
		{"ctrl_loss_tmo", "25", "", "25"},
		{"reconnect_delay", "3", "", "3"},
		{"ctrl_loss_tmo", "", "", "375"}, // 125 attempts x 3 s, as Linux shows it
		{"ctrl_loss_tmo", "abc", "Invalid argument", "375"},
		{"fast_io_fail_tmo", "7", "", "7"},
		{"fast_io_fail_tmo", "-5", "", "off"},
		{"io_timeout", "45000", "", "45000"},
		{"io_timeout", "0", "Invalid argument", "45000"},
		{"admin_timeout", "90000", "", "90000"},
	} {
		if c.value != "" {
			msg := e.echo(c0+c.file, c.value)
			if (c.errWant == "") != (msg == "") || !strings.Contains(msg, c.errWant) {
				t.Errorf("echo %s > %s: %q, want error %q", c.value, c.file, msg, c.errWant)
			}
		}
		if got := e.cat(c0 + c.file); got != c.after {
			t.Errorf("%s = %q, want %q", c.file, got, c.after)
		}
	}
	if got := e.cat(path0n1 + "/queue/io_timeout"); got != "45000" {
		t.Errorf("queue/io_timeout of nvme0's path = %q, want the controller's 45000", got)
	}

	if msg := e.echo("sys/class/nvme/nvme1/ctrl_loss_tmo", "1"); msg != "" {
		t.Fatal(msg)
	}
	if err := e.setup.Ports[1].StopListening(); err != nil {
		t.Fatal(err)
	}
	e.setup.Ports[1].DropConnections()
	start := time.Now()
	e.waitFor("nvme1 removed after ctrl_loss_tmo 1 s", 15*time.Second, func() bool {
		_, err := os.Stat(e.path("sys/class/nvme/nvme1"))
		return os.IsNotExist(err)
	})
	t.Logf("nvme1 removed %s after its port went away", time.Since(start).Round(10*time.Millisecond))
}

// A metadata-formatted namespace (8 bytes per block, no PI) is shown with
// capacity 0, as Linux over TCP shows it: size 0, an empty file that
// refuses writes, nuse from NUSE and metadata_bytes from the LBA format.
func TestMetadataNamespaceCapacityZero(t *testing.T) {
	requireFUSE(t, "dd")
	e := newEnv(t, envConfig{MetadataNS: []uint32{2}})
	for file, want := range map[string]string{
		"sys/block/nvme0n2/size":             "0",
		"sys/block/nvme0n2/metadata_bytes":   "8",
		"sys/block/nvme0c0n2/metadata_bytes": "8",
		"sys/block/nvme0n2/nuse":             strconv.Itoa(64 << 20 >> 9),
		"sys/block/nvme0n1/metadata_bytes":   "0",
		"sys/block/nvme0n1/size":             strconv.Itoa(64 << 20 >> 9),
	} {
		if got := e.cat(file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if fi, err := os.Stat(e.path("nvme0n2")); err != nil || fi.Size() != 0 {
		t.Fatalf("nvme0n2: %v, size %v; want 0", err, fi)
	}
	if out, err := run(t, "dd", "if=/dev/zero", "of="+e.path("nvme0n2"), "bs=4k", "count=1", "oflag=direct", "conv=notrunc", "status=none"); err == nil {
		t.Fatalf("a write to the capacity-0 namespace succeeded: %s", out)
	}
}

// TestRoundRobinBatchPerPath: under round-robin the commands that
// /dev/fuse delivers together go to one path, so a batch takes one queue
// write (the kernel rotates per I/O, which splits every batch over both
// paths), and batches still rotate: both paths carry the reads.
func TestRoundRobinBatchPerPath(t *testing.T) {
	requireFUSE(t, "fio")
	e := newEnv(t, envConfig{})
	if msg := e.echo(iopolicy, "round-robin"); msg != "" {
		t.Fatalf("iopolicy: %s", msg)
	}
	held0, batches0, writes0 := e.m.Batching()
	r0, r1 := e.statField(path0n1, 0), e.statField(path1n1, 0)
	out, err := e.fio("--name=rr", "--filename="+e.path("nvme0n1"), "--ioengine=libaio", "--direct=1",
		"--rw=randread", "--bs=4k", "--iodepth=32", "--size=8M", "--io_size=32M")
	if err != nil {
		t.Fatalf("fio: %v\n%s", err, out)
	}
	held, batches, writes := e.m.Batching()
	held, batches, writes = held-held0, batches-batches0, writes-writes0
	t.Logf("%d reads held in %d batches, sent in %d queue writes", held, batches, writes)
	if batches == 0 || held < batches*3/2 {
		t.Fatalf("%d reads held in %d batches: fio at depth 32 should batch (at least 1.5 per batch)", held, batches)
	}
	if writes*4 > batches*5 {
		t.Errorf("%d batches took %d queue writes: a batch should go to one path (one queue)", batches, writes)
	}
	d0, d1 := e.statField(path0n1, 0)-r0, e.statField(path1n1, 0)-r1
	if d0 < (d0+d1)/5 || d1 < (d0+d1)/5 {
		t.Errorf("reads per path %d / %d: batches should rotate over both", d0, d1)
	}
}
