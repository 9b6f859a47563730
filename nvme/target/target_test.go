package target

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

const nsSize = 8 << 20

type fixture struct {
	t      *Target
	s      *Subsystem
	p1, p2 *Port
	a1, a2 string
}

// newFixture: one subsystem with two RAM namespaces (ns 1 in ANA group 1,
// ns 2 in group 2) on two ports.
func newFixture(t *testing.T, pc PortConfig) *fixture {
	t.Helper()
	tg := New(nil)
	t.Cleanup(func() { tg.Close() })
	s, err := tg.AddSubsystem(SubsystemConfig{NQN: testNQN, AllowAnyHost: true, Serial: "SN-TEST", Model: "mpathfs-test"})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint32(1); i <= 2; i++ {
		var nguid [16]byte
		nguid[15] = byte(i)
		nguid[0] = 0x6b
		if _, err := s.AddNamespace(NamespaceConfig{NSID: i, Size: nsSize, NGUID: nguid, UUID: nguid, EUI64: [8]byte{1, 2, 3, byte(i)}, ANAGroup: i}); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{t: tg, s: s}
	for i, pp := range []**Port{&f.p1, &f.p2} {
		cfg := pc
		cfg.ID = uint16(i + 1)
		cfg.Addr = "127.0.0.1:0"
		p, err := tg.AddPort(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.LinkSubsystem(testNQN); err != nil {
			t.Fatal(err)
		}
		*pp = p
	}
	f.a1, f.a2 = f.p1.Addr().String(), f.p2.Addr().String()
	return f
}

func TestICResp(t *testing.T) {
	f := newFixture(t, PortConfig{MaxH2CData: 32768})
	for _, dg := range []pdu.DigestFlags{0, pdu.DigestHeader, pdu.DigestData, pdu.DigestHeader | pdu.DigestData} {
		c := dial(t, f.a1, dg)
		if c.resp.Digest != dg || c.resp.PFV != 0 || c.resp.CPDA != 0 || c.resp.MaxH2CData != 32768 {
			t.Errorf("digest %d: ICResp %+v, want digests echoed, MAXH2CDATA 32768", dg, c.resp)
		}
	}
}

func TestAdminConnect(t *testing.T) {
	f := newFixture(t, PortConfig{})
	a := admin(t, f.a1, testNQN, 0, 0)
	b := admin(t, f.a2, testNQN, 0, 0)
	if a.cntlid == 0 || a.cntlid > MaxCNTLID || a.cntlid == b.cntlid {
		t.Fatalf("cntlids %d and %d: want distinct dynamic IDs", a.cntlid, b.cntlid)
	}
	// Admin Connect must carry CNTLID 0xFFFF.
	c := dial(t, f.a1, 0)
	cqe := c.connect(0, 31, 0, testNQN, 5, testHostNQN)
	wantStatus(t, "connect with cntlid 5", cqe, nvme.StatusConnectInvalidParam|nvme.StatusDNR)
	if cqe.DW0 != 0x00010010 {
		t.Errorf("IPO %#x, want 0x00010010", cqe.DW0)
	}
	cqe = c.connect(0, 31, 0, "nqn.2026-11.io.mpathfs:nope", fabrics.CNTLIDDynamic, testHostNQN)
	wantStatus(t, "connect to unknown subsystem", cqe, nvme.StatusConnectInvalidParam|nvme.StatusDNR)
	if cqe.DW0 != 0x00010100 {
		t.Errorf("IPO %#x, want 0x00010100", cqe.DW0)
	}
	// Commands before Connect.
	wantStatus(t, "identify before connect", c.exec(nvme.NewIdentify(nvme.CNSController, 0, 0, 0), make([]byte, 4096), nil),
		nvme.StatusCommandSequenceError|nvme.StatusDNR)
	// I/O connect naming a foreign controller.
	d := dial(t, f.a1, 0)
	wantStatus(t, "io connect to unknown cntlid", d.connect(1, 127, 0, testNQN, 0x7777, testHostNQN), nvme.StatusConnectInvalidParam|nvme.StatusDNR)
}

func TestEnableAndShutdown(t *testing.T) {
	f := newFixture(t, PortConfig{})
	c := dial(t, f.a1, 0)
	must(t, "connect", c.connect(0, 31, 0, testNQN, fabrics.CNTLIDDynamic, testHostNQN))
	wantStatus(t, "identify before enable", c.exec(nvme.NewIdentify(nvme.CNSController, 0, 0, 0), make([]byte, 4096), nil),
		nvme.StatusCommandSequenceError|nvme.StatusDNR)
	capr := fabrics.CAP(c.propGet(fabrics.RegCAP, true))
	if capr.MQES() != DefaultQueueSize-1 || capr.CSS() != fabrics.CAPCSSNVM || capr.TO() != 7500*time.Millisecond {
		t.Errorf("CAP %#x: MQES %d CSS %#x TO %v", uint64(capr), capr.MQES(), capr.CSS(), capr.TO())
	}
	if vs := c.propGet(fabrics.RegVS, false); vs != 0x00010300 {
		t.Errorf("VS %#x, want 1.3", vs)
	}
	wantStatus(t, "8-byte get of CC", c.exec(fabrics.NewPropertyGet(fabrics.RegCC, true), nil, nil), nvme.StatusInvalidField|nvme.StatusDNR)
	if csts := fabrics.CSTS(c.propGet(fabrics.RegCSTS, false)); csts.RDY() {
		t.Fatalf("ready before CC.EN")
	}
	c.enable()
	cc := uint64(fabrics.CCIOSQES|fabrics.CCIOCQES|fabrics.CCEnable) | uint64(fabrics.CCShnNormal)
	must(t, "CC.SHN", c.exec(fabrics.NewPropertySet(fabrics.RegCC, cc, false), nil, nil))
	if csts := fabrics.CSTS(c.propGet(fabrics.RegCSTS, false)); csts.SHST() != 2 || csts.RDY() {
		t.Errorf("CSTS %#x after CC.SHN, want SHST complete, not ready", uint32(csts))
	}
	// Bad CC (IOSQES 0) on enable sets CFS.
	d := dial(t, f.a1, 0)
	must(t, "connect", d.connect(0, 31, 0, testNQN, fabrics.CNTLIDDynamic, testHostNQN))
	must(t, "CC.EN", d.exec(fabrics.NewPropertySet(fabrics.RegCC, uint64(fabrics.CCEnable), false), nil, nil))
	if csts := fabrics.CSTS(d.propGet(fabrics.RegCSTS, false)); !csts.CFS() || csts.RDY() {
		t.Errorf("CSTS %#x after bad CC, want CFS", uint32(csts))
	}
}

func TestIdentify(t *testing.T) {
	f := newFixture(t, PortConfig{MDTS: 5})
	c := admin(t, f.a1, testNQN, 0, 0)
	buf := make([]byte, 4096)
	must(t, "identify ctrl", c.exec(nvme.NewIdentify(nvme.CNSController, 0, 0, 0), buf, nil))
	id, err := nvme.ParseIdentifyController(buf)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"CNTLID", uint64(id.CNTLID), uint64(c.cntlid)},
		{"CMIC", uint64(id.CMIC), 0x0B},
		{"VER", uint64(id.Version), 0x00010300},
		{"OAES", uint64(id.OAES), 1<<8 | 1<<11},
		{"CTRATT", uint64(id.CTRATT), 1<<0 | 1<<6},
		{"KAS", uint64(id.KAS), 10},
		{"IOCCSZ", uint64(id.IOCCSZ), (64 + DefaultInCapsule) / 16},
		{"IORCSZ", uint64(id.IORCSZ), 1},
		{"SGLS", uint64(id.SGLS), 0x00100001},
		{"ANACAP", uint64(id.ANACAP), 0x1F},
		{"ANATT", uint64(id.ANATT), 10},
		{"ANAGRPMAX", uint64(id.ANAGRPMAX), 128},
		{"NANAGRPID", uint64(id.NANAGRPID), 128},
		{"MNAN", uint64(id.MNAN), 1024},
		{"NN", uint64(id.NN), 1024},
		{"MDTS", uint64(id.MDTS), 5},
		{"ONCS", uint64(id.ONCS), 1<<2 | 1<<3 | 1<<5},
		{"VWC", uint64(id.VWC), 1},
		{"MAXCMD", uint64(id.MAXCMD), 1024},
		{"CNTRLTYPE", uint64(id.CNTRLTYPE), 1},
		{"SQES", uint64(id.SQES), 0x66},
		{"CQES", uint64(id.CQES), 0x44},
		{"AERL", uint64(id.AERL), 3},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("Identify Controller %s = %#x, want %#x", ch.name, ch.got, ch.want)
		}
	}
	if id.SubNQN != testNQN || id.ModelNumber[:12] != "mpathfs-test" || id.SerialNumber[:7] != "SN-TEST" {
		t.Errorf("subnqn %q model %q serial %q", id.SubNQN, id.ModelNumber, id.SerialNumber)
	}

	must(t, "identify ns", c.exec(nvme.NewIdentify(nvme.CNSNamespace, 2, 0, 0), buf, nil))
	ns, _ := nvme.ParseIdentifyNamespace(buf)
	if ns.NSZE != nsSize/512 || ns.NCAP != ns.NSZE || ns.NMIC != 1 || ns.ANAGRPID != 2 || ns.BlockSize() != 512 || ns.NGUID[15] != 2 || ns.EUI64[3] != 2 {
		t.Errorf("identify ns 2: %+v", ns)
	}
	must(t, "identify inactive ns", c.exec(nvme.NewIdentify(nvme.CNSNamespace, 9, 0, 0), buf, nil))
	if !bytes.Equal(buf, make([]byte, 4096)) {
		t.Errorf("inactive namespace: want zeroes")
	}
	must(t, "active list", c.exec(nvme.NewIdentify(nvme.CNSActiveNSList, 0, 0, 0), buf, nil))
	if l := nvme.ParseNSIDList(buf); len(l) != 2 || l[0] != 1 || l[1] != 2 {
		t.Errorf("active list %v, want [1 2]", l)
	}
	must(t, "active list from 1", c.exec(nvme.NewIdentify(nvme.CNSActiveNSList, 1, 0, 0), buf, nil))
	if l := nvme.ParseNSIDList(buf); len(l) != 1 || l[0] != 2 {
		t.Errorf("active list after 1: %v, want [2]", l)
	}
	must(t, "descriptors", c.exec(nvme.NewIdentify(nvme.CNSNSDescList, 1, 0, 0), buf, nil))
	ids, err := nvme.ParseNSDescriptors(buf)
	if err != nil || ids != f.s.Namespace(1).IDs() {
		t.Errorf("descriptors %+v (%v), want %+v", ids, err, f.s.Namespace(1).IDs())
	}
	wantStatus(t, "descriptors of missing ns", c.exec(nvme.NewIdentify(nvme.CNSNSDescList, 7, 0, 0), buf, nil), nvme.StatusInvalidNamespace|nvme.StatusDNR)
	wantStatus(t, "unknown CNS", c.exec(nvme.NewIdentify(0x1F, 0, 0, 0), buf, nil), nvme.StatusInvalidField|nvme.StatusDNR)
	wantStatus(t, "short SGL", c.exec(nvme.NewIdentify(nvme.CNSController, 0, 0, 0), make([]byte, 512), nil), nvme.StatusDataSGLLengthInvalid|nvme.StatusDNR)
}

