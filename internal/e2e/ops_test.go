package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// fabricsWrite opens dev/nvme-fabrics with python3, writes opts and reads
// the answer back on the same descriptor, as libnvme does; it returns the
// answer or "errno N".
func (e *env) fabricsWrite(opts string) string {
	e.t.Helper()
	script := `import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    os.write(fd, sys.argv[2].encode())
except OSError as err:
    print("errno", err.errno); sys.exit(0)
print(os.read(fd, 4096).decode(), end="")`
	out, err := run(e.t, "python3", "-c", script, e.path("dev/nvme-fabrics"), opts)
	if err != nil {
		e.t.Fatalf("python3: %v: %s", err, out)
	}
	return strings.TrimSpace(out)
}

// dev/nvme-fabrics has the kernel's semantics through the real daemon: a
// read before any write lists the options, a write connects and the same
// descriptor reads back instance and cntlid; a duplicate is EALREADY, a bad
// option EINVAL, a refused port ECONNREFUSED; delete_controller removes it.
func TestFabricsDeviceConnectsAtRunTime(t *testing.T) {
	requireFUSE(t, "python3")
	e := newEnv(t, envConfig{})
	if st, err := os.Stat(e.path("dev/nvme-fabrics")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("dev/nvme-fabrics: %v %v", st, err)
	}
	if got := e.cat("dev/nvme-fabrics"); !strings.HasPrefix(got, "instance=-1,cntlid=-1,transport=%s,traddr=%s,") {
		t.Fatalf("read before write: %q", got)
	}
	if msg := e.echo("sys/class/nvme/nvme1/delete_controller", "1"); msg != "" {
		t.Fatal(msg)
	}
	e.waitFor("nvme1 removed", 10*time.Second, func() bool {
		_, err := os.Stat(e.path("sys/class/nvme/nvme1"))
		return os.IsNotExist(err)
	})
	o := e.setup.Options(fabrics.Options{})[1]
	opts := fmt.Sprintf("nqn=%s,transport=tcp,traddr=%s,trsvcid=%s,hostnqn=%s,keep_alive_tmo=1,reconnect_delay=1", o.SubsysNQN, o.TrAddr, o.TrSvcID, e.cat("sys/class/nvme/nvme0/hostnqn"))
	got := e.fabricsWrite(opts)
	if !regexp.MustCompile(`^instance=1,cntlid=\d+$`).MatchString(got) {
		t.Fatalf("connect: %q\n%s", got, e.logs)
	}
	if s := e.cat("sys/class/nvme/nvme1/state"); s != "live" {
		t.Fatalf("nvme1 state %q", s)
	}
	e.waitFor("path nvme0c1n1", 10*time.Second, func() bool {
		_, err := os.Stat(e.path("sys/block/nvme0c1n1/stat"))
		return err == nil
	})
	for _, tc := range []struct{ opts, want string }{
		{opts, "errno 114"}, // EALREADY
		{opts + ",bogus=1", "errno 22"},
		{"transport=tcp,traddr=127.0.0.1,trsvcid=4420", "errno 22"}, // no nqn
		{"transport=rdma,traddr=127.0.0.1,nqn=" + o.SubsysNQN, "errno 22"},
	} {
		if got := e.fabricsWrite(tc.opts); got != tc.want {
			t.Errorf("write %q: %q, want %q", tc.opts, got, tc.want)
		}
	}
	// A port nobody listens on: the socket's ECONNREFUSED.
	if err := e.setup.Ports[1].StopListening(); err != nil {
		t.Fatal(err)
	}
	if got := e.fabricsWrite(opts + ",duplicate_connect"); got != "errno 111" {
		t.Errorf("refused port: %q, want errno 111", got)
	}
	if _, err := os.Stat(e.path("sys/class/nvme/nvme2")); !os.IsNotExist(err) {
		t.Errorf("a failed connect left nvme2: %v", err)
	}
}

// disk/by-id has udev's names for each namespace, and they reach the data.
func TestStableNamesAndInflight(t *testing.T) {
	requireFUSE(t, "dd", "readlink")
	e := newEnv(t, envConfig{})
	for link, target := range map[string]string{
		"disk/by-id/nvme-uuid.6d706174-6866-4000-8000-000000000001": "../../nvme0n1",
		"disk/by-id/nvme-mpathfs_demo_mpathfs-demo-0001_2":          "../../nvme0n2",
	} {
		out, err := run(t, "readlink", e.path(link))
		if err != nil || strings.TrimSpace(out) != target {
			t.Errorf("readlink %s: %q %v, want %s", link, out, err, target)
		}
	}
	if out, err := run(t, "dd", "if=/dev/urandom", "of="+e.path("disk/by-id/nvme-uuid.6d706174-6866-4000-8000-000000000001"),
		"bs=4k", "count=4", "oflag=direct", "conv=notrunc"); err != nil {
		t.Fatalf("dd through the by-id link: %v: %s", err, out)
	}
	if w := e.statField("sys/block/nvme0n1", 4); w < 4 {
		t.Errorf("writes through the link: %d", w)
	}
	if got := e.cat("sys/block/nvme0n1/inflight"); got != "       0        0" {
		t.Errorf("idle inflight %q", got)
	}
	// A read held by a stalled target shows in the read column of the head
	// and of the path it went to.
	for _, p := range e.setup.Ports {
		p.Stall(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dd := exec.CommandContext(ctx, "dd", "if="+e.path("nvme0n1"), "of=/dev/null", "bs=4k", "count=1", "iflag=direct")
	if err := dd.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitFor("a read in flight", 10*time.Second, func() bool { return e.cat("sys/block/nvme0n1/inflight") == "       1        0" })
	onPath := e.cat("sys/block/nvme0c0n1/inflight") + "|" + e.cat("sys/block/nvme0c1n1/inflight")
	if !strings.Contains(onPath, "       1        0") {
		t.Errorf("no path shows the read in flight: %q", onPath)
	}
	for _, p := range e.setup.Ports {
		p.Stall(false)
	}
	if err := dd.Wait(); err != nil {
		t.Fatalf("dd after the stall: %v\n%s", err, tail(e.logs.String(), 40))
	}
	e.waitFor("nothing in flight", 10*time.Second, func() bool { return e.cat("sys/block/nvme0n1/inflight") == "       0        0" })
}
