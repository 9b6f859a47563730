package pdu

import (
	"bytes"
	"testing"

	"github.com/mpathfs/mpathfs/nvme"
)

// FuzzReader feeds arbitrary streams to the Reader with every digest
// setting: it must never panic, never loop, and never read more data than a
// PDU declares within the limit.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	_ = w.ICResp(ICResp{MaxH2CData: 4096})
	_ = w.CapsuleResp(&nvme.Completion{CID: 1})
	_ = w.C2HData(Data{CCCID: 1}, []byte("data"), true, true)
	_ = w.R2T(R2T{CCCID: 1, Length: 4})
	_ = w.TermReq(TypeC2HTermReq, TermReq{FES: 1, Header: []byte{1, 2, 3}})
	f.Add(buf.Bytes(), uint8(0))
	buf.Reset()
	w.SetDigests(DigestHeader | DigestData)
	_ = w.CapsuleCmd(&nvme.Command{Opcode: 1}, []byte("incapsule"))
	_ = w.H2CData(Data{CCCID: 1}, []byte("abcd"), true)
	f.Add(buf.Bytes(), uint8(3))
	f.Fuzz(func(t *testing.T, stream []byte, digests uint8) {
		r := NewReader(bytes.NewReader(stream), 4096)
		r.SetDigests(DigestFlags(digests & 3))
		dst := make([]byte, 4096)
		for i := 0; i <= len(stream); i++ {
			h, err := r.Next()
			if err != nil {
				return
			}
			switch h.Type {
			case TypeICReq:
				_ = r.ICReq()
			case TypeICResp:
				_ = r.ICResp()
			case TypeH2CTermReq, TypeC2HTermReq:
				if _, err := r.TermReq(); err != nil {
					return
				}
			case TypeCapsuleCmd:
				var c nvme.Command
				r.Command(&c)
			case TypeCapsuleResp:
				var c nvme.Completion
				r.Completion(&c)
			case TypeR2T:
				_ = r.R2T()
			case TypeH2CData, TypeC2HData:
				_ = r.Data()
			}
			n := r.DataLen()
			if n > 4096 && h.Type != TypeH2CTermReq && h.Type != TypeC2HTermReq {
				t.Fatalf("accepted %d data bytes over the 4096 limit", n)
			}
			if n > 0 && h.Type.carriesData() {
				if err := r.ReadData(dst[:n/2]); err != nil {
					return
				}
			}
		}
		t.Fatal("more PDUs than bytes: reader does not advance")
	})
}