func TestFeatures(t *testing.T) {
	f := newFixture(t, PortConfig{})
	c := admin(t, f.a1, testNQN, 0, 0)
	cqe := must(t, "num queues", c.exec(nvme.NewSetFeatures(nvme.FeatNumQueues, nvme.NumQueues(4)), nil, nil))
	if nsq, ncq := nvme.ParseNumQueues(cqe.DW0); nsq != 4 || ncq != 4 {
		t.Errorf("granted %d/%d, want 4/4", nsq, ncq)
	}
	cqe = must(t, "num queues", c.exec(nvme.NewSetFeatures(nvme.FeatNumQueues, nvme.NumQueues(1000)), nil, nil))
	if nsq, _ := nvme.ParseNumQueues(cqe.DW0); nsq != DefaultMaxIOQueues {
		t.Errorf("granted %d, want %d", nsq, DefaultMaxIOQueues)
	}
	must(t, "kato", c.exec(nvme.NewSetFeatures(nvme.FeatKeepAliveTimer, 7000), nil, nil))
	if cqe := must(t, "get kato", c.exec(nvme.NewGetFeatures(nvme.FeatKeepAliveTimer, 0), nil, nil)); cqe.DW0 != 7000 {
		t.Errorf("kato %d ms, want 7000", cqe.DW0)
	}
	wantStatus(t, "AEC with unsupported bit", c.exec(nvme.NewSetFeatures(nvme.FeatAsyncEventConfig, 1<<9), nil, nil), nvme.StatusInvalidField|nvme.StatusDNR)
	must(t, "keep alive", c.exec(nvme.NewKeepAlive(), nil, nil))
	for i := 0; i < maxAERs; i++ {
		cmd := nvme.NewAsyncEventRequest()
		c.send(&cmd, nil, false)
	}
	cmd := nvme.NewAsyncEventRequest()
	c.send(&cmd, nil, false)
	cqe, _ = c.wait(cmd.CID, nil, nil)
	wantStatus(t, "fifth AER", cqe, nvme.StatusAERLimitExceeded|nvme.StatusDNR)
}

func readLog(t testing.TB, c *client, lid uint8, lsp uint8, rae bool, off uint64, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	must(t, "get log page", c.exec(nvme.NewGetLogPage(lid, nvme.NSIDAll, lsp, rae, off, uint32(n)), buf, nil))
	return buf
}

