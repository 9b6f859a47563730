package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/internal/chaos"
)

// buildMpathfs builds the mpathfs binary into dir (the chaos run drives
// `mpathfs target` and `mpathfs mount` as separate processes).
func buildMpathfs(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "mpathfs")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/mpathfs/mpathfs/cmd/mpathfs").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestChaosShort is the CI run of the chaos runner (etc/chaos.sh): a
// separate target and daemon, fio crc32c verify load, a seeded schedule of
// every fault kind (about 30 of each). Any verify error, EIO or other fio
// error, or a daemon that does not exit cleanly, fails it.
// MPATHFS_CHAOS_SEED replays a schedule, MPATHFS_CHAOS_SECS changes the
// length (default 60).
func TestChaosShort(t *testing.T) {
	requireFUSE(t, "fio", "go")
	if testing.Short() {
		t.Skip("-short: the chaos run takes a minute")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MPATHFS_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MPATHFS_CHAOS_SEED: %v", err)
		}
		seed = v
	}
	secs := 60
	if s := os.Getenv("MPATHFS_CHAOS_SECS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 20 {
			t.Fatalf("MPATHFS_CHAOS_SECS %q: want seconds >= 20", s)
		}
		secs = v
	}
	dir := t.TempDir()
	cfg := chaos.Config{
		Bin:      buildMpathfs(t, dir),
		Dir:      filepath.Join(dir, "run"),
		Seed:     seed,
		Duration: time.Duration(secs) * time.Second,
		Gap:      1600 * time.Millisecond,
		Log:      testWriter{t},
	}
	sum, err := chaos.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(sum)
	for _, e := range sum.RunErrors {
		t.Errorf("run: %v", e)
	}
	for _, k := range chaos.AllKinds {
		if (k == chaos.RST || k == chaos.Blackhole) && sum.Faults[k] == 0 {
			continue // no iptables here (logged)
		}
		if sum.Faults[k] == 0 {
			t.Errorf("no %s fault injected", k)
		}
	}
	if sum.Failovers == 0 {
		t.Errorf("no failover counted in the daemon's diag files")
	}
	if !sum.OK() {
		for _, f := range []string{"fio.err", "mount.log", "target.log"} {
			if b, err := os.ReadFile(filepath.Join(cfg.Dir, f)); err == nil {
				t.Logf("--- %s (last 60 lines)\n%s", f, tail(string(b), 60))
			}
		}
		t.Fatalf("chaos run failed (replay with MPATHFS_CHAOS_SEED=%d): %s", seed, sum)
	}
}
