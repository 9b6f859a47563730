package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/kttest"
	"github.com/mpathfs/mpathfs/internal/sysfsdiff"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/host"
)

// treeRules is what may differ between the Linux 7.2 host's NVMe tree and
// ours: entries out of scope (Skip) and values that are per host or per
// connection (Value: both sides must still match the pattern). Everything
// else must agree in name, mode and value.
var treeRules = []sysfsdiff.Rule{
	// Out of scope: the kernel's device model and block layer internals.
	{Pattern: "*/power/**", Skip: true, Why: "runtime PM of the device model; no meaning for a FUSE tree"},
	{Pattern: "*/trace/**", Skip: true, Why: "blktrace ioctl interface of a block device"},
	{Pattern: "*/subsystem", Skip: true, Why: "link to the device-model class (class/block, class/nvme); our tree has no /sys/class/block"},
	{Pattern: "*/uevent", Skip: true, Why: "udev event payload (MAJOR/MINOR/DEVNAME): we create no device nodes"},
	{Pattern: "*/dev", Skip: true, Why: "major:minor of a device node: we create none, and a made-up number could name a real device of this host (lsblk --sysroot lists our heads when given one)"},
	{Pattern: "*/bdi", Skip: true, Why: "link to the backing-dev-info object of the page cache"},
	{Pattern: "ctrl/device", Skip: true, Why: "link to the nvme-fabrics misc device; ours is MOUNTPOINT/dev/nvme-fabrics, outside the sys tree"},
	{Pattern: "ctrl/hwmon*/**", Skip: true, Why: "hwmon temperature sensor (class hwmon, which lm-sensors reads from /sys/class/hwmon)"},
	{Pattern: "ng/**", Skip: true, Why: "generic character devices (ngXnY, passthrough ioctls): not provided"},
	{Pattern: "subsys/ng", Skip: true, Why: "generic character devices: not provided"},
	{Pattern: "{head,path}/diskseq", Skip: true, Why: "per-boot sequence number udev gives block devices: we create none"},
	{Pattern: "path/mq/**", Skip: true, Why: "blk-mq hardware contexts of the kernel's request queue"},
	{Pattern: "path/queue/iosched/**", Skip: true, Why: "tunables of the kernel's mq-deadline I/O scheduler"},
	{Pattern: "path/queue/{async_depth,nr_requests,rq_affinity,scheduler,wbt_lat_usec}", Skip: true,
		Why: "request-queue tunables of blk-mq (tag depth, scheduler, writeback throttling): there is no request queue"},

	// Tunables of the kernel's block layer we show read-only: FUSE I/O has no
	// request queue, read-ahead or poll queues to tune.
	{Pattern: "ctrl/{dhchap_secret,dhchap_ctrl_secret}", Mode: "600",
		Why: "deliberate: Linux 7.2 shows these DH-HMAC-CHAP secrets with mode 0644, readable by every user; ours are 0600"},
	{Pattern: "{head,path}/events_poll_msecs", Mode: "444", Why: "media-change polling: no removable media"},
	{Pattern: "{head,path}/queue/{add_random,discard_max_bytes,io_poll,io_poll_delay,iostats,iostats_passthrough,max_sectors_kb,nomerges,read_ahead_kb,rotational,stable_writes,write_cache,write_zeroes_unmap_max_bytes}",
		Mode: "444", Why: "block-layer tunables: no request queue"},
	{Pattern: "{head,path}/integrity/{read_verify,write_generate}", Mode: "444", Why: "no integrity profile (metadata namespaces are not usable over fabrics)"},

	// Beyond the kernel.
	{Pattern: "ctrl/diag/reservation_notification_count", Skip: true, Why: "reservation notifications counted (README: reservations)"},
	{Pattern: "head/{resv_report,resv_command}", Skip: true, Why: "reservations through the tree (README: persistent reservations); the kernel has only the PR ioctls"},

	// Writable in Linux, read-only here.
	{Pattern: "path/queue/io_timeout", Mode: "444", Why: "shows the controller's io_timeout; set it there (no per-queue timeout)"},

	// A command the kernel host does not send.
	{Pattern: "ctrl/diag/command_error_count", Value: `^[01]\\n$`,
		Why: "we enable reservation notifications (Set Features 0x83), which the kernel host does not; nvmet refuses it while reservations are off, and that counts as one error"},

	// Per host or per connection.
	{Pattern: "ctrl/address", Value: `^traddr=[0-9.]+,trsvcid=443[01],src_addr=[0-9.]+\\n$`, Why: "the kernel host reaches the target at 10.0.3.15/10.0.4.15 inside the VM, we at 127.0.0.1"},
	{Pattern: "ctrl/cntlid", Value: `^[0-9]+\\n$`, Why: "nvmet allocates controller IDs dynamically"},
	{Pattern: "ctrl/hostnqn", Value: `^nqn\.2014-08\.org\.nvmexpress:uuid:[0-9a-f-]{36}\\n$`, Why: "host identity"},
	{Pattern: "ctrl/hostid", Value: `^[0-9a-f-]{36}\\n$`, Why: "host identity"},
	{Pattern: "*/stat", Value: `^( +[0-9]+){17}\\n$`, Why: "I/O counts: the kernel reads partition tables at scan"},
	{Pattern: "*/inflight", Value: `^ +[0-9]+ +[0-9]+\\n$`, Why: "I/O in flight"},
	{Pattern: "path/numa_nodes", Value: `^[0-9,-]*\\n$`, Why: "nodes whose current path this is: set by the first I/O (the kernel's partition scan)"},
}

