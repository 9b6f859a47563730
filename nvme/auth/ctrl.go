package auth

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
)

// CtrlParams configure the controller side for one host (nvmet's
// hosts/<hostnqn> attributes).
type CtrlParams struct {
	HostNQN, SubNQN string
	Key             *Key    // dhchap_key: the host's secret
	CtrlKey         *Key    // dhchap_ctrl_key: bidirectional if set
	Hash            Hash    // dhchap_hash (preferred)
	Group           DHGroup // dhchap_dhgroup (preferred)
	Seq             *SeqNum // S1 source
	Rand            io.Reader
}

// Controller is the per-queue DH-HMAC-CHAP state of a target
// (nvmet_execute_auth_send / nvmet_execute_auth_receive). It is not safe
// for concurrent use; a queue runs its commands in order.
type Controller struct {
	p             CtrlParams
	step          uint8 // next expected message
	status        uint8 // failure explanation to report
	tid           uint16
	hash          Hash
	group         DHGroup
	s1, s2        uint32
	c1, c2        []byte
	dh            *dhKey
	sess          []byte
	authenticated bool
	fatal         bool
	// Log, when set, receives the outcome of a step in the kernel's words
	// (nvmet's pr_warn/pr_info lines without the "ctrl N qid M" prefix).
	Log func(msg string)
}

// NewController starts the state machine in the negotiate step.
func NewController(p CtrlParams) *Controller {
	if p.Seq == nil {
		p.Seq = new(SeqNum)
	}
	p.Rand = orRand(p.Rand)
	return &Controller{p: p, step: IDNegotiate}
}

// Update replaces the parameters for the next negotiation (a changed
// host key, hash or group: nvmet re-reads them when the host negotiates
// again). The queue stays authenticated until that exchange fails.
func (c *Controller) Update(p CtrlParams) {
	if p.Seq == nil {
		p.Seq = c.p.Seq
	}
	p.Rand = orRand(p.Rand)
	c.p = p
}

// Authenticated reports whether the host has authenticated on this queue.
func (c *Controller) Authenticated() bool { return c.authenticated }

// Fatal reports whether the exchange ended in failure: the target treats
// it as a fatal controller error (nvmet_ctrl_fatal_error).
func (c *Controller) Fatal() bool { return c.fatal }

// Negotiated returns the hash and group of the last negotiation.
func (c *Controller) Negotiated() (Hash, DHGroup) { return c.hash, c.group }

func (c *Controller) log(format string, args ...any) {
	if c.Log != nil {
		c.Log(fmt.Sprintf(format, args...))
	}
}

// Send processes the payload of an AUTH_Send.
func (c *Controller) Send(d []byte) {
	typ, id := Kind(d)
	switch {
	case len(d) < 2 || (typ != TypeCommon && typ != TypeDHCHAP):
		c.incorrect()
	case typ == TypeCommon:
		if id == IDNegotiate {
			c.reset()
			c.step = IDNegotiate
		} else if id != c.step {
			c.incorrect()
			break
		}
		if st := c.negotiate(d); st != 0 {
			c.failure1(st)
		} else {
			c.step = IDChallenge
		}
	case id != c.step:
		c.incorrect()
	case len(d) < 6 || uint16(d[4])|uint16(d[5])<<8 != c.tid:
		c.failure1(ExplIncorrectPayload)
	case id == IDReply:
		if st := c.reply(d); st != 0 {
			c.failure1(st)
		} else {
			c.step = IDSuccess1
		}
	case id == IDSuccess2:
		c.authenticated = true
		c.free()
	default:
		c.incorrect()
	}
}

// Receive produces the payload of an AUTH_Receive with allocation length
// al (the message, zero-padded to al bytes). An error means al is too
// small; the command then fails with an NVMe status.
func (c *Controller) Receive(al int) ([]byte, error) {
	var msg []byte
	switch c.step {
	case IDChallenge:
		m, err := c.challenge()
		if err != nil {
			return nil, err
		}
		msg = m
		if len(msg) > al {
			return nil, fmt.Errorf("nvme auth: challenge of %d bytes, allocation length %d", len(msg), al)
		}
		c.step = IDReply
	case IDSuccess1:
		s1 := Success1{TID: c.tid, HL: uint8(c.hash.Size())}
		if c.c2 != nil {
			if c.p.CtrlKey == nil {
				c.log("no ctrl key")
				return c.failureMsg(ExplFailed, al)
			}
			c2 := c.c2
			if c.sess != nil {
				c2 = augment(c.hash, c.sess, c2)
			}
			s1.Response = CtrlResponse(c.hash, c.p.CtrlKey, c2, c.s2, c.tid, c.p.HostNQN, c.p.SubNQN)
			if c.sess != nil {
				zero(c2)
			}
		}
		msg = s1.Marshal()
		if len(msg) > al {
			return nil, fmt.Errorf("nvme auth: success1 of %d bytes, allocation length %d", len(msg), al)
		}
		c.step = IDSuccess2
		if c.c2 == nil {
			c.free()
		}
	case IDFailure1:
		return c.failureMsg(c.status, al)
	default:
		c.log("unhandled step (%d)", c.step)
		return c.failureMsg(ExplFailed, al)
	}
	out := make([]byte, al)
	copy(out, msg)
	return out, nil
}