func TestANALogAndAEN(t *testing.T) {
	f := newFixture(t, PortConfig{})
	c := admin(t, f.a1, testNQN, 0, 0)
	c2 := admin(t, f.a2, testNQN, 0, 0)
	for _, a := range []*client{c, c2} {
		must(t, "AEC", a.exec(nvme.NewSetFeatures(nvme.FeatAsyncEventConfig, nvme.AENCfgANAChange|nvme.AENCfgNSAttr), nil, nil))
	}
	size := int(nvme.ANALogSize(MaxANAGroups, MaxNSID))
	l, err := nvme.ParseANALog(readLog(t, c, nvme.LogANA, 0, false, 0, size), MaxANAGroups)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Groups) != 2 || l.Groups[0].ID != 1 || l.Groups[1].ID != 2 || l.Groups[1].State != nvme.ANAOptimized ||
		len(l.Groups[1].NSIDs) != 1 || l.Groups[1].NSIDs[0] != 2 {
		t.Fatalf("ANA log before: %+v", l)
	}
	before := l.ChangeCount
	aer := nvme.NewAsyncEventRequest()
	c.send(&aer, nil, false)
	f.p1.SetANAState(2, nvme.ANAInaccessible)
	cqe, _ := c.wait(aer.CID, nil, nil)
	if cqe.Status != 0 || cqe.DW0 != 0x000C0302 {
		t.Fatalf("AEN %#x status %s, want 0x000C0302", cqe.DW0, cqe.Status)
	}
	l, _ = nvme.ParseANALog(readLog(t, c, nvme.LogANA, nvme.LSPANAGroupsOnly, false, 0, size), MaxANAGroups)
	if l.ChangeCount <= before || l.Groups[1].State != nvme.ANAInaccessible || l.Groups[0].State != nvme.ANAOptimized || len(l.Groups[1].NSIDs) != 0 {
		t.Fatalf("ANA log after (RGO) through port 1: %+v", l)
	}
	l, _ = nvme.ParseANALog(readLog(t, c2, nvme.LogANA, 0, false, 0, size), MaxANAGroups)
	if l.Groups[1].State != nvme.ANAOptimized {
		t.Fatalf("port 2 sees group 2 %s, want optimized", l.Groups[1].State)
	}
	// I/O through port 1 to ns 2 fails with ANA Inaccessible (no DNR); ns 1 works.
	q := ioQueue(t, f.a1, c, 1, 0)
	wantStatus(t, "read ns 2 via port 1", q.exec(nvme.NewRead(2, 0, 1), make([]byte, 512), nil), nvme.StatusANAInaccessible)
	must(t, "read ns 1 via port 1", q.exec(nvme.NewRead(1, 0, 1), make([]byte, 512), nil))
	for st, want := range map[nvme.ANAState]nvme.Status{nvme.ANAPersistentLoss: nvme.StatusANAPersistentLoss, nvme.ANAChange: nvme.StatusANATransition} {
		f.p1.SetANAState(2, st)
		wantStatus(t, "read in "+st.String(), q.exec(nvme.NewRead(2, 0, 1), make([]byte, 512), nil), want)
	}
	// Port 2's controller got no event (no AER was pending and none queued for it).
	aer2 := nvme.NewAsyncEventRequest()
	c2.send(&aer2, nil, false)
	// The event was reported, then read with RAE=0: a new change is reported again.
	aer = nvme.NewAsyncEventRequest()
	c.send(&aer, nil, false)
	f.p1.SetANAState(2, nvme.ANAOptimized)
	if cqe, _ := c.wait(aer.CID, nil, nil); cqe.DW0 != nvme.AENANAChange {
		t.Fatalf("second AEN %#x", cqe.DW0)
	}
	must(t, "read ns 2 via port 1 again", q.exec(nvme.NewRead(2, 0, 1), make([]byte, 512), nil))
	// Not re-armed (log not read): no completion for the next change; it is masked.
	aer = nvme.NewAsyncEventRequest()
	c.send(&aer, nil, false)
	f.p1.SetANAState(1, nvme.ANANonOptimized)
	must(t, "keep alive", c.exec(nvme.NewKeepAlive(), nil, nil)) // would have failed on an unexpected CID
	// Namespace added: NS-changed AEN goes to port 2's pending AER.
	if _, err := f.s.AddNamespace(NamespaceConfig{NSID: 3, Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if cqe, _ := c2.wait(aer2.CID, nil, nil); cqe.DW0 != nvme.AENNSChanged {
		t.Fatalf("port 2 AEN %#x, want NS changed", cqe.DW0)
	}
	if l := nvme.ParseNSIDList(readLog(t, c2, nvme.LogChangedNS, 0, false, 0, 4096)); len(l) != 1 || l[0] != 3 {
		t.Fatalf("changed NS list %v, want [3]", l)
	}
}

func ioPair(t *testing.T, f *fixture, dg pdu.DigestFlags) (adm, q *client) {
	adm = admin(t, f.a1, testNQN, 0, dg)
	must(t, "num queues", adm.exec(nvme.NewSetFeatures(nvme.FeatNumQueues, nvme.NumQueues(2)), nil, nil))
	return adm, ioQueue(t, f.a1, adm, 1, dg)
}

func TestReadWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		dg   pdu.DigestFlags
		pc   PortConfig
	}{
		{"plain", 0, PortConfig{}},
		{"digests", pdu.DigestHeader | pdu.DigestData, PortConfig{}},
		{"small-h2c-split-c2h", pdu.DigestData, PortConfig{MaxH2CData: 8192, MaxC2HData: 4096}},
		{"no-incapsule", 0, PortConfig{InCapsule: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.pc)
			_, q := ioPair(t, f, tc.dg)
			if tc.pc.InCapsule < 0 {
				q.inCap = 0
			}
			for i, nlb := range []uint32{1, 8, 32, 128, 2048} { // 512 B (in-capsule) .. 1 MiB (R2T)
				wr := make([]byte, int(nlb)*512)
				fill(wr, i)
				slba := uint64(i * 3000)
				must(t, "write", q.exec(nvme.NewWrite(1, slba, nlb), nil, wr))
				rd := make([]byte, len(wr))
				cmd := nvme.NewRead(1, slba, nlb)
				q.send(&cmd, rd, false)
				cqe, c2h := q.wait(cmd.CID, rd, nil)
				must(t, "read", cqe)
				if !bytes.Equal(rd, wr) {
					t.Fatalf("nlb %d: read back differs", nlb)
				}
				if m := tc.pc.MaxC2HData; m > 0 && c2h != (len(rd)+int(m)-1)/int(m) {
					t.Errorf("nlb %d: %d C2HData PDUs, want split at %d", nlb, c2h, m)
				}
				got := make([]byte, len(wr))
				if _, err := f.s.Namespace(1).ReadAt(got, int64(slba)*512); err != nil || !bytes.Equal(got, wr) {
					t.Fatalf("backing store differs (%v)", err)
				}
			}
			wantStatus(t, "read past end", q.exec(nvme.NewRead(1, nsSize/512-1, 2), make([]byte, 1024), nil), nvme.StatusLBARange|nvme.StatusDNR)
			wantStatus(t, "bad nsid", q.exec(nvme.NewRead(9, 0, 1), make([]byte, 512), nil), nvme.StatusInvalidNamespace|nvme.StatusDNR)
			wantStatus(t, "SGL length mismatch", q.exec(nvme.NewRead(1, 0, 2), make([]byte, 512), nil), nvme.StatusDataSGLLengthInvalid|nvme.StatusDNR)
			must(t, "flush", q.exec(nvme.NewFlush(1), nil, nil))
			// Write Zeroes and deallocate.
			must(t, "write zeroes", q.exec(nvme.NewWriteZeroes(1, 0, 1, true), nil, nil))
			rng := make([]byte, 16)
			nvme.MarshalDSMRange(rng, 3000, 8)
			must(t, "deallocate", q.exec(nvme.NewDeallocate(1, 1), nil, rng))
			rd := make([]byte, 8*512)
			must(t, "read deallocated", q.exec(nvme.NewRead(1, 3000, 8), rd, nil))
			if !bytes.Equal(rd, make([]byte, len(rd))) {
				t.Errorf("deallocated blocks do not read as zeroes")
			}
		})
	}
}

// TestSQFlowDisabled: with SQ flow control disabled (Connect CATTR bit 2)
// reads end with a C2HData carrying SUCCESS and no CapsuleResp, and SQHD
// is 0xFFFF.
func TestSQFlowDisabled(t *testing.T) {
	f := newFixture(t, PortConfig{MaxC2HData: 4096})
	adm := admin(t, f.a1, testNQN, 0, 0)
	q := dial(t, f.a1, 0)
	cmd := fabrics.NewConnect(1, 127, 0, true)
	data := make([]byte, fabrics.ConnectDataSize)
	cd := fabrics.ConnectData{HostID: testHostID, CNTLID: adm.cntlid, SubNQN: testNQN, HostNQN: testHostNQN}
	cd.Marshal(data)
	must(t, "io connect", q.exec(cmd, nil, data))
	rd := make([]byte, 16384)
	r := nvme.NewRead(1, 0, 32)
	q.send(&r, rd, false)
	for i := 0; ; i++ {
		h, err := q.r.Next()
		if err != nil || h.Type != pdu.TypeC2HData {
			t.Fatalf("PDU %d: %v %v, want C2HData", i, h.Type, err)
		}
		if err := q.r.ReadData(rd[:q.r.DataLen()]); err != nil {
			t.Fatal(err)
		}
		last := h.Flags.Has(pdu.FlagLast)
		if h.Flags.Has(pdu.FlagSuccess) != last {
			t.Fatalf("PDU %d flags %#x: SUCCESS must come with LAST only", i, h.Flags)
		}
		if last {
			if i != 3 {
				t.Fatalf("%d C2HData PDUs, want 4", i+1)
			}
			break
		}
	}
	// The next PDU is the completion of the next command, not of the read.
	cqe := must(t, "flush", q.exec(nvme.NewFlush(1), nil, nil))
	if cqe.SQHD != 0xFFFF {
		t.Errorf("SQHD %#x, want 0xFFFF", cqe.SQHD)
	}
}

