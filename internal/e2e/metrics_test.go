package e2e

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/metrics"
)

// scrape GETs /metrics with a real HTTP client.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

// sample finds the value of the series name{labels...} (labels given as
// key="value", in any order) in an exposition; -1 if absent.
func sample(text, name string, labels ...string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, name+"{") {
			continue
		}
		i := strings.LastIndexByte(l, '}')
		set := l[len(name)+1 : i]
		ok := true
		for _, want := range labels {
			ok = ok && regexp.MustCompile(`(^|,)`+regexp.QuoteMeta(want)+`(,|$)`).MatchString(set)
		}
		if ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(l[i+1:]), 64)
			if err != nil {
				return -1
			}
			return v
		}
	}
	return -1
}

// A real HTTP scrape of a real daemon mount: node_exporter's
// NVMe-subsystem series, and mpathfs_* counters that move under fio and a
// path fault (port 1 silent mid-run: keep-alive timeout, failover, write
// fence, reset, reconnect).
func TestMetricsScrapeUnderFioAndPathFault(t *testing.T) {
	requireFUSE(t, "fio")
	e := newEnv(t, envConfig{})
	ms, err := metrics.Listen("127.0.0.1:0", e.d.Tree(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Close(context.Background()) })
	url := "http://" + ms.Addr().String() + "/metrics"
	before := scrape(t, url)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"node_nvmesubsystem_info", []string{`subsystem="nvme-subsys0"`, `nqn="nqn.2026-11.io.mpathfs:demo"`, `model="mpathfs demo"`, `serial="mpathfs-demo-0001"`, `iopolicy="numa"`}, 1},
		{"node_nvmesubsystem_paths", []string{`subsystem="nvme-subsys0"`}, 2},
		{"node_nvmesubsystem_paths_live", []string{`subsystem="nvme-subsys0"`}, 2},
		{"node_nvmesubsystem_path_state", []string{`controller="nvme1"`, `state="live"`, `transport="tcp"`}, 1},
		{"node_nvmesubsystem_path_state", []string{`controller="nvme1"`, `state="dead"`}, 0},
		{"node_nvmesubsystem_namespace_info", []string{`device="nvme0n2"`}, 1},
		{"mpathfs_head_io_total", []string{`device="nvme0n1"`, `direction="write"`}, 0},
		{"mpathfs_path_ana_state", []string{`device="nvme0c0n1"`, `state="optimized"`}, 1},
	} {
		if got := sample(before, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fio := exec.CommandContext(ctx, "fio", append([]string{"--output-format=normal", "--verify_state_save=0"}, verifyJob(e.path("nvme0n1"), 8, 1500)...)...)
	var fout strings.Builder
	fio.Stdout, fio.Stderr = &fout, &fout
	if err := fio.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitFor("fio writing", 10*time.Second, func() bool { return e.statField("sys/block/nvme0n1", 4) > 200 })
	// Path 1 goes silent under load: its in-flight writes are in doubt, fail
	// over after the keep-alive timeout and wait for the write fence.
	e.setup.Ports[0].Stall(true)
	e.waitFor("nvme0 not live", 20*time.Second, func() bool { return e.cat("sys/class/nvme/nvme0/state") != "live" })
	e.setup.Ports[0].Stall(false)
	if err := fio.Wait(); err != nil {
		t.Fatalf("fio: %v\n%s", err, fout.String())
	}
	e.waitFor("nvme0 live again", 20*time.Second, func() bool { return e.cat("sys/class/nvme/nvme0/state") == "live" })
	after := scrape(t, url)

	grew := func(name string, labels ...string) {
		t.Helper()
		b, a := sample(before, name, labels...), sample(after, name, labels...)
		if b < 0 || a <= b {
			t.Errorf("%s%v: %v -> %v, want growth", name, labels, b, a)
		}
	}
	grew("mpathfs_head_io_total", `device="nvme0n1"`, `direction="write"`)
	grew("mpathfs_head_io_total", `device="nvme0n1"`, `direction="read"`) // the verify pass
	grew("mpathfs_head_bytes_total", `device="nvme0n1"`, `direction="write"`)
	grew("mpathfs_head_io_duration_seconds_count", `device="nvme0n1"`, `direction="write"`)
	grew("mpathfs_head_io_duration_seconds_bucket", `device="nvme0n1"`, `direction="write"`, `le="+Inf"`)
	grew("mpathfs_path_io_total", `device="nvme0c0n1"`, `direction="write"`)
	grew("mpathfs_controller_state_changes_total", `controller="nvme0"`)
	grew("mpathfs_controller_resets_total", `controller="nvme0"`)
	grew("mpathfs_controller_reconnects_total", `controller="nvme0"`)
	if w, n := sample(after, "mpathfs_head_io_total", `device="nvme0n1"`, `direction="write"`),
		sample(after, "mpathfs_head_io_duration_seconds_count", `device="nvme0n1"`, `direction="write"`); w != n {
		t.Errorf("histogram count %v != io count %v", n, w)
	}
	if got := sample(after, "node_nvmesubsystem_paths_live", `subsystem="nvme-subsys0"`); got != 2 {
		t.Errorf("paths_live after recovery = %v", got)
	}
	for _, name := range []string{"mpathfs_path_failovers_total", "mpathfs_head_retries_total", "mpathfs_head_requeues_total",
		"mpathfs_head_fence_waits_total", "mpathfs_head_fence_wait_seconds_total", "mpathfs_path_ana_transitions_total",
		"mpathfs_head_inflight", "mpathfs_path_inflight", "mpathfs_controller_errors_total"} {
		if !strings.Contains(after, "\n"+name+"{") {
			t.Errorf("no %s series", name)
		}
	}
	grew("mpathfs_path_failovers_total", `device="nvme0c0n1"`)
	grew("mpathfs_head_fence_waits_total", `device="nvme0n1"`)
	grew("mpathfs_head_fence_wait_seconds_total", `device="nvme0n1"`)
	grew("mpathfs_head_io_duration_seconds_bucket", `device="nvme0n1"`, `direction="write"`, `le="+Inf"`)
	if slow := sample(after, "mpathfs_head_io_duration_seconds_bucket", `device="nvme0n1"`, `direction="write"`, `le="0.524288"`); slow >= sample(after, "mpathfs_head_io_duration_seconds_count", `device="nvme0n1"`, `direction="write"`) {
		t.Errorf("no write slower than 0.5 s in the histogram though writes waited for the fence")
	}
}
