package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/config"
	"github.com/mpathfs/mpathfs/internal/daemon"
	"github.com/mpathfs/mpathfs/internal/demo"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/host"
)

// requireFUSE skips unless the test can mount FUSE.
func requireFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount FUSE (CI runs as root)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("needs /dev/fuse: %v", err)
	}
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is the real daemon mounted at dir on our target (two ports).
type env struct {
	t     *testing.T
	setup *demo.Setup
	d     *daemon.Daemon
	m     *daemon.Mount
	dir   string
	logs  *logBuf
	base  fabrics.Options
	stop  func()
}

type envOpts struct {
	demo     demo.Config
	hostOpts []host.Option
	kato     time.Duration // default 1 s
	down     []int         // ports not listening when the daemon connects
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	requireFUSE(t)
	e := &env{t: t, logs: &logBuf{}, dir: t.TempDir()}
	log := hclog.New(&hclog.LoggerOptions{Name: "mpathfs", Level: hclog.Debug, Output: e.logs})
	if o.demo.NSSize == 0 {
		o.demo.NSSize = 16 << 20
	}
	o.demo.Addrs = []string{"127.0.0.1:0", "127.0.0.1:0"}
	setup, err := demo.Start(o.demo, log.Named("target"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { setup.Close() })
	e.setup = setup
	cfg, err := config.Parse("daemon-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	base := fabrics.DefaultOptions()
	base.HostNQN, base.HostID = cfg.Host.HostNQN, cfg.Host.HostID
	base.KeepAliveTmo = time.Second
	if o.kato != 0 {
		base.KeepAliveTmo = o.kato
	}
	base.ReconnectDelay = 100 * time.Millisecond
	base.CtrlLossTmo = 60 * time.Second
	base.NrIOQueues = 2
	e.base = base
	cfg.Controllers = setup.Options(base)
	for _, i := range o.down {
		if err := setup.Ports[i].StopListening(); err != nil {
			t.Fatal(err)
		}
	}
	e.d = daemon.New(cfg, log, append([]host.Option{host.WithIOTimeout(10 * time.Second)}, o.hostOpts...)...)
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
	done := make(chan error, 1)
	go func() { done <- e.d.Serve(sctx, m) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			scancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("daemon shutdown: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Errorf("daemon did not shut down")
			}
		})
	}
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("daemon log:\n%s", tail(e.logs.String(), 80))
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

func (e *env) path(rel string) string { return filepath.Join(e.dir, rel) }

// cat reads a file with the real cat.
func (e *env) cat(rel string) string {
	e.t.Helper()
	out, err := exec.Command("cat", e.path(rel)).CombinedOutput()
	if err != nil {
		e.t.Fatalf("cat %s: %v: %s", rel, err, out)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// tryCat is cat that reports failure instead of failing the test.
func (e *env) tryCat(rel string) (string, bool) {
	out, err := exec.Command("cat", e.path(rel)).CombinedOutput()
	return strings.TrimSuffix(string(out), "\n"), err == nil
}

// echo writes value with bash's echo; it returns bash's error message
// ("" on success).
func (e *env) echo(rel, value string) string {
	e.t.Helper()
	out, err := exec.Command("bash", "-c", fmt.Sprintf("echo %s > %s", value, e.path(rel))).CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out)) + " (" + err.Error() + ")"
	}
	return ""
}

// waitFor polls cond (a value in the tree: no event reaches a reader of
// the tree) every 10 ms until it holds or 20 s pass.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitCat waits until cat rel prints want.
func (e *env) waitCat(rel, want string) {
	e.t.Helper()
	e.waitFor(rel+" = "+want, func() bool {
		v, ok := e.tryCat(rel)
		return ok && v == want
	})
}
