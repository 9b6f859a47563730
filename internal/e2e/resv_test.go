package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mpathfs/mpathfs/internal/kttest"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

var (
	hostA = [16]byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0x4a, 0xa7, 0x8a, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0x01}
	hostB = [16]byte{0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0x4b, 0xb7, 0x8b, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0x02}
)

// prclient runs the stdlib Python PR client (testdata/prclient.py) on the
// namespace file and returns its one-line answer ("ret N ..." or
// "errno NAME").
func prclient(t *testing.T, file string, args ...string) string {
	t.Helper()
	script, err := filepath.Abs("testdata/prclient.py")
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "python3", append([]string{script, file}, args...)...)
	if err != nil {
		t.Fatalf("prclient %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(out)
}

func wantPR(t *testing.T, who, file, want string, args ...string) {
	t.Helper()
	t0 := time.Now()
	got := prclient(t, file, args...)
	t.Logf("%s: ioctl %s -> %s (%v)", who, strings.Join(args, " "), got, time.Since(t0).Round(time.Millisecond))
	if got != want {
		t.Fatalf("%s: %v = %q, want %q", who, args, got, want)
	}
}

// alignedBlock returns a 4 KiB-aligned 4 KiB buffer for O_DIRECT.
func alignedBlock(fill byte) []byte {
	b := make([]byte, 8192)
	off := int(4096 - uintptr(unsafe.Pointer(&b[0]))%4096)
	b = b[off : off+4096]
	for i := range b {
		b[i] = fill
	}
	return b
}

// directIO writes (or reads) one block at off through the namespace file
// with O_DIRECT and returns the syscall's errno (nil on success).
func directIO(t *testing.T, file string, write bool, off int64) error {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := alignedBlock(0x5a)
	if write {
		_, err = f.WriteAt(b, off)
	} else {
		_, err = f.ReadAt(b, off)
	}
	if err != nil {
		return errnoOf(err)
	}
	return nil
}

func wantIO(t *testing.T, who, file string, write bool, want error) {
	t.Helper()
	got := directIO(t, file, write, 0)
	op := "read"
	if write {
		op = "write"
	}
	t.Logf("%s: %s -> %v", who, op, got)
	if !errors.Is(got, want) && !(got == nil && want == nil) {
		t.Fatalf("%s: %s = %v, want %v", who, op, got, want)
	}
}

// twoHosts mounts two daemons with different host identities (hostA,
// hostB) on one target with two ports.
func twoHosts(t *testing.T) (a, b *env) {
	t.Helper()
	a = newEnv(t, envConfig{HostID: hostA})
	bcfg := a.cfg
	bcfg.Reuse, bcfg.HostID = a.setup, hostB
	return a, newEnv(t, bcfg)
}

// TestReservationsTwoHosts: two daemons with different host identities
// on one target (two ports each) fence each other with the Linux PR
// ioctls, driven by a stdlib Python client through fcntl.ioctl.
func TestReservationsTwoHosts(t *testing.T) {
	requireFUSE(t, "python3")
	a, b := twoHosts(t)
	fa, fb := a.path("nvme0n1"), b.path("nvme0n1")

	const weRO = "3" // PR_WRITE_EXCLUSIVE_REG_ONLY
	wantPR(t, "A", fa, "ret 0", "register", "0", "0xA1")
	wantPR(t, "A", fa, "ret 0", "reserve", "0xA1", weRO)
	wantPR(t, "B", fb, "ret 0 key 0xa1 generation 1 type 3", "read-reservation")
	wantIO(t, "B", fb, true, syscall.EBADE)
	wantIO(t, "B", fb, false, nil)
	wantPR(t, "B", fb, "ret 24", "reserve", "0", weRO) // not registered: PR_STS_RESERVATION_CONFLICT
	wantPR(t, "B", fb, "ret 0", "register", "0", "0xB1")
	wantIO(t, "B", fb, true, nil)
	wantPR(t, "B", fb, "ret 0 generation 2 num_keys 2", "read-keys", "0")
	wantPR(t, "B", fb, "errno ENOTSUP", "read-keys", "4")
	wantPR(t, "A", fa, "ret 0", "preempt-abort", "0xA1", "0xB1", weRO)
	wantIO(t, "B", fb, true, syscall.EBADE)
	// B's two controllers each get a Reservation Log Page Available AEN and
	// read one "registration preempted" page (nvmet notifies every
	// controller of the preempted host).
	b.waitFor("B's reservation notifications", 10*time.Second, func() bool {
		return b.cat("sys/class/nvme/nvme0/diag/reservation_notification_count") == "1" &&
			b.cat("sys/class/nvme/nvme1/diag/reservation_notification_count") == "1"
	})
	if n := b.logs.Count("reservation notification: registration preempted: nsid=1"); n != 2 {
		t.Errorf("B logged %d registration-preempted lines, want 2", n)
	}
	if n := a.cat("sys/class/nvme/nvme0/diag/reservation_notification_count"); n != "0" {
		t.Errorf("A (the preempter) counted %s notifications", n)
	}
	wantIO(t, "A", fa, true, nil)
	wantPR(t, "A", fa, "ret 0", "release", "0xA1", weRO)
	wantIO(t, "B", fb, true, nil)
	wantPR(t, "A", fa, "ret 0", "clear", "0xA1")
	wantPR(t, "A", fa, "ret 0 key 0x0 generation 4 type 0", "read-reservation")

	// Bad input: nothing is sent.
	wantPR(t, "A", fa, "errno EINVAL", "reserve", "0xA1", "9")
	wantPR(t, "A", fa, "errno EINVAL", "preempt", "0xA1", "0xB1", "0")
	wantPR(t, "A", fa, "errno ENOTSUP", "register", "0", "0xA1", "2")
	for _, bad := range []string{"register 3 0 0 0 0xA1", "acquire 0 7 0 0xA1 0", "release 2 1 0 0xA1 0", "reserve 0 1 0 0 0", "register 0 0 0"} {
		err := os.WriteFile(a.path("sys/block/nvme0n1/resv_command"), []byte(bad), 0)
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("resv_command %q: %v, want EINVAL", bad, err)
		}
	}
	wantPR(t, "A", fa, "ret 0 key 0x0 generation 4 type 0", "read-reservation") // nothing was sent
	wantPR(t, "A", a.path("sys/block/nvme0n1/size"), "errno ENOTTY", "read-reservation")
	wantPR(t, "A", a.path("sys/block/nvme0n1/delayed_removal_secs"), "errno ENOTTY", "register", "0", "1")
}

