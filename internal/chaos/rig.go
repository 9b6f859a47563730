package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// nqn is the chaos subsystem.
const nqn = "nqn.2026-11.io.mpathfs:chaos"

// rig is `mpathfs target` with its control tree and `mpathfs mount` of its
// two ports, each in its own process.
type rig struct {
	dir     string
	ports   [2]int // TCP ports of target ports 1 and 2
	ctl     string // the target's control tree
	mnt     string // the daemon's mount point
	target  *exec.Cmd
	mount   *exec.Cmd
	tExited chan error
	mExited chan error
}

// freePorts returns n distinct free loopback TCP ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// nvmetJSON is the target's configuration: one subsystem on two ports,
// namespace 1 in ANA group 1 and namespace 2 in group 2 on each port.
func nvmetJSON(ports [2]int, nsMiB int) ([]byte, error) {
	type m = map[string]any
	var ps []m
	for i, p := range ports {
		ps = append(ps, m{
			"portid": i + 1,
			"addr":   m{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": strconv.Itoa(p)},
			"ana_groups": []m{{"grpid": 1, "ana": m{"state": "optimized"}},
				{"grpid": 2, "ana": m{"state": "optimized"}}},
			"subsystems": []string{nqn},
		})
	}
	var nss []m
	for ns := 1; ns <= 2; ns++ {
		nss = append(nss, m{"nsid": ns, "enable": 1, "ana_grpid": ns, "device": m{
			"path": fmt.Sprintf("ram:%dM", nsMiB),
			"uuid": fmt.Sprintf("6b740000-0000-4000-8000-0000000c4a0%d", ns),
		}})
	}
	return json.MarshalIndent(m{"ports": ps, "subsystems": []m{{
		"nqn":        nqn,
		"attr":       m{"allow_any_host": "1", "model": "mpathfs chaos", "serial": "mpathfs-chaos-1"},
		"namespaces": nss,
	}}}, "", " ")
}

// mountTOML is the daemon's configuration: both paths, round-robin so both
// carry I/O, a short keep-alive and reconnect delay, delayed removal.
func mountTOML(ports [2]int, kato, delayedRemoval int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[multipath]\niopolicy = \"round-robin\"\ndelayed_removal_secs = %d\n\n[log]\nlevel = \"info\"\n", delayedRemoval)
	for _, p := range ports {
		fmt.Fprintf(&b, "\n[[controller]]\ntraddr = \"127.0.0.1\"\ntrsvcid = \"%d\"\nnqn = %q\n"+
			"keep_alive_tmo = %d\nreconnect_delay = 1\nctrl_loss_tmo = -1\nnr_io_queues = 2\n", p, nqn, kato)
	}
	return b.String()
}

// startRig starts the target, waits for its control tree, then mounts.
func startRig(ctx context.Context, cfg Config) (*rig, error) {
	r := &rig{dir: cfg.Dir, ctl: filepath.Join(cfg.Dir, "nvmet"), mnt: filepath.Join(cfg.Dir, "mnt")}
	for _, d := range []string{r.ctl, r.mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	ps, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	r.ports = [2]int{ps[0], ps[1]}
	js, err := nvmetJSON(r.ports, cfg.NSMiB)
	if err != nil {
		return nil, err
	}
	jsonPath := filepath.Join(cfg.Dir, "nvmet.json")
	tomlPath := filepath.Join(cfg.Dir, "mpathfs.toml")
	if err := os.WriteFile(jsonPath, js, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(tomlPath, []byte(mountTOML(r.ports, cfg.KATO, cfg.DelayedRemoval)), 0o644); err != nil {
		return nil, err
	}
	r.target, r.tExited, err = start(cfg.Bin, filepath.Join(cfg.Dir, "target.log"), "target", "-c", jsonPath, "--control", r.ctl)
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, 10*time.Second, r.tExited, func() bool {
		_, err := os.Stat(filepath.Join(r.ctl, "ports", "2", "fault", "drop"))
		return err == nil
	}); err != nil {
		r.stop()
		return nil, fmt.Errorf("target: %w (see %s)", err, filepath.Join(cfg.Dir, "target.log"))
	}
	r.mount, r.mExited, err = start(cfg.Bin, filepath.Join(cfg.Dir, "mount.log"), "mount", "-c", tomlPath, r.mnt)
	if err != nil {
		r.stop()
		return nil, err
	}
	if err := waitFor(ctx, 20*time.Second, r.mExited, func() bool {
		for _, f := range []string{"nvme0n1", "nvme0n2"} {
			if _, err := os.Stat(filepath.Join(r.mnt, f)); err != nil {
				return false
			}
		}
		return true
	}); err != nil {
		r.stop()
		return nil, fmt.Errorf("mount: %w (see %s)", err, filepath.Join(cfg.Dir, "mount.log"))
	}
	return r, nil
}

// start runs bin args with output to logPath; the channel gets its exit.
func start(bin, logPath string, args ...string) (*exec.Cmd, chan error, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("start %s %s: %w", bin, args[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); f.Close() }()
	return cmd, exited, nil
}

// waitFor polls ready (a file appearing in another process's tree: there
// is no event to wait on) until it holds, the process exits or d passes.
func waitFor(ctx context.Context, d time.Duration, exited chan error, ready func() bool) error {
	deadline := time.Now().Add(d)
	for !ready() {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("not ready after " + d.String())
		}
	}
	return nil
}

// stop unmounts (SIGINT: the daemon flushes and shuts its controllers
// down) and then stops the target; it returns the daemon's exit error.
func (r *rig) stop() error {
	var merr error
	if r.mount != nil {
		merr = interrupt(r.mount, r.mExited, 60*time.Second)
		r.mount = nil
	}
	if r.target != nil {
		_ = interrupt(r.target, r.tExited, 10*time.Second)
		r.target = nil
	}
	return merr
}

func interrupt(cmd *exec.Cmd, exited chan error, grace time.Duration) error {
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		return err
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s did not exit within %v of SIGINT", filepath.Base(cmd.Path), grace)
	}
}

// write stores v in a file of the target's control tree or the daemon's
// tree (relative to base).
func write(base, rel, v string) error {
	return os.WriteFile(filepath.Join(base, rel), []byte(v+"\n"), 0o644)
}

// sumFiles adds the numbers in the files matching glob.
func sumFiles(glob string) uint64 {
	names, _ := filepath.Glob(glob)
	var n uint64
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err == nil {
			n += v
		}
	}
	return n
}

// countLines counts the lines of path that contain sub.
func countLines(path, sub string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), sub) {
			n++
		}
	}
	return n
}
