package target

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

// A raw NVMe/TCP host for the tests, built on nvme/pdu, nvme and
// nvme/fabrics only: every PDU is visible to the test.

const (
	testNQN     = "nqn.2026-11.io.mpathfs:test"
	testHostNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001"
	ioTimeout   = 10 * time.Second
)

var testHostID = [16]byte{0x11, 0x22, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

type client struct {
	t      testing.TB
	nc     net.Conn
	r      *pdu.Reader
	w      *pdu.Writer
	resp   pdu.ICResp
	cid    uint16
	inCap  int // in-capsule limit used by exec for writes
	cntlid uint16
	hostID [16]byte // Connect HOSTID (testHostID if zero)
	host   string   // Connect HOSTNQN override
}

// dial connects and does ICReq/ICResp.
func dial(t testing.TB, addr string, dg pdu.DigestFlags) *client {
	t.Helper()
	c := dialRaw(t, addr)
	if err := c.w.ICReq(pdu.ICReq{Digest: dg}); err != nil {
		t.Fatalf("ICReq: %v", err)
	}
	h, err := c.r.Next()
	if err != nil {
		t.Fatalf("ICResp: %v", err)
	}
	if h.Type != pdu.TypeICResp {
		t.Fatalf("got %s, want ICResp", h.Type)
	}
	c.resp = c.r.ICResp()
	c.r.SetDigests(c.resp.Digest)
	c.w.SetDigests(c.resp.Digest)
	return c
}

func dialRaw(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	return &client{t: t, nc: nc, r: pdu.NewReader(nc, 16<<20), w: pdu.NewWriter(nc), inCap: fabrics.AdminInCapsuleMax}
}

func (c *client) nextCID() uint16 { c.cid++; return c.cid }

// send writes a command; data goes in-capsule if inCapsule, else the
// command only announces it (R2T follows) — or, for reads, len(data) is the
// expected transfer length.
func (c *client) send(cmd *nvme.Command, data []byte, inCapsule bool) {
	c.t.Helper()
	cmd.Flags = nvme.FlagSGL
	if cmd.CID == 0 {
		cmd.CID = c.nextCID()
	}
	cmd.DPTR = nvme.SGL{Type: nvme.SGLTransportDataBlock, Length: uint32(len(data))}
	var ic []byte
	if inCapsule && len(data) > 0 {
		cmd.DPTR.Type = nvme.SGLDataBlockOffset
		ic = data
	}
	if err := c.w.CapsuleCmd(cmd, ic); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// wait reads PDUs until the completion of cid: C2HData goes into rd, R2Ts
// are answered from wr in H2CData PDUs of at most the target's MAXH2CDATA.
// c2h counts the C2HData PDUs seen.
func (c *client) wait(cid uint16, rd, wr []byte) (cqe nvme.Completion, c2h int) {
	c.t.Helper()
	for {
		h, err := c.r.Next()
		if err != nil {
			c.t.Fatalf("waiting for CID %d: %v", cid, err)
		}
		switch h.Type {
		case pdu.TypeCapsuleResp:
			c.r.Completion(&cqe)
			if cqe.CID != cid {
				c.t.Fatalf("completion for CID %d, want %d", cqe.CID, cid)
			}
			return cqe, c2h
		case pdu.TypeC2HData:
			d := c.r.Data()
			if d.CCCID != cid || int(d.Offset)+int(d.Length) > len(rd) {
				c.t.Fatalf("C2HData CID %d off %d len %d, want CID %d within %d", d.CCCID, d.Offset, d.Length, cid, len(rd))
			}
			if err := c.r.ReadData(rd[d.Offset : d.Offset+d.Length]); err != nil {
				c.t.Fatalf("C2HData: %v", err)
			}
			c2h++
			if h.Flags.Has(pdu.FlagSuccess) {
				return nvme.Completion{CID: cid}, c2h
			}
		case pdu.TypeR2T:
			p := c.r.R2T()
			if p.CCCID != cid || int(p.Offset)+int(p.Length) > len(wr) {
				c.t.Fatalf("bad R2T %+v for %d bytes", p, len(wr))
			}
			for off := p.Offset; off < p.Offset+p.Length; {
				n := min(c.resp.MaxH2CData, p.Offset+p.Length-off)
				if err := c.w.H2CData(pdu.Data{CCCID: cid, TTAG: p.TTAG, Offset: off}, wr[off:off+n], off+n == p.Offset+p.Length); err != nil {
					c.t.Fatalf("H2CData: %v", err)
				}
				off += n
			}
		case pdu.TypeC2HTermReq:
			tr, _ := c.r.TermReq()
			c.t.Fatalf("target sent C2HTermReq FES %s FEI %d", tr.FES, tr.FEI)
		default:
			c.t.Fatalf("unexpected %s", h.Type)
		}
	}
}

// exec runs one command: rd receives controller-to-host data, wr is
// host-to-controller data (in-capsule if it fits c.inCap).
func (c *client) exec(cmd nvme.Command, rd, wr []byte) nvme.Completion {
	c.t.Helper()
	switch {
	case wr != nil:
		c.send(&cmd, wr, len(wr) <= c.inCap)
	default:
		c.send(&cmd, rd, false)
	}
	cqe, _ := c.wait(cmd.CID, rd, wr)
	return cqe
}

// must fails the test unless cqe is a success.
func must(t testing.TB, what string, cqe nvme.Completion) nvme.Completion {
	t.Helper()
	if cqe.Status != 0 {
		t.Fatalf("%s: status %s", what, cqe.Status)
	}
	return cqe
}

func wantStatus(t testing.TB, what string, cqe nvme.Completion, want nvme.Status) {
	t.Helper()
	if cqe.Status.Code() != want.Code() || cqe.Status.DNR() != want.DNR() {
		t.Fatalf("%s: status %#x (%s), want %#x (%s)", what, uint16(cqe.Status), cqe.Status, uint16(want), want)
	}
}

// connect sends Connect; it returns the completion.
func (c *client) connect(qid uint16, sqsize uint16, kato time.Duration, subnqn string, cntlid uint16, hostnqn string) nvme.Completion {
	c.t.Helper()
	cmd := fabrics.NewConnect(qid, sqsize, kato, false)
	data := make([]byte, fabrics.ConnectDataSize)
	id := c.hostID
	if id == ([16]byte{}) {
		id = testHostID
	}
	if c.host != "" {
		hostnqn = c.host
	}
	cd := fabrics.ConnectData{HostID: id, CNTLID: cntlid, SubNQN: subnqn, HostNQN: hostnqn}
	cd.Marshal(data)
	return c.exec(cmd, nil, data)
}

func (c *client) propGet(off uint32, size8 bool) uint64 {
	c.t.Helper()
	cqe := must(c.t, "property get", c.exec(fabrics.NewPropertyGet(off, size8), nil, nil))
	return fabrics.PropertyValue(&cqe)
}

// enable runs the Linux enable sequence and waits for CSTS.RDY.
func (c *client) enable() {
	c.t.Helper()
	_ = c.propGet(fabrics.RegCAP, true)
	cc := uint64(fabrics.CCIOSQES | fabrics.CCIOCQES)
	must(c.t, "CC", c.exec(fabrics.NewPropertySet(fabrics.RegCC, cc, false), nil, nil))
	must(c.t, "CC.EN", c.exec(fabrics.NewPropertySet(fabrics.RegCC, cc|uint64(fabrics.CCEnable), false), nil, nil))
	if csts := fabrics.CSTS(c.propGet(fabrics.RegCSTS, false)); !csts.RDY() {
		c.t.Fatalf("CSTS %#x not ready after CC.EN", uint32(csts))
	}
}

// admin opens an enabled admin queue to nqn.
func admin(t testing.TB, addr, nqn string, kato time.Duration, dg pdu.DigestFlags) *client {
	t.Helper()
	c := dial(t, addr, dg)
	cqe := must(t, "admin connect", c.connect(0, 31, kato, nqn, fabrics.CNTLIDDynamic, testHostNQN))
	c.cntlid = uint16(cqe.DW0)
	c.enable()
	return c
}

// ioQueue opens I/O queue qid of the controller behind adm.
func ioQueue(t testing.TB, addr string, adm *client, qid uint16, dg pdu.DigestFlags) *client {
	t.Helper()
	c := dial(t, addr, dg)
	must(t, "io connect", c.connect(qid, 127, 0, testNQN, adm.cntlid, testHostNQN))
	c.cntlid = adm.cntlid
	c.inCap = DefaultInCapsule
	return c
}

// expectEOF waits for the target to close the connection (any data before
// the close is drained); it fails if the connection stays open until the
// deadline.
func (c *client) expectEOF(within time.Duration) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 4096)
	for {
		_, err := c.nc.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("connection still open after %v", within)
		}
		if !errors.Is(err, io.EOF) && !isReset(err) {
			c.t.Fatalf("read: %v, want EOF", err)
		}
		return
	}
}

func isReset(err error) bool {
	return err != nil && (bytes.Contains([]byte(err.Error()), []byte("reset by peer")))
}

// expectSilence asserts that nothing arrives for d (a bounded wait is the
// only way to observe "no answer").
func (c *client) expectSilence(d time.Duration) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, err := c.nc.Read(b[:])
	var ne net.Error
	if n > 0 || !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("expected silence, got %d bytes, err %v", n, err)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
}

func fill(b []byte, seed int) {
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
}

func (c *client) String() string { return fmt.Sprintf("client(%s)", c.nc.LocalAddr()) }
