package host

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// fakeCtrl is a scripted controller behind fake queues: enough of the
// admin command set to run Connect's sequence without a network.
type fakeCtrl struct {
	mu     sync.Mutex
	id     nvme.IdentifyController
	cap    fabrics.CAP
	cntlid uint16
	cc     fabrics.CC
	csts   func(cc fabrics.CC) fabrics.CSTS
	ioq    int

	// Lying-target hooks: nsList fills an Active NS list page after prev
	// (nil: empty); idNS answers Identify Namespace (nil: not present);
	// aens are AER completions (DW0) returned at once, in order.
	nsList  func(prev uint32, data []byte)
	idNS    func(nsid uint32) *nvme.IdentifyNamespace
	aens    []uint32
	drained chan struct{} // closed when the last of aens was returned
	cns     map[uint8]int // Identify commands received, by CNS
}

type fakeQueue struct {
	f    *fakeCtrl
	dead chan struct{}
	once sync.Once
}

func (f *fakeCtrl) Dial(ctx context.Context, cfg QueueConfig) (Queue, error) {
	return &fakeQueue{f: f, dead: make(chan struct{})}, nil
}

func (q *fakeQueue) Exec(ctx context.Context, cmd *nvme.Command, data []byte) (nvme.Completion, error) {
	f := q.f
	f.mu.Lock()
	defer f.mu.Unlock()
	var cqe nvme.Completion
	if cmd.Opcode == nvme.OpFabrics {
		switch cmd.FCType() {
		case nvme.FabricsConnect:
			cqe.DW0 = uint32(f.cntlid)
		case nvme.FabricsPropertyGet:
			off, _, _ := fabrics.ParseProperty(cmd)
			switch off {
			case fabrics.RegCAP:
				cqe.DW0, cqe.DW1 = uint32(f.cap), uint32(f.cap>>32)
			case fabrics.RegVS:
				cqe.DW0 = uint32(fabrics.MakeVS(1, 3, 0))
			case fabrics.RegCSTS:
				if f.csts != nil {
					cqe.DW0 = uint32(f.csts(f.cc))
				} else if f.cc.EN() {
					cqe.DW0 = uint32(fabrics.CSTSRdy)
					if f.cc.SHN() != 0 {
						cqe.DW0 |= uint32(fabrics.CSTSShstComplete)
					}
				}
			}
		case nvme.FabricsPropertySet:
			_, _, v := fabrics.ParseProperty(cmd)
			f.cc = fabrics.CC(v)
		}
		return cqe, nil
	}
	switch nvme.AdminOpcode(cmd.Opcode) {
	case nvme.AdminIdentify:
		cns, nsid, _, _ := nvme.ParseIdentifyCommand(cmd)
		if f.cns == nil {
			f.cns = map[uint8]int{}
		}
		f.cns[cns]++
		switch cns {
		case nvme.CNSController:
			f.id.Marshal(data)
		case nvme.CNSActiveNSList:
			clear(data)
			if f.nsList != nil {
				f.nsList(nsid, data)
			}
		case nvme.CNSNSDescList:
			clear(data)
		case nvme.CNSNamespace:
			clear(data)
			if f.idNS != nil {
				if id := f.idNS(nsid); id != nil {
					id.Marshal(data)
				}
			}
		}
	case nvme.AdminSetFeatures:
		fid, _, _ := nvme.ParseFeaturesCommand(cmd)
		if fid == nvme.FeatNumQueues {
			cqe.DW0 = nvme.NumQueues(f.ioq)
		}
	case nvme.AdminAsyncEvent:
		if len(f.aens) > 0 {
			cqe.DW0, f.aens = f.aens[0], f.aens[1:]
			if len(f.aens) == 0 && f.drained != nil {
				close(f.drained)
			}
			return cqe, nil
		}
		f.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-q.dead:
		}
		f.mu.Lock()
		return cqe, errors.New("aer cancelled")
	}
	return cqe, nil
}

func (q *fakeQueue) SetInCapsuleMax(int)         {}
func (q *fakeQueue) SetCmdTimeout(time.Duration) {}
func (q *fakeQueue) Dead() <-chan struct{}       { return q.dead }
func (q *fakeQueue) Err() error                  { return nil }
func (q *fakeQueue) Close() error                { q.once.Do(func() { close(q.dead) }); return nil }
func (q *fakeQueue) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func newFakeCtrl() *fakeCtrl {
	return &fakeCtrl{
		cntlid: 7,
		cap:    fabrics.MakeCAP(1023, 1, fabrics.CAPCSSNVM),
		ioq:    4,
		id: nvme.IdentifyController{
			CNTLID: 7, KAS: 10, IOCCSZ: 1028, IORCSZ: 1, SGLS: 0x00100001, MAXCMD: 1024,
			SubNQN: "nqn.test", NN: 1, CNTRLTYPE: nvme.CtrlTypeIO,
		},
	}
}

