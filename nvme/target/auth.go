package target

import (
	"fmt"
	"maps"
	"slices"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/auth"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// HostAuth is the DH-HMAC-CHAP setting of one host NQN, nvmet's
// hosts/<nqn>/dhchap_key, dhchap_ctrl_key, dhchap_hash and dhchap_dhgroup.
// It applies where a subsystem lists the host (allow_any_host off), as in
// Linux; a host without Key connects without authentication.
type HostAuth struct {
	Key     *auth.Key    // the host's secret; nil: no authentication
	CtrlKey *auth.Key    // the controller's secret: bidirectional
	Hash    auth.Hash    // preferred hash (0: hmac(sha256))
	Group   auth.DHGroup // preferred DH group (default null)
}

// SetHostAuth creates the host entry hostNQN (nvmet's hosts/<nqn>) if
// needed and sets its DH-HMAC-CHAP setting (a zero HostAuth: none).
// Controllers that exist keep what they started with; a host
// re-authenticating on the admin queue gets the new one.
func (t *Target) SetHostAuth(hostNQN string, a HostAuth) {
	if a.Hash == 0 {
		a.Hash = auth.SHA256
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.hostAuth == nil {
		t.hostAuth = map[string]HostAuth{}
	}
	t.hostAuth[hostNQN] = a
}

// Hosts returns the host entries, sorted.
func (t *Target) Hosts() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Sorted(maps.Keys(t.hostAuth))
}

// RemoveHost deletes a host entry and its setting (subsystems that list
// the host keep listing it; it then connects without authentication).
func (t *Target) RemoveHost(hostNQN string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.hostAuth, hostNQN)
}

// HostAuth returns the DH-HMAC-CHAP setting of hostNQN.
func (t *Target) HostAuth(hostNQN string) HostAuth {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a, ok := t.hostAuth[hostNQN]; ok {
		return a
	}
	return HostAuth{Hash: auth.SHA256}
}

// authParams is nvmet_setup_auth: the parameters of a new controller of
// hostNQN on s, or nil when it needs no authentication (any host allowed,
// the host not listed, or no key).
func (t *Target) authParams(s *Subsystem, hostNQN string) *auth.CtrlParams {
	if s.discovery {
		return nil
	}
	s.mu.Lock()
	listed := !s.cfg.AllowAnyHost && s.hosts[hostNQN]
	s.mu.Unlock()
	if !listed {
		return nil
	}
	a := t.HostAuth(hostNQN)
	if a.Key == nil {
		return nil
	}
	return &auth.CtrlParams{HostNQN: hostNQN, SubNQN: s.cfg.NQN, Key: a.Key, CtrlKey: a.CtrlKey,
		Hash: a.Hash, Group: a.Group, Seq: &t.authSeq}
}

// refreshAuth returns the controller's DH-HMAC-CHAP parameters for a new
// negotiation; on the admin queue it re-reads them from the host entry
// first (nvmet_setup_auth on a qid 0 re-negotiation), so a rotated key,
// hash or group applies to the re-authentication and to the I/O queues
// after it. A host entry that lost its key keeps the old parameters.
func (ctrl *Controller) refreshAuth(admin bool) auth.CtrlParams {
	var p *auth.CtrlParams
	if admin {
		p = ctrl.s.t.authParams(ctrl.s, ctrl.hostNQN) // outside ctrl.mu: takes the target's and subsystem's locks
	}
	ctrl.mu.Lock()
	defer ctrl.mu.Unlock()
	if p != nil {
		ctrl.auth = p
	}
	return *ctrl.auth
}

// startAuth arms DH-HMAC-CHAP on this queue after its Connect; the
// Connect completion then carries AUTHREQ ATR.
func (c *conn) startAuth(ctrl *Controller) uint32 {
	ctrl.mu.Lock()
	p := ctrl.auth
	ctrl.mu.Unlock()
	if p == nil {
		return 0
	}
	c.auth = auth.NewController(*p)
	qid := c.qid
	c.auth.Log = func(msg string) {
		c.log.Warn(fmt.Sprintf("ctrl %d qid %d %s", ctrl.cntlid, qid, msg))
	}
	return fabrics.ConnectAuthATR
}

// authPending reports a queue that must authenticate before any command
// but Connect, AUTH_Send and AUTH_Receive (Linux still lets Property
// Get/Set through; we do not).
func (c *conn) authPending() bool { return c.auth != nil && !c.auth.Authenticated() }

// authCmd handles Authentication Send and Receive (nvmet_execute_auth_send,
// nvmet_execute_auth_receive) on the reader goroutine.
func (c *conn) authCmd(r *request, dl int) bool {
	ctrl := c.controller()
	secp, spsp0, spsp1, n := fabrics.ParseAuth(&r.cmd)
	send := r.cmd.FCType() == nvme.FabricsAuthSend
	var st nvme.Status
	switch {
	case ctrl == nil:
		st = nvme.StatusCommandSequenceError | nvme.StatusDNR
	case c.auth == nil:
		// No authentication configured for this host.
		st = nvme.StatusInvalidField | nvme.StatusDNR
	case secp != fabrics.AuthSECP || spsp0 != fabrics.AuthSPSP0 || spsp1 != fabrics.AuthSPSP1 || n == 0:
		st = nvme.StatusInvalidField | nvme.StatusDNR
	}
	if !send || st != 0 {
		if dl > 0 {
			if err := c.r.Discard(); err != nil {
				return false
			}
		}
		if st != 0 {
			c.complete(r, st, 0)
			return true
		}
	}
	if send {
		data, st, ok := c.readSmallData(r, dl, int(n))
		if ok && st == 0 {
			if typ, id := auth.Kind(data); typ == auth.TypeCommon && id == auth.IDNegotiate {
				c.auth.Update(ctrl.refreshAuth(c.qid == 0))
			}
		}
		if !ok {
			return false
		}
		if st == 0 && len(data) != int(n) {
			st = nvme.StatusDataSGLLengthInvalid | nvme.StatusDNR
		}
		if st != 0 {
			c.complete(r, st, 0)
			return true
		}
		c.auth.Send(data)
		c.complete(r, 0, 0)
	} else {
		if l, inCap, sst := sgl(&r.cmd); sst != 0 || inCap || l != int(n) {
			c.complete(r, nvme.StatusDataSGLLengthInvalid|nvme.StatusDNR, 0)
			return true
		}
		msg, err := c.auth.Receive(int(n))
		if err != nil {
			c.log.Warn("authentication receive", "qid", c.qid, "error", err)
			c.complete(r, nvme.StatusInvalidField|nvme.StatusDNR, 0)
			return true
		}
		c.completeData(r, msg)
	}
	if c.auth.Fatal() {
		ctrl.destroy("authentication failed")
	} else if c.auth.Authenticated() && c.qid == 0 && !c.authLogged {
		c.authLogged = true
		h, g := c.auth.Negotiated()
		c.log.Info("host authenticated", "cntlid", ctrl.cntlid, "hash", h.String(), "dhgroup", g.String())
	}
	return true
}