// TestAENDoesNotBlockOnStall: raising an event for a controller behind a
// stalled port returns at once; the AEN arrives when the stall ends.
func TestAENDoesNotBlockOnStall(t *testing.T) {
	f := newFixture(t, PortConfig{})
	c := admin(t, f.a1, testNQN, 0, 0)
	must(t, "AEC", c.exec(nvme.NewSetFeatures(nvme.FeatAsyncEventConfig, nvme.AENCfgANAChange), nil, nil))
	aer := nvme.NewAsyncEventRequest()
	c.send(&aer, nil, false)
	must(t, "keep alive", c.exec(nvme.NewKeepAlive(), nil, nil)) // the AER is registered
	f.p1.Stall(true)
	f.p1.SetANAState(1, nvme.ANAInaccessible) // must return
	c.expectSilence(100 * time.Millisecond)
	f.p1.Stall(false)
	if cqe, _ := c.wait(aer.CID, nil, nil); cqe.DW0 != nvme.AENANAChange {
		t.Fatalf("AEN %#x", cqe.DW0)
	}
}

func TestMDTS(t *testing.T) {
	f := newFixture(t, PortConfig{MDTS: 3}) // 32 KiB
	_, q := ioPair(t, f, 0)
	must(t, "32 KiB read", q.exec(nvme.NewRead(1, 0, 64), make([]byte, 32768), nil))
	wantStatus(t, "64 KiB read", q.exec(nvme.NewRead(1, 0, 128), make([]byte, 65536), nil), nvme.StatusInvalidField|nvme.StatusDNR)
}

func TestFileNamespace(t *testing.T) {
	tg := New(nil)
	t.Cleanup(func() { tg.Close() })
	s, _ := tg.AddSubsystem(SubsystemConfig{NQN: testNQN})
	path := t.TempDir() + "/ns1.img"
	ns, err := s.AddNamespace(NamespaceConfig{NSID: 1, Size: 8 << 20, Path: path, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Size() != 8<<20 {
		t.Fatalf("size %d", ns.Size())
	}
	p, _ := tg.AddPort(PortConfig{ID: 1})
	if err := p.LinkSubsystem(testNQN); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: tg, s: s, p1: p, a1: p.Addr().String()}
	_, q := ioPair(t, f, 0)
	wr := make([]byte, 64<<10)
	fill(wr, 7)
	must(t, "write", q.exec(nvme.NewWrite(1, 10, 16), nil, wr))
	rd := make([]byte, len(wr))
	must(t, "read", q.exec(nvme.NewRead(1, 10, 16), rd, nil))
	if !bytes.Equal(rd, wr) {
		t.Fatal("file namespace read back differs")
	}
	must(t, "flush", q.exec(nvme.NewFlush(1), nil, nil))
	must(t, "write zeroes (deallocate)", q.exec(nvme.NewWriteZeroes(1, 10, 4, true), nil, nil))
	must(t, "read", q.exec(nvme.NewRead(1, 10, 16), rd, nil))
	if !bytes.Equal(rd[:16384], make([]byte, 16384)) || !bytes.Equal(rd[16384:], wr[16384:]) {
		t.Fatal("punched range not zero or neighbours damaged")
	}
}

func TestKeepAliveExpiry(t *testing.T) {
	f := newFixture(t, PortConfig{})
	c := admin(t, f.a1, testNQN, time.Second, 0)
	q := ioQueue(t, f.a1, c, 1, 0)
	start := time.Now()
	c.expectEOF(5 * time.Second)
	q.expectEOF(5 * time.Second)
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Fatalf("closed after %v, before KATO 1 s", el)
	}
	if len(f.s.controllers()) != 0 {
		t.Fatal("controller still registered")
	}
}

func TestKeepAliveTrafficBased(t *testing.T) {
	f := newFixture(t, PortConfig{})
	c := admin(t, f.a1, testNQN, time.Second, 0)
	// Commands every 300 ms for 2.5 s keep the controller alive (TBKAS:
	// any command resets the timer).
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		<-tick.C
		must(t, "identify", c.exec(nvme.NewIdentify(nvme.CNSController, 0, 0, 0), make([]byte, 4096), nil))
	}
}

func TestFailNextIO(t *testing.T) {
	f := newFixture(t, PortConfig{})
	_, q := ioPair(t, f, 0)
	f.p1.FailNextIO(2, nvme.StatusInternalPathError)
	rd := make([]byte, 512)
	wantStatus(t, "first", q.exec(nvme.NewRead(1, 0, 1), rd, nil), nvme.StatusInternalPathError)
	wantStatus(t, "second (write, R2T not sent)", q.exec(nvme.NewWrite(1, 0, 64), nil, make([]byte, 32768)), nvme.StatusInternalPathError)
	must(t, "third", q.exec(nvme.NewRead(1, 0, 1), rd, nil))
	f.p1.FailNextIO(1, nvme.StatusInvalidField|nvme.StatusDNR)
	wantStatus(t, "dnr", q.exec(nvme.NewFlush(1), nil, nil), nvme.StatusInvalidField|nvme.StatusDNR)
}

// TestLoseNextCompletion: a lost completion (LoseNextCompletions) applies to
// every write that completes without data, also a small in-capsule one
// that the reader goroutine writes straight into the RAM namespace: the
// data is in the store and the connection is closed instead of answering.
func TestLoseNextCompletion(t *testing.T) {
	for _, size := range []int{4096, 1 << 20} {
		f := newFixture(t, PortConfig{})
		_, q := ioPair(t, f, 0)
		f.p1.LoseNextCompletions(1)
		wr := make([]byte, size)
		fill(wr, size)
		cmd := nvme.NewWrite(1, 8, uint32(size/512))
		cmd.CID = q.nextCID()
		q.send(&cmd, wr, true)
		q.expectEOF(ioTimeout)
		if n := f.p1.PendingLosses(); n != 0 {
			t.Errorf("%d bytes: %d losses pending, want 0", size, n)
		}
		got := make([]byte, size)
		if _, err := f.s.Namespace(1).ReadAt(got, 8*512); err != nil || !bytes.Equal(got, wr) {
			t.Errorf("%d bytes: the write did not run (%v)", size, err)
		}
	}
}

func TestStall(t *testing.T) {
	f := newFixture(t, PortConfig{})
	c := admin(t, f.a1, testNQN, 0, 0)
	f.p1.Stall(true)
	ka := nvme.NewKeepAlive()
	c.send(&ka, nil, false)
	c.expectSilence(300 * time.Millisecond)
	// A new connection gets no ICResp either.
	n := dialRaw(t, f.a1)
	if err := n.w.ICReq(pdu.ICReq{}); err != nil {
		t.Fatal(err)
	}
	n.expectSilence(200 * time.Millisecond)
	// Port 2 is unaffected.
	admin(t, f.a2, testNQN, 0, 0)
	f.p1.Stall(false)
	must(t, "keep alive after stall", func() nvme.Completion { cqe, _ := c.wait(ka.CID, nil, nil); return cqe }())
	if h, err := n.r.Next(); err != nil || h.Type != pdu.TypeICResp {
		t.Fatalf("ICResp after stall: %v %v", h.Type, err)
	}
}

func TestStallKeepAliveExpiry(t *testing.T) {
	f := newFixture(t, PortConfig{})
	c := admin(t, f.a1, testNQN, time.Second, 0)
	f.p1.Stall(true)
	// The controller expires while stalled, but the socket stays silent
	// (the close would be lost on a dead link) until the stall ends.
	deadline := time.Now().Add(5 * time.Second)
	for len(f.s.controllers()) > 0 && time.Now().Before(deadline) {
		c.expectSilence(100 * time.Millisecond)
	}
	if len(f.s.controllers()) > 0 {
		t.Fatal("controller not torn down")
	}
	f.p1.Stall(false)
	c.expectEOF(ioTimeout)
}

