package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/target"
	"github.com/mpathfs/mpathfs/nvme/tcp"
)

type env struct {
	t     *testing.T
	tgt   *target.Target
	sub   *target.Subsystem
	ports []*target.Port
	ns    []*target.Namespace
}

// newEnv starts our target in-process: one subsystem with two 16 MiB RAM
// namespaces (ANA groups 1 and 2) and one port per config, on
// 127.0.0.1:0.
func newEnv(t *testing.T, ports ...target.PortConfig) *env {
	t.Helper()
	if len(ports) == 0 {
		ports = []target.PortConfig{{}}
	}
	e := &env{t: t, tgt: target.New(testLogger(t).Named("target"))}
	e.tgt.SetDiscoveryAllPorts(true)
	t.Cleanup(func() { e.tgt.Close() })
	sub, err := e.tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN, AllowAnyHost: true})
	if err != nil {
		t.Fatal(err)
	}
	e.sub = sub
	for i := uint32(1); i <= 2; i++ {
		ns, err := sub.AddNamespace(target.NamespaceConfig{
			NSID: i, Size: 16 << 20, BlockSize: 512, ANAGroup: i,
			UUID:  [16]byte{0x6b, 0x74, 15: byte(i)},
			NGUID: [16]byte{0x11, 0x22, 15: byte(i)},
			EUI64: [8]byte{0xaa, 7: byte(i)},
		})
		if err != nil {
			t.Fatal(err)
		}
		e.ns = append(e.ns, ns)
	}
	for i, pc := range ports {
		pc.ID = uint16(i + 1)
		if pc.Addr == "" {
			pc.Addr = "127.0.0.1:0"
		}
		p, err := e.tgt.AddPort(pc)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.LinkSubsystem(testNQN); err != nil {
			t.Fatal(err)
		}
		e.ports = append(e.ports, p)
	}
	return e
}

// opts returns connect options for port i with short timers.
func (e *env) opts(i int) fabrics.Options {
	o := fabrics.DefaultOptions()
	o.Transport = "tcp"
	o.TrAddr = "127.0.0.1"
	o.TrSvcID = fmt.Sprint(e.ports[i].Addr().Port)
	o.SubsysNQN = testNQN
	o.HostNQN = testHostNQN
	o.HostID = [16]byte{0, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 15: 1}
	o.KeepAliveTmo = time.Second
	o.ReconnectDelay = 100 * time.Millisecond
	o.CtrlLossTmo = fabrics.Off // forever
	o.NrIOQueues = 2
	o.QueueSize = 32
	return o
}

// testOpts are the host options every test uses: a short ICResp timeout so
// a stalled port is given up quickly when reconnecting.
func testOpts(o ...Option) []Option {
	return append([]Option{WithTransport(tcp.Transport{ICRespTimeout: 500 * time.Millisecond}),
		WithAdminTimeout(5 * time.Second)}, o...)
}

