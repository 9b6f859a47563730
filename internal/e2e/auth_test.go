package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/config"
	"github.com/mpathfs/mpathfs/internal/kttest"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/auth"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/target"
)

func genDHCHAPKey(t *testing.T, nqn string, hmac int) string {
	t.Helper()
	key, err := kttest.GenDHCHAPKey(nqn, hmac)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestKernelTargetDHCHAP: the daemon mounts Linux 7.2's nvmet with
// bidirectional DH-HMAC-CHAP (SHA-512, ffdhe2048; keys from Debian's nvme
// gen-dhchap-key) on both paths; fio --verify runs over both paths
// (round-robin) through the FUSE mount; dhchap_secret and
// dhchap_ctrl_secret read back with mode 0600; a new secret written to
// sysfs re-authenticates; a path reconnect re-authenticates; a wrong
// secret takes that controller down for good (EKEYREJECTED stops the
// reconnects) while the other path keeps serving.
func TestKernelTargetDHCHAP(t *testing.T) {
	k := kttest.RequireUnstable(t)
	requireFUSE(t, "fio", "dd", "nvme")
	hostID := [16]byte{0x6d, 0x70, 0x61, 0x74, 0x68, 0x66, 0x40, 0x00, 0x80, 15: 0xa7}
	hostNQN := fmt.Sprintf("nqn.2014-08.org.nvmexpress:uuid:%x-%x-%x-%x-%x", hostID[0:4], hostID[4:6], hostID[6:8], hostID[8:10], hostID[10:16])
	hk, ck := genDHCHAPKey(t, hostNQN, 1), genDHCHAPKey(t, hostNQN, 3)
	k.Ctl(t, "auth", "on", hostNQN, hk, ck, "hmac(sha512)", "ffdhe2048")
	var opts []fabrics.Options
	for _, port := range k.Ports {
		o := fabrics.DefaultOptions()
		o.Transport, o.TrAddr, o.TrSvcID, o.SubsysNQN = "tcp", "127.0.0.1", port, k.NQN
		var err error
		if o.DHCHAPSecret, err = auth.ParseKey(hk); err != nil {
			t.Fatal(err)
		}
		if o.DHCHAPCtrlSecret, err = auth.ParseKey(ck); err != nil {
			t.Fatal(err)
		}
		opts = append(opts, o)
	}
	e := newEnv(t, envConfig{Controllers: opts, KATO: 5 * time.Second, ReconnectDelay: time.Second, HostID: hostID})
	authed := func() int { return e.logs.Count("qid 0: authenticated with hash hmac(sha512) dhgroup ffdhe2048") }
	if n := authed(); n != 2 || e.logs.Count("qid 0: controller authenticated") != 2 {
		t.Fatalf("%d admin queue authentications logged, want 2", n)
	}
	if strings.Contains(e.logs.String(), hk[10:30]) || strings.Contains(e.logs.String(), ck[10:30]) {
		t.Fatal("a secret is in the log")
	}

	// Both paths carry verified data.
	if msg := e.echo("sys/class/nvme-subsystem/nvme-subsys0/iopolicy", "round-robin"); msg != "" {
		t.Fatal(msg)
	}
	r0, r1 := e.statField(path0n1, 0), e.statField(path1n1, 0)
	out, err := e.fio("--name=v", "--filename="+e.path("nvme0n1"), "--ioengine=libaio", "--direct=1",
		"--rw=randwrite", "--bs=4k", "--iodepth=8", "--size=4M", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1")
	if err != nil || !strings.Contains(out, "err= 0") {
		t.Fatalf("fio verify: %v\n%s", err, out)
	}
	if a0, a1 := e.statField(path0n1, 0), e.statField(path1n1, 0); a0 == r0 || a1 == r1 {
		t.Fatalf("verify reads did not use both paths: %d -> %d, %d -> %d", r0, a0, r1, a1)
	}

	// The secrets in sysfs: 0600, as given.
	for name, want := range map[string]string{"dhchap_secret": hk, "dhchap_ctrl_secret": ck} {
		p := "sys/class/nvme/nvme0/" + name
		fi, err := os.Stat(e.path(p))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v", p, err, fi.Mode())
		}
		if got := e.cat(p); got != want {
			t.Fatalf("%s = %q", p, got)
		}
	}

	// A new host secret: the target first, then sysfs; re-authenticates.
	hk2 := genDHCHAPKey(t, hostNQN, 2)
	k.Ctl(t, "auth", "on", hostNQN, hk2, ck, "hmac(sha512)", "ffdhe2048")
	before := authed()
	if msg := e.echo("sys/class/nvme/nvme0/dhchap_secret", hk2); msg != "" {
		t.Fatal(msg)
	}
	e.waitFor("re-authentication with the new secret", 30*time.Second, func() bool { return authed() > before })
	if got := e.cat("sys/class/nvme/nvme0/dhchap_secret"); got != hk2 {
		t.Fatalf("dhchap_secret = %q", got)
	}
	if msg := e.echo("sys/class/nvme/nvme0/dhchap_secret", "nonsense"); !strings.Contains(msg, "Invalid argument") {
		t.Fatalf("writing nonsense: %q", msg)
	}

	// A path reconnect authenticates again (with the new secret).
	state := func(c string) string { return e.cat("sys/class/nvme/" + c + "/state") }
	before = authed()
	k.Ctl(t, "port-down", "1")
	e.waitFor("nvme0 not live", 20*time.Second, func() bool { return state("nvme0") != "live" })
	k.Ctl(t, "port-up", "1")
	e.waitFor("nvme0 live again", 60*time.Second, func() bool { return state("nvme0") == "live" })
	if authed() <= before {
		t.Fatal("the reconnect did not authenticate")
	}

	// A wrong secret: nvme0 fails, stops reconnecting; nvme1 serves on.
	data := bytes.Repeat([]byte("dhchap-e2e-data\n"), 1<<16) // 1 MiB
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, data, 0o600)
	if msg := e.echo("sys/class/nvme/nvme0/dhchap_secret", genDHCHAPKey(t, hostNQN, 1)); msg != "" {
		t.Fatal(msg)
	}
	e.waitFor("authentication failure logged", 30*time.Second, func() bool {
		return strings.Contains(e.logs.String(), "qid 0: authentication failed")
	})
	e.waitFor("nvme0 removed after EKEYREJECTED", 60*time.Second, func() bool {
		return strings.Contains(e.logs.String(), "Removing controller") && strings.Contains(e.logs.String(), "key was rejected")
	})
	if out, err := run(t, "dd", "if="+src, "of="+e.path("nvme0n1"), "bs=1M", "oflag=direct", "conv=notrunc", "status=none"); err != nil {
		t.Fatalf("dd over the remaining path: %v %s", err, out)
	}
	if got := readAll(t, e.path("nvme0n1"), len(data)); !bytes.Equal(got, data) {
		t.Fatal("read back over the remaining path differs")
	}
	if state("nvme1") != "live" {
		t.Fatalf("nvme1 %s", state("nvme1"))
	}
}

