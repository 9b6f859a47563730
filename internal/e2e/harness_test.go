package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/config"
	"github.com/mpathfs/mpathfs/internal/daemon"
	"github.com/mpathfs/mpathfs/internal/demo"
	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/host"
	"github.com/mpathfs/mpathfs/nvme/target"
)

// requireFUSE skips unless the test can mount FUSE and run the tools.
func requireFUSE(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount FUSE (CI runs as root)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("needs /dev/fuse: %v", err)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install %s): %v", tool, tool, err)
		}
	}
}

// envConfig sets up one end-to-end environment.
type envConfig struct {
	NSSize         int64 // bytes per namespace (default 64 MiB)
	Policy         mpath.IOPolicy
	KATO           time.Duration // default 1 s
	ReconnectDelay time.Duration // default 200 ms
	CtrlLossTmo    time.Duration // default 60 s
	NrIOQueues     int           // default 2
	IOTimeout      time.Duration // default 10 s
	DelayedRemoval uint32
	NoFence        bool
	MDTS           uint8
	MetadataNS     []uint32 // demo namespaces formatted with metadata
	// Controllers overrides the connect options (kernel target); then no
	// demo target is started.
	Controllers []fabrics.Options
	// Reuse connects to an existing demo target.
	Reuse *demo.Setup
	// DownAtStart lists demo ports (0-based) that are not listening when
	// the daemon connects.
	DownAtStart []int
	// UnlinkedAtStart lists demo ports that do not export the subsystem
	// when the daemon connects.
	UnlinkedAtStart []int
	// HostID, if set, gives the daemon its own host identity (Host ID and
	// an NQN derived from it) instead of the machine's.
	HostID [16]byte
	// PersistentDiscovery connects through a persistent discovery
	// controller on port 0 instead of configured controllers.
	PersistentDiscovery bool
	// DHCHAP, if set, makes the demo target require DH-HMAC-CHAP of the
	// daemon's host NQN with these settings, and gives the controllers
	// the secrets.
	DHCHAP *target.HostAuth
	// Tweak, if set, edits the daemon's configuration before it connects.
	Tweak func(*config.Config)
}

type env struct {
	t     *testing.T
	cfg   envConfig
	setup *demo.Setup // nil with a foreign target
	d     *daemon.Daemon
	m     *daemon.Mount
	dir   string
	logs  *syncBuffer

	cancel context.CancelFunc
	done   chan error
}

// syncBuffer collects the daemon log for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Count(sub string) int { return strings.Count(s.String(), sub) }

func newEnv(t *testing.T, c envConfig) *env {
	t.Helper()
	if c.NSSize == 0 {
		c.NSSize = 64 << 20
	}
	if c.KATO == 0 {
		c.KATO = time.Second
	}
	if c.ReconnectDelay == 0 {
		c.ReconnectDelay = 200 * time.Millisecond
	}
	if c.CtrlLossTmo == 0 {
		c.CtrlLossTmo = 60 * time.Second
	}
	e := &env{t: t, cfg: c, logs: &syncBuffer{}, dir: t.TempDir()}
	log := hclog.New(&hclog.LoggerOptions{Name: "mpathfs", Level: hclog.Debug, Output: e.logs})
	cfg, err := config.Parse("e2e", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Multipath.IOPolicy = c.Policy
	cfg.Multipath.DelayedRemovalSecs = c.DelayedRemoval
	cfg.Multipath.FenceWrites = !c.NoFence
	base := fabrics.DefaultOptions()
	base.HostNQN, base.HostID = cfg.Host.HostNQN, cfg.Host.HostID
	if c.HostID != ([16]byte{}) {
		base.HostID = c.HostID
		base.HostNQN = fmt.Sprintf("nqn.2014-08.org.nvmexpress:uuid:%x-%x-%x-%x-%x", c.HostID[0:4], c.HostID[4:6], c.HostID[6:8], c.HostID[8:10], c.HostID[10:16])
		cfg.Host.HostNQN, cfg.Host.HostID = base.HostNQN, base.HostID
	}
	base.KeepAliveTmo = c.KATO
	base.ReconnectDelay = c.ReconnectDelay
	base.CtrlLossTmo = c.CtrlLossTmo
	base.NrIOQueues = 2
	if c.NrIOQueues != 0 {
		base.NrIOQueues = c.NrIOQueues
	}
	if c.Reuse != nil {
		e.setup = c.Reuse
		cfg.Controllers = c.Reuse.Options(base)
	} else if c.Controllers != nil {
		for _, o := range c.Controllers {
			o.HostNQN, o.HostID = base.HostNQN, base.HostID
			o.KeepAliveTmo, o.ReconnectDelay, o.CtrlLossTmo, o.NrIOQueues = base.KeepAliveTmo, base.ReconnectDelay, base.CtrlLossTmo, base.NrIOQueues
			cfg.Controllers = append(cfg.Controllers, o)
		}
	} else {
		setup, err := demo.Start(demo.Config{Addrs: []string{"127.0.0.1:0", "127.0.0.1:0"}, NSSize: c.NSSize, MDTS: c.MDTS, MetadataNS: c.MetadataNS}, log.Named("target"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { setup.Close() })
		e.setup = setup
		cfg.Controllers = setup.Options(base)
		if a := c.DHCHAP; a != nil {
			setup.Target.SetHostAuth(base.HostNQN, *a)
			setup.Subsys.AllowHost(base.HostNQN)
			setup.Subsys.SetAllowAnyHost(false)
			for i := range cfg.Controllers {
				cfg.Controllers[i].DHCHAPSecret, cfg.Controllers[i].DHCHAPCtrlSecret = a.Key, a.CtrlKey
			}
		}
		for _, i := range c.DownAtStart {
			if err := setup.Ports[i].StopListening(); err != nil {
				t.Fatal(err)
			}
		}
		for _, i := range c.UnlinkedAtStart {
			if err := setup.Ports[i].UnlinkSubsystem(demo.NQN); err != nil {
				t.Fatal(err)
			}
		}
		if c.PersistentDiscovery {
			o := cfg.Controllers[0]
			o.SubsysNQN = nvme.DiscoveryNQN
			o.Discovery = true
			cfg.Discovery = []config.Discovery{{Options: o, Persistent: true}}
			cfg.Controllers = nil
		}
	}
	if c.IOTimeout == 0 {
		c.IOTimeout = 10 * time.Second
	}
	if c.Tweak != nil {
		c.Tweak(cfg)
	}
	e.d = daemon.New(cfg, log, host.WithIOTimeout(c.IOTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.d.ConnectAll(ctx); err != nil {
		t.Fatalf("connect: %v\n%s", err, e.logs)
	}
	opts := e.d.FUSEOptions()
	opts.DirectMount = true
	m, err := e.d.Mount(e.dir, opts)
	if err != nil {
		_ = e.d.Close(context.Background())
		t.Fatalf("mount: %v", err)
	}
	e.m = m
	sctx, scancel := context.WithCancel(context.Background())
	e.cancel = scancel
	e.done = make(chan error, 1)
	go func() { e.done <- e.d.Serve(sctx, m) }()
	t.Cleanup(e.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", tail(e.logs.String(), 120))
		}
	})
	return e
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop shuts the daemon down (unmount, Flush, CC.SHN) and returns Serve's
// result; idempotent.
func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("daemon shutdown: %v", err)
		}
	case <-time.After(90 * time.Second):
		e.t.Errorf("daemon did not shut down in 90 s")
	}
}

