package pdu

import (
	"encoding/binary"
	"io"
	"net"

	"github.com/mpathfs/mpathfs/nvme"
)

// Writer writes PDUs to a byte stream. It is not safe for concurrent use:
// the owner serializes calls. Each method performs exactly one vectored
// write (net.Buffers: writev on a TCP connection) of header, padding, data
// and digests; data is never copied.
type Writer struct {
	w       io.Writer
	digests DigestFlags
	pda     uint8 // alignment the peer asked for data PDUs we send (0's based DWORDs)

	hdr  [ICLen + DigestLen]byte
	pad  [128]byte
	ddg  [DigestLen]byte
	iov  [4][]byte
	bufs net.Buffers
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// SetDigests enables the digests negotiated by ICReq/ICResp.
func (w *Writer) SetDigests(d DigestFlags) { w.digests = d }

// SetPDA sets the data alignment the peer requested (HPDA from the host's
// ICReq for a controller, CPDA from ICResp for a host); 0 means none.
func (w *Writer) SetPDA(pda uint8) { w.pda = pda }

// begin fills the common header for a PDU with the given PSH length and
// data length, and returns the header length including its digest, the pad
// length and the PLEN.
func (w *Writer) frame(t Type, flags Flags, dataLen int) (hdrLen, pad int) {
	hlen := t.HLEN()
	hd := 0
	if t.headerDigest() && w.digests&DigestHeader != 0 {
		hd = DigestLen
		flags |= FlagHDGST
	}
	hdrLen = hlen + hd
	pdo, dd := 0, 0
	if dataLen > 0 {
		pdo = alignPDO(hdrLen, w.pda)
		pad = pdo - hdrLen
		if w.digests&DigestData != 0 {
			dd = DigestLen
			flags |= FlagDDGST
		}
	}
	plen := hdrLen + pad + dataLen + dd
	if dataLen == 0 {
		plen = hdrLen
	}
	b := w.hdr[:]
	b[0], b[1], b[2], b[3] = byte(t), byte(flags), byte(hlen), byte(pdo)
	binary.LittleEndian.PutUint32(b[4:], uint32(plen))
	return hdrLen, pad
}

// send writes the header in w.hdr[:hlen] (adding its digest) followed by
// the data.
func (w *Writer) send(t Type, hdrLen, pad int, data []byte) error {
	hlen := t.HLEN()
	if hdrLen > hlen {
		binary.LittleEndian.PutUint32(w.hdr[hlen:], Digest(w.hdr[:hlen]))
	}
	n := 0
	w.iov[n] = w.hdr[:hdrLen]
	n++
	if len(data) > 0 {
		if pad > 0 {
			w.iov[n] = w.pad[:pad]
			n++
		}
		w.iov[n] = data
		n++
		if w.digests&DigestData != 0 {
			binary.LittleEndian.PutUint32(w.ddg[:], Digest(data))
			w.iov[n] = w.ddg[:]
			n++
		}
	}
	if n == 1 {
		_, err := w.w.Write(w.iov[0])
		w.iov[0] = nil
		return err
	}
	w.bufs = w.iov[:n]
	_, err := w.bufs.WriteTo(w.w)
	w.iov = [4][]byte{}
	return err
}

func (w *Writer) clearPSH(hlen int) {
	clear(w.hdr[CommonHeaderLen:hlen])
}

// ICReq writes an ICReq (never digested).
func (w *Writer) ICReq(p ICReq) error {
	w.frame(TypeICReq, 0, 0)
	w.clearPSH(ICLen)
	b := w.hdr[:]
	binary.LittleEndian.PutUint16(b[8:], p.PFV)
	b[10] = p.HPDA
	b[11] = byte(p.Digest)
	binary.LittleEndian.PutUint32(b[12:], p.MaxR2T)
	return w.send(TypeICReq, ICLen, 0, nil)
}

// ICResp writes an ICResp (never digested).
func (w *Writer) ICResp(p ICResp) error {
	w.frame(TypeICResp, 0, 0)
	w.clearPSH(ICLen)
	b := w.hdr[:]
	binary.LittleEndian.PutUint16(b[8:], p.PFV)
	b[10] = p.CPDA
	b[11] = byte(p.Digest)
	binary.LittleEndian.PutUint32(b[12:], p.MaxH2CData)
	return w.send(TypeICResp, ICLen, 0, nil)
}

// TermReq writes an H2CTermReq or C2HTermReq (t) carrying at most
// MaxTermReqData bytes of the offending header. TermReqs are never digested.
func (w *Writer) TermReq(t Type, p TermReq) error {
	h := p.Header
	if len(h) > MaxTermReqData {
		h = h[:MaxTermReqData]
	}
	b := w.hdr[:]
	b[0], b[1], b[2], b[3] = byte(t), 0, TermReqHLen, 0
	if len(h) > 0 {
		b[3] = TermReqHLen
	}
	binary.LittleEndian.PutUint32(b[4:], uint32(TermReqHLen+len(h)))
	w.clearPSH(TermReqHLen)
	binary.LittleEndian.PutUint16(b[8:], uint16(p.FES))
	binary.LittleEndian.PutUint32(b[10:], p.FEI)
	w.iov[0] = w.hdr[:TermReqHLen]
	if len(h) == 0 {
		return w.sendRaw(1)
	}
	w.iov[1] = h
	return w.sendRaw(2)
}

func (w *Writer) sendRaw(n int) error {
	w.bufs = w.iov[:n]
	_, err := w.bufs.WriteTo(w.w)
	w.iov = [4][]byte{}
	return err
}

// CapsuleCmd writes a command capsule with optional in-capsule data.
func (w *Writer) CapsuleCmd(c *nvme.Command, inCapsule []byte) error {
	hdrLen, pad := w.frame(TypeCapsuleCmd, 0, len(inCapsule))
	c.Marshal(w.hdr[CommonHeaderLen:CapsuleCmdHLen])
	return w.send(TypeCapsuleCmd, hdrLen, pad, inCapsule)
}

// CapsuleResp writes a response capsule.
func (w *Writer) CapsuleResp(c *nvme.Completion) error {
	hdrLen, _ := w.frame(TypeCapsuleResp, 0, 0)
	c.Marshal(w.hdr[CommonHeaderLen:CapsuleRespHLen])
	return w.send(TypeCapsuleResp, hdrLen, 0, nil)
}

func (w *Writer) data(t Type, flags Flags, d Data, data []byte) error {
	hdrLen, pad := w.frame(t, flags, len(data))
	b := w.hdr[:]
	le := binary.LittleEndian
	le.PutUint16(b[8:], d.CCCID)
	le.PutUint16(b[10:], d.TTAG)
	le.PutUint32(b[12:], d.Offset)
	le.PutUint32(b[16:], uint32(len(data)))
	le.PutUint32(b[20:], 0)
	return w.send(t, hdrLen, pad, data)
}

// H2CData writes host-to-controller data for an R2T; last marks the final
// PDU answering that R2T. d.Length is taken from len(data).
func (w *Writer) H2CData(d Data, data []byte, last bool) error {
	var f Flags
	if last {
		f |= FlagLast
	}
	return w.data(TypeH2CData, f, d, data)
}

// C2HData writes controller-to-host data; last marks the final PDU of the
// command and success (valid only with last) says no CapsuleResp follows.
func (w *Writer) C2HData(d Data, data []byte, last, success bool) error {
	var f Flags
	if last {
		f |= FlagLast
		if success {
			f |= FlagSuccess
		}
	}
	d.TTAG = 0
	return w.data(TypeC2HData, f, d, data)
}

// R2T writes a Ready to Transfer PDU.
func (w *Writer) R2T(p R2T) error {
	hdrLen, _ := w.frame(TypeR2T, 0, 0)
	b := w.hdr[:]
	le := binary.LittleEndian
	le.PutUint16(b[8:], p.CCCID)
	le.PutUint16(b[10:], p.TTAG)
	le.PutUint32(b[12:], p.Offset)
	le.PutUint32(b[16:], p.Length)
	le.PutUint32(b[20:], 0)
	return w.send(TypeR2T, hdrLen, 0, nil)
}
