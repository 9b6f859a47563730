package target

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mpathfs/mpathfs/nvme"
)

// Port is one listener: a path to the subsystems linked to it. The
// discovery subsystem is reachable on every port.
type Port struct {
	t   *Target
	cfg PortConfig
	id  uint16

	ana     [MaxANAGroups + 1]atomic.Uint32 // 0 = not set (optimized)
	stalled atomic.Bool
	failN   atomic.Int64
	failSt  atomic.Uint32
	loseN   atomic.Int64  // LoseNextCompletions
	shortN  atomic.Int64  // ShortNextReads
	lowatN  atomic.Uint64 // payload reads that raised SO_RCVLOWAT

	mu       sync.Mutex
	ln       net.Listener
	addr     *net.TCPAddr
	subs     map[string]*Subsystem
	conns    map[*conn]struct{}
	stallCh  chan struct{} // closed when the stall ends
	deferred []*conn       // connections to close when the stall ends
	closed   bool
	acceptWG sync.WaitGroup
}

func newPort(t *Target, cfg PortConfig) *Port {
	return &Port{t: t, cfg: cfg, id: cfg.ID, subs: map[string]*Subsystem{}, conns: map[*conn]struct{}{}}
}

// ID returns the port ID.
func (p *Port) ID() uint16 { return p.id }

// LowatReads returns how many large payload reads on this port's
// connections raised SO_RCVLOWAT to wait for the whole payload at once.
func (p *Port) LowatReads() uint64 { return p.lowatN.Load() }

// Addr returns the listening address (also while not listening: the last
// one, so StartListening comes back on the same TCP port).
func (p *Port) Addr() *net.TCPAddr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// LinkSubsystem makes a subsystem reachable through this port.
func (p *Port) LinkSubsystem(nqn string) error {
	s := p.t.Subsystem(nqn)
	if s == nil {
		return fmt.Errorf("link %s to port %d: %w", nqn, p.id, ErrNotFound)
	}
	p.mu.Lock()
	if _, ok := p.subs[nqn]; ok {
		p.mu.Unlock()
		return fmt.Errorf("link %s to port %d: %w", nqn, p.id, ErrExists)
	}
	p.subs[nqn] = s
	p.mu.Unlock()
	p.t.log.Info("subsystem linked", "port", p.id, "nqn", nqn)
	p.t.discChanged()
	return nil
}

// UnlinkSubsystem takes a subsystem off this port and tears down the
// port's controllers of it (their connections are closed), as removing
// the configfs link does on Linux.
func (p *Port) UnlinkSubsystem(nqn string) error {
	p.mu.Lock()
	s, ok := p.subs[nqn]
	delete(p.subs, nqn)
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("unlink %s from port %d: %w", nqn, p.id, ErrNotFound)
	}
	for _, c := range s.controllers() {
		if c.port == p {
			c.destroy("subsystem unlinked from port")
		}
	}
	p.t.log.Info("subsystem unlinked", "port", p.id, "nqn", nqn)
	p.t.discChanged()
	return nil
}

// Subsystems returns the NQNs linked to this port, sorted.
func (p *Port) Subsystems() []string {
	var out []string
	for _, s := range p.linked() {
		out = append(out, s.cfg.NQN)
	}
	return out
}

func (p *Port) linked() []*Subsystem {
	p.mu.Lock()
	defer p.mu.Unlock()
	ss := make([]*Subsystem, 0, len(p.subs))
	for _, s := range p.subs {
		ss = append(ss, s)
	}
	sort.Slice(ss, func(i, j int) bool { return ss[i].cfg.NQN < ss[j].cfg.NQN })
	return ss
}