func fakeConnect(t *testing.T, f *fakeCtrl, mod func(*fabrics.Options)) (*Controller, error) {
	t.Helper()
	o := fabrics.DefaultOptions()
	o.TrAddr, o.TrSvcID, o.SubsysNQN = "127.0.0.1", "4420", "nqn.test"
	o.HostNQN, o.HostID = "nqn.host", [16]byte{1}
	o.KeepAliveTmo = 0
	o.NrIOQueues = 8
	if mod != nil {
		mod(&o)
	}
	c, err := Connect(context.Background(), o, nil, WithTransport(f))
	if c != nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

// TestIdentifyChecks: Identify Controller data Linux refuses makes Connect
// fail with ErrIdentify and Linux's message (reference §4.6).
func TestIdentifyChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*nvme.IdentifyController)
		want string
	}{
		{"cntlid mismatch", func(id *nvme.IdentifyController) { id.CNTLID = 8 }, "Mismatching cntlid: Connect 7 vs Identify 8"},
		{"kas 0", func(id *nvme.IdentifyController) { id.KAS = 0 }, "keep-alive support is mandatory"},
		{"ioccsz 3", func(id *nvme.IdentifyController) { id.IOCCSZ = 3 }, "command capsule"},
		{"iorcsz 0", func(id *nvme.IdentifyController) { id.IORCSZ = 0 }, "response capsule"},
		{"sgls 0", func(id *nvme.IdentifyController) { id.SGLS = 0x00100000 }, "Mandatory sgls are not supported!"},
		{"icdoff 1", func(id *nvme.IdentifyController) { id.ICDOFF = 1 }, "icdoff 1 is not supported!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCtrl()
			tc.mod(&f.id)
			_, err := fakeConnect(t, f, nil)
			if !errors.Is(err, ErrIdentify) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Connect: %v, want ErrIdentify with %q", err, tc.want)
			}
		})
	}
}

// TestQueueSizing: SQSIZE = min(queue_size-1, CAP.MQES), clamped to
// MAXCMD-1 (MAXCMD 0 counts as sqsize+1); the I/O queue count is the
// smaller of nr_io_queues and what Number of Queues granted.
func TestQueueSizing(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		queueSize, nr, grant int
		mqes, maxcmd         uint16
		wantSQ, wantQueues   int
	}{
		{"defaults", 128, 8, 4, 1023, 1024, 127, 5},
		{"mqes", 128, 2, 128, 63, 0, 63, 3},
		{"maxcmd 0", 64, 1, 1, 1023, 0, 63, 2},
		{"maxcmd clamps", 128, 3, 8, 1023, 16, 15, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCtrl()
			f.cap = fabrics.MakeCAP(tc.mqes, 1, fabrics.CAPCSSNVM)
			f.id.MAXCMD = tc.maxcmd
			f.ioq = tc.grant
			c, err := fakeConnect(t, f, func(o *fabrics.Options) { o.QueueSize, o.NrIOQueues = tc.queueSize, tc.nr })
			if err != nil {
				t.Fatal(err)
			}
			if c.SQSize() != tc.wantSQ || c.QueueCount() != tc.wantQueues {
				t.Fatalf("sqsize %d queue_count %d, want %d %d", c.SQSize(), c.QueueCount(), tc.wantSQ, tc.wantQueues)
			}
		})
	}
}

// TestEnableFailures: CSTS.CFS, all-ones CSTS and a controller that never
// gets ready (CAP.TO 0: 500 ms) fail Connect with ErrEnable.
func TestEnableFailures(t *testing.T) {
	for name, csts := range map[string]func(fabrics.CC) fabrics.CSTS{
		"cfs":       func(fabrics.CC) fabrics.CSTS { return fabrics.CSTSCFS },
		"all ones":  func(fabrics.CC) fabrics.CSTS { return 0xFFFFFFFF },
		"not ready": func(fabrics.CC) fabrics.CSTS { return 0 },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeCtrl()
			f.cap = fabrics.MakeCAP(1023, 0, fabrics.CAPCSSNVM)
			f.csts = csts
			if _, err := fakeConnect(t, f, nil); !errors.Is(err, ErrEnable) {
				t.Fatalf("Connect: %v, want ErrEnable", err)
			}
		})
	}
}

// TestEnableCSS: CC.CSS is 6 when CAP.CSS has the I/O command sets bit,
// else 0; IOSQES 6 and IOCQES 4 always.
func TestEnableCSS(t *testing.T) {
	for _, tc := range []struct {
		css  uint8
		want uint8
	}{{fabrics.CAPCSSNVM, 0}, {fabrics.CAPCSSNVM | fabrics.CAPCSSIOCS, 6}} {
		f := newFakeCtrl()
		f.cap = fabrics.MakeCAP(1023, 1, tc.css)
		if _, err := fakeConnect(t, f, nil); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		cc := f.cc
		f.mu.Unlock()
		if cc.CSS() != tc.want || cc.IOSQES() != 6 || cc.IOCQES() != 4 || !cc.EN() {
			t.Errorf("CAP.CSS %#x: CC %#x", tc.css, uint32(cc))
		}
	}
}
