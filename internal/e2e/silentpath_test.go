package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// maxCompletionGap reads fio's completion-latency logs (time in ms since
// the job started, latency in ns, …) and returns the longest time between
// two consecutive completions and the longest latency.
func maxCompletionGap(t *testing.T, glob string) (gap, worst time.Duration, n int) {
	t.Helper()
	files, _ := filepath.Glob(glob)
	if len(files) == 0 {
		t.Fatalf("no fio latency log %s", glob)
	}
	var at []int64
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fs := strings.Split(sc.Text(), ",")
			if len(fs) < 2 {
				continue
			}
			ms, err1 := strconv.ParseInt(strings.TrimSpace(fs[0]), 10, 64)
			ns, err2 := strconv.ParseInt(strings.TrimSpace(fs[1]), 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: bad line %q", f, sc.Text())
			}
			at = append(at, ms)
			worst = max(worst, time.Duration(ns))
		}
		fh.Close()
	}
	sort.Slice(at, func(i, j int) bool { return at[i] < at[j] })
	for i := 1; i < len(at); i++ {
		gap = max(gap, time.Duration(at[i]-at[i-1])*time.Millisecond)
	}
	return gap, worst, len(at)
}

// TestReadsSurviveSilentPath: under 4 KiB random reads at QD8, the path
// carrying them stops answering (our target's stall: TCP open, nothing
// answered) for 2 s, with keep_alive_tmo 5 s. The reads in flight there
// are re-sent on the other path after the silence deadline (100 ms here)
// and the silent controller is probed and left alone meanwhile, so no
// completion gap reaches 1 s (without it: the keep-alive timeout, 5+ s).
func TestReadsSurviveSilentPath(t *testing.T) {
	requireFUSE(t, "fio")
	e := newEnv(t, envConfig{KATO: 5 * time.Second})
	p0 := e.setup.Ports[0]
	logs := filepath.Join(t.TempDir(), "lat")
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := e.fio("--name=silent", "--filename="+e.path("nvme0n1"), "--ioengine=libaio", "--direct=1",
			"--rw=randread", "--bs=4k", "--iodepth=8", "--size=64M", "--time_based", "--runtime=6",
			"--write_lat_log="+logs, "--log_avg_msec=0", "--randrepeat=0")
		done <- result{out, err}
	}()
	e.waitFor("reads on nvme0c0n1", 10*time.Second, func() bool { return e.statField(path0n1, 0) > 1000 })
	before := e.statField(path1n1, 0)
	p0.Stall(true)
	e.waitFor("nvme0 marked silent: reads move to nvme0c1n1", 5*time.Second, func() bool { return e.statField(path1n1, 0) > before+1000 })
	time.Sleep(2 * time.Second) // the fault's length
	p0.Stall(false)
	r := <-done
	if r.err != nil || !strings.Contains(r.out, "err= 0") {
		t.Fatalf("fio: %v\n%s", r.err, r.out)
	}
	gap, worst, n := maxCompletionGap(t, logs+"_clat.*.log")
	t.Logf("%d reads: longest completion gap %v, longest read %v", n, gap, worst)
	if gap >= time.Second {
		t.Errorf("longest completion gap %v during a 2 s silent path, want < 1 s", gap)
	}
	if s := e.cat("sys/class/nvme/nvme0/state"); s != "live" {
		t.Errorf("nvme0 %s after a 2 s stall with kato 5 s, want live (the probe got its answer)", s)
	}
	if c, _ := strconv.Atoi(e.cat(path0n1 + "/diag/multipath_failover_count")); c == 0 {
		t.Errorf("no read failed over from the silent path")
	}
	if e.logs.Count("controller not answering") == 0 || e.logs.Count("controller answers again") == 0 {
		t.Errorf("silence and recovery not logged:\n%s", tail(e.logs.String(), 30))
	}
}