// lookup finds the subsystem a Connect names: the discovery subsystem or a
// linked one.
func (p *Port) lookup(nqn string) *Subsystem {
	if nqn == nvme.DiscoveryNQN {
		return p.t.disc
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.subs[nqn]
}

// ANAState returns the state of ANA group g as reported through this port.
func (p *Port) ANAState(g uint32) nvme.ANAState {
	if g < 1 || g > MaxANAGroups {
		return nvme.ANAInaccessible
	}
	if v := p.ana[g].Load(); v != 0 {
		return nvme.ANAState(v)
	}
	return nvme.ANAOptimized
}

// anaGroupSet reports whether group g was given a state on this port.
func (p *Port) anaGroupSet(g uint32) bool { return g >= 1 && g <= MaxANAGroups && p.ana[g].Load() != 0 }

// SetANAState sets the state of ANA group g on this port and sends an
// ANA-change AEN to the controllers connected through it (Linux: writing
// ports/N/ana_groups/G/ana_state).
func (p *Port) SetANAState(g uint32, s nvme.ANAState) {
	if g < 1 || g > MaxANAGroups || !validANAState(s) {
		p.t.log.Error("bad ANA state change ignored", "port", p.id, "group", g, "state", s)
		return
	}
	p.ana[g].Store(uint32(s))
	p.t.anaChg.Add(1)
	p.t.log.Info("ANA state changed", "port", p.id, "group", g, "state", s.String())
	for _, c := range p.controllers() {
		if !c.discovery {
			c.postEvent(nvme.AENANAChange, nvme.AENCfgANAChange)
		}
	}
}

// controllers returns the live controllers whose admin queue is on this
// port.
func (p *Port) controllers() []*Controller {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[*Controller]bool{}
	var cs []*Controller
	for c := range p.conns {
		if ctrl := c.controller(); ctrl != nil && !seen[ctrl] {
			seen[ctrl] = true
			cs = append(cs, ctrl)
		}
	}
	return cs
}

// StartListening (re)opens the listener on the port's address.
func (p *Port) StartListening() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.ln != nil {
		return nil
	}
	addr := p.cfg.Addr
	if p.addr != nil {
		addr = p.addr.String()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("port %d: listen: %w", p.id, err)
	}
	p.ln = ln
	p.addr = ln.Addr().(*net.TCPAddr)
	p.t.log.Info("port listening", "port", p.id, "addr", p.addr.String())
	p.acceptWG.Add(1)
	go p.acceptLoop(ln)
	return nil
}

// StopListening closes the listener; connections stay.
func (p *Port) StopListening() error {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	if ln == nil {
		return nil
	}
	err := ln.Close()
	p.acceptWG.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("port %d: stop listening: %w", p.id, err)
	}
	return nil
}

// Listening reports whether the port accepts connections.
func (p *Port) Listening() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ln != nil
}

func (p *Port) acceptLoop(ln net.Listener) {
	defer p.acceptWG.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		c := newConn(p, nc)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			nc.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.t.wg.Add(1)
		p.mu.Unlock()
		go c.serve()
	}
}

func (p *Port) removeConn(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Port) allConns() []*conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	cs := make([]*conn, 0, len(p.conns)+len(p.deferred))
	for c := range p.conns {
		cs = append(cs, c)
	}
	cs = append(cs, p.deferred...)
	p.deferred = nil
	return cs
}

// DropConnections closes (TCP) every connection of the port; controllers
// whose admin queue goes are torn down.
func (p *Port) DropConnections() {
	cs := p.allConns()
	for _, c := range cs {
		c.closeSocket()
	}
	p.t.log.Info("port connections dropped", "port", p.id, "count", len(cs))
}

// Stall freezes the port (on) or thaws it: while stalled, connections stay
// open but nothing is answered — no ICResp, no completion, no data — as if
// the path's cable were pulled. Controllers whose keep-alive expires
// meanwhile are torn down, but their sockets are closed only when the stall
// ends (the close would be lost on a dead link).
func (p *Port) Stall(on bool) {
	p.mu.Lock()
	if on == p.stalled.Load() {
		p.mu.Unlock()
		return
	}
	var deferred []*conn
	if on {
		p.stallCh = make(chan struct{})
		p.stalled.Store(true)
	} else {
		p.stalled.Store(false)
		close(p.stallCh)
		p.stallCh = nil
		deferred = p.deferred
		p.deferred = nil
	}
	p.mu.Unlock()
	for _, c := range deferred {
		c.closeSocket()
	}
	p.t.log.Info("port stall", "port", p.id, "on", on)
}