// TestReservationHolderSurvivesFailover: the reservation belongs to the
// host, so when the path the holder used dies its writes continue on the
// other path, and the other host still conflicts.
func TestReservationHolderSurvivesFailover(t *testing.T) {
	requireFUSE(t, "python3")
	a, b := twoHosts(t)
	fa, fb := a.path("nvme0n1"), b.path("nvme0n1")

	wantPR(t, "A", fa, "ret 0", "register", "0", "0xA1")
	wantPR(t, "A", fa, "ret 0", "reserve", "0xA1", "1") // Write Exclusive
	// Which path carries A's writes?
	w0 := a.statField("sys/block/nvme0c0n1", 4)
	wantIO(t, "A", fa, true, nil)
	used := 0
	if a.statField("sys/block/nvme0c0n1", 4) == w0 {
		used = 1
	}
	port := a.setup.Ports[used]
	if err := port.StopListening(); err != nil {
		t.Fatal(err)
	}
	port.DropConnections()
	t.Logf("port %d (A's path nvme0c%dn1) dropped", used, used)
	t0 := time.Now()
	wantIO(t, "A", fa, true, nil)
	t.Logf("A: write after the drop took %v", time.Since(t0).Round(time.Millisecond))
	other := "sys/block/nvme0c" + string(rune('0'+1-used)) + "n1"
	if n := a.statField(other, 4); n == 0 {
		t.Fatalf("%s carried no writes", other)
	}
	wantIO(t, "B", fb, true, syscall.EBADE)
	wantPR(t, "B", fb, "ret 0 key 0xa1 generation 1 type 1", "read-reservation")
	if err := port.StartListening(); err != nil {
		t.Fatal(err)
	}
	wantPR(t, "A", fa, "ret 0", "clear", "0xA1")
	wantIO(t, "B", fb, true, nil)
}

var (
	cliOnce sync.Once
	cliBin  string
	cliErr  error
)

