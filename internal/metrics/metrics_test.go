package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/sysfsview"
	"github.com/mpathfs/mpathfs/sysfsview/sysfsviewtest"
)

// latencyPath adds Latencies and ANATransitions to the fake path.
type latencyPath struct {
	*sysfsviewtest.Path
	lat mpath.Latencies
}

func (p latencyPath) Latencies() mpath.Latencies { return p.lat }
func (p latencyPath) ANATransitions() uint64     { return 3 }

func TestExposition(t *testing.T) {
	tree := sysfsview.NewTree(nil)
	f, err := sysfsviewtest.NewFixture(tree, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	f.Ctrl1.SetState("connecting")
	f.Head.SetStat(sysfsview.IOStat{ReadIOs: 10, ReadSectors: 80, WriteIOs: 4, WriteSectors: 64, InFlightRW: [2]uint64{1, 2}})
	f.Head.SetCounters(sysfsview.HeadCounters{FenceWaits: 2, FenceWaitTotal: 1500 * time.Millisecond, RequeueNoUsablePath: 7})
	p := latencyPath{Path: sysfsviewtest.NewPath(1<<30, "optimized", 3)}
	p.SetANA(true, "inaccessible")
	p.lat.Write.Buckets[3] = 5                         // 5 I/Os under 8 us
	p.lat.Write.Buckets[mpath.NumLatencyBuckets-1] = 1 // one beyond the last bound
	p.lat.Write.Sum = 20 * time.Second
	if err := tree.AddPath("nvme0c2n1", "nvme0n1", "nvme1", p); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(tree))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
	for _, want := range []string{
		`node_nvmesubsystem_info{iopolicy="numa",model="mpathfs demo",nqn="nqn.2014-08.org.example:subsys1",serial="0123456789",subsystem="nvme-subsys0"} 1`,
		`node_nvmesubsystem_paths{subsystem="nvme-subsys0"} 2`,
		`node_nvmesubsystem_paths_live{subsystem="nvme-subsys0"} 1`,
		`node_nvmesubsystem_path_state{controller="nvme1",state="connecting",subsystem="nvme-subsys0",transport="tcp"} 1`,
		`node_nvmesubsystem_path_state{controller="nvme1",state="live",subsystem="nvme-subsys0",transport="tcp"} 0`,
		`node_nvmesubsystem_namespace_info{device="nvme0n1",subsystem="nvme-subsys0"} 1`,
		`mpathfs_head_io_total{device="nvme0n1",direction="read",subsystem="nvme-subsys0"} 10`,
		`mpathfs_head_bytes_total{device="nvme0n1",direction="write",subsystem="nvme-subsys0"} 32768`,
		`mpathfs_head_inflight{device="nvme0n1",direction="write",subsystem="nvme-subsys0"} 2`,
		`mpathfs_head_fence_waits_total{device="nvme0n1",subsystem="nvme-subsys0"} 2`,
		`mpathfs_head_fence_wait_seconds_total{device="nvme0n1",subsystem="nvme-subsys0"} 1.5`,
		`mpathfs_head_requeues_total{device="nvme0n1",subsystem="nvme-subsys0"} 7`,
		`mpathfs_path_ana_state{controller="nvme1",device="nvme0c2n1",namespace="nvme0n1",state="inaccessible"} 1`,
		`mpathfs_path_ana_transitions_total{controller="nvme1",device="nvme0c2n1",namespace="nvme0n1"} 3`,
		`mpathfs_path_io_duration_seconds_bucket{controller="nvme1",device="nvme0c2n1",direction="write",namespace="nvme0n1",le="4e-06"} 0`,
		`mpathfs_path_io_duration_seconds_bucket{controller="nvme1",device="nvme0c2n1",direction="write",namespace="nvme0n1",le="8e-06"} 5`,
		`mpathfs_path_io_duration_seconds_bucket{controller="nvme1",device="nvme0c2n1",direction="write",namespace="nvme0n1",le="+Inf"} 6`,
		`mpathfs_path_io_duration_seconds_sum{controller="nvme1",device="nvme0c2n1",direction="write",namespace="nvme0n1"} 20`,
		`mpathfs_controller_state{controller="nvme1",state="connecting",subsystem="nvme-subsys0"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	// Fake sources without Latencies get no histogram.
	if strings.Contains(text, `mpathfs_path_io_duration_seconds_count{controller="nvme0"`) {
		t.Error("histogram for a source without latencies")
	}
}