// Stalled reports whether the port is stalled.
func (p *Port) Stalled() bool { return p.stalled.Load() }

// waitStall blocks while the port is stalled; false if done closed first.
func (p *Port) waitStall(done <-chan struct{}) bool {
	if !p.stalled.Load() {
		return true
	}
	p.mu.Lock()
	ch := p.stallCh
	p.mu.Unlock()
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	case <-done:
		return false
	}
}

// deferClose queues c's socket close until the stall ends; false if the
// port is not stalled (close now).
func (p *Port) deferClose(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stalled.Load() || p.closed {
		return false
	}
	p.deferred = append(p.deferred, c)
	return true
}

// FailNextIO makes the next n I/O commands on this port complete with
// status st (no data transferred). n <= 0 cancels.
func (p *Port) FailNextIO(n int, st nvme.Status) {
	p.failSt.Store(uint32(st))
	p.failN.Store(int64(max(n, 0)))
}

// LoseNextCompletions makes the next n I/O commands on this port that
// complete without data run, then lose their completion: the connection
// is closed instead of sending it, so the host cannot know whether they
// took effect (the in-doubt case of a lost path). n <= 0 cancels.
func (p *Port) LoseNextCompletions(n int) { p.loseN.Store(int64(max(n, 0))) }

// PendingLosses returns how many completions LoseNextCompletions still loses.
func (p *Port) PendingLosses() int { return int(p.loseN.Load()) }

// ShortNextReads makes the next n reads on this port lie: they send only the
// first half of their data, then complete with success (a target a host
// must not believe: the rest of its buffer is stale). n <= 0 cancels.
func (p *Port) ShortNextReads(n int) { p.shortN.Store(int64(max(n, 0))) }

// PendingShortReads returns how many reads ShortNextReads still cuts short.
func (p *Port) PendingShortReads() int { return int(p.shortN.Load()) }

// takeShort reports whether this read is to be cut short.
func (p *Port) takeShort() bool {
	for {
		n := p.shortN.Load()
		if n <= 0 {
			return false
		}
		if p.shortN.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// takeLoss reports whether this completion is to be lost.
func (p *Port) takeLoss() bool {
	for {
		n := p.loseN.Load()
		if n <= 0 {
			return false
		}
		if p.loseN.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// takeFailure returns the injected status for one I/O command, or 0.
func (p *Port) takeFailure() nvme.Status {
	for {
		n := p.failN.Load()
		if n <= 0 {
			return 0
		}
		if p.failN.CompareAndSwap(n, n-1) {
			st := nvme.Status(p.failSt.Load())
			if st == 0 {
				st = nvme.StatusInternalError
			}
			return st
		}
	}
}

func (p *Port) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.StopListening()
	p.mu.Lock()
	if p.stallCh != nil {
		close(p.stallCh)
		p.stallCh = nil
		p.stalled.Store(false)
	}
	p.mu.Unlock()
	for _, c := range p.allConns() {
		c.closeSocket()
	}
}

// ANAGroups returns the ANA groups visible through this port, ascending:
// group 1, every group given a state here and every group a namespace of a
// linked subsystem is in (the kernel's ports/N/ana_groups directory).
func (p *Port) ANAGroups() []uint32 {
	seen := map[uint32]bool{1: true}
	for g := uint32(1); g <= MaxANAGroups; g++ {
		if p.anaGroupSet(g) {
			seen[g] = true
		}
	}
	for _, s := range p.linked() {
		for _, ns := range s.namespaces() {
			seen[ns.ANAGroup()] = true
		}
	}
	out := make([]uint32, 0, len(seen))
	for g := range seen {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// PendingFailures returns how many I/O commands FailNextIO still fails and
// with which status.
func (p *Port) PendingFailures() (int, nvme.Status) {
	return int(p.failN.Load()), nvme.Status(p.failSt.Load())
}

// Config returns the port's configuration (with defaults filled in).
func (p *Port) Config() PortConfig { return p.cfg }