// TestDHCHAPAuthRequiredRetries: with our target requiring DH-HMAC-CHAP
// (bidirectional, SHA-256, ffdhe2048), an I/O that fails with
// Authentication Required (0x191, no DNR) re-authenticates its controller
// and is retried: dd through the mount succeeds and the data reads back.
func TestDHCHAPAuthRequiredRetries(t *testing.T) {
	requireFUSE(t, "dd")
	hk, err := auth.ParseKey("DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:")
	if err != nil {
		t.Fatal(err)
	}
	ck, err := auth.ParseKey("DHHC-1:01:AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09pl1OOC:")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envConfig{DHCHAP: &target.HostAuth{Key: hk, CtrlKey: ck, Hash: auth.SHA256, Group: auth.FFDHE2048}})
	authed := func() int { return e.logs.Count("qid 0: authenticated with hash hmac(sha256) dhgroup ffdhe2048") }
	if n := authed(); n != 2 {
		t.Fatalf("%d admin queue authentications, want 2", n)
	}
	for _, p := range e.setup.Ports {
		p.FailNextIO(1, nvme.StatusAuthRequired)
	}
	data := bytes.Repeat([]byte("reauth!\n"), 1<<17) // 1 MiB
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, data, 0o600)
	if out, err := run(t, "dd", "if="+src, "of="+e.path("nvme0n1"), "bs=1M", "oflag=direct", "conv=notrunc", "status=none"); err != nil {
		t.Fatalf("dd: %v %s", err, out)
	}
	if got := readAll(t, e.path("nvme0n1"), len(data)); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	if n0, _ := e.setup.Ports[0].PendingFailures(); n0 != 0 {
		t.Fatal("the I/O path never saw the injected 0x191")
	}
	e.waitFor("a re-authentication after 0x191", 10*time.Second, func() bool { return authed() > 2 })
}

