package host

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/auth"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// dhchap is a controller's DH-HMAC-CHAP state: the secrets (replaceable
// through sysfs), the transaction counter and the S2 sequence numbers.
type dhchap struct {
	// run serializes re-authentications of the live association (one
	// dhchap_auth_work at a time): two exchanges on one queue at once
	// would break each other.
	run     sync.Mutex
	mu      sync.Mutex
	hostKey *auth.Key
	ctrlKey *auth.Key
	tid     atomic.Uint32
	seq     auth.SeqNum
}

func (d *dhchap) keys() (host, ctrl *auth.Key) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hostKey, d.ctrlKey
}

// authTransport runs AUTH_Send / AUTH_Receive on one queue.
type authTransport struct {
	q       Queue
	timeout time.Duration
}

func (t authTransport) Send(ctx context.Context, msg []byte) error {
	cmd := fabrics.NewAuthSend(uint32(len(msg)))
	return t.exec(ctx, &cmd, msg)
}

func (t authTransport) Receive(ctx context.Context, n int) ([]byte, error) {
	cmd := fabrics.NewAuthReceive(uint32(n))
	buf := make([]byte, n)
	if err := t.exec(ctx, &cmd, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

func (t authTransport) exec(ctx context.Context, cmd *nvme.Command, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	cqe, err := t.q.Exec(ctx, cmd, data)
	if err != nil {
		return err
	}
	if !cqe.Status.OK() {
		return cqe.Status
	}
	return nil
}

// authenticate runs DH-HMAC-CHAP on queue qid after its Connect asked for
// it (nvme_auth_negotiate + nvme_auth_wait), logging like Linux. A refused
// authentication unwraps to syscall.EKEYREJECTED, a missing key to
// syscall.ENOKEY.
func (c *Controller) authenticate(ctx context.Context, q Queue, qid uint16) error {
	hostKey, ctrlKey := c.auth.keys()
	if hostKey == nil {
		c.log.Warn(fmt.Sprintf("qid %d: no key", qid))
		c.log.Warn(fmt.Sprintf("qid %d: authentication setup failed", qid))
		return fmt.Errorf("nvme host: qid %d: authentication required: %w", qid, syscall.ENOKEY)
	}
	res, err := auth.Authenticate(ctx, authTransport{q: q, timeout: c.tunable().adminTimeout}, auth.HostParams{
		HostNQN: c.opts.HostNQN, SubNQN: c.opts.SubsysNQN,
		Key: hostKey, CtrlKey: ctrlKey,
		TID: uint16(c.auth.tid.Add(1) - 1), Seq: &c.auth.seq,
	})
	if err != nil {
		var ae *auth.Error
		if errors.As(err, &ae) {
			c.log.Warn(fmt.Sprintf("qid %d: authentication failed, error %d", qid, -int(syscall.EKEYREJECTED)), "reason", reason(ae))
		} else {
			c.log.Warn(fmt.Sprintf("qid %d: authentication failed", qid), "error", err)
		}
		return fmt.Errorf("nvme host: qid %d: %w", qid, err)
	}
	if qid == 0 {
		c.log.Info(fmt.Sprintf("qid 0: authenticated with hash %s dhgroup %s", res.Hash, res.Group))
		if res.Bidirectional {
			c.log.Info("qid 0: controller authenticated")
		}
	}
	return nil
}

// reason is the failure in words for the log.
func reason(e *auth.Error) string {
	if e.Remote {
		return "controller sent failure1: " + auth.ExplanationString(e.Explanation)
	}
	return e.Msg
}

// checkAuthReq handles the AUTHREQ bits of a Connect completion: run
// DH-HMAC-CHAP when ATR is set; secure channel concatenation (ASCR) is
// not supported, as in Linux without TLS.
func (c *Controller) checkAuthReq(ctx context.Context, q Queue, qid uint16, dw0 uint32) error {
	if dw0&fabrics.ConnectAuthASCR != 0 {
		c.log.Warn(fmt.Sprintf("qid %d: secure concatenation is not supported", qid))
		return fmt.Errorf("nvme host: connect qid %d: %w", qid, ErrAuthRequired)
	}
	if dw0&fabrics.ConnectAuthATR == 0 {
		return nil
	}
	return c.authenticate(ctx, q, qid)
}

// Reauthenticate runs DH-HMAC-CHAP again on the admin queue and then on
// every I/O queue of the live association (nvme_ctrl_auth_work). Without
// a live association it does nothing: the next reconnect authenticates.
// A failure on an I/O queue is logged and the rest still run; the target
// ends the association of a failed queue, which starts error recovery.
func (c *Controller) Reauthenticate(ctx context.Context) error {
	c.auth.run.Lock()
	defer c.auth.run.Unlock()
	a := c.cur.Load()
	if a == nil || c.State() != StateLive {
		return nil
	}
	if err := c.authenticate(ctx, a.admin, 0); err != nil {
		return err
	}
	var first error
	for i, q := range a.io {
		if err := c.authenticate(ctx, q, uint16(i+1)); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// reauthAsync is the AUTHENTICATE disposition's queue_work of
// dhchap_auth_work: one re-authentication in the background.
func (c *Controller) reauthAsync() {
	if !c.beginBackground() {
		return
	}
	go func() {
		defer c.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), c.tunable().adminTimeout)
		defer cancel()
		_ = c.Reauthenticate(ctx)
	}()
}

// RequestReauth starts a background re-authentication, as Linux does for
// a command that completed with Authentication Required (status 0x191).
func (c *Controller) RequestReauth() { c.reauthAsync() }

// DHCHAPSecret is the sysfs dhchap_secret: the host secret as given, or
// "none".
func (c *Controller) DHCHAPSecret() string {
	k, _ := c.auth.keys()
	if k == nil {
		return "none"
	}
	return k.Text()
}

// DHCHAPCtrlSecret is the sysfs dhchap_ctrl_secret.
func (c *Controller) DHCHAPCtrlSecret() string {
	_, k := c.auth.keys()
	if k == nil {
		return "none"
	}
	return k.Text()
}

// SetDHCHAPSecret is a write to sysfs dhchap_secret
// (nvme_ctrl_dhchap_secret_store): EINVAL unless the controller was
// created with a secret and s starts with "DHHC-1:"; an invalid secret is
// refused; then the controller re-authenticates in the background.
func (c *Controller) SetDHCHAPSecret(s string) error { return c.setSecret(s, false) }

// SetDHCHAPCtrlSecret is a write to sysfs dhchap_ctrl_secret.
func (c *Controller) SetDHCHAPCtrlSecret(s string) error { return c.setSecret(s, true) }

func (c *Controller) setSecret(s string, ctrl bool) error {
	s = strings.TrimSuffix(s, "\n")
	c.auth.mu.Lock()
	cur := &c.auth.hostKey
	if ctrl {
		cur = &c.auth.ctrlKey
	}
	if *cur == nil || !strings.HasPrefix(s, "DHHC-1:") {
		c.auth.mu.Unlock()
		return syscall.EINVAL
	}
	if s != (*cur).Text() {
		k, err := auth.ParseKey(s)
		if err != nil {
			c.auth.mu.Unlock()
			if errors.Is(err, syscall.EKEYREJECTED) {
				return syscall.EKEYREJECTED
			}
			return syscall.EINVAL
		}
		*cur = k // the old key may still be in use by a running exchange; the GC frees it
	}
	c.auth.mu.Unlock()
	c.log.Info("re-authenticating controller")
	c.reauthAsync()
	return nil
}