// TestKernelTreeMatchesLinux72 mounts the Linux 7.2 kernel target with
// mpathfs while the guest's own kernel host is connected to it too, and
// compares the two trees file by file.
func TestKernelTreeMatchesLinux72(t *testing.T) {
	k := kttest.RequireUnstable(t)
	requireFUSE(t)
	k.Ctl(t, "khost", "connect")
	t.Cleanup(func() { k.Ctl(t, "khost", "disconnect") })
	var opts []fabrics.Options
	for _, port := range k.Ports {
		o := fabrics.DefaultOptions()
		o.Transport, o.TrAddr, o.TrSvcID, o.SubsysNQN = "tcp", "127.0.0.1", port, k.NQN
		opts = append(opts, o)
	}
	// The kernel host's options: its defaults, one I/O queue per CPU of the
	// one-CPU guest.
	e := newEnv(t, envConfig{Controllers: opts, KATO: fabrics.DefaultKATO, ReconnectDelay: fabrics.DefaultReconnectDelay,
		CtrlLossTmo: fabrics.DefaultCtrlLossTmo, NrIOQueues: 1, IOTimeout: host.DefaultIOTimeout})

	// The kernel scans namespaces asynchronously after the connect.
	var kdump string
	deadline := time.Now().Add(20 * time.Second)
	for {
		kdump = k.Ctl(t, "khost-sysfs")
		// Both heads and all four path devices, each with its nsid.
		heads := len(regexp.MustCompile(`(?m)^/sys/block/nvme\d+n\d+/nsid\t`).FindAllString(kdump, -1))
		paths := len(regexp.MustCompile(`(?m)^/sys/block/nvme\d+c\d+n\d+/nsid\t`).FindAllString(kdump, -1))
		if heads == 2 && paths == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kernel host shows %d heads and %d paths, want 2 and 4", heads, paths)
		}
		time.Sleep(200 * time.Millisecond)
	}
	kd, err := sysfsdiff.Parse(strings.NewReader(kdump))
	if err != nil {
		t.Fatal(err)
	}
	od, err := sysfsdiff.Walk(e.dir, func(p string) bool { return strings.HasSuffix(p, "/resv_report") })
	if err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("MPATHFS_TREE_DUMP"); out != "" {
		os.WriteFile(out+".kernel", []byte(kdump), 0o644)
		var sb strings.Builder
		for p, e := range od {
			sb.WriteString(p + "\t" + e.Mode + "\t" + e.Value + "\n")
		}
		os.WriteFile(out+".ours", []byte(sb.String()), 0o644)
	}
	kc, err := sysfsdiff.Canon(kd)
	if err != nil {
		t.Fatal(err)
	}
	oc, err := sysfsdiff.Canon(od)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sysfsdiff.Compare(kc, oc, treeRules)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d entries agree (%d of %d attribute kinds)", res.Agree, res.Compared, res.KindsAgree, res.Kinds)
	for _, d := range res.Diffs {
		t.Errorf("differs: %s", d)
	}
}
