package auth

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Security protocol fields of AUTH_Send and AUTH_Receive for DH-HMAC-CHAP.
const (
	SECP  = 0xE9
	SPSP0 = 0x01
	SPSP1 = 0x01
)

// Message classes (AUTH-Type) and identifiers (AUTH-Id).
const (
	TypeCommon = 0x00
	TypeDHCHAP = 0x01

	IDNegotiate = 0x00
	IDChallenge = 0x01
	IDReply     = 0x02
	IDSuccess1  = 0x03
	IDSuccess2  = 0x04
	IDFailure2  = 0xF0
	IDFailure1  = 0xF1

	// AuthIDDHCHAP is the protocol descriptor's AUTHID for DH-HMAC-CHAP.
	AuthIDDHCHAP = 0x01
)

// Reason code and explanations of the failure messages.
const (
	ReasonFailed = 0x01

	ExplFailed           = 0x01
	ExplNotUsable        = 0x02
	ExplConcatMismatch   = 0x03
	ExplHashUnusable     = 0x04
	ExplDHGroupUnusable  = 0x05
	ExplIncorrectPayload = 0x06
	ExplIncorrectMessage = 0x07
)

// ExplanationString names a failure reason code explanation.
func ExplanationString(e uint8) string {
	switch e {
	case ExplFailed:
		return "authentication failed"
	case ExplNotUsable:
		return "authentication protocol not usable"
	case ExplConcatMismatch:
		return "secure channel concatenation mismatch"
	case ExplHashUnusable:
		return "hash function not usable"
	case ExplDHGroupUnusable:
		return "DH group not usable"
	case ExplIncorrectPayload:
		return "incorrect payload"
	case ExplIncorrectMessage:
		return "incorrect protocol message"
	}
	return fmt.Sprintf("unknown explanation %#02x", e)
}

// Sizes of the fixed parts.
const (
	negotiateHdr   = 8
	descriptorSize = 64
	maxIDs         = 30
	challengeHdr   = 16
	replyHdr       = 16
	success1Hdr    = 16
	success2Size   = 16
	failureSize    = 8
)

// ErrMessage is a malformed or unexpected authentication message.
var ErrMessage = errors.New("nvme auth: malformed message")

// Negotiate is AUTH_Negotiate with one DH-HMAC-CHAP protocol descriptor.
type Negotiate struct {
	TID    uint16
	SCC    uint8 // secure channel concatenation (0: none)
	Hashes []Hash
	Groups []DHGroup
}

// Marshal returns the wire form (72 bytes).
func (m *Negotiate) Marshal() []byte {
	b := make([]byte, negotiateHdr+descriptorSize)
	b[0], b[1] = TypeCommon, IDNegotiate
	binary.LittleEndian.PutUint16(b[4:], m.TID)
	b[6], b[7] = m.SCC, 1
	d := b[negotiateHdr:]
	d[0] = AuthIDDHCHAP
	hs, gs := m.Hashes, m.Groups
	if len(hs) > maxIDs {
		hs = hs[:maxIDs]
	}
	if len(gs) > maxIDs {
		gs = gs[:maxIDs]
	}
	d[2], d[3] = uint8(len(hs)), uint8(len(gs))
	for i, h := range hs {
		d[4+i] = uint8(h)
	}
	for i, g := range gs {
		d[4+maxIDs+i] = uint8(g)
	}
	return b
}

// ParseNegotiate decodes AUTH_Negotiate; only the first descriptor is
// read (the kernel target requires exactly one, NAPD 1: checked by the
// caller, which answers with its own failure code).
func ParseNegotiate(b []byte) (*Negotiate, uint8, error) {
	if len(b) < negotiateHdr+descriptorSize {
		return nil, 0, fmt.Errorf("%w: negotiate of %d bytes", ErrMessage, len(b))
	}
	if b[0] != TypeCommon || b[1] != IDNegotiate {
		return nil, 0, fmt.Errorf("%w: %02x/%02x is not a negotiate", ErrMessage, b[0], b[1])
	}
	m := &Negotiate{TID: binary.LittleEndian.Uint16(b[4:]), SCC: b[6]}
	napd := b[7]
	d := b[negotiateHdr:]
	if d[0] != AuthIDDHCHAP {
		return m, napd, fmt.Errorf("%w: authid %#02x", ErrMessage, d[0])
	}
	halen, dhlen := int(d[2]), int(d[3])
	if halen > maxIDs || dhlen > maxIDs {
		return m, napd, fmt.Errorf("%w: halen %d dhlen %d", ErrMessage, halen, dhlen)
	}
	for _, id := range d[4 : 4+halen] {
		m.Hashes = append(m.Hashes, Hash(id))
	}
	for _, id := range d[4+maxIDs : 4+maxIDs+dhlen] {
		m.Groups = append(m.Groups, DHGroup(id))
	}
	return m, napd, nil
}

