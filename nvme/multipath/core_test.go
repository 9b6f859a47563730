package multipath_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/host"
	"github.com/mpathfs/mpathfs/nvme/multipath"
	"github.com/mpathfs/mpathfs/nvme/target"
	"github.com/mpathfs/mpathfs/nvme/tcp"
)

// recorder is a Listener writing one line per call.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) add(f string, a ...any) {
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprintf(f, a...))
	r.mu.Unlock()
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

func (r *recorder) SubsystemAdded(s *multipath.Subsystem, _ *nvme.IdentifyController) {
	r.add("subsystem %s", s.Name())
}
func (r *recorder) ControllerAdded(c *multipath.Ctrl) error { r.add("ctrl %s", c.Name()); return nil }
func (r *recorder) ControllerRemoved(c *multipath.Ctrl)     { r.add("-ctrl %s", c.Name()) }
func (r *recorder) HeadAdded(_ *multipath.Subsystem, h *mpath.Head) {
	r.add("head %s nsid %d", h.Name(), h.Identity().NSID)
}
func (r *recorder) HeadRemoved(_ *multipath.Subsystem, h *mpath.Head) { r.add("-head %s", h.Name()) }
func (r *recorder) PathAdded(p *multipath.Path, head string)          { r.add("path %s %s", p.Name(), head) }
func (r *recorder) PathRemoved(p *multipath.Path)                     { r.add("-path %s", p.Name()) }

// TestCoreLifecycle: controllers of one subsystem on our target join one
// subsystem with one head per namespace; instances are the lowest free;
// DeleteController removes the controller's paths, then the controller;
// Close removes the rest.
func TestCoreLifecycle(t *testing.T) {
	tg := target.New(hclog.NewNullLogger())
	t.Cleanup(func() { tg.Close() })
	const nqn = "nqn.2026-11.io.mpathfs:core"
	sub, err := tg.AddSubsystem(target.SubsystemConfig{NQN: nqn, AllowAnyHost: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint32(1); i <= 2; i++ {
		if _, err := sub.AddNamespace(target.NamespaceConfig{NSID: i, Size: 1 << 20, NGUID: [16]byte{15: byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	var ports []*target.Port
	for i := 1; i <= 2; i++ {
		p, err := tg.AddPort(target.PortConfig{ID: uint16(i), Addr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.LinkSubsystem(nqn); err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
	}
	rec := &recorder{}
	core := multipath.NewCore(multipath.Config{IOPolicy: mpath.PolicyNUMA, Listener: rec})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	connect := func(p *target.Port) *multipath.Ctrl {
		t.Helper()
		o := fabrics.DefaultOptions()
		o.TrAddr, o.TrSvcID, o.SubsysNQN = "127.0.0.1", fmt.Sprint(p.Addr().Port), nqn
		o.HostNQN, o.HostID = "nqn.2014-08.org.nvmexpress:uuid:core-test", [16]byte{1}
		o.NrIOQueues = 1
		inst := core.Reserve()
		hc, err := host.Connect(ctx, o, nil, host.WithTransport(tcp.Transport{}))
		if err != nil {
			core.Release(inst)
			t.Fatal(err)
		}
		c, err := core.AddController(inst, hc, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c0, c1 := connect(ports[0]), connect(ports[1])
	want := []string{
		"subsystem nvme-subsys0", "ctrl nvme0",
		"head nvme0n1 nsid 1", "path nvme0c0n1 nvme0n1", "head nvme0n2 nsid 2", "path nvme0c0n2 nvme0n2",
		"ctrl nvme1", "path nvme0c1n1 nvme0n1", "path nvme0c1n2 nvme0n2",
	}
	if got := rec.get(); !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c1.Instance() != 1 || len(c0.Paths()) != 2 {
		t.Fatalf("instance %d, %d paths", c1.Instance(), len(c0.Paths()))
	}
	if err := core.DeleteController(ctx, c0); err != nil {
		t.Fatal(err)
	}
	if got := rec.get()[len(want):]; !slices.Equal(got, []string{"-path nvme0c0n1", "-path nvme0c0n2", "-ctrl nvme0"}) {
		t.Fatalf("delete: %v", got)
	}
	if inst := core.Reserve(); inst != 0 {
		t.Errorf("lowest free instance %d, want 0", inst)
	} else {
		core.Release(inst)
	}
	if err := core.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := rec.get()
	tailWant := []string{"-path nvme0c1n1", "-head nvme0n1", "-path nvme0c1n2", "-head nvme0n2", "-ctrl nvme1"}
	if !slices.Equal(got[len(got)-len(tailWant):], tailWant) {
		t.Fatalf("close: %v", got[len(want)+3:])
	}
	if len(core.Controllers()) != 0 {
		t.Fatal("controllers left after Close")
	}
}
