package fabrics

import "github.com/mpathfs/mpathfs/nvme"

// DH-HMAC-CHAP security protocol (SECP) and protocol specific fields
// (SPSP0, SPSP1) of Authentication Send / Receive.
const (
	AuthSECP  = 0xE9
	AuthSPSP0 = 0x01
	AuthSPSP1 = 0x01
)

// NewAuthSend builds an Authentication Send (FCTYPE 5) of tl bytes of
// DH-HMAC-CHAP data: CDW10 carries SPSP0 (byte 41), SPSP1 (42) and SECP
// (43), CDW11 the transfer length.
func NewAuthSend(tl uint32) nvme.Command {
	c := newFabrics(nvme.FabricsAuthSend)
	c.CDW10 = AuthSPSP0<<8 | AuthSPSP1<<16 | AuthSECP<<24
	c.CDW11 = tl
	return c
}

// NewAuthReceive builds an Authentication Receive (FCTYPE 6) with
// allocation length al.
func NewAuthReceive(al uint32) nvme.Command {
	c := NewAuthSend(al)
	c.SetFCType(nvme.FabricsAuthRecv)
	return c
}

// ParseAuth returns the fields of an Authentication Send or Receive: SECP,
// SPSP0, SPSP1 and the transfer or allocation length.
func ParseAuth(cmd *nvme.Command) (secp, spsp0, spsp1 uint8, length uint32) {
	return uint8(cmd.CDW10 >> 24), uint8(cmd.CDW10 >> 8), uint8(cmd.CDW10 >> 16), cmd.CDW11
}
