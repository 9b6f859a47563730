package mpath_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/mpath/mpathtest"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/scenarios with the actual output (only commit it if you understand the change)")

// TestScenarios runs the multipath scenarios in testdata/scenarios. Each file is
// a list of blocks:
//
//	command arg key=value ...
//	----
//	expected output
//	<blank line>
//
// Commands: new policy=P [delay=S]; add NAME node=N [state=S] [nsid=K] [capacity=B] [uuid=X];
// state NAME S; disable/enable/unavailable/available NAME; remove NAME;
// fail NAME n=K action=A [ana] [indoubt]; select node=N; policy P; delay S;
// submit op=O [node=N]; submit-async ID op=O (returns once the request is queued);
// await ID; tick S (advance the fake clock); counters; log. Log lines are shown
// with the next result of submit, await, add or policy (or log), so their place
// does not depend on goroutine timing.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runScenario(t, file)
		})
	}
}

type block struct {
	cmd, want string
}

func parseScenario(t *testing.T, file string) []block {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []block
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b := block{cmd: line}
		if !sc.Scan() || sc.Text() != "----" {
			t.Fatalf("%s: command %q not followed by ----", file, line)
		}
		var out []string
		for sc.Scan() && sc.Text() != "" {
			out = append(out, sc.Text())
		}
		b.want = strings.Join(out, "\n")
		blocks = append(blocks, b)
	}
	return blocks
}

func runScenario(t *testing.T, file string) {
	blocks := parseScenario(t, file)
	env := &scenarioEnv{t: t}
	var rewritten strings.Builder
	for _, b := range blocks {
		got := env.run(b.cmd)
		if *rewrite {
			fmt.Fprintf(&rewritten, "%s\n----\n", b.cmd)
			if got != "" {
				rewritten.WriteString(got + "\n")
			}
			rewritten.WriteString("\n")
			continue
		}
		if got != b.want {
			t.Errorf("%s: %s\n got:\n%s\nwant:\n%s", file, b.cmd, got, b.want)
		}
	}
	if *rewrite {
		// Keep the file's leading comment.
		data, _ := os.ReadFile(file)
		var head strings.Builder
		for _, l := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(l, "#") {
				break
			}
			head.WriteString(l + "\n")
		}
		if err := os.WriteFile(file, []byte(head.String()+"\n"+rewritten.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type scenarioEnv struct {
	t        *testing.T
	clock    *mpathtest.Clock
	log      *logSink
	logged   int
	s        *mpath.Subsystem
	paths    map[string]*mpath.Path
	drvs     map[string]*mpathtest.Driver
	order    []string
	async    map[string]chan error
	asyncReq map[string]*mpath.Request
	queued   chan struct{}
	delay    uint32
}

func kv(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			m[k] = v
		} else {
			m[a] = ""
		}
	}
	return m
}

func atoi(t *testing.T, s string, def int) int {
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("bad number %q", s)
	}
	return n
}

func parseState(t *testing.T, s string) mpath.AccessState {
	switch s {
	case "", "optimized":
		return mpath.StateOptimized
	case "non-optimized":
		return mpath.StateNonOptimized
	case "other", "inaccessible", "change", "persistent-loss":
		return mpath.StateOther
	}
	t.Fatalf("bad state %q", s)
	return 0
}

