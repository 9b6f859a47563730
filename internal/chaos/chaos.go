// Package chaos runs a seeded fault schedule against a real deployment —
// `mpathfs target` (our NVMe/TCP target, its own process, driven through
// its --control tree and iptables) and `mpathfs mount` of both its ports —
// under an fio crc32c verify load, and counts what it did and what broke:
// faults by kind, verify errors, EIOs and other I/O errors, failovers,
// retries, requeues, resets and reconnects (from the daemon's diag files).
//
// etc/chaos.sh runs it from the command line (a long run); internal/e2e
// runs a short one in CI. Every fault kind of issue 12's chaos test is
// here: connection drops, stalls (a silent path), listen off, ANA flips
// (inaccessible, non-optimized, change), fail_next path statuses, TCP
// resets and silent drops by iptables, and both paths down at once within
// delayed_removal_secs.
package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Config is one chaos run.
type Config struct {
	Bin      string        // the mpathfs binary
	Dir      string        // work directory: logs, fio output, mount point, control tree
	Seed     uint64        // fault schedule seed
	Duration time.Duration // length of the fio load; faults stop Settle before its end
	// Gap is the mean time between two faults of one kind (default 2 s);
	// kinds run concurrently, so faults overlap.
	Gap time.Duration
	// Settle is the fault-free tail of the run (default 2×KATO+3 s).
	Settle time.Duration
	// Kinds to inject (default AllKinds; RST and Blackhole are left out
	// without iptables).
	Kinds          []Kind
	NSMiB          int // namespace size (default 64)
	KATO           int // keep_alive_tmo seconds (default 2)
	DelayedRemoval int // delayed_removal_secs (default 10)
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// Summary is what a run did and found.
type Summary struct {
	Seed         uint64
	Duration     time.Duration
	Faults       map[Kind]int
	VerifyErrors int     // fio verify failures (wrong data read back)
	EIO          int     // I/Os that failed with EIO
	OtherErrors  int     // any other fio error
	RunErrors    []error // fault injection failures, fio exiting with an error
	Failovers    uint64  // sum of multipath_failover_count over the paths
	Retries      uint64  // sum of the heads' command_retry_count
	Requeued     uint64  // sum of io_requeue_no_usable_path_count
	Failed       uint64  // sum of io_fail_no_available_path_count
	Resets       uint64  // sum of the controllers' reset_count
	Reconnects   uint64  // sum of reconnect_count
	ReadMB       uint64
	WriteMB      uint64
	DaemonExit   error // the daemon's exit after SIGINT (nil: clean)
}

// TotalFaults is the number of faults injected.
func (s Summary) TotalFaults() int {
	n := 0
	for _, c := range s.Faults {
		n += c
	}
	return n
}

// OK reports whether the run found nothing wrong.
func (s Summary) OK() bool {
	return s.VerifyErrors == 0 && s.EIO == 0 && s.OtherErrors == 0 && len(s.RunErrors) == 0 &&
		s.DaemonExit == nil && s.WriteMB > 0 && s.ReadMB > 0
}

// String is the one summary line.
func (s Summary) String() string {
	var kinds []string
	for k, n := range s.Faults {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	verdict := "PASS"
	if !s.OK() {
		verdict = "FAIL"
	}
	daemon := "clean"
	if s.DaemonExit != nil {
		daemon = s.DaemonExit.Error()
	}
	return fmt.Sprintf("chaos %s: seed=%d duration=%s faults=%d (%s) verify_errors=%d eio=%d other_errors=%d "+
		"run_errors=%d failovers=%d retries=%d requeued=%d failed=%d resets=%d reconnects=%d read=%dMB write=%dMB daemon_exit=%s",
		verdict, s.Seed, s.Duration.Round(time.Second), s.TotalFaults(), strings.Join(kinds, " "), s.VerifyErrors, s.EIO,
		s.OtherErrors, len(s.RunErrors), s.Failovers, s.Retries, s.Requeued, s.Failed, s.Resets, s.Reconnects,
		s.ReadMB, s.WriteMB, daemon)
}

func (c *Config) defaults() {
	if c.Gap <= 0 {
		c.Gap = 2 * time.Second
	}
	if c.NSMiB <= 0 {
		c.NSMiB = 64
	}
	if c.KATO <= 0 {
		c.KATO = 2
	}
	if c.DelayedRemoval <= 0 {
		c.DelayedRemoval = 10
	}
	if c.Settle <= 0 {
		c.Settle = time.Duration(2*c.KATO+3) * time.Second
	}
	if c.Kinds == nil {
		c.Kinds = AllKinds
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Run sets up the target and the mount, runs the load and the fault
// schedule for cfg.Duration, tears everything down and returns the
// summary. An error means the run could not be carried out (setup);
// what the run found is in the Summary (see OK).
func Run(ctx context.Context, cfg Config) (Summary, error) {
	cfg.defaults()
	sum := Summary{Seed: cfg.Seed, Duration: cfg.Duration, Faults: map[Kind]int{}}
	var kinds []Kind
	ipt := haveIPTables()
	for _, k := range cfg.Kinds {
		if (k == RST || k == Blackhole) && !ipt {
			fmt.Fprintf(cfg.Log, "chaos: no iptables (root, iptables): %s faults left out\n", k)
			continue
		}
		kinds = append(kinds, k)
	}
	for _, tool := range []string{"fio", "fusermount3"} {
		if _, err := exec.LookPath(tool); err != nil {
			return sum, fmt.Errorf("chaos needs %s: %w", tool, err)
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return sum, err
	}
	r, err := startRig(ctx, cfg)
	if err != nil {
		return sum, err
	}
	defer r.stop()
	fmt.Fprintf(cfg.Log, "chaos: target ports %d,%d, control %s, mount %s, seed %d\n", r.ports[0], r.ports[1], r.ctl, r.mnt, cfg.Seed)
	in := newInjector(r.ctl, r.ports)
	defer in.cleanup()

	ns1, ns2 := filepath.Join(r.mnt, "nvme0n1"), filepath.Join(r.mnt, "nvme0n2")
	fioErr := filepath.Join(cfg.Dir, "fio.err")
	// ns2 holds a verify pattern that the reader checks on every read.
	if err := runFio(ctx, filepath.Join(cfg.Dir, "prefill.json"), fioErr, prefillArgs(ns2, cfg.NSMiB)); err != nil {
		return sum, fmt.Errorf("prefill: %w", err)
	}
	var fr fioResult
	if err := fr.add(filepath.Join(cfg.Dir, "prefill.json")); err != nil || fr.errors > 0 {
		return sum, fmt.Errorf("prefill failed: %v, %d errors (see %s)", err, fr.errors, fioErr)
	}

	lctx, stopLoad := context.WithTimeout(ctx, cfg.Duration)
	defer stopLoad()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var loadErrs []error
	res := fioResult{}
	addResult := func(path string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && lctx.Err() == nil {
			loadErrs = append(loadErrs, err)
		}
		if aerr := res.add(path); aerr != nil && err == nil {
			loadErrs = append(loadErrs, aerr)
		}
	}
	wg.Add(2)
	go func() { // writer: random writes verified as they go
		defer wg.Done()
		out := filepath.Join(cfg.Dir, "writer.json")
		addResult(out, runFio(ctx, out, fioErr, writerArgs(ns1, cfg.NSMiB, cfg.Duration)))
	}()
	go func() { // reader: verified random reads of ns2, pass after pass
		defer wg.Done()
		for i := 0; lctx.Err() == nil; i++ {
			out := filepath.Join(cfg.Dir, fmt.Sprintf("reader-%d.json", i%2))
			addResult(out, runFio(lctx, out, fioErr, readerArgs(ns2, cfg.NSMiB)))
		}
	}()

	// Faults from 2 s in until Settle before the end.
	fctx, stopFaults := context.WithTimeout(ctx, cfg.Duration-cfg.Settle)
	defer stopFaults()
	var fwg sync.WaitGroup
	select {
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
	}
	for i, k := range kinds {
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			in.run(fctx, k, cfg.Seed+uint64(i)*0x9e3779b97f4a7c15, cfg.Gap, cfg.KATO, cfg.DelayedRemoval)
		}()
	}
	progress := time.NewTicker(30 * time.Second)
	defer progress.Stop()
	start := time.Now()
	for fctx.Err() == nil {
		select {
		case <-fctx.Done():
		case <-progress.C:
			in.mu.Lock()
			n := 0
			for _, c := range in.counts {
				n += c
			}
			in.mu.Unlock()
			fmt.Fprintf(cfg.Log, "chaos: %s: %d faults, failovers %d, verify errors so far %d, EIO so far %d\n",
				time.Since(start).Round(time.Second), n, sumFiles(filepath.Join(r.mnt, "sys/block/nvme*c*n*/diag/multipath_failover_count")),
				countVerify(fioErr), countLines(fioErr, "Input/output error"))
		}
	}
	fwg.Wait()
	in.cleanup()
	fmt.Fprintf(cfg.Log, "chaos: faults stopped, settling %s\n", cfg.Settle)
	wg.Wait()

	in.mu.Lock()
	for k, n := range in.counts {
		sum.Faults[k] = n
	}
	sum.RunErrors = append(sum.RunErrors, in.errs...)
	in.mu.Unlock()
	mu.Lock()
	sum.RunErrors = append(sum.RunErrors, loadErrs...)
	mu.Unlock()

	sum.Failovers = sumFiles(filepath.Join(r.mnt, "sys/block/nvme*c*n*/diag/multipath_failover_count"))
	sum.Retries = sumFiles(filepath.Join(r.mnt, "sys/block/nvme0n*/diag/command_retry_count"))
	sum.Requeued = sumFiles(filepath.Join(r.mnt, "sys/block/nvme0n*/diag/io_requeue_no_usable_path_count"))
	sum.Failed = sumFiles(filepath.Join(r.mnt, "sys/block/nvme0n*/diag/io_fail_no_available_path_count"))
	sum.Resets = sumFiles(filepath.Join(r.mnt, "sys/class/nvme/nvme*/diag/reset_count"))
	sum.Reconnects = sumFiles(filepath.Join(r.mnt, "sys/class/nvme/nvme*/diag/reconnect_count"))
	sum.VerifyErrors = countVerify(fioErr)
	sum.EIO = countLines(fioErr, "Input/output error")
	sum.OtherErrors = max(0, res.errors-sum.VerifyErrors-sum.EIO)
	sum.ReadMB, sum.WriteMB = res.readBytes>>20, res.writeBytes>>20
	sum.DaemonExit = r.stop()
	return sum, nil
}

// countVerify counts fio's verify failure lines.
func countVerify(path string) int {
	return countLines(path, "verify: bad") + countLines(path, "verify failed")
}

func fioCommon(file string) []string {
	return []string{"--filename=" + file, "--ioengine=libaio", "--direct=1", "--verify=crc32c",
		"--verify_state_save=0", "--continue_on_error=all", "--output-format=json", "--randrepeat=0"}
}

func prefillArgs(file string, mib int) []string {
	return append(fioCommon(file), "--name=prefill", "--rw=write", "--bs=4k", "--iodepth=16",
		fmt.Sprintf("--size=%dM", mib), "--do_verify=0")
}

// writerArgs: random writes of 4..64 KiB at QD16, each verified soon after
// (verify_backlog) and all again at the end.
func writerArgs(file string, mib int, d time.Duration) []string {
	return append(fioCommon(file), "--name=writer", "--rw=randwrite", "--bsrange=4k-64k", "--iodepth=16",
		fmt.Sprintf("--size=%dM", mib), "--verify_backlog=64", "--time_based",
		fmt.Sprintf("--runtime=%d", int(d.Seconds())))
}

// readerArgs: one pass of verified 4 KiB random reads at QD8 (fio ends a
// read-verify job after size bytes).
func readerArgs(file string, mib int) []string {
	return append(fioCommon(file), "--name=reader", "--rw=randread", "--bs=4k", "--iodepth=8",
		fmt.Sprintf("--size=%dM", mib))
}

// runFio runs fio with args, its JSON to out and its messages appended to
// errPath. A cancelled ctx interrupts it (SIGINT: fio reports what it did).
func runFio(ctx context.Context, out, errPath string, args []string) error {
	ef, err := os.OpenFile(errPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer ef.Close()
	cmd := exec.Command("fio", append(args, "--output="+out)...)
	cmd.Stdout, cmd.Stderr = ef, ef
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Signal(os.Interrupt)
		err = <-done
	}
	if err != nil {
		return fmt.Errorf("fio %s: %w", args[len(args)-1], err)
	}
	return nil
}

// fioResult accumulates fio's JSON reports.
type fioResult struct {
	errors                int
	readBytes, writeBytes uint64
}

func (r *fioResult) add(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	// fio may print notes before the JSON object.
	if i := strings.IndexByte(string(b), '{'); i > 0 {
		b = b[i:]
	}
	var out struct {
		Jobs []struct {
			Error    int `json:"error"`
			TotalErr int `json:"total_err"`
			Read     struct {
				IOBytes uint64 `json:"io_bytes"`
			} `json:"read"`
			Write struct {
				IOBytes uint64 `json:"io_bytes"`
			} `json:"write"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(out.Jobs) == 0 {
		return errors.New(path + ": no fio job")
	}
	for _, j := range out.Jobs {
		n := j.TotalErr
		if n == 0 && j.Error != 0 {
			n = 1
		}
		r.errors += n
		r.readBytes += j.Read.IOBytes
		r.writeBytes += j.Write.IOBytes
	}
	return nil
}
