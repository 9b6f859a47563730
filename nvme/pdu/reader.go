package pdu

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/mpathfs/mpathfs/nvme"
)

// ErrDataDigest is returned by ReadData when the data digest of a PDU does
// not match its data. It concerns one command, not the connection: the
// stream is still in sync (reference §1.9).
var ErrDataDigest = errors.New("nvme-tcp: data digest mismatch")

// errDataState reports misuse of ReadData by the caller.
var errDataState = errors.New("nvme-tcp: ReadData beyond the current PDU's data")

// readBufSize is the bufio size; data reads at least this large bypass it.
const readBufSize = 64 << 10

// Reader reads PDUs from a byte stream. It is used by a single goroutine.
//
// Next reads and validates the next header; the typed accessors then decode
// the PDU-specific header, and ReadData places the PDU's data straight into
// the caller's buffer. Values returned by accessors are valid until the next
// call to Next (TermReq.Header aliases the reader's buffer).
type Reader struct {
	br      *bufio.Reader
	maxData uint32
	digests DigestFlags

	hdr  Header
	raw  [MaxTermReqPLEN]byte // current header (CH + PSH + HDGST), or a TermReq with its data
	hlen int

	padLeft  int    // pad bytes before the data still to skip
	dataLeft int    // data bytes of the current PDU not yet read
	dataLen  int    // data bytes of the current PDU
	ddgst    bool   // current PDU has a data digest
	crc      uint32 // running data digest (crc32 state, not finalised)
	tail     [DigestLen]byte
}

// NewReader returns a Reader on r that refuses PDUs carrying more than
// maxData bytes of data.
func NewReader(r io.Reader, maxData uint32) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, readBufSize), maxData: maxData}
}

// SetDigests enables the digests negotiated by ICReq/ICResp; it applies to
// every PDU read afterwards.
func (r *Reader) SetDigests(d DigestFlags) { r.digests = d }

// Buffered returns how many bytes can be read without reading the
// underlying stream (a caller holding back output flushes it before a read
// that may block).
func (r *Reader) Buffered() int { return r.br.Buffered() }

// SetMaxData changes the largest data length accepted in one PDU.
func (r *Reader) SetMaxData(n uint32) { r.maxData = n }

func (r *Reader) protoErr(fes FES, fei uint32, format string, args ...any) *ProtocolError {
	h := make([]byte, min(r.hlen, MaxTermReqData))
	copy(h, r.raw[:])
	return &ProtocolError{FES: fes, FEI: fei, Reason: fmt.Sprintf(format, args...), Header: h}
}