// Challenge is DH-HMAC-CHAP_Challenge.
type Challenge struct {
	TID   uint16
	Hash  Hash
	Group DHGroup
	Seq   uint32
	C     []byte // challenge C1, Hash.Size() bytes
	DHV   []byte // controller's DH public value (empty with the null group)
}

// Marshal returns the wire form.
func (m *Challenge) Marshal() []byte {
	b := make([]byte, challengeHdr+len(m.C)+len(m.DHV))
	b[0], b[1] = TypeDHCHAP, IDChallenge
	binary.LittleEndian.PutUint16(b[4:], m.TID)
	b[6] = uint8(len(m.C))
	b[8], b[9] = uint8(m.Hash), uint8(m.Group)
	binary.LittleEndian.PutUint16(b[10:], uint16(len(m.DHV)))
	binary.LittleEndian.PutUint32(b[12:], m.Seq)
	copy(b[challengeHdr:], m.C)
	copy(b[challengeHdr+len(m.C):], m.DHV)
	return b
}

// ParseChallenge decodes DH-HMAC-CHAP_Challenge (b may carry trailing
// padding). It checks only the framing; HL against the hash, the group
// and DHVLEN are the host's to judge.
func ParseChallenge(b []byte) (*Challenge, error) {
	if err := header(b, challengeHdr, TypeDHCHAP, IDChallenge); err != nil {
		return nil, err
	}
	hl, dhvlen := int(b[6]), int(binary.LittleEndian.Uint16(b[10:]))
	if challengeHdr+hl+dhvlen > len(b) {
		return nil, fmt.Errorf("%w: challenge hl %d dhvlen %d beyond %d bytes", ErrMessage, hl, dhvlen, len(b))
	}
	v := b[challengeHdr:]
	return &Challenge{
		TID: binary.LittleEndian.Uint16(b[4:]), Hash: Hash(b[8]), Group: DHGroup(b[9]),
		Seq: binary.LittleEndian.Uint32(b[12:]),
		C:   clone(v[:hl]), DHV: clone(v[hl : hl+dhvlen]),
	}, nil
}

// Reply is DH-HMAC-CHAP_Reply.
type Reply struct {
	TID      uint16
	Response []byte // R1, HL bytes
	C2       []byte // challenge for the controller (nil: CVALID 0)
	Seq      uint32 // S2 (0 without bidirectional authentication)
	DHV      []byte // host's DH public value
}

// Marshal returns the wire form; like Linux it always carries HL bytes of
// C2 (zeros when CVALID is 0).
func (m *Reply) Marshal() []byte {
	hl := len(m.Response)
	b := make([]byte, replyHdr+2*hl+len(m.DHV))
	b[0], b[1] = TypeDHCHAP, IDReply
	binary.LittleEndian.PutUint16(b[4:], m.TID)
	b[6] = uint8(hl)
	if m.C2 != nil {
		b[8] = 1
	}
	binary.LittleEndian.PutUint16(b[10:], uint16(len(m.DHV)))
	binary.LittleEndian.PutUint32(b[12:], m.Seq)
	copy(b[replyHdr:], m.Response)
	copy(b[replyHdr+hl:replyHdr+2*hl], m.C2)
	copy(b[replyHdr+2*hl:], m.DHV)
	return b
}

// ParseReply decodes DH-HMAC-CHAP_Reply.
func ParseReply(b []byte) (*Reply, error) {
	if err := header(b, replyHdr, TypeDHCHAP, IDReply); err != nil {
		return nil, err
	}
	hl, dhvlen := int(b[6]), int(binary.LittleEndian.Uint16(b[10:]))
	if replyHdr+2*hl+dhvlen > len(b) {
		return nil, fmt.Errorf("%w: reply hl %d dhvlen %d beyond %d bytes", ErrMessage, hl, dhvlen, len(b))
	}
	v := b[replyHdr:]
	m := &Reply{TID: binary.LittleEndian.Uint16(b[4:]), Seq: binary.LittleEndian.Uint32(b[12:]),
		Response: clone(v[:hl]), DHV: clone(v[2*hl : 2*hl+dhvlen])}
	if b[8] != 0 {
		m.C2 = clone(v[hl : 2*hl])
	}
	return m, nil
}

// Success1 is DH-HMAC-CHAP_Success1.
type Success1 struct {
	TID      uint16
	HL       uint8
	Response []byte // R2 (nil: RVALID 0)
}

