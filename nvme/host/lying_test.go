package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/mpath/mpathtest"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// endlessNSList fills every page with the next 1024 NSIDs: a list without end.
func endlessNSList(prev uint32, data []byte) {
	for i := 0; i < maxNSIDsPerPage; i++ {
		binary.LittleEndian.PutUint32(data[i*4:], prev+1+uint32(i))
	}
}

func goodNS(nsid uint32) *nvme.IdentifyNamespace {
	id := &nvme.IdentifyNamespace{NSZE: 1 << 20, NCAP: 1 << 20}
	id.LBAF[0].LBADS = 12
	return id
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func connectLogged(t *testing.T, f *fakeCtrl, ctx context.Context, o ...Option) (*Controller, *syncBuf, error) {
	t.Helper()
	lb := &syncBuf{}
	opts := fabrics.DefaultOptions()
	opts.TrAddr, opts.TrSvcID, opts.SubsysNQN = "127.0.0.1", "4420", "nqn.test"
	opts.HostNQN, opts.HostID = "nqn.host", [16]byte{1}
	opts.KeepAliveTmo, opts.NrIOQueues = 0, 1
	c, err := Connect(ctx, opts, hclog.New(&hclog.LoggerOptions{Output: lb, Level: hclog.Info}), append(o, WithTransport(f))...)
	if c != nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, lb, err
}

// TestScanBoundedByNN: an endless Active NS list stops at NN: one page read,
// NN namespaces, one line about the rest.
func TestScanBoundedByNN(t *testing.T) {
	f := newFakeCtrl()
	f.id.NN = 4
	f.nsList, f.idNS = endlessNSList, goodNS
	c, lb, err := connectLogged(t, f, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Namespaces()); n != 4 {
		t.Fatalf("%d namespaces, want NN = 4", n)
	}
	f.mu.Lock()
	pages := f.cns[nvme.CNSActiveNSList]
	f.mu.Unlock()
	if pages != 1 {
		t.Errorf("%d Active NS list pages read, want 1", pages)
	}
	if !strings.Contains(lb.String(), "active namespace list goes beyond NN") {
		t.Errorf("log: %s", lb.String())
	}
}

// TestScanSanityLimit: NN claiming 2^32-2 namespaces and an endless list
// stop at maxScanNamespaces.
func TestScanSanityLimit(t *testing.T) {
	f := newFakeCtrl()
	f.id.NN = 0xFFFFFFFE
	f.nsList, f.idNS = endlessNSList, goodNS
	c, lb, err := connectLogged(t, f, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Namespaces()); n != maxScanNamespaces {
		t.Fatalf("%d namespaces, want the limit %d", n, maxScanNamespaces)
	}
	if !strings.Contains(lb.String(), "too many namespaces") {
		t.Errorf("log: %s", lb.String())
	}
}

// TestScanStopsOnCancel: cancelling the scan's context (SIGINT during
// Connect) stops it at once: no more commands, no line per remaining NSID.
func TestScanStopsOnCancel(t *testing.T) {
	f := newFakeCtrl()
	f.id.NN = 1024
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.nsList = endlessNSList
	f.idNS = func(nsid uint32) *nvme.IdentifyNamespace {
		if nsid == 10 {
			cancel()
		}
		return goodNS(nsid)
	}
	_, lb, err := connectLogged(t, f, ctx)
	if err == nil {
		t.Fatal("Connect succeeded after its context was cancelled")
	}
	f.mu.Lock()
	n := f.cns[nvme.CNSNamespace]
	f.mu.Unlock()
	if n > 11 {
		t.Errorf("%d Identify Namespace commands after cancelling at the 10th", n)
	}
	if c := strings.Count(lb.String(), "nsid="); c > 1 {
		t.Errorf("%d per-NSID log lines after cancel:\n%s", c, lb.String())
	}
}

// TestScanIdentifyFailuresRateLimited: a target failing Identify Namespace
// for every NSID gets at most the burst of per-NSID lines.
func TestScanIdentifyFailuresRateLimited(t *testing.T) {
	f := newFakeCtrl()
	f.id.NN = 1024
	f.nsList = endlessNSList
	f.idNS = func(nsid uint32) *nvme.IdentifyNamespace {
		id := goodNS(nsid)
		id.LBAF[0].LBADS = 31 // 2 GiB blocks
		return id
	}
	c, lb, err := connectLogged(t, f, context.Background(), WithClock(mpathtest.NewClock()))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Namespaces()); n != 0 {
		t.Fatalf("%d namespaces with 2 GiB blocks accepted", n)
	}
	if n := strings.Count(lb.String(), "skipping namespace"); n != 10 {
		t.Errorf("%d lines for 1024 bad namespaces, want the burst of 10", n)
	}
}

// TestUnhandledAENRateLimited: a flood of unknown async events logs at most
// the burst of lines per interval.
func TestUnhandledAENRateLimited(t *testing.T) {
	f := newFakeCtrl()
	for i := 0; i < 1000; i++ {
		f.aens = append(f.aens, 0x00ff0007) // vendor-specific event type 7
	}
	f.drained = make(chan struct{})
	_, lb, err := connectLogged(t, f, context.Background(), WithClock(mpathtest.NewClock()))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.drained:
	case <-time.After(failAfter):
		t.Fatal("events never fetched")
	}
	if n := strings.Count(lb.String(), "unhandled async event"); n != 10 {
		t.Errorf("%d lines for 1000 unhandled events, want the burst of 10", n)
	}
}

// TestScanGeometry: block sizes the block layer refuses and capacities that
// overflow int64 skip the namespace with a line naming why; the largest
// valid ones are accepted.
func TestScanGeometry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lbads uint8
		nsze  uint64
		want  string // "" = accepted
	}{
		{"512 B", 9, 1 << 20, ""},
		{"64 KiB", 16, 1 << 20, ""},
		{"largest capacity", 12, 1<<51 - 1, ""},
		{"256 B", 8, 1 << 20, "LBA data size 2^8 bytes outside 512..65536"},
		{"128 KiB", 17, 1 << 20, "LBA data size 2^17"},
		{"2 GiB", 31, 1 << 20, "LBA data size 2^31"},
		{"LBADS 40", 40, 1 << 20, "LBA data size 2^40"},
		{"capacity 2^63", 12, 1 << 51, "capacity of 2251799813685248 blocks of 4096 bytes overflows"},
		{"capacity 2^76", 12, 1<<64 - 1, "overflows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCtrl()
			f.nsList = func(prev uint32, data []byte) {
				if prev == 0 {
					binary.LittleEndian.PutUint32(data, 1)
				}
			}
			f.idNS = func(uint32) *nvme.IdentifyNamespace {
				id := &nvme.IdentifyNamespace{NSZE: tc.nsze, NCAP: tc.nsze}
				id.LBAF[0].LBADS = tc.lbads
				return id
			}
			c, lb, err := connectLogged(t, f, context.Background())
			if err != nil {
				t.Fatal(err)
			}
			ns := c.Namespaces()
			if tc.want == "" {
				if len(ns) != 1 || ns[0].BlockSize != 1<<tc.lbads || ns[0].Blocks != tc.nsze {
					t.Fatalf("namespaces %+v, want one of %d blocks of %d bytes", ns, tc.nsze, 1<<tc.lbads)
				}
				return
			}
			if len(ns) != 0 {
				t.Fatalf("namespace accepted: %+v", ns[0])
			}
			if !strings.Contains(lb.String(), tc.want) {
				t.Errorf("log %q, want %q", lb.String(), tc.want)
			}
		})
	}
}