func TestDropConnections(t *testing.T) {
	f := newFixture(t, PortConfig{})
	c, q := ioPair(t, f, 0)
	other := admin(t, f.a2, testNQN, 0, 0)
	f.p1.DropConnections()
	c.expectEOF(ioTimeout)
	q.expectEOF(ioTimeout)
	must(t, "port 2 still works", other.exec(nvme.NewKeepAlive(), nil, nil))
	// Reconnect works; StopListening refuses new connections, StartListening
	// comes back on the same address.
	admin(t, f.a1, testNQN, 0, 0)
	if err := f.p1.StopListening(); err != nil {
		t.Fatal(err)
	}
	if nc, err := netDial(f.a1); err == nil {
		nc.Close()
		t.Fatal("connect succeeded while not listening")
	}
	if err := f.p1.StartListening(); err != nil {
		t.Fatal(err)
	}
	admin(t, f.a1, testNQN, 0, 0)
}

func TestUnlinkSubsystem(t *testing.T) {
	f := newFixture(t, PortConfig{})
	c, q := ioPair(t, f, 0)
	other := admin(t, f.a2, testNQN, 0, 0)
	if err := f.p1.UnlinkSubsystem(testNQN); err != nil {
		t.Fatal(err)
	}
	c.expectEOF(ioTimeout)
	q.expectEOF(ioTimeout)
	must(t, "port 2 still works", other.exec(nvme.NewKeepAlive(), nil, nil))
	d := dial(t, f.a1, 0)
	wantStatus(t, "connect after unlink", d.connect(0, 31, 0, testNQN, fabrics.CNTLIDDynamic, testHostNQN), nvme.StatusConnectInvalidParam|nvme.StatusDNR)
	if err := f.p1.LinkSubsystem(testNQN); err != nil {
		t.Fatal(err)
	}
	admin(t, f.a1, testNQN, 0, 0)
}

func TestMalformedPDU(t *testing.T) {
	f := newFixture(t, PortConfig{})
	for _, tc := range []struct {
		name string
		hdr  []byte
		fes  pdu.FES
		fei  uint32
	}{
		{"capsule-resp from host", []byte{5, 0, 24, 0, 24, 0, 0, 0}, pdu.FESInvalidHeaderField, 0},
		{"bad HLEN", []byte{4, 0, 70, 0, 72, 0, 0, 0}, pdu.FESInvalidHeaderField, 2},
		{"unknown type", []byte{0x42, 0, 24, 0, 24, 0, 0, 0}, pdu.FESInvalidHeaderField, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := admin(t, f.a1, testNQN, 0, 0)
			if _, err := c.nc.Write(append(tc.hdr, make([]byte, 64)...)); err != nil {
				t.Fatal(err)
			}
			h, err := c.r.Next()
			if err != nil || h.Type != pdu.TypeC2HTermReq {
				t.Fatalf("got %v %v, want C2HTermReq", h.Type, err)
			}
			tr, err := c.r.TermReq()
			if err != nil || tr.FES != tc.fes || tr.FEI != tc.fei || !bytes.Equal(tr.Header[:4], tc.hdr[:4]) {
				t.Fatalf("TermReq %+v (%v), want FES %d FEI %d with the header", tr, err, tc.fes, tc.fei)
			}
			c.expectEOF(ioTimeout)
		})
	}
	t.Run("first PDU not ICReq", func(t *testing.T) {
		c := dialRaw(t, f.a1)
		cmd := nvme.NewKeepAlive()
		if err := c.w.CapsuleCmd(&cmd, nil); err != nil {
			t.Fatal(err)
		}
		if h, err := c.r.Next(); err != nil || h.Type != pdu.TypeC2HTermReq {
			t.Fatalf("got %v %v, want C2HTermReq", h.Type, err)
		}
		c.expectEOF(ioTimeout)
	})
	t.Run("H2CData with unknown TTAG", func(t *testing.T) {
		_, q := ioPair(t, f, 0)
		if err := q.w.H2CData(pdu.Data{CCCID: 1, TTAG: 999}, make([]byte, 512), true); err != nil {
			t.Fatal(err)
		}
		h, err := q.r.Next()
		if err != nil || h.Type != pdu.TypeC2HTermReq {
			t.Fatalf("got %v %v", h.Type, err)
		}
		if tr, _ := q.r.TermReq(); tr.FES != pdu.FESInvalidHeaderField || tr.FEI != 10 {
			t.Fatalf("TermReq %+v, want FES 1 FEI 10", tr)
		}
		q.expectEOF(ioTimeout)
	})
	t.Run("H2CData at wrong offset", func(t *testing.T) {
		_, q := ioPair(t, f, 0)
		cmd := nvme.NewWrite(1, 0, 64)
		q.send(&cmd, make([]byte, 32768), false)
		h, err := q.r.Next()
		if err != nil || h.Type != pdu.TypeR2T {
			t.Fatalf("got %v %v, want R2T", h.Type, err)
		}
		r2t := q.r.R2T()
		if r2t.Length != 32768 || r2t.Offset != 0 {
			t.Fatalf("R2T %+v", r2t)
		}
		if err := q.w.H2CData(pdu.Data{CCCID: cmd.CID, TTAG: r2t.TTAG, Offset: 4096}, make([]byte, 4096), false); err != nil {
			t.Fatal(err)
		}
		if h, err := q.r.Next(); err != nil || h.Type != pdu.TypeC2HTermReq {
			t.Fatalf("got %v %v", h.Type, err)
		}
		q.expectEOF(ioTimeout)
	})
}

func TestDataDigestError(t *testing.T) {
	f := newFixture(t, PortConfig{})
	_, q := ioPair(t, f, pdu.DigestData)
	// Corrupt the data digest of an in-capsule write by hand: header 72,
	// data 512, digest 4.
	cmd := nvme.NewWrite(1, 0, 1)
	cmd.CID = 77
	cmd.Flags = nvme.FlagSGL
	cmd.DPTR = nvme.SGL{Type: nvme.SGLDataBlockOffset, Length: 512}
	var b bytes.Buffer
	w := pdu.NewWriter(&b)
	w.SetDigests(pdu.DigestData)
	if err := w.CapsuleCmd(&cmd, bytes.Repeat([]byte{0xAB}, 512)); err != nil {
		t.Fatal(err)
	}
	raw := b.Bytes()
	raw[len(raw)-1] ^= 0xFF
	if _, err := q.nc.Write(raw); err != nil {
		t.Fatal(err)
	}
	cqe, _ := q.wait(77, nil, nil)
	wantStatus(t, "bad data digest", cqe, nvme.StatusDataTransferError)
	rd := make([]byte, 512)
	must(t, "connection still usable", q.exec(nvme.NewRead(1, 0, 1), rd, nil))
	if !bytes.Equal(rd, make([]byte, 512)) {
		t.Error("data that failed its digest reached the namespace")
	}
}