func (e *scenarioEnv) run(cmd string) string {
	t := e.t
	f := strings.Fields(cmd)
	name, args := f[0], f[1:]
	a := kv(args)
	switch name {
	case "new":
		pol, err := mpath.ParseIOPolicy(a["policy"])
		if err != nil {
			t.Fatal(err)
		}
		e.clock, e.log = mpathtest.NewClock(), newLogSink()
		cfg := mpath.DefaultSubsystemConfig("nqn.2026-01.io.mpathfs:scenario")
		cfg.Policy, cfg.Clock = pol, e.clock
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: e.log, Level: hclog.Trace, DisableTime: true})
		cfg.HeadName = func(id mpath.Identity) string { return fmt.Sprintf("nvme0n%d", id.NSID) }
		e.s = mpath.NewSubsystem(cfg)
		e.paths, e.drvs, e.order = map[string]*mpath.Path{}, map[string]*mpathtest.Driver{}, nil
		e.async, e.asyncReq = map[string]chan error{}, map[string]*mpath.Request{}
		e.queued = make(chan struct{}, 1024)
		e.delay = uint32(atoi(t, a["delay"], 0))
		e.logged = 0
		return ""
	case "add":
		pname := args[0]
		d := mpathtest.NewDriver(pname)
		d.SetAccessState(parseState(t, a["state"]))
		d.SubmitHook = func(_ context.Context, req *mpath.Request) error {
			sr := req.Arg.(*scenarioReq)
			sr.mu.Lock()
			sr.submits = append(sr.submits, pname)
			sr.mu.Unlock()
			return nil
		}
		info := testInfo
		if c := a["capacity"]; c != "" {
			info.Capacity = int64(atoi(t, c, 0))
		}
		id := mpath.Identity{NSID: uint32(atoi(t, a["nsid"], 1))}
		if u := a["uuid"]; u != "" {
			id.UUID[0] = byte(atoi(t, u, 0))
		}
		p, err := e.s.AddPath(id, info, pname, mpath.NewController("ctrl-"+pname, atoi(t, a["node"], mpath.NoNode)), d)
		if err != nil {
			return "error: " + err.Error() + "\n" + e.drainLog()
		}
		if len(p.Head().Paths()) == 1 && p.Head().DelayedRemovalSecs() == 0 {
			p.Head().SetDelayedRemovalSecs(e.delay)
			mpath.SetQueueHook(p.Head(), func(*mpath.Request) { e.queued <- struct{}{} })
		}
		d.Bind(p)
		e.paths[pname], e.drvs[pname] = p, d
		e.order = append(e.order, pname)
		if !p.Ready() {
			return "not ready"
		}
		return ""
	case "state":
		e.drvs[args[0]].SetAccessState(parseState(t, args[1]))
		return ""
	case "disable", "enable":
		e.drvs[args[0]].SetDisabled(name == "disable")
		return ""
	case "unavailable", "available":
		e.drvs[args[0]].SetAvailable(name == "available")
		return ""
	case "remove":
		e.s.RemovePath(e.paths[args[0]])
		return ""
	case "fail":
		v := mpath.Verdict{}
		switch a["action"] {
		case "complete":
			v.Action = mpath.ActionComplete
		case "retry":
			v.Action = mpath.ActionRetry
		case "failover":
			v.Action = mpath.ActionFailover
		default:
			t.Fatalf("bad action %q", a["action"])
		}
		_, v.ANA = a["ana"]
		_, v.InDoubt = a["indoubt"]
		e.drvs[args[0]].FailNext(atoi(t, a["n"], 1), v, nil)
		return ""
	case "select":
		if p := e.head().FindPath(atoi(t, a["node"], 0)); p != nil {
			return p.Name()
		}
		return "none"
	case "policy":
		p, err := mpath.ParseIOPolicy(args[0])
		if err != nil {
			return "error: " + err.Error()
		}
		e.s.SetIOPolicy(p)
		return e.drainLog()
	case "delay":
		e.head().SetDelayedRemovalSecs(uint32(atoi(t, args[0], 0)))
		return ""
	case "submit":
		req := e.request(a)
		return e.outcome(req, e.head().Do(context.Background(), req))
	case "submit-async":
		id := args[0]
		h := e.head()
		ch := make(chan error, 1)
		req := e.request(kv(args[1:]))
		go func() { ch <- h.Do(context.Background(), req) }()
		select { // waiting for a path (counted and logged), or done
		case <-e.queued:
			e.async[id], e.asyncReq[id] = ch, req
			return "queued"
		case err := <-ch:
			return e.outcome(req, err)
		case <-time.After(10 * time.Second):
			t.Fatal("request neither queued nor done")
		}
		return ""
	case "await":
		ch, req := e.async[args[0]], e.asyncReq[args[0]]
		delete(e.async, args[0])
		select {
		case err := <-ch:
			return e.outcome(req, err)
		case <-time.After(10 * time.Second):
			t.Fatal("request did not complete")
		}
		return ""
	case "tick":
		e.clock.Advance(time.Duration(atoi(t, args[0], 0)) * time.Second)
		return ""
	case "counters":
		var b strings.Builder
		for _, h := range e.s.Heads() {
			c := h.Counters()
			fmt.Fprintf(&b, "%s retry=%d error=%d requeue_no_usable_path=%d fail_no_available_path=%d fence_waits=%d\n",
				h.Name(), c.RetryCount, c.ErrorCount, c.RequeueNoUsablePath, c.FailNoAvailablePath, c.FenceWaits)
		}
		for _, n := range e.order {
			c := e.paths[n].Counters()
			fmt.Fprintf(&b, "%s failover=%d retry=%d error=%d\n", n, c.FailoverCount, c.RetryCount, c.ErrorCount)
		}
		return strings.TrimSuffix(b.String(), "\n")
	case "log":
		return e.drainLog()
	}
	t.Fatalf("unknown command %q", name)
	return ""
}

func (e *scenarioEnv) head() *mpath.Head {
	for _, n := range e.order {
		if h := e.paths[n].Head(); !h.Removed() {
			return h
		}
	}
	return e.paths[e.order[0]].Head()
}

func (e *scenarioEnv) request(a map[string]string) *mpath.Request {
	op := map[string]mpath.Op{"": mpath.OpRead, "read": mpath.OpRead, "write": mpath.OpWrite, "flush": mpath.OpFlush}[a["op"]]
	return &mpath.Request{Op: op, Length: 4096, Buf: make([]byte, 4096), Node: atoi(e.t, a["node"], 0), Arg: &scenarioReq{}}
}

// scenarioReq records where a request was submitted (Request.Arg).
type scenarioReq struct {
	mu      sync.Mutex
	submits []string
}

func (e *scenarioEnv) outcome(req *mpath.Request, err error) string {
	sr := req.Arg.(*scenarioReq)
	sr.mu.Lock()
	subs := strings.Join(sr.submits, " ")
	sr.mu.Unlock()
	res := "ok"
	if err != nil {
		res = "error: " + err.Error()
		if errors.Is(err, mpath.ErrNoPath) {
			res += " (EIO)"
		}
	}
	out := res + " [submitted on: " + subs + "]"
	if l := e.drainLog(); l != "" {
		out += "\n" + l
	}
	return out
}

// drainLog returns the log lines written since the last call.
func (e *scenarioEnv) drainLog() string {
	lines := strings.Split(strings.TrimSuffix(e.log.String(), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		lines = nil
	}
	n := e.logged
	e.logged = len(lines)
	return strings.Join(lines[n:], "\n")
}
