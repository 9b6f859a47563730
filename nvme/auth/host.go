package auth

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
)

// ReceiveSize is the allocation length of the host's AUTH_Receive
// commands (Linux's CHAP_BUF_SIZE; enough for ffdhe8192).
const ReceiveSize = 4096

// Transport carries one queue's authentication messages.
type Transport interface {
	// Send issues AUTH_Send with msg.
	Send(ctx context.Context, msg []byte) error
	// Receive issues AUTH_Receive with allocation length n.
	Receive(ctx context.Context, n int) ([]byte, error)
}

// HostParams are the inputs of one host-side authentication.
type HostParams struct {
	HostNQN, SubNQN string
	Key             *Key    // the host's secret (dhchap_secret), required
	CtrlKey         *Key    // the controller's secret (dhchap_ctrl_secret): bidirectional
	TID             uint16  // transaction identifier
	Seq             *SeqNum // S2 source for bidirectional authentication
	Rand            io.Reader
}

// Result is what a successful authentication negotiated.
type Result struct {
	Hash          Hash
	Group         DHGroup
	Bidirectional bool // the controller's response was verified
}

// Authenticate runs DH-HMAC-CHAP as the host on one queue (nvme_queue_auth_work):
// Negotiate, Challenge, Reply, Success1 and, when bidirectional, Success2;
// on a local failure it sends Failure2. A failed authentication is an
// *Error; transport errors (and NVMe status errors of the commands) are
// returned wrapped.
func Authenticate(ctx context.Context, t Transport, p HostParams) (Result, error) {
	var res Result
	if p.Key == nil {
		return res, errors.New("nvme auth: no key")
	}
	rnd := orRand(p.Rand)
	neg := Negotiate{TID: p.TID, Hashes: Hashes, Groups: DHGroups}
	if err := t.Send(ctx, neg.Marshal()); err != nil {
		return res, fmt.Errorf("nvme auth: send negotiate: %w", err)
	}
	b, err := t.Receive(ctx, ReceiveSize)
	if err != nil {
		return res, fmt.Errorf("nvme auth: receive challenge: %w", err)
	}
	if err := expect(b, p.TID, IDChallenge); err != nil {
		return res, err
	}
	ch, err := ParseChallenge(b)
	if err != nil {
		return res, &Error{Explanation: ExplIncorrectPayload, Msg: err.Error()}
	}
	st := hostState{t: t, p: &p}
	defer st.zero()
	r1, expl, err := st.challenge(ch, rnd)
	if err != nil {
		return res, st.fail2(ctx, expl, err)
	}
	res.Hash, res.Group = ch.Hash, ch.Group
	reply := Reply{TID: p.TID, Response: r1, DHV: st.pub}
	if p.CtrlKey != nil {
		if reply.C2, err = randBytes(rnd, ch.Hash.Size()); err != nil {
			return res, st.fail2(ctx, ExplFailed, err)
		}
		seq := p.Seq
		if seq == nil {
			seq = new(SeqNum)
		}
		reply.Seq = seq.Next()
	}
	if err := t.Send(ctx, reply.Marshal()); err != nil {
		return res, fmt.Errorf("nvme auth: send reply: %w", err)
	}
	b, err = t.Receive(ctx, ReceiveSize)
	if err != nil {
		return res, fmt.Errorf("nvme auth: receive success1: %w", err)
	}
	if err := expect(b, p.TID, IDSuccess1); err != nil {
		return res, err
	}
	s1, err := ParseSuccess1(b)
	if err != nil {
		return res, st.fail2(ctx, ExplIncorrectPayload, err)
	}
	if int(s1.HL) != ch.Hash.Size() {
		return res, st.fail2(ctx, ExplHashUnusable, fmt.Errorf("invalid hash length %d", s1.HL))
	}
	if p.CtrlKey != nil {
		// Linux accepts a Success1 without RVALID even when it asked
		// for bidirectional authentication; we do not.
		c2 := reply.C2
		if st.sess != nil {
			c2 = augment(ch.Hash, st.sess, c2)
			defer zero(c2)
		}
		want := CtrlResponse(ch.Hash, p.CtrlKey, c2, reply.Seq, p.TID, p.HostNQN, p.SubNQN)
		ok := s1.Response != nil && hmac.Equal(want, s1.Response)
		zero(want)
		if !ok {
			return res, st.fail2(ctx, ExplFailed, errors.New("controller authentication failed"))
		}
		res.Bidirectional = true
		if err := t.Send(ctx, (&Success2{TID: p.TID}).Marshal()); err != nil {
			return res, fmt.Errorf("nvme auth: send success2: %w", err)
		}
	}
	return res, nil
}