// mpathfsCLI builds cmd/mpathfs once per test binary.
func mpathfsCLI(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mpathfs-cli")
		if err != nil {
			cliErr = err
			return
		}
		cliBin = filepath.Join(dir, "mpathfs")
		out, err := exec.Command("go", "build", "-o", cliBin, "github.com/mpathfs/mpathfs/cmd/mpathfs").CombinedOutput()
		if err != nil {
			cliErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliBin
}

// cli runs the mpathfs CLI and returns its output and whether it exited 0.
func cli(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	out, err := run(t, mpathfsCLI(t), args...)
	t.Logf("$ mpathfs %s\n%s", strings.Join(args, " "), out)
	return out, err == nil
}

func wantCLI(t *testing.T, wantOK bool, wantOut string, args ...string) string {
	t.Helper()
	out, ok := cli(t, args...)
	if ok != wantOK || !strings.Contains(out, wantOut) {
		t.Fatalf("mpathfs %v: ok %v, output %q; want ok %v containing %q", args, ok, out, wantOK, wantOut)
	}
	return out
}

// TestReservationsCLI: the nvme-cli-shaped resv-* commands against two
// hosts; resv-report prints nvme-cli 2.3's text and JSON.
func TestReservationsCLI(t *testing.T) {
	requireFUSE(t)
	a, b := twoHosts(t)
	fa, fb := a.path("nvme0n1"), b.path("nvme0n1")

	for name, mode := range map[string]os.FileMode{"resv_report": 0o400, "resv_command": 0o200} {
		if fi, err := os.Stat(a.path("sys/block/nvme0n1/" + name)); err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: %v, mode %v; want %v", name, err, fi.Mode(), mode)
		}
	}
	wantCLI(t, true, "NVME Reservation  success", "resv-register", fa, "--nrkey=0xa1", "--rrega=0")
	wantCLI(t, true, "NVME Reservation Acquire success", "resv-acquire", fa, "--crkey=0xa1", "--rtype=3", "--racqa=0")
	wantCLI(t, false, "Reservation Conflict", "resv-acquire", fb, "--crkey=0xb1", "--rtype=3", "--racqa=0")
	wantCLI(t, true, "NVME Reservation  success", "resv-register", fb, "-k", "0xb1")
	wantCLI(t, true, "NVME Reservation  success", "resv-register", fb, "--crkey=0xb1", "--nrkey=0xb2", "--rrega=2")
	out := wantCLI(t, true, "regctlext[1] :", "resv-report", fb)
	want := "\nNVME Reservation status:\n\ngen       : 3\nrtype     : 3\nregctl    : 2\nptpls     : 0\n" +
		"regctlext[0] :\n  cntlid     : 1\n  rcsts      : 1\n  rkey       : a1\n  hostid     : a0a1a2a3a4a54aa78aa9aaabacadae01\n" +
		"regctlext[1] :\n  cntlid     : 3\n  rcsts      : 0\n  rkey       : b2\n  hostid     : b0b1b2b3b4b54bb78bb9babbbcbdbe02\n\n"
	if out != want {
		t.Fatalf("resv-report:\n%q\nwant\n%q", out, want)
	}
	// Debian's nvme-cli prints the same live report the same way (its
	// passthrough Reservation Report is answered from resv_report by an
	// LD_PRELOAD shim).
	if nvmeBin, err := exec.LookPath("nvme"); err == nil {
		if cc, err := exec.LookPath("gcc"); err == nil {
			so := filepath.Join(t.TempDir(), "resvdev.so")
			if out, err := exec.Command(cc, "-shared", "-fPIC", "-O2", "-o", so, "../nvmecli/testdata/resvdev.c", "-ldl").CombinedOutput(); err != nil {
				t.Fatalf("building the shim: %v\n%s", err, out)
			}
			for _, o := range []string{"normal", "json"} {
				cmd := exec.Command(nvmeBin, "resv-report", "/dev/nvme0n1", "--eds", "-o", o)
				cmd.Env = append(os.Environ(), "LD_PRELOAD="+so, "RESV_REPORT="+b.path("sys/block/nvme0n1/resv_report"))
				got, err := cmd.CombinedOutput()
				ours, _ := cli(t, "resv-report", fb, "-o", o)
				if err != nil || string(got) != ours {
					t.Fatalf("nvme resv-report -o %s: %v\n%q\nmpathfs resv-report:\n%q", o, err, got, ours)
				}
			}
		}
	}
	js := wantCLI(t, true, `"regctlext":[`, "resv-report", fa, "-o", "json")
	var doc struct {
		Gen, Rtype, Regctl int
		Regctlext          []struct {
			Cntlid, Rcsts int
			Rkey          uint64
			Hostid        string
		}
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil || doc.Gen != 3 || doc.Rtype != 3 || len(doc.Regctlext) != 2 ||
		doc.Regctlext[1].Rkey != 0xb2 || doc.Regctlext[1].Hostid != "b0b1b2b3b4b54bb78bb9babbbcbdbe02" {
		t.Fatalf("resv-report -o json: %v %+v", err, doc)
	}
	// Unregister has no PR ioctl: it goes through resv_command.
	wantCLI(t, true, "NVME Reservation  success", "resv-register", fb, "--crkey=0xb2", "--rrega=1")
	wantIO(t, "B", fb, true, syscall.EBADE)
	wantCLI(t, false, "Reservation Conflict", "resv-register", fb, "--crkey=0xb2", "--rrega=1")
	wantCLI(t, false, "invalid argument", "resv-acquire", fa, "--crkey=0xa1", "--rtype=9")
	wantCLI(t, true, "NVME Reservation Release success", "resv-release", fa, "--crkey=0xa1", "--rtype=3")
	wantCLI(t, true, "NVME Reservation Release success", "resv-release", fa, "--crkey=0xa1", "--rrela=1")
	wantCLI(t, true, "regctl    : 0\n", "resv-report", fa)
	if n := a.logs.Count("0xa1") + b.logs.Count("0xb2") + a.logs.Count("0xA1"); n != 0 {
		t.Errorf("keys appear %d times in the daemon logs", n)
	}
}

// TestKernelTarget72Reservations: the same fencing against Linux 7.2's
// nvmet with reservations on (extended data structure only, CNTLID FFFFh
// in the report), driven through the PR ioctls and the CLI; the holder
// keeps its reservation when the port of its path goes down, and the
// preempted host reads nvmet's notification.
func TestKernelTarget72Reservations(t *testing.T) {
	k := kttest.RequireUnstable(t)
	requireFUSE(t, "python3")
	k.Ctl(t, "resv", "on", "1")
	var opts []fabrics.Options
	for _, port := range k.Ports {
		o := fabrics.DefaultOptions()
		o.Transport, o.TrAddr, o.TrSvcID, o.SubsysNQN = "tcp", "127.0.0.1", port, k.NQN
		opts = append(opts, o)
	}
	a := newEnv(t, envConfig{Controllers: opts, HostID: hostA, KATO: 2 * time.Second, ReconnectDelay: time.Second})
	b := newEnv(t, envConfig{Controllers: opts, HostID: hostB, KATO: 2 * time.Second, ReconnectDelay: time.Second})
	fa, fb := a.path("nvme0n1"), b.path("nvme0n1")

	const weRO = "3"
	wantPR(t, "A", fa, "ret 0", "register", "0", "0xA1")
	wantPR(t, "A", fa, "ret 0", "reserve", "0xA1", weRO)
	wantIO(t, "B", fb, true, syscall.EBADE)
	wantIO(t, "B", fb, false, nil)
	wantPR(t, "B", fb, "ret 24", "reserve", "0xB1", weRO)
	wantCLI(t, true, "NVME Reservation  success", "resv-register", fb, "--nrkey=0xb1")
	wantIO(t, "B", fb, true, nil)
	out := wantCLI(t, true, "regctl    : 2\n", "resv-report", fb)
	if !strings.Contains(out, "  cntlid     : ffff\n  rcsts      : 1\n  rkey       : a1\n  hostid     : a0a1a2a3a4a54aa78aa9aaabacadae01\n") {
		t.Fatalf("resv-report from nvmet: %q", out)
	}
	// nvmet quirk: a preempt by the holder itself only changes the
	// reservation type (nvmet_pr_preempt returns early when holder == reg),
	// so B's key survives here where our target (and the spec) remove it.
	wantPR(t, "A", fa, "ret 0", "preempt-abort", "0xA1", "0xB1", weRO)
	t.Logf("B: write after the holder's preempt-abort on nvmet: %v", directIO(t, fb, true, 0))
	// Unregister (no PR ioctl) goes through resv_command.
	wantCLI(t, true, "NVME Reservation  success", "resv-register", fb, "--crkey=0xb1", "--rrega=1")
	wantIO(t, "B", fb, true, syscall.EBADE)

	// The holder survives the loss of its path.
	w0 := a.statField("sys/block/nvme0c0n1", 4)
	wantIO(t, "A", fa, true, nil)
	used := 1
	if a.statField("sys/block/nvme0c0n1", 4) != w0 {
		used = 0
	}
	k.Ctl(t, "port-down", fmt.Sprint(used+1))
	wantIO(t, "A", fa, true, nil)
	wantIO(t, "B", fb, true, syscall.EBADE)
	wantPR(t, "B", fb, "ret 0 key 0xa1 generation 4 type 3", "read-reservation")
	k.Ctl(t, "port-up", fmt.Sprint(used+1))

	// A registrants-only reservation released: nvmet notifies the other
	// registrants (B) with a Reservation Log Page Available AEN.
	wantCLI(t, true, "NVME Reservation  success", "resv-register", fb, "--nrkey=0xb1")
	wantPR(t, "A", fa, "ret 0", "release", "0xA1", weRO)
	b.waitFor("B's reservation-released notification", 20*time.Second, func() bool {
		return b.logs.Count("reservation notification: reservation released: nsid=1") > 0
	})
	wantPR(t, "A", fa, "ret 0", "clear", "0xA1")
	wantIO(t, "B", fb, true, nil)
	wantPR(t, "A", fa, "errno EINVAL", "reserve", "0xA1", "7")
}

// currentPath returns the index (0 or 1) of the path carrying e's writes
// to nvme0n1.
func currentPath(t *testing.T, e *env) int {
	t.Helper()
	w0 := e.statField("sys/block/nvme0c0n1", 4)
	wantIO(t, "A", e.path("nvme0n1"), true, nil)
	if e.statField("sys/block/nvme0c0n1", 4) != w0 {
		return 0
	}
	return 1
}

// TestReservationInDoubt: the target runs a reservation command and loses
// its completion with the connection (LoseNextCompletions). The host fails
// over, waits for the fence, and decides from a Reservation Report on the
// other path: a Replace or Preempt that took effect is not re-sent (a blind
// re-send would answer Reservation Conflict, 24); an Acquire, idempotent,
// is re-sent.
func TestReservationInDoubt(t *testing.T) {
	requireFUSE(t, "python3")
	a, b := twoHosts(t)
	fa, fb := a.path("nvme0n1"), b.path("nvme0n1")
	const notResent = "in-doubt reservation command took effect before the path was lost; not re-sent"

	wantPR(t, "A", fa, "ret 0", "register", "0", "0xA1")
	lose := func() {
		p := currentPath(t, a)
		a.setup.Ports[p].LoseNextCompletions(1)
		t.Logf("port %d will lose the next completion", p)
	}

	lose()
	wantPR(t, "A", fa, "ret 0", "register", "0xA1", "0xA2") // Replace
	if n := a.logs.Count(notResent); n != 1 {
		t.Fatalf("%d %q lines after the in-doubt Replace, want 1", n, notResent)
	}
	wantCLI(t, true, "  rkey       : a2\n", "resv-report", fa)

	lose()
	wantPR(t, "A", fa, "ret 0", "reserve", "0xA2", "1") // Acquire: re-sent
	if n := a.logs.Count(notResent); n != 1 {
		t.Fatalf("the idempotent Acquire was decided by report (%d lines), want re-sent", n)
	}
	wantIO(t, "B", fb, true, syscall.EBADE)

	wantPR(t, "B", fb, "ret 0", "register", "0", "0xB1")
	lose()
	wantPR(t, "A", fa, "ret 0", "preempt-abort", "0xA2", "0xB1", "1") // B's key removed
	if n := a.logs.Count(notResent); n != 2 {
		t.Fatalf("%d %q lines after the in-doubt Preempt, want 2", n, notResent)
	}
	wantPR(t, "B", fb, "ret 0 generation 4 num_keys 1", "read-keys", "0")
	wantIO(t, "B", fb, true, syscall.EBADE)
	wantPR(t, "A", fa, "ret 0", "clear", "0xA2")
}
