package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/internal/demo"
	"github.com/mpathfs/mpathfs/internal/kttest"
	"github.com/mpathfs/mpathfs/internal/sysfsdiff"
	"github.com/mpathfs/mpathfs/nvme"
)

// The Linux host (the kernel target VM's own NVMe/TCP host with native
// multipath) against OUR target, one path per guest NIC: data, an ANA
// change it must see, and a dropped port it must fail over from, on Linux
// 6.1 and 7.2.
func TestLinuxHostAgainstOurTarget(t *testing.T) {
	for _, c := range []struct {
		name string
		req  func(testing.TB) *kttest.Target
	}{{"6.1", kttest.Require}, {"7.2", kttest.RequireUnstable}} {
		t.Run(c.name, func(t *testing.T) {
			k := c.req(t)
			setup, err := demo.Start(demo.Config{Addrs: []string{"127.0.0.1:0", "127.0.0.1:0"}, NSSize: 16 << 20},
				hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { setup.Close() })
			t.Cleanup(func() { k.Ctl(t, "khost", "disconnect") })
			for i, nic := range []string{"10.0.3.2", "10.0.4.2"} {
				k.Ctl(t, "khost", "connect", nic, strconv.Itoa(setup.Ports[i].Addr().Port), demo.NQN)
			}
			// Kernel names: nvme0 = path 1, nvme1 = path 2 (connect order);
			// the path device of NSID 1 through nvme1 is in ANA group 1.
			st := khostStatus(t, k, 20*time.Second, func(s khost) bool { return len(s.paths) == 4 && s.ctrl["nvme0"] == "live" && s.ctrl["nvme1"] == "live" })
			k.Ctl(t, "khost", "dd", "/dev/nvme0n1", "4")
			k.Ctl(t, "khost", "dd", "/dev/nvme0n2", "4")
			// Linux derives the physical block from our atomic and
			// granularity fields, as from nvmet's.
			if got := k.Ctl(t, "sh", "cat /sys/block/nvme0n1/queue/physical_block_size"); got != "4096\n" {
				t.Errorf("kernel host: physical_block_size %q, want 4096", got)
			}

			// ANA: port 2 reports group 1 inaccessible; the kernel reads the
			// ANA log on the AEN and fails I/O over to port 1.
			p2g1 := ""
			for name, p := range st.paths {
				if strings.Contains(name, "c1n") && p.grp == "1" {
					p2g1 = name
				}
			}
			if p2g1 == "" {
				t.Fatalf("no path through nvme1 in ANA group 1: %+v", st.paths)
			}
			setup.Ports[1].SetANAState(1, nvme.ANAInaccessible)
			khostStatus(t, k, 20*time.Second, func(s khost) bool { return s.paths[p2g1].ana == "inaccessible" })
			k.Ctl(t, "khost", "dd", "/dev/nvme0n1", "4")
			k.Ctl(t, "khost", "dd", "/dev/nvme0n2", "4")
			setup.Ports[1].SetANAState(1, nvme.ANAOptimized)
			khostStatus(t, k, 20*time.Second, func(s khost) bool { return s.paths[p2g1].ana == "optimized" })

			// A dropped port: port 1 stops listening and closes its
			// connections; the kernel's nvme0 leaves live, data keeps flowing
			// through port 2.
			if err := setup.Ports[0].StopListening(); err != nil {
				t.Fatal(err)
			}
			setup.Ports[0].DropConnections()
			khostStatus(t, k, 20*time.Second, func(s khost) bool { return s.ctrl["nvme0"] != "live" })
			k.Ctl(t, "khost", "dd", "/dev/nvme0n1", "4")
			k.Ctl(t, "khost", "dd", "/dev/nvme0n2", "4")
		})
	}
}

// khost is `ctl khost status` parsed: controller states and path devices.
type khost struct {
	ctrl  map[string]string
	paths map[string]struct{ ana, grp string }
}

var (
	reKCtrl = regexp.MustCompile(`(?m)^(nvme\d+): state=(\S+)`)
	reKPath = regexp.MustCompile(`(?m)^\s+/dev/(nvme\d+c\d+n\d+): ana_state=(\S+) ana_grpid=(\d+)`)
)