// expect checks a received message: AUTH_Failure1 becomes a remote
// *Error, anything but the expected DH-HMAC-CHAP message or the wrong
// transaction an "incorrect message" *Error (no Failure2 is sent, as in
// nvme_auth_receive_validate).
func expect(b []byte, tid uint16, id uint8) error {
	typ, got := Kind(b)
	if typ == TypeCommon && got == IDFailure1 {
		f, err := ParseFailure(b)
		if err != nil {
			return &Error{Explanation: ExplIncorrectMessage, Msg: err.Error()}
		}
		return &Error{Explanation: f.Explanation, Remote: true}
	}
	if typ != TypeDHCHAP || got != id {
		return &Error{Explanation: ExplIncorrectMessage, Msg: fmt.Sprintf("invalid message %02x/%02x", typ, got)}
	}
	if len(b) < 6 || uint16(b[4])|uint16(b[5])<<8 != tid {
		return &Error{Explanation: ExplIncorrectMessage, Msg: "invalid transaction ID"}
	}
	return nil
}

type hostState struct {
	t    Transport
	p    *HostParams
	dh   *dhKey
	pub  []byte
	sess []byte
}

// challenge checks the challenge's parameters, runs the DH exchange and
// returns R1, or the failure explanation.
func (s *hostState) challenge(ch *Challenge, rnd io.Reader) ([]byte, uint8, error) {
	if !ch.Hash.Valid() {
		return nil, ExplHashUnusable, fmt.Errorf("invalid HASH ID %d", ch.Hash)
	}
	if len(ch.C) != ch.Hash.Size() {
		return nil, ExplHashUnusable, fmt.Errorf("invalid hash length %d", len(ch.C))
	}
	if !ch.Group.Valid() {
		return nil, ExplDHGroupUnusable, fmt.Errorf("invalid DH group id %d", ch.Group)
	}
	c1 := ch.C
	if ch.Group != DHNull {
		if len(ch.DHV) == 0 {
			return nil, ExplDHGroupUnusable, errors.New("empty DH value")
		}
		var err error
		if s.dh, err = newDHKey(ch.Group, rnd); err != nil {
			return nil, ExplFailed, err
		}
		s.pub = s.dh.pub
		if s.sess, err = s.dh.shared(ch.DHV); err != nil {
			return nil, ExplIncorrectPayload, err
		}
		c1 = augment(ch.Hash, s.sess, ch.C)
		defer zero(c1)
	} else if len(ch.DHV) != 0 {
		return nil, ExplIncorrectPayload, errors.New("invalid DH value for NULL DH")
	}
	return HostResponse(ch.Hash, s.p.Key, c1, ch.Seq, s.p.TID, s.p.HostNQN, s.p.SubNQN), 0, nil
}

// fail2 sends AUTH_Failure2 and returns the *Error for cause.
func (s *hostState) fail2(ctx context.Context, expl uint8, cause error) error {
	f := Failure{ID: IDFailure2, TID: s.p.TID, Reason: ReasonFailed, Explanation: expl}
	e := &Error{Explanation: expl, Msg: cause.Error()}
	if err := s.t.Send(ctx, f.Marshal()); err != nil {
		return fmt.Errorf("%w (and send failure2: %v)", e, err)
	}
	return e
}

func (s *hostState) zero() {
	s.dh.zero()
	zero(s.sess)
}