// TestNvmeCLIConnectDHCHAP: Debian's nvme connect --dhchap-secret
// --dhchap-ctrl-secret drives the daemon's dev/nvme-fabrics (libnvme
// passes the secrets because the device lists them) against our target
// requiring bidirectional DH-HMAC-CHAP; a wrong secret fails with the
// kernel's EKEYREJECTED, "Key was rejected by service".
func TestNvmeCLIConnectDHCHAP(t *testing.T) {
	requireFUSE(t, "nvme", "unshare")
	const hk = "DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:"
	const ck = "DHHC-1:01:AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09pl1OOC:"
	const other = "DHHC-1:03:AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661vPDs2cs=:"
	a := &target.HostAuth{Hash: auth.SHA512, Group: auth.FFDHE3072}
	var err error
	if a.Key, err = auth.ParseKey(hk); err != nil {
		t.Fatal(err)
	}
	if a.CtrlKey, err = auth.ParseKey(ck); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envConfig{DHCHAP: a})
	if out, err := exec.Command(mpathfsCLI(t), "disconnect", e.dir, "-d", "nvme1").CombinedOutput(); err != nil {
		t.Fatalf("mpathfs disconnect: %v %s", err, out)
	}
	e.waitFor("nvme1 gone", 10*time.Second, func() bool { _, err := os.Stat(e.path("sys/class/nvme/nvme1")); return os.IsNotExist(err) })
	if probe, err := e.nvmeNS("version"); err != nil {
		t.Skipf("cannot bind-mount over /sys and /dev in a private mount namespace: %v: %s", err, probe)
	}
	o := e.setup.Options(fabrics.Options{})[1]
	hostnqn, hostid := e.cat("sys/class/nvme/nvme0/hostnqn"), e.cat("sys/class/nvme/nvme0/hostid")
	base := []string{"connect", "-t", "tcp", "-a", o.TrAddr, "-s", o.TrSvcID, "-n", o.SubsysNQN, "--hostnqn=" + hostnqn, "--hostid=" + hostid}
	out, err := e.nvmeNS(append(base, "--dhchap-secret="+other)...)
	if err == nil || !strings.Contains(strings.ToLower(out), "key was rejected") {
		t.Fatalf("nvme connect with a wrong secret: %v %q", err, out)
	}
	out, err = e.nvmeNS(append(base, "--dhchap-secret="+hk, "--dhchap-ctrl-secret="+ck)...)
	if err != nil {
		t.Fatalf("nvme connect: %v\n%s\n%s", err, out, tail(e.logs.String(), 30))
	}
	if s := e.cat("sys/class/nvme/nvme1/state"); s != "live" {
		t.Fatalf("nvme1: %q", s)
	}
	if got := e.cat("sys/class/nvme/nvme1/dhchap_ctrl_secret"); got != ck {
		t.Fatalf("dhchap_ctrl_secret %q", got)
	}
	if n := e.logs.Count("qid 0: authenticated with hash hmac(sha512) dhgroup ffdhe3072"); n != 3 {
		t.Fatalf("%d admin authentications logged, want 3 (two at start, one by nvme connect)", n)
	}
}

// TestDHCHAPWrongSecretAtStart: a path whose secret the target refuses
// does not come up and is not retried (EKEYREJECTED, as
// nvmf_should_reconnect); the mount serves through the other path.
func TestDHCHAPWrongSecretAtStart(t *testing.T) {
	requireFUSE(t, "dd")
	hk, _ := auth.ParseKey("DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:")
	wrong, _ := auth.ParseKey("DHHC-1:01:AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09pl1OOC:")
	e := newEnv(t, envConfig{DHCHAP: &target.HostAuth{Key: hk, Group: auth.FFDHE2048},
		Tweak: func(c *config.Config) { c.Controllers[1].DHCHAPSecret = wrong }})
	if !strings.Contains(e.logs.String(), "qid 0: authentication failed, error -129") ||
		!strings.Contains(e.logs.String(), "authentication refused, not retrying") {
		t.Fatalf("log:\n%s", tail(e.logs.String(), 20))
	}
	if _, err := os.Stat(e.path("sys/class/nvme/nvme1")); !os.IsNotExist(err) {
		t.Fatalf("nvme1 exists: %v", err)
	}
	data := bytes.Repeat([]byte("one-path\n"), 1<<17)[:1<<20]
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, data, 0o600)
	if out, err := run(t, "dd", "if="+src, "of="+e.path("nvme0n1"), "bs=1M", "oflag=direct", "conv=notrunc", "status=none"); err != nil {
		t.Fatalf("dd: %v %s", err, out)
	}
	if got := readAll(t, e.path("nvme0n1"), len(data)); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	time.Sleep(500 * time.Millisecond) // several reconnect_delays (200 ms): none may be tried
	if n := e.logs.Count("qid 0: authentication failed"); n != 1 {
		t.Fatalf("%d authentication attempts with the wrong secret, want 1", n)
	}
}

// TestDHCHAPDiscoveredControllers: controllers a [[discovery]] connects
// inherit its dhchap_secret (as nvme connect-all passes --dhchap-secret)
// and authenticate.
func TestDHCHAPDiscoveredControllers(t *testing.T) {
	requireFUSE(t)
	hk, _ := auth.ParseKey("DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:")
	e := newEnv(t, envConfig{DHCHAP: &target.HostAuth{Key: hk, Hash: auth.SHA384}, PersistentDiscovery: true})
	e.waitFor("both discovered paths", 20*time.Second, func() bool {
		_, err0 := os.Stat(e.path("sys/block/nvme0n1/multipath/nvme0c0n1"))
		_, err1 := os.Stat(e.path("sys/block/nvme0n1/multipath/nvme0c1n1"))
		return err0 == nil && err1 == nil
	})
	if n := e.logs.Count("qid 0: authenticated with hash hmac(sha384) dhgroup null"); n != 2 {
		t.Fatalf("%d authenticated controllers, want 2", n)
	}
	if got := e.cat("sys/class/nvme/nvme0/dhchap_secret"); got != hk.Text() {
		t.Fatalf("dhchap_secret %q", got)
	}
}