func TestDiscovery(t *testing.T) {
	f := newFixture(t, PortConfig{})
	c := admin(t, f.a2, nvme.DiscoveryNQN, 0, 0)
	buf := make([]byte, 4096)
	must(t, "identify", c.exec(nvme.NewIdentify(nvme.CNSController, 0, 0, 0), buf, nil))
	id, _ := nvme.ParseIdentifyController(buf)
	if id.CNTRLTYPE != nvme.CtrlTypeDiscovery || id.SubNQN != nvme.DiscoveryNQN || id.OAES != nvme.AENCfgDiscoveryChange {
		t.Fatalf("discovery identify: type %d subnqn %q oaes %#x", id.CNTRLTYPE, id.SubNQN, id.OAES)
	}
	must(t, "AEC", c.exec(nvme.NewSetFeatures(nvme.FeatAsyncEventConfig, nvme.AENCfgDiscoveryChange), nil, nil))
	hdr := readLog(t, c, nvme.LogDiscovery, 0, true, 0, 20)
	gen, numrec, _, err := nvme.ParseDiscoveryLogHeader(hdr)
	if err != nil || numrec != 2 {
		t.Fatalf("header: gen %d numrec %d (%v), want 2 entries", gen, numrec, err)
	}
	// Entries read page-wise from offset 1024, as libnvme does.
	ents := readLog(t, c, nvme.LogDiscovery, 0, false, nvme.DiscoveryLogHeaderSize, int(numrec)*nvme.DiscoveryLogEntrySize)
	es, err := nvme.ParseDiscoveryLogEntries(ents, int(numrec))
	if err != nil {
		t.Fatal(err)
	}
	// As nvmet: the discovery subsystem itself, then what is linked to the
	// port the host asked through (port 2), not the other port.
	for i, want := range []struct {
		subType uint8
		nqn     string
	}{{nvme.SubTypeCurrentDiscovery, nvme.DiscoveryNQN}, {nvme.SubTypeNVM, testNQN}} {
		e, p := es[i], f.p2
		if e.SubNQN != want.nqn || e.PortID != p.ID() || e.TrType != nvme.TrTypeTCP || e.AdrFam != nvme.AdrFamIPv4 ||
			e.SubType != want.subType || e.TrAddr != "127.0.0.1" || e.TrSvcID != itoa(p.Addr().Port) || e.CNTLID != 0xFFFF || e.ASQSZ != 32 ||
			e.TReq != nvme.TReqDisableSQFlow {
			t.Errorf("entry %d: %+v", i, e)
		}
	}
	f.t.SetDiscoveryAllPorts(true)
	if _, n, _, _ := nvme.ParseDiscoveryLogHeader(readLog(t, c, nvme.LogDiscovery, 0, false, 0, 20)); n != 3 {
		t.Errorf("all ports: %d entries, want 3", n)
	}
	f.t.SetDiscoveryAllPorts(false)
	gen, _, _, _ = nvme.ParseDiscoveryLogHeader(readLog(t, c, nvme.LogDiscovery, 0, false, 0, 20))
	aer := nvme.NewAsyncEventRequest()
	c.send(&aer, nil, false)
	if err := f.p2.UnlinkSubsystem(testNQN); err != nil {
		t.Fatal(err)
	}
	cqe, _ := c.wait(aer.CID, nil, nil)
	if cqe.DW0 != nvme.AENDiscoveryChange {
		t.Fatalf("AEN %#x, want discovery change", cqe.DW0)
	}
	gen2, numrec, _, _ := nvme.ParseDiscoveryLogHeader(readLog(t, c, nvme.LogDiscovery, 0, false, 0, 20))
	if gen2 <= gen || numrec != 1 {
		t.Fatalf("after unlink: gen %d -> %d, numrec %d, want a higher gen and only the discovery subsystem's entry", gen, gen2, numrec)
	}
	wantStatus(t, "ANA log on discovery", c.exec(nvme.NewGetLogPage(nvme.LogANA, 0, 0, false, 0, 4096), buf, nil), nvme.StatusInvalidField|nvme.StatusDNR)
}

func TestHostAccess(t *testing.T) {
	tg := New(nil)
	t.Cleanup(func() { tg.Close() })
	if _, err := tg.AddSubsystem(SubsystemConfig{NQN: testNQN, Hosts: []string{"nqn.2014-08.org.nvmexpress:uuid:other"}}); err != nil {
		t.Fatal(err)
	}
	p, _ := tg.AddPort(PortConfig{ID: 1})
	if err := p.LinkSubsystem(testNQN); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr().String(), 0)
	cqe := c.connect(0, 31, 0, testNQN, fabrics.CNTLIDDynamic, testHostNQN)
	wantStatus(t, "host not allowed", cqe, nvme.StatusConnectInvalidHost|nvme.StatusDNR)
	// The discovery log hides the subsystem from this host: only the
	// discovery subsystem's own entry is left.
	d := admin(t, p.Addr().String(), nvme.DiscoveryNQN, 0, 0)
	if _, n, _, _ := nvme.ParseDiscoveryLogHeader(readLog(t, d, nvme.LogDiscovery, 0, false, 0, 1024)); n != 1 {
		t.Fatalf("%d entries, want 1", n)
	}
}

func TestReservations(t *testing.T) {
	f := newFixture(t, PortConfig{})
	_, q := ioPair(t, f, 0)
	keys := func(a, b uint64) []byte { d := make([]byte, 16); nvme.MarshalReservationKeys(d, a, b); return d }
	must(t, "register", q.exec(nvme.NewReservationRegister(1, nvme.ResvRegister, false, 0), nil, keys(0, 0xAA)))
	wantStatus(t, "acquire with wrong key", q.exec(nvme.NewReservationAcquire(1, nvme.ResvAcquire, false, nvme.ResvWriteExclusive), nil, keys(0xBB, 0)), nvme.StatusReservationConflict)
	must(t, "acquire", q.exec(nvme.NewReservationAcquire(1, nvme.ResvAcquire, false, nvme.ResvWriteExclusive), nil, keys(0xAA, 0)))
	// Another host: reads allowed, writes conflict.
	other := [16]byte{9}
	if st := f.s.Namespace(1).resv.check(other, false); st != 0 {
		t.Fatalf("read by another host: %s", st)
	}
	if st := f.s.Namespace(1).resv.check(other, true); st != nvme.StatusReservationConflict {
		t.Fatalf("write by another host: %s, want conflict", st)
	}
	must(t, "write by holder", q.exec(nvme.NewWrite(1, 0, 1), nil, make([]byte, 512)))
	rep := make([]byte, 4096)
	must(t, "report", q.exec(nvme.NewReservationReport(1, 4096, true), rep, nil))
	rs, regctl, err := nvme.ParseReservationStatus(rep)
	if err != nil || regctl != 1 || rs.RType != nvme.ResvWriteExclusive || !rs.Regs[0].Holds || rs.Regs[0].RKey != 0xAA || rs.Regs[0].HostID != testHostID {
		t.Fatalf("report %+v regctl %d (%v)", rs, regctl, err)
	}
	wantStatus(t, "report EDS=0", q.exec(nvme.NewReservationReport(1, 4096, false), rep, nil), nvme.StatusHostIDInconsistent|nvme.StatusDNR)
	rel := make([]byte, 8)
	nvme.MarshalReservationKeys(rel, 0xAA, 0)
	must(t, "release", q.exec(nvme.NewReservationRelease(1, nvme.ResvRelease, false, nvme.ResvWriteExclusive), nil, rel))
	if st := f.s.Namespace(1).resv.check(other, true); st != 0 {
		t.Fatalf("write after release: %s", st)
	}
	must(t, "clear", q.exec(nvme.NewReservationRelease(1, nvme.ResvClear, false, 0), nil, rel))
	must(t, "report", q.exec(nvme.NewReservationReport(1, 4096, true), rep, nil))
	if _, regctl, _ := nvme.ParseReservationStatus(rep); regctl != 0 {
		t.Fatalf("%d registrants after clear", regctl)
	}
}