// Next reads the next PDU header. Data the caller left unread in the
// previous PDU is discarded first. It validates, citing the NVMe/TCP rules:
// a known type with its fixed HLEN; the digest flags against what was
// negotiated; PLEN and PDO consistent with the type; the header digest; the
// data length against the limit and, for data PDUs, against DATAL. Any
// violation is a *ProtocolError; an I/O error is returned as is.
func (r *Reader) Next() (Header, error) {
	if r.dataLeft > 0 || r.padLeft > 0 || r.ddgst {
		if err := r.Discard(); err != nil {
			return Header{}, err
		}
	}
	r.hlen = 0
	r.ddgst = false
	r.dataLen, r.dataLeft, r.padLeft = 0, 0, 0
	if _, err := io.ReadFull(r.br, r.raw[:CommonHeaderLen]); err != nil {
		return Header{}, err
	}
	le := binary.LittleEndian
	h := Header{Type: Type(r.raw[0]), Flags: Flags(r.raw[1]), HLEN: r.raw[2], PDO: r.raw[3], PLEN: le.Uint32(r.raw[4:])}
	r.hdr = h
	r.hlen = CommonHeaderLen
	want := h.Type.HLEN()
	if want == 0 {
		// "PDU-Type: unknown or reserved value" — FEI is the byte offset.
		return h, r.protoErr(FESInvalidHeaderField, 0, "unknown PDU type 0x%02x", uint8(h.Type))
	}
	if int(h.HLEN) != want {
		return h, r.protoErr(FESInvalidHeaderField, 2, "%s: HLEN %d, want %d", h.Type, h.HLEN, want)
	}
	hd := 0
	if h.Type.headerDigest() && r.digests&DigestHeader != 0 {
		hd = DigestLen
		if !h.Flags.Has(FlagHDGST) {
			return h, r.protoErr(FESInvalidHeaderField, 1, "%s: header digest negotiated but HDGSTF clear", h.Type)
		}
	} else if h.Flags.Has(FlagHDGST) {
		return h, r.protoErr(FESInvalidHeaderField, 1, "%s: HDGSTF set but no header digest negotiated", h.Type)
	}
	if h.Flags.Has(FlagDDGST) && (!h.Type.carriesData() || r.digests&DigestData == 0) {
		return h, r.protoErr(FESInvalidHeaderField, 1, "%s: DDGSTF set but no data digest negotiated", h.Type)
	}
	// Read the rest of the header and its digest.
	if _, err := io.ReadFull(r.br, r.raw[CommonHeaderLen:want+hd]); err != nil {
		return h, noEOF(err)
	}
	r.hlen = want
	if hd != 0 {
		got := le.Uint32(r.raw[want:])
		if calc := Digest(r.raw[:want]); got != calc {
			return h, r.protoErr(FESHeaderDigest, 0, "%s: header digest 0x%08x, computed 0x%08x", h.Type, got, calc)
		}
	}
	hdrEnd := want + hd
	switch {
	case h.Type == TypeICReq || h.Type == TypeICResp:
		if h.PLEN != ICLen || h.PDO != 0 {
			return h, r.protoErr(FESInvalidHeaderField, 4, "%s: PLEN %d, want %d", h.Type, h.PLEN, ICLen)
		}
	case h.Type == TypeH2CTermReq || h.Type == TypeC2HTermReq:
		if h.PLEN < TermReqHLen || h.PLEN > MaxTermReqPLEN {
			return h, r.protoErr(FESInvalidHeaderField, 4, "%s: PLEN %d out of range %d..%d", h.Type, h.PLEN, TermReqHLen, MaxTermReqPLEN)
		}
		r.dataLen = int(h.PLEN) - TermReqHLen
		r.dataLeft = r.dataLen
	case !h.Type.carriesData():
		if h.PLEN != uint32(hdrEnd) || h.PDO != 0 {
			return h, r.protoErr(FESInvalidHeaderField, 4, "%s: PLEN %d PDO %d, want PLEN %d PDO 0", h.Type, h.PLEN, h.PDO, hdrEnd)
		}
	default:
		if h.PLEN == uint32(hdrEnd) && h.PDO == 0 {
			if h.Type != TypeCapsuleCmd {
				return h, r.protoErr(FESInvalidHeaderField, 3, "%s without data", h.Type)
			}
			break // a command without in-capsule data
		}
		if int(h.PDO) < hdrEnd || uint32(h.PDO) > h.PLEN {
			return h, r.protoErr(FESInvalidHeaderField, 3, "%s: PDO %d outside %d..PLEN %d", h.Type, h.PDO, hdrEnd, h.PLEN)
		}
		dd := 0
		if r.digests&DigestData != 0 {
			if !h.Flags.Has(FlagDDGST) {
				return h, r.protoErr(FESInvalidHeaderField, 1, "%s: data digest negotiated but DDGSTF clear", h.Type)
			}
			dd = DigestLen
		}
		n := int64(h.PLEN) - int64(h.PDO) - int64(dd)
		if n <= 0 {
			return h, r.protoErr(FESInvalidHeaderField, 4, "%s: PLEN %d leaves no data after PDO %d", h.Type, h.PLEN, h.PDO)
		}
		if n > int64(r.maxData) {
			return h, r.protoErr(FESR2TLimit, 4, "%s: %d data bytes exceed the limit %d", h.Type, n, r.maxData)
		}
		if h.Type == TypeH2CData || h.Type == TypeC2HData {
			if datal := le.Uint32(r.raw[16:]); int64(datal) != n {
				return h, r.protoErr(FESInvalidHeaderField, 16, "%s: DATAL %d but PDU carries %d bytes", h.Type, datal, n)
			}
		}
		r.padLeft = int(h.PDO) - hdrEnd
		r.dataLen, r.dataLeft = int(n), int(n)
		r.ddgst = dd != 0
		r.crc = 0
	}
	return h, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Header returns the current PDU's common header.
func (r *Reader) Header() Header { return r.hdr }

// RawHeader returns the current PDU's header bytes (CH + PSH), valid until
// the next call to Next.
func (r *Reader) RawHeader() []byte { return r.raw[:r.hlen] }

// DataLen is the number of data bytes the current PDU carries (in-capsule
// data or DATAL).
func (r *Reader) DataLen() int { return r.dataLen }

// ICReq decodes the current PDU as an ICReq.
func (r *Reader) ICReq() ICReq {
	b := r.raw[:]
	return ICReq{PFV: binary.LittleEndian.Uint16(b[8:]), HPDA: b[10], Digest: DigestFlags(b[11]), MaxR2T: binary.LittleEndian.Uint32(b[12:])}
}

// ICResp decodes the current PDU as an ICResp.
func (r *Reader) ICResp() ICResp {
	b := r.raw[:]
	return ICResp{PFV: binary.LittleEndian.Uint16(b[8:]), CPDA: b[10], Digest: DigestFlags(b[11]), MaxH2CData: binary.LittleEndian.Uint32(b[12:])}
}

// TermReq decodes the current PDU as a TermReq, reading its data (the copy
// of the offending header).
func (r *Reader) TermReq() (TermReq, error) {
	b := r.raw[:]
	t := TermReq{FES: FES(binary.LittleEndian.Uint16(b[8:])), FEI: binary.LittleEndian.Uint32(b[10:])}
	if r.dataLeft > 0 {
		// The header copy goes into the tail of raw, past the 24-byte PSH.
		buf := r.raw[TermReqHLen : TermReqHLen+r.dataLeft]
		if _, err := io.ReadFull(r.br, buf); err != nil {
			return t, noEOF(err)
		}
		r.dataLeft = 0
		t.Header = buf
	}
	return t, nil
}

// Command decodes the SQE of the current CapsuleCmd into c.
func (r *Reader) Command(c *nvme.Command) { _ = c.Unmarshal(r.raw[CommonHeaderLen:CapsuleCmdHLen]) }

// Completion decodes the CQE of the current CapsuleResp into c.
func (r *Reader) Completion(c *nvme.Completion) {
	_ = c.Unmarshal(r.raw[CommonHeaderLen:CapsuleRespHLen])
}

// Data decodes the current H2CData or C2HData header.
func (r *Reader) Data() Data {
	b := r.raw[:]
	le := binary.LittleEndian
	return Data{CCCID: le.Uint16(b[8:]), TTAG: le.Uint16(b[10:]), Offset: le.Uint32(b[12:]), Length: le.Uint32(b[16:])}
}

// R2T decodes the current R2T header.
func (r *Reader) R2T() R2T {
	b := r.raw[:]
	le := binary.LittleEndian
	return R2T{CCCID: le.Uint16(b[8:]), TTAG: le.Uint16(b[10:]), Offset: le.Uint32(b[12:]), Length: le.Uint32(b[16:])}
}

func (r *Reader) skipPad() error {
	if r.padLeft > 0 {
		if _, err := r.br.Discard(r.padLeft); err != nil {
			return noEOF(err)
		}
		r.padLeft = 0
	}
	return nil
}

// DataDigest reports whether the current PDU carries a data digest (checked
// only once all its data has been read).
func (r *Reader) DataDigest() bool { return r.ddgst }

// ReadData reads the next len(dst) data bytes of the current PDU straight
// into dst. It may be called several times for one PDU. When the last byte
// has been read the data digest, if any, is checked: a mismatch returns
// ErrDataDigest (the stream stays in sync).
func (r *Reader) ReadData(dst []byte) error {
	if len(dst) > r.dataLeft {
		return errDataState
	}
	if err := r.skipPad(); err != nil {
		return err
	}
	if _, err := io.ReadFull(r.br, dst); err != nil {
		return noEOF(err)
	}
	r.dataLeft -= len(dst)
	if !r.ddgst {
		return nil
	}
	r.crc = crc32Update(r.crc, dst)
	if r.dataLeft > 0 {
		return nil
	}
	return r.checkDataDigest()
}

func (r *Reader) checkDataDigest() error {
	r.ddgst = false
	if _, err := io.ReadFull(r.br, r.tail[:]); err != nil {
		return noEOF(err)
	}
	if binary.LittleEndian.Uint32(r.tail[:]) != r.crc {
		return ErrDataDigest
	}
	return nil
}

// Discard skips the rest of the current PDU's data and its digest.
func (r *Reader) Discard() error {
	if err := r.skipPad(); err != nil {
		return err
	}
	if r.dataLeft > 0 {
		if _, err := r.br.Discard(r.dataLeft); err != nil {
			return noEOF(err)
		}
		r.dataLeft = 0
	}
	if r.ddgst {
		r.ddgst = false
		if _, err := r.br.Discard(DigestLen); err != nil {
			return noEOF(err)
		}
	}
	return nil
}
