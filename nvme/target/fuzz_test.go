package target

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

// hostStream builds the bytes a host sends: ICReq, admin Connect, enable,
// then more commands.
func hostStream(dg pdu.DigestFlags, extra func(w *pdu.Writer)) []byte {
	var b bytes.Buffer
	w := pdu.NewWriter(&b)
	_ = w.ICReq(pdu.ICReq{Digest: dg})
	w.SetDigests(dg)
	cmd := fabrics.NewConnect(0, 31, 0, false)
	cmd.CID = 1
	cmd.DPTR = nvme.SGL{Type: nvme.SGLDataBlockOffset, Length: fabrics.ConnectDataSize}
	data := make([]byte, fabrics.ConnectDataSize)
	cd := fabrics.ConnectData{CNTLID: 0xFFFF, SubNQN: testNQN, HostNQN: testHostNQN}
	cd.Marshal(data)
	_ = w.CapsuleCmd(&cmd, data)
	cc := fabrics.NewPropertySet(fabrics.RegCC, uint64(fabrics.CCIOSQES|fabrics.CCIOCQES|fabrics.CCEnable), false)
	cc.CID = 2
	_ = w.CapsuleCmd(&cc, nil)
	if extra != nil {
		extra(w)
	}
	return b.Bytes()
}

// FuzzConnection feeds arbitrary bytes to a target connection: it must
// never panic or hang, only answer, send a C2HTermReq and close.
func FuzzConnection(f *testing.F) {
	f.Add(hostStream(0, nil))
	f.Add(hostStream(pdu.DigestHeader|pdu.DigestData, func(w *pdu.Writer) {
		id := nvme.NewIdentify(nvme.CNSController, 0, 0, 0)
		id.CID = 3
		id.DPTR = nvme.SGL{Type: nvme.SGLTransportDataBlock, Length: 4096}
		_ = w.CapsuleCmd(&id, nil)
	}))
	f.Add(hostStream(0, func(w *pdu.Writer) {
		aer := nvme.NewAsyncEventRequest()
		aer.CID = 4
		_ = w.CapsuleCmd(&aer, nil)
		_ = w.H2CData(pdu.Data{CCCID: 4, TTAG: 0}, make([]byte, 64), true)
	}))
	f.Add([]byte{0, 0, 128, 0, 128, 0, 0, 0})
	f.Add([]byte{4, 0, 72, 0, 0xFF, 0xFF, 0xFF, 0x7F})

	tg := New(nil)
	defer tg.Close()
	s, _ := tg.AddSubsystem(SubsystemConfig{NQN: testNQN})
	if _, err := s.AddNamespace(NamespaceConfig{NSID: 1, Size: 1 << 20}); err != nil {
		f.Fatal(err)
	}
	p, err := tg.AddPort(PortConfig{ID: 1})
	if err != nil {
		f.Fatal(err)
	}
	if err := p.LinkSubsystem(testNQN); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		host, tgt := net.Pipe()
		c := newConn(p, tgt)
		served := make(chan struct{})
		tg.wg.Add(1)
		go func() { c.serve(); close(served) }()
		_ = host.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			// Write returns once the target consumed everything (or
			// stopped reading); then the stream ends.
			_, _ = host.Write(in)
			host.Close()
		}()
		_, _ = io.Copy(io.Discard, host)
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			t.Fatal("target connection did not end")
		}
	})
}