func (c *Controller) failureMsg(expl uint8, al int) ([]byte, error) {
	c.authenticated = false
	c.status = expl
	c.log("failure1 (%x)", expl)
	f := Failure{ID: IDFailure1, TID: c.tid, Reason: ReasonFailed, Explanation: expl}
	c.step = IDFailure1
	c.fatal = true
	c.free()
	if al < failureSize {
		return nil, errors.New("nvme auth: allocation length below a failure message")
	}
	out := make([]byte, al)
	copy(out, f.Marshal())
	return out, nil
}

// incorrect is nvmet's done_failure1 label: an unexpected message ends
// the exchange (step FAILURE2) and the controller with it.
func (c *Controller) incorrect() {
	c.status = ExplIncorrectMessage
	c.step = IDFailure2
	c.authenticated = false
	c.fatal = true
	c.free()
}

func (c *Controller) failure1(expl uint8) {
	c.step = IDFailure1
	c.status = expl
}

func (c *Controller) negotiate(d []byte) uint8 {
	m, napd, err := ParseNegotiate(d)
	if m != nil {
		c.tid = m.TID
	}
	if err != nil {
		return ExplIncorrectPayload
	}
	if m.SCC != 0 {
		return ExplConcatMismatch
	}
	if napd != 1 {
		return ExplHashUnusable
	}
	c.hash = 0
	for _, h := range m.Hashes {
		if h == c.p.Hash {
			c.hash = h
			break
		}
		if c.hash == 0 && h.Valid() {
			c.hash = h
		}
	}
	if c.hash == 0 {
		return ExplHashUnusable
	}
	found := false
	for _, g := range m.Groups {
		if g == c.p.Group {
			c.group, found = g, true
			break
		}
		if !found && g.Valid() {
			c.group, found = g, true
		}
	}
	if !found {
		return ExplDHGroupUnusable
	}
	return 0
}

func (c *Controller) challenge() ([]byte, error) {
	var err error
	c.s1 = c.p.Seq.Next()
	if c.c1, err = randBytes(c.p.Rand, c.hash.Size()); err != nil {
		return nil, err
	}
	m := Challenge{TID: c.tid, Hash: c.hash, Group: c.group, Seq: c.s1, C: c.c1}
	if c.group != DHNull {
		if c.dh, err = newDHKey(c.group, c.p.Rand); err != nil {
			return nil, err
		}
		m.DHV = c.dh.pub
	}
	return m.Marshal(), nil
}

func (c *Controller) reply(d []byte) uint8 {
	r, err := ParseReply(d)
	if err != nil {
		return ExplIncorrectPayload
	}
	if len(r.DHV) != 0 {
		if c.dh == nil {
			return ExplIncorrectPayload
		}
		if c.sess, err = c.dh.shared(r.DHV); err != nil {
			return ExplDHGroupUnusable
		}
	} else if c.dh != nil {
		return ExplIncorrectPayload
	}
	if c.p.Key == nil {
		c.log("no host key")
		return ExplFailed
	}
	if len(r.Response) != c.hash.Size() {
		return ExplFailed
	}
	c1 := c.c1
	if c.sess != nil {
		c1 = augment(c.hash, c.sess, c1)
		defer zero(c1)
	}
	want := HostResponse(c.hash, c.p.Key, c1, c.s1, c.tid, c.p.HostNQN, c.p.SubNQN)
	ok := hmac.Equal(want, r.Response)
	zero(want)
	if !ok {
		c.log("host response mismatch")
		return ExplFailed
	}
	c.s2 = r.Seq
	if r.C2 != nil && c.s2 != 0 {
		c.c2 = r.C2
	} else {
		c.authenticated = true
	}
	return 0
}

// reset clears a previous exchange (re-authentication).
func (c *Controller) reset() {
	c.free()
	c.status, c.fatal = 0, false
}

// free drops the per-exchange secrets (nvmet_auth_sq_free).
func (c *Controller) free() {
	zero(c.sess)
	c.dh.zero()
	c.sess, c.dh, c.c1, c.c2 = nil, nil, nil, nil
}