func (e *env) path(rel string) string { return filepath.Join(e.dir, rel) }

// run runs a command and returns its combined output.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// cat reads an attribute with the real cat.
func (e *env) cat(rel string) string {
	e.t.Helper()
	out, err := run(e.t, "cat", e.path(rel))
	if err != nil {
		e.t.Fatalf("cat %s: %v: %s", rel, err, out)
	}
	return strings.TrimSuffix(out, "\n")
}

// echo writes an attribute with the shell's echo, returning the shell's
// error message (empty on success).
func (e *env) echo(rel, value string) string {
	e.t.Helper()
	// bash, not dash: dash's echo reports every write error as "I/O error".
	out, err := run(e.t, "bash", "-c", fmt.Sprintf("echo %s > %s", value, e.path(rel)))
	if err != nil {
		return strings.TrimSpace(out) + " (" + err.Error() + ")"
	}
	return ""
}

// statField returns field i (0-based) of the stat file of a block
// directory (sys/block/NAME).
func (e *env) statField(dir string, i int) uint64 {
	e.t.Helper()
	rel := dir + "/stat"
	f := strings.Fields(e.cat(rel))
	if len(f) != 17 {
		e.t.Fatalf("%s: %d fields, want 17: %q", rel, len(f), f)
	}
	n, err := strconv.ParseUint(f[i], 10, 64)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// waitFor polls cond (a value in the tree or the target; no event exists
// for it) every 20 ms until it holds or the timeout expires.
func (e *env) waitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fio runs fio with the given job options and returns its output.
func (e *env) fio(args ...string) (string, error) {
	e.t.Helper()
	// No verify-state files in the package directory.
	return run(e.t, "fio", append([]string{"--output-format=normal", "--verify_state_save=0"}, args...)...)
}

// verifyJob is a fio data-integrity job on file that lasts about
// ios/rate seconds.
func verifyJob(file string, sizeMB, rateIOPS int) []string {
	return []string{
		"--name=vjob", "--filename=" + file, "--ioengine=libaio", "--direct=1",
		"--rw=randwrite", "--bs=4k", "--iodepth=16", fmt.Sprintf("--size=%dM", sizeMB),
		"--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
		fmt.Sprintf("--rate_iops=%d", rateIOPS), "--randrepeat=0",
	}
}

// errno extracts the errno of a failed syscall error.
func errnoOf(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// newEnvOnTarget mounts a second, fresh initiator on e's target.
func newEnvOnTarget(t *testing.T, e *env) *env {
	t.Helper()
	c := e.cfg
	c.Reuse = e.setup
	return newEnv(t, c)
}