// khostStatus polls the kernel host's status (no event reaches us from the
// guest) until cond holds.
func khostStatus(t *testing.T, k *kttest.Target, timeout time.Duration, cond func(khost) bool) khost {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := k.Ctl(t, "khost", "status")
		s := khost{ctrl: map[string]string{}, paths: map[string]struct{ ana, grp string }{}}
		for _, m := range reKCtrl.FindAllStringSubmatch(out, -1) {
			s.ctrl[m[1]] = m[2]
		}
		for _, m := range reKPath.FindAllStringSubmatch(out, -1) {
			s.paths[m[1]] = struct{ ana, grp string }{m[2], m[3]}
		}
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("kernel host did not reach the expected state in %s:\n%s", timeout, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// testWriter sends log output to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The Linux 7.2 host sees our target as it sees nvmet: its tree for our
// target and its tree for the kernel target (same sizes, both paths) agree
// but for the target's identity and what our namespaces do beyond brd.
func TestLinuxHostSeesOurTargetAsNvmet(t *testing.T) {
	k := kttest.RequireUnstable(t)
	setup, err := demo.Start(demo.Config{Addrs: []string{"127.0.0.1:0", "127.0.0.1:0"}, NSSize: 256 << 20},
		hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { setup.Close() })
	t.Cleanup(func() { k.Ctl(t, "khost", "disconnect") })
	dump := func(what string) sysfsdiff.Canonical {
		khostStatus(t, k, 20*time.Second, func(s khost) bool { return len(s.paths) == 4 && s.ctrl["nvme0"] == "live" && s.ctrl["nvme1"] == "live" })
		d, err := sysfsdiff.Parse(strings.NewReader(k.Ctl(t, "khost-sysfs")))
		if err != nil {
			t.Fatal(err)
		}
		c, err := sysfsdiff.Canon(d)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return c
	}
	for i, nic := range []string{"10.0.3.2", "10.0.4.2"} {
		k.Ctl(t, "khost", "connect", nic, strconv.Itoa(setup.Ports[i].Addr().Port), demo.NQN)
	}
	ours := dump("our target")
	k.Ctl(t, "khost", "disconnect")
	k.Ctl(t, "khost", "connect")
	nvmet := dump("nvmet")
	res, err := sysfsdiff.Compare(nvmet, ours, []sysfsdiff.Rule{
		{Pattern: "*/power/**", Skip: true, Why: "device model"},
		{Pattern: "*/trace/**", Skip: true, Why: "device model"},
		{Pattern: "ctrl/hwmon*/**", Skip: true, Why: "device model"},
		{Pattern: "{ng/**,subsys/ng}", Skip: true, Why: "character devices: numbered in scan order"},
		{Pattern: "*/{stat,inflight,diskseq,dev,uevent,bdi}", Skip: true, Why: "I/O history and device numbers of this boot"},
		{Pattern: "path/numa_nodes", Skip: true, Why: "set by the first I/O through the path"},
		{Pattern: "path/mq/**", Skip: true, Why: "blk-mq contexts"},
		{Pattern: "ctrl/cntlid", Value: `^[0-9]+\\n$`, Why: "dynamic controller IDs"},
		{Pattern: "ctrl/address", Value: `^traddr=10\.0\.[34]\.[0-9]+,trsvcid=[0-9]+,src_addr=10\.0\.[34]\.15\\n$`, Why: "another target address"},
		{Pattern: "{subsys,ctrl}/{model,serial,firmware_rev,subsysnqn}", Value: `.`, Why: "another product"},
		{Pattern: "{head,path}/{nguid,uuid,wwid}", Value: `.`, Why: "other namespace identifiers"},
		{Pattern: "{head,path}/queue/{write_cache,fua}", Value: `.`,
			Why: "nvmet (NVMe 2.1) says in Identify CNS 08h that brd has no volatile write cache; our target is NVMe 1.3, so Linux takes the cache VWC announces"},
		{Pattern: "{head,path}/queue/{write_zeroes_unmap_max_bytes,write_zeroes_unmap_max_hw_bytes}", Value: `^[0-9]+\\n$`,
			Why: "our namespaces deallocate on Write Zeroes and read deallocated blocks as zeroes (DLFEAT 0x09); brd does not say so"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d entries agree", res.Agree, res.Compared)
	for _, d := range res.Diffs {
		t.Errorf("differs (nvmet vs ours): %s", d)
	}
}