// TestConcurrentRAM runs overlapping reads and writes from several
// connections on both ports at once (meaningful under -race). Workers use
// Errorf only; a client-level fatal ends just that goroutine.
func TestConcurrentRAM(t *testing.T) {
	f := newFixture(t, PortConfig{})
	var qs []*client
	for _, a := range []string{f.a1, f.a2, f.a1, f.a2} {
		adm := admin(t, a, testNQN, 0, 0)
		must(t, "num queues", adm.exec(nvme.NewSetFeatures(nvme.FeatNumQueues, nvme.NumQueues(1)), nil, nil))
		qs = append(qs, ioQueue(t, a, adm, 1, 0))
	}
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wr := make([]byte, 256<<10)
			rd := make([]byte, len(wr))
			for j := 0; j < 20; j++ {
				fill(wr, i*100+j)
				slba := uint64((j % 5) * 128) // ranges overlap across goroutines
				w := nvme.NewWrite(1, slba, uint32(len(wr)/512))
				q.send(&w, wr, false)
				if cqe, _ := q.wait(w.CID, nil, wr); cqe.Status != 0 {
					t.Errorf("write: %s", cqe.Status)
					return
				}
				r := nvme.NewRead(1, slba, uint32(len(rd)/512))
				q.send(&r, rd, false)
				if cqe, _ := q.wait(r.CID, rd, nil); cqe.Status != 0 {
					t.Errorf("read: %s", cqe.Status)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestNamespaceValidation(t *testing.T) {
	tg := New(nil)
	defer tg.Close()
	s, _ := tg.AddSubsystem(SubsystemConfig{NQN: testNQN})
	for _, c := range []NamespaceConfig{
		{NSID: 0, Size: 1 << 20},
		{NSID: 1, Size: 1000},
		{NSID: 1, Size: 1 << 20, BlockSize: 1024},
		{NSID: 1, Size: 1 << 20, ANAGroup: 200},
		{NSID: 1, Path: t.TempDir() + "/missing"},
	} {
		if _, err := s.AddNamespace(c); err == nil {
			t.Errorf("AddNamespace(%+v) succeeded", c)
		}
	}
	if _, err := s.AddNamespace(NamespaceConfig{NSID: 1, Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddNamespace(NamespaceConfig{NSID: 1, Size: 1 << 20}); err == nil {
		t.Error("duplicate NSID accepted")
	}
	if _, err := tg.AddSubsystem(SubsystemConfig{NQN: testNQN}); err == nil {
		t.Error("duplicate subsystem accepted")
	}
}

func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }

func itoa(i int) string { return strconv.Itoa(i) }

// TestHPDA: a host asking for C2H data alignment (HPDA 3: 16 bytes) gets
// padded C2HData PDUs it can read.
func TestHPDA(t *testing.T) {
	f := newFixture(t, PortConfig{})
	adm := admin(t, f.a1, testNQN, 0, 0)
	q := dialRaw(t, f.a1)
	if err := q.w.ICReq(pdu.ICReq{HPDA: 3}); err != nil {
		t.Fatal(err)
	}
	if h, err := q.r.Next(); err != nil || h.Type != pdu.TypeICResp {
		t.Fatalf("ICResp: %v %v", h.Type, err)
	}
	q.resp = q.r.ICResp()
	must(t, "io connect", q.connect(1, 127, 0, testNQN, adm.cntlid, testHostNQN))
	wr := make([]byte, 4096)
	fill(wr, 3)
	must(t, "write", q.exec(nvme.NewWrite(1, 0, 8), nil, wr))
	rd := make([]byte, 4096)
	cmd := nvme.NewRead(1, 0, 8)
	q.send(&cmd, rd, false)
	h, err := q.r.Next()
	if err != nil || h.Type != pdu.TypeC2HData || h.PDO != 32 {
		t.Fatalf("C2HData %v PDO %d (%v), want PDO 32 (24-byte header padded to 16)", h.Type, h.PDO, err)
	}
	if err := q.r.ReadData(rd); err != nil {
		t.Fatal(err)
	}
	if cqe, _ := q.wait(cmd.CID, rd, nil); cqe.Status != 0 || !bytes.Equal(rd, wr) {
		t.Fatalf("status %s, data equal %v", cqe.Status, bytes.Equal(rd, wr))
	}
}

// TestQueuedAEN: an event raised while no AER is outstanding waits and
// completes the next AER at once.
func TestQueuedAEN(t *testing.T) {
	f := newFixture(t, PortConfig{})
	c := admin(t, f.a1, testNQN, 0, 0)
	must(t, "AEC", c.exec(nvme.NewSetFeatures(nvme.FeatAsyncEventConfig, nvme.AENCfgANAChange), nil, nil))
	f.p1.SetANAState(2, nvme.ANANonOptimized)
	if cqe := c.exec(nvme.NewAsyncEventRequest(), nil, nil); cqe.Status != 0 || cqe.DW0 != nvme.AENANAChange {
		t.Fatalf("queued AEN: %#x %s", cqe.DW0, cqe.Status)
	}
}

// TestReservationConflictOnWire: a second host (other host ID) cannot write
// under a Write Exclusive reservation (0x83) but can read; after release
// it can write.
func TestReservationConflictOnWire(t *testing.T) {
	f := newFixture(t, PortConfig{})
	_, a := ioPair(t, f, 0)
	// Host B on port 2.
	b := dial(t, f.a2, 0)
	b.hostID = [16]byte{0xB}
	b.host = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-00000000000b"
	cqe := must(t, "B connect", b.connect(0, 31, 0, testNQN, fabrics.CNTLIDDynamic, ""))
	b.cntlid = uint16(cqe.DW0)
	b.enable()
	bq := dial(t, f.a2, 0)
	bq.hostID, bq.host, bq.inCap = b.hostID, b.host, DefaultInCapsule
	must(t, "B io connect", bq.connect(1, 127, 0, testNQN, b.cntlid, ""))

	keys := make([]byte, 16)
	nvme.MarshalReservationKeys(keys, 0, 0xA1)
	must(t, "A register", a.exec(nvme.NewReservationRegister(1, nvme.ResvRegister, false, 0), nil, keys))
	nvme.MarshalReservationKeys(keys, 0xA1, 0)
	must(t, "A acquire WE", a.exec(nvme.NewReservationAcquire(1, nvme.ResvAcquire, false, nvme.ResvWriteExclusive), nil, keys))
	wantStatus(t, "B write", bq.exec(nvme.NewWrite(1, 0, 1), nil, make([]byte, 512)), nvme.StatusReservationConflict)
	must(t, "B read", bq.exec(nvme.NewRead(1, 0, 1), make([]byte, 512), nil))
	nvme.MarshalReservationKeys(keys, 0, 0xB1)
	must(t, "B register", bq.exec(nvme.NewReservationRegister(1, nvme.ResvRegister, false, 0), nil, keys))
	nvme.MarshalReservationKeys(keys, 0xB1, 0)
	wantStatus(t, "B acquire while A holds", bq.exec(nvme.NewReservationAcquire(1, nvme.ResvAcquire, false, nvme.ResvWriteExclusive), nil, keys), nvme.StatusReservationConflict)
	// B preempts A.
	nvme.MarshalReservationKeys(keys, 0xB1, 0xA1)
	must(t, "B preempt", bq.exec(nvme.NewReservationAcquire(1, nvme.ResvPreempt, false, nvme.ResvWriteExclusive), nil, keys))
	wantStatus(t, "A write after preempt", a.exec(nvme.NewWrite(1, 0, 1), nil, make([]byte, 512)), nvme.StatusReservationConflict)
	must(t, "B write", bq.exec(nvme.NewWrite(1, 0, 1), nil, make([]byte, 512)))
	rep := make([]byte, 4096)
	must(t, "report", a.exec(nvme.NewReservationReport(1, 4096, true), rep, nil))
	rs, regctl, _ := nvme.ParseReservationStatus(rep)
	if regctl != 1 || rs.Regs[0].HostID != b.hostID || !rs.Regs[0].Holds {
		t.Fatalf("after preempt: %+v (A's registration must be gone)", rs)
	}
}

// TestReadPathAllocs: in steady state a read (RAM namespace, sent straight
// from its memory) allocates nothing, on the target or in the test client.
func TestReadPathAllocs(t *testing.T) {
	f := newFixture(t, PortConfig{})
	_, q := ioPair(t, f, pdu.DigestHeader|pdu.DigestData)
	rd := make([]byte, 64<<10)
	read := func() {
		cmd := nvme.NewRead(1, 128, uint32(len(rd)/512))
		q.send(&cmd, rd, false)
		if cqe, _ := q.wait(cmd.CID, rd, nil); cqe.Status != 0 {
			t.Fatal(cqe.Status)
		}
	}
	for range 50 { // warm up: requests, buffers
		read()
	}
	if n := testing.AllocsPerRun(200, read); n != 0 {
		t.Errorf("%v allocations per 64 KiB read, want 0", n)
	}
}

// TestFileDeallocatePunchesHoles: DSM deallocate on a file namespace
// returns the blocks to the file system.
func TestFileDeallocatePunchesHoles(t *testing.T) {
	tg := New(nil)
	t.Cleanup(func() { tg.Close() })
	s, _ := tg.AddSubsystem(SubsystemConfig{NQN: testNQN})
	path := t.TempDir() + "/ns.img"
	if _, err := s.AddNamespace(NamespaceConfig{NSID: 1, Size: 8 << 20, Path: path}); err != nil {
		t.Fatal(err)
	}
	p, _ := tg.AddPort(PortConfig{ID: 1})
	if err := p.LinkSubsystem(testNQN); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: tg, s: s, p1: p, a1: p.Addr().String()}
	_, q := ioPair(t, f, 0)
	wr := make([]byte, 1<<20)
	fill(wr, 1)
	must(t, "write", q.exec(nvme.NewWrite(1, 0, 2048), nil, wr))
	must(t, "flush", q.exec(nvme.NewFlush(1), nil, nil))
	blocks := func() int64 {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks
	}
	before := blocks()
	rng := make([]byte, 16)
	nvme.MarshalDSMRange(rng, 0, 2048)
	must(t, "deallocate", q.exec(nvme.NewDeallocate(1, 1), nil, rng))
	after := blocks()
	if after >= before {
		fd, err := syscall.Open(path, syscall.O_RDWR, 0)
		if err == nil {
			err = syscall.Fallocate(fd, 0x01|0x02, 0, 4096) // KEEP_SIZE|PUNCH_HOLE
			syscall.Close(fd)
		}
		if err != nil {
			t.Skipf("file system of %s cannot punch holes: %v", path, err)
		}
		t.Fatalf("blocks %d -> %d: deallocate did not punch a hole", before, after)
	}
	rd := make([]byte, len(wr))
	must(t, "read", q.exec(nvme.NewRead(1, 0, 2048), rd, nil))
	if !bytes.Equal(rd, make([]byte, len(rd))) {
		t.Fatal("deallocated range does not read as zeroes")
	}
}

// TestTeardownClosesIOQueues: a command arriving on an I/O queue while its
// controller is torn down (here: the admin queue dropped) closes that queue,
// so the host fails over; it is never completed with a DNR status.
func TestTeardownClosesIOQueues(t *testing.T) {
	f := newFixture(t, PortConfig{})
	adm, q := ioPair(t, f, 0)
	destroying, proceed := make(chan struct{}), make(chan struct{})
	hook := func() {
		close(destroying)
		<-proceed
	}
	f.t.destroying.Store(&hook)
	adm.nc.Close()
	<-destroying
	cmd := nvme.Command{Opcode: uint8(nvme.IORead), NSID: 1, CDW12: 7}
	q.send(&cmd, make([]byte, 4096), false)
	_ = q.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	h, err := q.r.Next()
	close(proceed)
	if err == nil {
		var cqe nvme.Completion
		if h.Type == pdu.TypeCapsuleResp {
			q.r.Completion(&cqe)
		}
		t.Fatalf("I/O during teardown answered with %s status %#x, want the queue closed", h.Type, uint16(cqe.Status))
	}
	if !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("I/O queue: %v, want EOF", err)
	}
}

// What the kernel target answers and ours did not (issue 8, behaviour 12):
// atomic and preferred-granularity fields of one physical block, AEC 0x900
// before any Set Features, Get Features 0x06, the firmware slot log, and a
// discovery MAXCMD that does not clamp the host's queue size, error log
// entries.
func TestAnswersAsNvmet(t *testing.T) {
	f := newFixture(t, PortConfig{})
	c := admin(t, f.a1, testNQN, 0, 0)
	buf := make([]byte, nvme.IdentifyDataSize)
	must(t, "identify ns", c.exec(nvme.NewIdentify(nvme.CNSNamespace, 1, 0, 0), buf, nil))
	ns, err := nvme.ParseIdentifyNamespace(buf)
	if err != nil {
		t.Fatal(err)
	}
	lpp := uint16(physBlockSize/ns.BlockSize() - 1)
	if ns.NSFEAT&(nvme.NSFEATAtomics|nvme.NSFEATOptPerf) != nvme.NSFEATAtomics|nvme.NSFEATOptPerf ||
		ns.NAWUPF != lpp || ns.NAWUN != lpp || ns.NPWG != lpp || ns.NPDG != lpp || ns.NOWS != 0 {
		t.Errorf("NSFEAT %#x NAWUN %d NAWUPF %d NPWG %d NPDG %d NOWS %d; want atomics and granularity %d", ns.NSFEAT, ns.NAWUN, ns.NAWUPF, ns.NPWG, ns.NPDG, ns.NOWS, lpp)
	}
	must(t, "identify ctrl", c.exec(nvme.NewIdentify(nvme.CNSController, 0, 0, 0), buf, nil))
	id, err := nvme.ParseIdentifyController(buf)
	if err != nil {
		t.Fatal(err)
	}
	if l := nvme.Limits(id, ns); l.PhysicalBlockSize != physBlockSize || l.AtomicWriteMax != physBlockSize {
		t.Errorf("Linux would show physical_block_size %d, atomic_write_max_bytes %d; want %d", l.PhysicalBlockSize, l.AtomicWriteMax, physBlockSize)
	}
	if cqe := must(t, "get AEC", c.exec(nvme.NewGetFeatures(nvme.FeatAsyncEventConfig, 0), nil, nil)); cqe.DW0 != 0x900 {
		t.Errorf("AEC %#x before Set Features, want 0x900", cqe.DW0)
	}
	if cqe := must(t, "get VWC", c.exec(nvme.NewGetFeatures(nvme.FeatVolatileWC, 0), nil, nil)); cqe.DW0 != 1 {
		t.Errorf("VWC feature %#x, want 1", cqe.DW0)
	}
	fw := make([]byte, 512)
	must(t, "firmware slot log", c.exec(nvme.NewGetLogPage(nvme.LogFWSlot, nvme.NSIDAll, 0, false, 0, 512), fw, nil))
	if fw[0] != 1 || strings.TrimRight(string(fw[8:16]), " ") == "" {
		t.Errorf("firmware slot log AFI %d, slot 1 %q", fw[0], fw[8:16])
	}
	// A failed command: More bit, and an Error Information log entry
	// (newest first) with its count, SQID, CID, status and NSID.
	bad := nvme.NewIdentify(0x1F, 99, 0, 0)
	cqe := c.exec(bad, buf, nil)
	if cqe.Status.Code() != nvme.StatusInvalidField.Code() || !cqe.Status.More() {
		t.Errorf("identify with an unknown CNS: status %s, want Invalid Field with More", cqe.Status)
	}
	el := make([]byte, 2*64)
	must(t, "error log", c.exec(nvme.NewGetLogPage(nvme.LogError, nvme.NSIDAll, 0, false, 0, uint32(len(el))), el, nil))
	le := binary.LittleEndian
	if n, sqid, cid, st, nsid := le.Uint64(el), le.Uint16(el[8:]), le.Uint16(el[10:]), nvme.Status(le.Uint16(el[12:])>>1), le.Uint32(el[24:]); n != 1 || sqid != 0 || cid != cqe.CID || st.Code() != nvme.StatusInvalidField.Code() || nsid != 99 || el[64] != 0 {
		t.Errorf("error log entry 0: count %d sqid %d cid %d status %s nsid %d; entry 1 count byte %d", n, sqid, cid, st, nsid, el[64])
	}
	d := admin(t, f.a2, nvme.DiscoveryNQN, 0, 0)
	must(t, "identify discovery ctrl", d.exec(nvme.NewIdentify(nvme.CNSController, 0, 0, 0), buf, nil))
	did, err := nvme.ParseIdentifyController(buf)
	if err != nil {
		t.Fatal(err)
	}
	if did.MAXCMD < 128 {
		t.Errorf("discovery MAXCMD %d: Linux clamps queue_size 128 down to it", did.MAXCMD)
	}
}