// Marshal returns the wire form: the header and HL bytes of R2 (zeros
// when RVALID is 0; Linux 6.3+ hosts expect them).
func (m *Success1) Marshal() []byte {
	b := make([]byte, success1Hdr+int(m.HL))
	b[0], b[1] = TypeDHCHAP, IDSuccess1
	binary.LittleEndian.PutUint16(b[4:], m.TID)
	b[6] = m.HL
	if m.Response != nil {
		b[8] = 1
		copy(b[success1Hdr:], m.Response)
	}
	return b
}

// ParseSuccess1 decodes DH-HMAC-CHAP_Success1.
func ParseSuccess1(b []byte) (*Success1, error) {
	if err := header(b, success1Hdr, TypeDHCHAP, IDSuccess1); err != nil {
		return nil, err
	}
	m := &Success1{TID: binary.LittleEndian.Uint16(b[4:]), HL: b[6]}
	if b[8] != 0 {
		if success1Hdr+int(m.HL) > len(b) {
			return nil, fmt.Errorf("%w: success1 hl %d beyond %d bytes", ErrMessage, m.HL, len(b))
		}
		m.Response = clone(b[success1Hdr : success1Hdr+int(m.HL)])
	}
	return m, nil
}

// Success2 is DH-HMAC-CHAP_Success2.
type Success2 struct{ TID uint16 }

// Marshal returns the wire form (16 bytes).
func (m *Success2) Marshal() []byte {
	b := make([]byte, success2Size)
	b[0], b[1] = TypeDHCHAP, IDSuccess2
	binary.LittleEndian.PutUint16(b[4:], m.TID)
	return b
}

// ParseSuccess2 decodes DH-HMAC-CHAP_Success2.
func ParseSuccess2(b []byte) (*Success2, error) {
	if err := header(b, success2Size, TypeDHCHAP, IDSuccess2); err != nil {
		return nil, err
	}
	return &Success2{TID: binary.LittleEndian.Uint16(b[4:])}, nil
}

// Failure is AUTH_Failure1 (controller to host) or AUTH_Failure2 (host to
// controller).
type Failure struct {
	ID          uint8 // IDFailure1 or IDFailure2
	TID         uint16
	Reason      uint8
	Explanation uint8
}

// Marshal returns the wire form (8 bytes).
func (m *Failure) Marshal() []byte {
	b := make([]byte, failureSize)
	b[0], b[1] = TypeCommon, m.ID
	binary.LittleEndian.PutUint16(b[4:], m.TID)
	b[6], b[7] = m.Reason, m.Explanation
	return b
}

// ParseFailure decodes AUTH_Failure1 or AUTH_Failure2.
func ParseFailure(b []byte) (*Failure, error) {
	if len(b) < failureSize || b[0] != TypeCommon || (b[1] != IDFailure1 && b[1] != IDFailure2) {
		return nil, fmt.Errorf("%w: not a failure message", ErrMessage)
	}
	return &Failure{ID: b[1], TID: binary.LittleEndian.Uint16(b[4:]), Reason: b[6], Explanation: b[7]}, nil
}

// Kind returns the AUTH-Type and AUTH-Id of a message (0, 0 when b is
// shorter than 2 bytes).
func Kind(b []byte) (typ, id uint8) {
	if len(b) < 2 {
		return 0, 0
	}
	return b[0], b[1]
}

// Parse decodes any authentication message by its type and identifier:
// *Negotiate, *Challenge, *Reply, *Success1, *Success2 or *Failure.
func Parse(b []byte) (any, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes", ErrMessage, len(b))
	}
	switch {
	case b[0] == TypeCommon && b[1] == IDNegotiate:
		m, _, err := ParseNegotiate(b)
		if err != nil {
			return nil, err
		}
		return m, nil
	case b[0] == TypeCommon && (b[1] == IDFailure1 || b[1] == IDFailure2):
		return ParseFailure(b)
	case b[0] == TypeDHCHAP && b[1] == IDChallenge:
		return ParseChallenge(b)
	case b[0] == TypeDHCHAP && b[1] == IDReply:
		return ParseReply(b)
	case b[0] == TypeDHCHAP && b[1] == IDSuccess1:
		return ParseSuccess1(b)
	case b[0] == TypeDHCHAP && b[1] == IDSuccess2:
		return ParseSuccess2(b)
	}
	return nil, fmt.Errorf("%w: unknown message %02x/%02x", ErrMessage, b[0], b[1])
}

func header(b []byte, size int, typ, id uint8) error {
	if len(b) < size {
		return fmt.Errorf("%w: %d bytes, want at least %d", ErrMessage, len(b), size)
	}
	if b[0] != typ || b[1] != id {
		return fmt.Errorf("%w: %02x/%02x, want %02x/%02x", ErrMessage, b[0], b[1], typ, id)
	}
	return nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
