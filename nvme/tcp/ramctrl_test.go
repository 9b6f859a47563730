package tcp

import (
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

// ramCtrl is a minimal serving controller over a RAM disk for concurrency
// tests and benchmarks: Read, Write (in-capsule or one R2T for the whole
// transfer, like the Linux target) and Flush. It runs on its own goroutine
// and reports errors instead of failing the test.
type ramCtrl struct {
	conn    net.Conn
	r       *pdu.Reader
	w       *pdu.Writer
	disk    []byte
	c2hSize int  // split read data into C2HData PDUs of this size (0: one PDU)
	success bool // complete reads with the SUCCESS flag
	pending map[uint16]*ramWrite
}

type ramWrite struct {
	off, n, got uint32
}

const ramBlock = 512

func newRAMCtrl(conn net.Conn, size int) *ramCtrl {
	return &ramCtrl{
		conn:    conn,
		r:       pdu.NewReader(conn, 1<<30),
		w:       pdu.NewWriter(conn),
		disk:    make([]byte, size),
		pending: make(map[uint16]*ramWrite),
	}
}

// handshake answers the host's ICReq.
func (s *ramCtrl) handshake(maxH2C uint32) error {
	h, err := s.r.Next()
	if err != nil {
		return err
	}
	if h.Type != pdu.TypeICReq {
		return fmt.Errorf("got %s, want ICReq", h.Type)
	}
	req := s.r.ICReq()
	if err := s.w.ICResp(pdu.ICResp{Digest: req.Digest, MaxH2CData: maxH2C}); err != nil {
		return err
	}
	s.r.SetDigests(req.Digest)
	s.w.SetDigests(req.Digest)
	return nil
}

// serve runs until the connection ends; it returns nil on EOF/close.
func (s *ramCtrl) serve() error {
	for {
		h, err := s.r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
				return nil
			}
			return err
		}
		switch h.Type {
		case pdu.TypeCapsuleCmd:
			var c nvme.Command
			s.r.Command(&c)
			err = s.command(&c)
		case pdu.TypeH2CData:
			err = s.h2cData()
		default:
			err = fmt.Errorf("controller: unexpected %s", h.Type)
		}
		if err != nil {
			return err
		}
	}
}

func (s *ramCtrl) resp(cid uint16, st nvme.Status) error {
	return s.w.CapsuleResp(&nvme.Completion{CID: cid, Status: st, SQHD: 0xFFFF})
}

func (s *ramCtrl) command(c *nvme.Command) error {
	slba := uint64(c.CDW10) | uint64(c.CDW11)<<32
	off := slba * ramBlock
	n := uint64(c.CDW12&0xFFFF+1) * ramBlock
	switch nvme.IOOpcode(c.Opcode) {
	case nvme.IOFlush:
		return s.resp(c.CID, 0)
	case nvme.IORead, nvme.IOWrite:
	default:
		return s.resp(c.CID, nvme.StatusInvalidOpcode|nvme.StatusDNR)
	}
	if off+n > uint64(len(s.disk)) || uint64(c.DPTR.Length) != n {
		if s.r.DataLen() > 0 {
			if err := s.r.Discard(); err != nil {
				return err
			}
		}
		return s.resp(c.CID, nvme.StatusLBARange|nvme.StatusDNR)
	}
	buf := s.disk[off : off+n]
	if c.Opcode == uint8(nvme.IORead) {
		step := len(buf)
		if s.c2hSize > 0 {
			step = s.c2hSize
		}
		for o := 0; o < len(buf); o += step {
			e := min(o+step, len(buf))
			last := e == len(buf)
			if err := s.w.C2HData(pdu.Data{CCCID: c.CID, Offset: uint32(o)}, buf[o:e], last, last && s.success); err != nil {
				return err
			}
		}
		if s.success {
			return nil
		}
		return s.resp(c.CID, 0)
	}
	if s.r.DataLen() > 0 { // in-capsule
		if c.DPTR.Type != nvme.SGLDataBlockOffset || s.r.DataLen() != int(n) {
			return fmt.Errorf("controller: in-capsule write with DPTR %+v and %d bytes", c.DPTR, s.r.DataLen())
		}
		if err := s.r.ReadData(buf); err != nil {
			return err
		}
		return s.resp(c.CID, 0)
	}
	s.pending[c.CID] = &ramWrite{off: uint32(off), n: uint32(n)}
	return s.w.R2T(pdu.R2T{CCCID: c.CID, TTAG: c.CID, Offset: 0, Length: uint32(n)})
}

func (s *ramCtrl) h2cData() error {
	d := s.r.Data()
	p := s.pending[d.CCCID]
	if p == nil || d.TTAG != d.CCCID || d.Offset != p.got || d.Offset+d.Length > p.n {
		return fmt.Errorf("controller: unexpected H2CData %+v", d)
	}
	if err := s.r.ReadData(s.disk[p.off+d.Offset : p.off+d.Offset+d.Length]); err != nil {
		return err
	}
	p.got += d.Length
	if p.got < p.n {
		return nil
	}
	if !s.r.Header().Flags.Has(pdu.FlagLast) {
		return fmt.Errorf("controller: final H2CData without LAST")
	}
	delete(s.pending, d.CCCID)
	return s.resp(d.CCCID, 0)
}