func connect(t *testing.T, opts fabrics.Options, o ...Option) *Controller {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	c, err := Connect(ctx, opts, testLogger(t).Named("host"), testOpts(o...)...)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestConnectIdentifyNamespaces(t *testing.T) {
	e := newEnv(t)
	c := connect(t, e.opts(0))
	if s := c.State(); s != StateLive {
		t.Fatalf("state %s after Connect", s)
	}
	id := c.Identify()
	if id == nil || id.SubNQN != testNQN {
		t.Fatalf("identify subnqn %+v", id)
	}
	if c.CNTLID() == 0 || c.CNTLID() != id.CNTLID {
		t.Fatalf("cntlid %d vs identify %d", c.CNTLID(), id.CNTLID)
	}
	if got := c.QueueCount(); got != 3 {
		t.Errorf("queue_count %d, want 3 (2 I/O + admin)", got)
	}
	if got := c.SQSize(); got != 31 {
		t.Errorf("sqsize %d, want 31", got)
	}
	if c.KATO() != time.Second {
		t.Errorf("kato %s", c.KATO())
	}
	wantAddr := fmt.Sprintf("traddr=127.0.0.1,trsvcid=%d,src_addr=127.0.0.1", e.ports[0].Addr().Port)
	if got := c.Address(); got != wantAddr {
		t.Errorf("address %q, want %q", got, wantAddr)
	}
	nss := c.Namespaces()
	if len(nss) != 2 {
		t.Fatalf("%d namespaces, want 2: %+v", len(nss), nss)
	}
	for i, ns := range nss {
		want := e.ns[i]
		if ns.NSID != want.NSID() || ns.BlockSize != 512 || ns.Blocks != uint64(16<<20/512) {
			t.Errorf("ns %d: nsid %d bs %d blocks %d", i, ns.NSID, ns.BlockSize, ns.Blocks)
		}
		if !ns.IDs.Equal(want.IDs()) {
			t.Errorf("ns %d: IDs %+v, want %+v", ns.NSID, ns.IDs, want.IDs())
		}
		if ns.ANAGroup != ns.NSID || ns.ANAState != nvme.ANAOptimized || !ns.Shared {
			t.Errorf("ns %d: group %d state %s shared %v", ns.NSID, ns.ANAGroup, ns.ANAState, ns.Shared)
		}
	}
}

// TestReadWriteSizes writes random data of many sizes and reads it back:
// in-capsule (512 B, 4 KiB), R2T (64 KiB), more than MAXH2CDATA and more
// than MDTS (port 2: MAXH2CDATA 8 KiB, C2H PDUs of 8 KiB, MDTS 32 KiB),
// with digests off and on.
func TestReadWriteSizes(t *testing.T) {
	e := newEnv(t, target.PortConfig{}, target.PortConfig{MaxH2CData: 8192, MaxC2HData: 8192, MDTS: 3})
	sizes := []int{512, 4096, 16384, 65536, 256 << 10, 1<<20 + 512}
	for _, port := range []int{0, 1} {
		for _, dg := range []struct{ hdr, data bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			t.Run(fmt.Sprintf("port%d/hdgst=%v/ddgst=%v", port+1, dg.hdr, dg.data), func(t *testing.T) {
				o := e.opts(port)
				o.HdrDigest, o.DataDigest = dg.hdr, dg.data
				c := connect(t, o)
				if port == 1 && c.MaxTransfer() != 32<<10 {
					t.Fatalf("max transfer %d, want MDTS 32 KiB", c.MaxTransfer())
				}
				lba := uint64(0)
				for _, n := range sizes {
					w := randBuf(t, n)
					if err := c.Write(context.Background(), 1, lba, w); err != nil {
						t.Fatalf("write %d bytes: %v", n, err)
					}
					r := make([]byte, n)
					if err := c.Read(context.Background(), 1, lba, r); err != nil {
						t.Fatalf("read %d bytes: %v", n, err)
					}
					if !bytes.Equal(w, r) {
						t.Fatalf("%d bytes: data mismatch", n)
					}
					lba += uint64(n / 512)
				}
			})
		}
	}
}

func TestConcurrentIO(t *testing.T) {
	e := newEnv(t)
	c := connect(t, e.opts(0))
	const workers = 64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			base := uint64(g) * 256 // 128 KiB per worker
			r := make([]byte, 64<<10)
			for i := 0; i < 20; i++ {
				n := 4096 << (i % 5) // 4..64 KiB
				w := make([]byte, n)
				rand.Read(w)
				if err := c.Write(context.Background(), 1+uint32(g%2), base, w); err != nil {
					errs <- fmt.Errorf("worker %d write: %w", g, err)
					return
				}
				if err := c.Read(context.Background(), 1+uint32(g%2), base, r[:n]); err != nil {
					errs <- fmt.Errorf("worker %d read: %w", g, err)
					return
				}
				if !bytes.Equal(w, r[:n]) {
					errs <- fmt.Errorf("worker %d iteration %d: mismatch", g, i)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestFlushWriteZeroesDeallocate(t *testing.T) {
	e := newEnv(t)
	c := connect(t, e.opts(0))
	ctx := context.Background()
	w := randBuf(t, 8192)
	if err := c.Write(ctx, 2, 100, w); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx, 2); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if err := c.WriteZeroes(ctx, 2, 100, 8); err != nil {
		t.Fatalf("write zeroes: %v", err)
	}
	r := make([]byte, 8192)
	if err := c.Read(ctx, 2, 100, r); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r[:4096], make([]byte, 4096)) || !bytes.Equal(r[4096:], w[4096:]) {
		t.Fatal("write zeroes did not zero exactly 8 blocks")
	}
	if err := c.Deallocate(ctx, 2, 108, 8); err != nil {
		t.Fatalf("deallocate: %v", err)
	}
	if err := c.Read(ctx, 3, 0, r); !errors.Is(err, ErrNoNamespace) {
		t.Fatalf("read of nsid 3: %v, want ErrNoNamespace", err)
	}
	if err := c.Read(ctx, 1, 0, r[:100]); !errors.Is(err, ErrUnaligned) {
		t.Fatalf("unaligned read: %v", err)
	}
}

func TestReservations(t *testing.T) {
	e := newEnv(t)
	c := connect(t, e.opts(0))
	ctx := context.Background()
	if err := c.ReservationRegister(ctx, 1, nvme.ResvRegister, 0, 0xABCD, false, nvme.ResvPTPLNoChange); err != nil {
		t.Fatalf("register: %v", err)
	}
	if err := c.ReservationAcquire(ctx, 1, nvme.ResvAcquire, nvme.ResvWriteExclusive, 0xABCD, 0, false); err != nil {
		t.Fatalf("acquire: %v", err)
	}
	r, err := c.ReservationReport(ctx, 1)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	if r.RType != nvme.ResvWriteExclusive || len(r.Regs) != 1 || r.Regs[0].RKey != 0xABCD || !r.Regs[0].Holds {
		t.Fatalf("report %+v", r)
	}
	if err := c.ReservationRelease(ctx, 1, nvme.ResvRelease, nvme.ResvWriteExclusive, 0xABCD, false); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := c.ReservationRelease(ctx, 1, nvme.ResvRelease, nvme.ResvWriteExclusive, 0x1111, false); !errors.Is(err, nvme.StatusReservationConflict) && !errors.As(err, new(nvme.Status)) {
		t.Fatalf("release with a wrong key: %v, want a status", err)
	}
}

// TestKeepAliveTimeoutStall: a stalled port answers nothing; the keep-alive
// sent at KATO/2 gets no completion within KATO, so error recovery starts:
// the in-flight read fails once with *AbortedError (0x371) carrying LostAt
// and KATO, the controller goes resetting -> connecting, new I/O fails
// with 0x370, and it is live again once the port thaws.
func TestKeepAliveTimeoutStall(t *testing.T) {
	e := newEnv(t)
	c := connect(t, e.opts(0))
	ev := record(c)
	cntlid := c.CNTLID()
	e.ports[0].Stall(true)
	start := time.Now()
	res := make(chan error, 1)
	go func() { res <- c.Read(context.Background(), 1, 0, make([]byte, 4096)) }()
	ev.waitState(t, StateResetting)
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("recovery after %s, before KATO could expire", d)
	}
	ev.waitState(t, StateConnecting)
	err := <-res
	var ae *AbortedError
	if !errors.As(err, &ae) || !errors.Is(err, nvme.StatusHostAborted) {
		t.Fatalf("in-flight read: %v, want *AbortedError / 0x371", err)
	}
	if ae.KATO != time.Second || ae.LostAt.Before(start) {
		t.Errorf("AbortedError %+v", ae)
	}
	if d := nvme.DecideDisposition(nvme.StatusHostAborted, 0, false, true); d != nvme.Failover {
		t.Errorf("0x371 disposition %s", d)
	}
	if err := c.Read(context.Background(), 1, 0, make([]byte, 512)); !errors.Is(err, nvme.StatusHostPathError) {
		t.Fatalf("read while connecting: %v, want 0x370", err)
	}
	if !c.Available() {
		t.Error("Available() false while connecting without fast_io_fail")
	}
	e.ports[0].Stall(false)
	ev.waitState(t, StateLive)
	if err := c.Read(context.Background(), 1, 0, make([]byte, 4096)); err != nil {
		t.Fatalf("read after reconnect: %v", err)
	}
	t.Logf("cntlid %d -> %d", cntlid, c.CNTLID())
}

// TestReconnectAfterPortBack: the port stops listening and drops its
// connections (EOF): recovery, reconnect attempts fail every
// reconnect_delay, and once it listens again the controller is live.
func TestReconnectAfterPortBack(t *testing.T) {
	e := newEnv(t)
	c := connect(t, e.opts(0))
	ev := record(c)
	p := e.ports[0]
	if err := p.StopListening(); err != nil {
		t.Fatal(err)
	}
	p.DropConnections()
	ev.waitState(t, StateResetting)
	ev.waitState(t, StateConnecting)
	if err := p.StartListening(); err != nil {
		t.Fatal(err)
	}
	ev.waitState(t, StateLive)
	w := randBuf(t, 65536)
	if err := c.Write(context.Background(), 1, 0, w); err != nil {
		t.Fatalf("write after reconnect: %v", err)
	}
	r := make([]byte, len(w))
	if err := c.Read(context.Background(), 1, 0, r); err != nil || !bytes.Equal(r, w) {
		t.Fatalf("read after reconnect: %v", err)
	}
	if len(c.Namespaces()) != 2 {
		t.Fatalf("namespaces after reconnect: %+v", c.Namespaces())
	}
}

// TestANAChangeAEN: SetANAState sends an ANA-change AEN; the host re-reads
// the ANA log, tells subscribers and updates states; I/O to the group
// fails with ANA Inaccessible, a failover status.
func TestANAChangeAEN(t *testing.T) {
	e := newEnv(t)
	c := connect(t, e.opts(0))
	ev := record(c)
	e.ports[0].SetANAState(1, nvme.ANAInaccessible)
	ev.wait(t, "ANA change", func(e Event) bool { return e.Kind == ANAChanged })
	if s := c.ANAState(1); s != nvme.ANAInaccessible {
		t.Fatalf("group 1 %s, want inaccessible", s)
	}
	if s := c.ANAState(2); s != nvme.ANAOptimized {
		t.Fatalf("group 2 %s", s)
	}
	if ns, _ := c.Namespace(1); ns.ANAState != nvme.ANAInaccessible {
		t.Fatalf("ns 1 state %s", ns.ANAState)
	}
	err := c.Read(context.Background(), 1, 0, make([]byte, 512))
	var st nvme.Status
	if !errors.As(err, &st) || st.Code() != nvme.StatusANAInaccessible {
		t.Fatalf("read of inaccessible ns: %v, want 0x302", err)
	}
	if d := nvme.DecideDisposition(st, 0, false, true); d != nvme.Failover {
		t.Errorf("disposition %s, want failover", d)
	}
	if err := c.Read(context.Background(), 2, 0, make([]byte, 512)); err != nil {
		t.Fatalf("read of ns 2: %v", err)
	}
	e.ports[0].SetANAState(1, nvme.ANAOptimized)
	ev.wait(t, "ANA change back", func(e Event) bool { return e.Kind == ANAChanged })
	if s := c.ANAState(1); s != nvme.ANAOptimized {
		t.Fatalf("group 1 %s after change back", s)
	}
}

// TestFailNextIO: injected error statuses come back as nvme.Status with
// the disposition Linux would pick, and the controller stays live.
func TestFailNextIO(t *testing.T) {
	e := newEnv(t)
	c := connect(t, e.opts(0))
	for _, tc := range []struct {
		st   nvme.Status
		want nvme.Disposition
	}{
		{nvme.StatusInternalPathError, nvme.Failover},
		{nvme.StatusANATransition, nvme.Failover},
		{nvme.StatusInvalidField | nvme.StatusDNR, nvme.Complete},
		{nvme.StatusUnrecoveredRead, nvme.Retry},
		{nvme.StatusANAInaccessible | nvme.StatusDNR, nvme.Complete},
	} {
		e.ports[0].FailNextIO(1, tc.st)
		err := c.Read(context.Background(), 1, 0, make([]byte, 4096))
		var st nvme.Status
		if !errors.As(err, &st) || st.Code() != tc.st.Code() || st.DNR() != tc.st.DNR() {
			t.Fatalf("injected %s: got %v", tc.st, err)
		}
		if d := nvme.DecideDisposition(st, 0, false, true); d != tc.want {
			t.Errorf("%s: disposition %s, want %s", tc.st, d, tc.want)
		}
		if err := c.Read(context.Background(), 1, 0, make([]byte, 4096)); err != nil {
			t.Fatalf("read after injected %s: %v", tc.st, err)
		}
		if c.State() != StateLive {
			t.Fatalf("state %s after an error status", c.State())
		}
	}
}

// TestCtrlLossDead: with the port gone, reconnecting stops after
// ctrl_loss_tmo / reconnect_delay attempts and the controller is dead.
func TestCtrlLossDead(t *testing.T) {
	e := newEnv(t)
	o := e.opts(0)
	o.CtrlLossTmo = 300 * time.Millisecond
	o.FastIOFailTmo = 0
	c := connect(t, o)
	ev := record(c)
	if err := e.ports[0].StopListening(); err != nil {
		t.Fatal(err)
	}
	e.ports[0].DropConnections()
	ev.waitState(t, StateConnecting)
	dead := ev.waitState(t, StateDead)
	if !errors.Is(dead.Err, ErrCtrlLoss) {
		t.Errorf("dead cause %v", dead.Err)
	}
	if c.Available() {
		t.Error("dead controller Available")
	}
	if err := c.Read(context.Background(), 1, 0, make([]byte, 512)); !errors.Is(err, nvme.StatusHostPathError) {
		t.Fatalf("read on dead controller: %v", err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := c.State(); s != StateDeletingNoIO {
		t.Fatalf("state after Close of dead controller %s", s)
	}
}

// TestFastIOFail: fast_io_fail_tmo 0 expires right after CONNECTING; the
// controller is no longer Available (the multipath layer fails I/O rather
// than queueing) until it is live again.
func TestFastIOFail(t *testing.T) {
	e := newEnv(t)
	o := e.opts(0)
	o.FastIOFailTmo = 0
	o.ReconnectDelay = 200 * time.Millisecond
	c := connect(t, o)
	ev := record(c)
	if err := e.ports[0].StopListening(); err != nil {
		t.Fatal(err)
	}
	e.ports[0].DropConnections()
	ev.waitState(t, StateConnecting)
	ev.wait(t, "failfast expiry", func(e Event) bool { return e.Kind == FailfastExpired })
	if !c.FastFailExpired() {
		t.Fatal("FailfastExpired event without the flag")
	}
	if c.Available() {
		t.Fatal("Available with fast_io_fail expired")
	}
	if err := e.ports[0].StartListening(); err != nil {
		t.Fatal(err)
	}
	ev.waitState(t, StateLive)
	if c.FastFailExpired() || !c.Available() {
		t.Fatal("failfast flag not cleared on live")
	}
}

// recTransport records the Property Set values the host sends.
type recTransport struct {
	tcp.Transport
	mu   sync.Mutex
	sets []uint64
}

type recQueue struct {
	Queue
	tr *recTransport
}

func (t *recTransport) Dial(ctx context.Context, cfg QueueConfig) (Queue, error) {
	q, err := t.Transport.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return recQueue{q, t}, nil
}

func (q recQueue) Exec(ctx context.Context, cmd *nvme.Command, data []byte) (nvme.Completion, error) {
	cqe, err := q.Queue.Exec(ctx, cmd, data)
	if cmd.Opcode == nvme.OpFabrics && cmd.FCType() == nvme.FabricsPropertySet && err == nil && cqe.Status.OK() {
		off, _, v := fabrics.ParseProperty(cmd)
		if off == fabrics.RegCC {
			q.tr.mu.Lock()
			q.tr.sets = append(q.tr.sets, v)
			q.tr.mu.Unlock()
		}
	}
	return cqe, err
}

// TestCloseShutdown: Close writes CC.SHN=01 (after the enable writes),
// waits for SHST complete, ends in "deleting (no IO)"; a second Close is a
// no-op; I/O after Close fails with 0x370.
func TestCloseShutdown(t *testing.T) {
	e := newEnv(t)
	tr := &recTransport{Transport: tcp.Transport{ICRespTimeout: time.Second}}
	c := connect(t, e.opts(0), WithTransport(tr))
	ev := record(c)
	if err := c.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	tr.mu.Lock()
	sets := append([]uint64(nil), tr.sets...)
	tr.mu.Unlock()
	if len(sets) != 3 {
		t.Fatalf("CC writes %#x, want disable, enable, shutdown", sets)
	}
	if cc := fabrics.CC(sets[0]); cc.EN() || cc.IOSQES() != 6 || cc.IOCQES() != 4 {
		t.Errorf("first CC write %#x", sets[0])
	}
	if cc := fabrics.CC(sets[1]); !cc.EN() {
		t.Errorf("second CC write %#x lacks EN", sets[1])
	}
	if cc := fabrics.CC(sets[2]); cc.SHN() != 1 || !cc.EN() {
		t.Errorf("shutdown CC write %#x, want SHN=01", sets[2])
	}
	ev.waitState(t, StateDeleting)
	ev.waitState(t, StateDeletingNoIO)
	if err := c.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := c.Read(context.Background(), 1, 0, make([]byte, 512)); !errors.Is(err, nvme.StatusHostPathError) {
		t.Fatalf("read after Close: %v", err)
	}
}

func TestResetAndRescan(t *testing.T) {
	e := newEnv(t)
	c := connect(t, e.opts(0))
	ev := record(c)
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	if err := c.Reset(ctx); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	ev.waitState(t, StateResetting)
	ev.waitState(t, StateConnecting)
	ev.waitState(t, StateLive)
	if _, err := e.sub.AddNamespace(target.NamespaceConfig{NSID: 3, Size: 1 << 20, BlockSize: 4096, ANAGroup: 1}); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "namespace change", func(e Event) bool { return e.Kind == NamespacesChanged })
	ns, ok := c.Namespace(3)
	if !ok || ns.BlockSize != 4096 || ns.Blocks != 256 {
		t.Fatalf("ns 3 after AEN: %+v %v", ns, ok)
	}
	w := randBuf(t, 8192)
	if err := c.Write(ctx, 3, 2, w); err != nil {
		t.Fatal(err)
	}
	if err := c.Rescan(ctx); err != nil {
		t.Fatalf("Rescan: %v", err)
	}
}

func TestDiscover(t *testing.T) {
	e := newEnv(t, target.PortConfig{}, target.PortConfig{})
	o := e.opts(0)
	o.SubsysNQN = ""
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	dl, err := Discover(ctx, o, testLogger(t), testOpts()...)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	found := map[string]bool{}
	for _, en := range dl.Entries {
		if en.SubNQN == testNQN {
			found[en.TrSvcID] = true
		}
	}
	for _, p := range e.ports {
		if !found[fmt.Sprint(p.Addr().Port)] {
			t.Errorf("no discovery entry for %s on port %d: %+v", testNQN, p.Addr().Port, dl.Entries)
		}
	}
	if dl.NumRec != uint64(len(dl.Entries)) {
		t.Errorf("numrec %d, %d entries", dl.NumRec, len(dl.Entries))
	}
}

// TestConnectRejected: an unknown subsystem NQN fails Connect with a DNR
// status and no controller.
func TestConnectRejected(t *testing.T) {
	e := newEnv(t)
	o := e.opts(0)
	o.SubsysNQN = "nqn.2026-11.io.mpathfs:nope"
	_, err := Connect(context.Background(), o, testLogger(t), testOpts()...)
	var st nvme.Status
	if !errors.As(err, &st) || !st.DNR() {
		t.Fatalf("Connect to unknown NQN: %v, want a DNR status", err)
	}
}

// TestDNRStopsReconnect: once the subsystem is unlinked from the port,
// reconnect's Connect fails with a DNR status and the controller goes dead
// at once, although ctrl_loss_tmo is forever.
func TestDNRStopsReconnect(t *testing.T) {
	e := newEnv(t)
	c := connect(t, e.opts(0))
	ev := record(c)
	if err := e.ports[0].UnlinkSubsystem(testNQN); err != nil {
		t.Fatal(err)
	}
	ev.waitState(t, StateConnecting)
	dead := ev.waitState(t, StateDead)
	var st nvme.Status
	if !errors.Is(dead.Err, ErrCtrlLoss) || !errors.As(dead.Err, &st) || !st.DNR() {
		t.Fatalf("dead cause %v, want ErrCtrlLoss with a DNR status", dead.Err)
	}
}

// TestDiscoverPersistent: the callback gets the log at connect and again
// after a discovery-log-change AEN (a port was added).
func TestDiscoverPersistent(t *testing.T) {
	e := newEnv(t)
	o := e.opts(0)
	o.SubsysNQN = ""
	logs := make(chan *nvme.DiscoveryLog, 16)
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	c, err := DiscoverPersistent(ctx, o, testLogger(t), func(dl *nvme.DiscoveryLog, err error) {
		if err != nil {
			t.Errorf("discovery log: %v", err)
			return
		}
		logs <- dl
	}, testOpts()...)
	if err != nil {
		t.Fatalf("DiscoverPersistent: %v", err)
	}
	defer c.Close(context.Background())
	if !c.Discovery() || c.KATO() <= 0 {
		t.Fatalf("discovery %v kato %s", c.Discovery(), c.KATO())
	}
	first := <-logs
	p, err := e.tgt.AddPort(target.PortConfig{ID: 9, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.LinkSubsystem(testNQN); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint(p.Addr().Port)
	timer := time.NewTimer(failAfter)
	defer timer.Stop()
	for {
		select {
		case dl := <-logs:
			if dl.GenCtr == first.GenCtr {
				t.Fatalf("genctr unchanged after AEN: %d", dl.GenCtr)
			}
			for _, en := range dl.Entries {
				if en.TrSvcID == want && en.SubNQN == testNQN {
					return
				}
			}
		case <-timer.C:
			t.Fatal("no discovery log with the new port")
		}
	}
}

// TestIOTimeoutRecovery: with keep-alive off, an I/O command timeout alone
// starts error recovery; every command in flight fails with *AbortedError.
func TestIOTimeoutRecovery(t *testing.T) {
	e := newEnv(t)
	o := e.opts(0)
	o.KeepAliveTmo = 0
	c := connect(t, o, WithIOTimeout(300*time.Millisecond))
	ev := record(c)
	e.ports[0].Stall(true)
	const n = 16
	res := make(chan error, n)
	for i := 0; i < n; i++ {
		go func(i int) { res <- c.Read(context.Background(), 1, uint64(i*8), make([]byte, 4096)) }(i)
	}
	st := ev.waitState(t, StateResetting)
	if !errors.Is(st.Err, tcp.ErrTimeout) {
		t.Errorf("recovery cause %v, want a command timeout", st.Err)
	}
	for i := 0; i < n; i++ {
		err := <-res
		if !errors.Is(err, nvme.StatusHostAborted) {
			t.Fatalf("in-flight read %d: %v, want 0x371", i, err)
		}
	}
	e.ports[0].Stall(false)
	ev.waitState(t, StateLive)
}

// TestScanPaging: 1024 namespaces fill the first Active NS list page, so
// the scan asks for the next page (from NSID 1024) and stops at the empty
// one.
func TestScanPaging(t *testing.T) {
	e := newEnv(t)
	for i := uint32(3); i <= target.MaxNSID; i++ {
		if _, err := e.sub.AddNamespace(target.NamespaceConfig{NSID: i, Size: 4096, BlockSize: 512}); err != nil {
			t.Fatal(err)
		}
	}
	c := connect(t, e.opts(0))
	nss := c.Namespaces()
	if len(nss) != target.MaxNSID {
		t.Fatalf("%d namespaces, want %d", len(nss), target.MaxNSID)
	}
	for i, ns := range nss {
		if ns.NSID != uint32(i+1) {
			t.Fatalf("namespace %d has nsid %d", i, ns.NSID)
		}
	}
}

// TestResetBrokenPath: reset_controller's return codes are
// nvme_reset_ctrl_sync's: on a path whose target is gone, Reset returns
// ENETRESET after the one immediate reconnect attempt (not after
// ctrl_loss_tmo), and a controller that is not LIVE cannot be reset: EBUSY
// at once. The controller keeps reconnecting in the background.
func TestResetBrokenPath(t *testing.T) {
	e := newEnv(t)
	o := e.opts(0)
	o.ReconnectDelay = time.Hour // only Reset's own attempt runs here
	c := connect(t, o)
	ev := record(c)
	if err := e.ports[0].StopListening(); err != nil {
		t.Fatal(err)
	}
	e.ports[0].DropConnections()
	ev.waitState(t, StateResetting)
	ev.waitState(t, StateConnecting)
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	if err := c.Reset(ctx); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("Reset while connecting: %v, want EBUSY", err)
	}
	if err := e.ports[0].StartListening(); err != nil {
		t.Fatal(err)
	}
	// Let the controller come back, then break the path under a LIVE one.
	c2 := connect(t, e.opts(0))
	ev2 := record(c2)
	if err := e.ports[0].StopListening(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := c2.Reset(ctx)
	if !errors.Is(err, syscall.ENETRESET) {
		t.Fatalf("Reset with the target gone: %v, want ENETRESET", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Reset returned after %v, want after one attempt", el)
	}
	if s := c2.State(); s != StateConnecting {
		t.Errorf("state after the failed reset %s, want connecting", s)
	}
	if err := e.ports[0].StartListening(); err != nil {
		t.Fatal(err)
	}
	ev2.waitState(t, StateLive)
}

// A metadata-formatted namespace keeps its identity but has capacity 0, as
// Linux gives it over TCP without PI (nvme_init_integrity).
func TestMetadataNamespaceCapacityZero(t *testing.T) {
	e := newEnv(t)
	if _, err := e.sub.AddNamespace(target.NamespaceConfig{NSID: 3, Size: 1 << 20, BlockSize: 512, ANAGroup: 1, MetadataSize: 8}); err != nil {
		t.Fatal(err)
	}
	c := connect(t, e.opts(0))
	ns, ok := c.Namespace(3)
	if !ok || ns.Blocks != 0 || ns.Info.NSZE != 2048 || ns.Info.LBAF[ns.Info.FormatIndex()].MS != 8 {
		t.Fatalf("ns 3: %+v %v; want capacity 0, NSZE 2048, 8 metadata bytes", ns, ok)
	}
	if ns, _ := c.Namespace(1); ns.Blocks == 0 {
		t.Fatal("a namespace without metadata lost its capacity")
	}
}

// io_timeout written on a live controller applies to its running I/O
// queues, as Linux's store does: a stalled read times out after the new
// 300 ms, not the 30 s the queues were created with.
func TestSetIOTimeoutLive(t *testing.T) {
	e := newEnv(t)
	o := e.opts(0)
	o.KeepAliveTmo = 0
	c := connect(t, o, WithIOTimeout(30*time.Second))
	ev := record(c)
	c.SetIOTimeout(300 * time.Millisecond)
	if c.IOTimeout() != 300*time.Millisecond {
		t.Fatalf("IOTimeout %s", c.IOTimeout())
	}
	e.ports[0].Stall(true)
	start := time.Now()
	err := c.Read(context.Background(), 1, 0, make([]byte, 4096))
	if !errors.Is(err, nvme.StatusHostAborted) {
		t.Fatalf("stalled read: %v, want 0x371 after the command timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stalled read failed after %s: the new io_timeout did not apply", d)
	}
	st := ev.waitState(t, StateResetting)
	if !errors.Is(st.Err, tcp.ErrTimeout) {
		t.Errorf("recovery cause %v, want a command timeout", st.Err)
	}
	e.ports[0].Stall(false)
	ev.waitState(t, StateLive)
}
