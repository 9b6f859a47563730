package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/mpathfs/mpathfs/clock"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// Errors of the reconnect policy.
var (
	// ErrCtrlLoss: ctrl_loss_tmo ran out (or a Connect failed with DNR)
	// and the controller went dead.
	ErrCtrlLoss = errors.New("nvme host: controller lost, giving up reconnecting")
)

// errorRecovery is nvme_tcp_error_recovery: if a is the live association,
// LIVE -> RESETTING and the recovery work runs in the background: tear a
// down (in-flight commands fail with *AbortedError), -> CONNECTING, then
// reconnect every reconnect_delay. Anything else (not live, an old
// association, closing) is ignored, so every trigger may call it.
func (c *Controller) errorRecovery(a *assoc, cause error) {
	if !c.beginBackground() {
		return
	}
	if !c.changeState(StateResetting, a, cause) {
		c.bg.Done()
		return
	}
	c.log.Warn("starting error recovery", "cause", cause)
	go func() {
		defer c.bg.Done()
		c.resetWork(a, cause, false, nil)
	}()
}

// beginBackground registers a background goroutine unless Close started.
func (c *Controller) beginBackground() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.bg.Add(1)
	return true
}

// resetWork tears a down, moves RESETTING -> CONNECTING and reconnects;
// immediate makes the first attempt at once (Reset) rather than after
// reconnect_delay (error recovery). attempted, if not nil, is called once,
// when the first reconnect attempt ended (or the work stopped before one):
// the end of the kernel's reset work.
func (c *Controller) resetWork(a *assoc, cause error, immediate bool, attempted func()) {
	var once sync.Once
	notify := func() {
		if attempted != nil {
			once.Do(attempted)
		}
	}
	defer notify()
	a.teardown()
	if !c.changeState(StateConnecting, nil, cause) {
		return
	}
	c.reconnectLoop(immediate, notify)
}

// maxReconnects is ceil(ctrl_loss_tmo / reconnect_delay), -1 = forever
// (the policy lives beside the fabrics options).
func maxReconnects(o fabrics.Options) int { return o.MaxReconnects() }

// reconnectLoop runs full connect sequences (a new association, a new
// controller on the target) until one goes LIVE, the controller is closed,
// max reconnects is reached or a setup fails with DNR; the last two
// delete the controller and leave it dead.
func (c *Controller) reconnectLoop(immediate bool, attempted func()) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for n := 0; ; {
		// The limit and the delay as sysfs last set them (nvmf_should_reconnect
		// and the requeue read them each time).
		tun := c.tunable()
		limit, delay := tun.maxReconnects, tun.reconnectDelay
		if delay <= 0 {
			delay = time.Second
		}
		if !immediate {
			if limit >= 0 && n >= limit {
				c.giveUp(fmt.Errorf("%w: %d reconnect attempts (ctrl_loss_tmo %s)", ErrCtrlLoss, n, time.Duration(limit)*delay))
				return
			}
			c.log.Info(fmt.Sprintf("Reconnecting in %d seconds...", int(delay/time.Second)), "delay", delay)
			t := clock.NewTimer(c.clk, delay)
			select {
			case <-t.C:
			case <-c.stop:
				t.Stop()
				return
			}
			n++
		}
		immediate = false
		a, err := c.setupAssoc(ctx)
		if err == nil {
			if c.goLive(a) {
				c.log.Info("Successfully reconnected", "attempt", n, "cntlid", a.cntlid)
			} else {
				a.teardown()
			}
			return
		}
		if attempted != nil {
			attempted()
		}
		if ctx.Err() != nil {
			return
		}
		if limit >= 0 {
			c.log.Info(fmt.Sprintf("Failed reconnect attempt %d/%d", n, limit), "error", err)
		} else {
			c.log.Info(fmt.Sprintf("Failed reconnect attempt %d", n), "error", err)
		}
		// Like nvmf_should_reconnect: DNR, or a refused authentication
		// (-EKEYREJECTED), ends the reconnects.
		if statusWithDNR(err) || errors.Is(err, syscall.EKEYREJECTED) {
			c.giveUp(fmt.Errorf("%w: %w", ErrCtrlLoss, err))
			return
		}
	}
}

// giveUp deletes the controller after a lost connection: CONNECTING ->
// DELETING -> DEAD. Subscribers see both events; I/O fails with
// StatusHostPathError from now on.
func (c *Controller) giveUp(cause error) {
	c.log.Error("Removing controller", "cause", cause)
	if c.changeState(StateDeleting, nil, cause) {
		c.changeState(StateDead, nil, cause)
	}
}

// startFailfastLocked arms fast_io_fail_tmo on entering CONNECTING (from
// RESETTING). Called with c.mu held.
func (c *Controller) startFailfastLocked() {
	tmo := c.tunable().fastIOFail
	if tmo < 0 {
		return
	}
	c.ffGen++
	gen := c.ffGen
	c.failfast = c.clk.AfterFunc(tmo, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.state != StateConnecting || c.ffGen != gen {
			return
		}
		c.failfastExpired.Store(true)
		c.log.Info("failfast expired")
		c.events.push(Event{Kind: FailfastExpired, Old: c.state, New: c.state})
	})
}

// stopFailfastLocked cancels the fast_io_fail timer and clears the
// expired flag (LIVE, deleting). Called with c.mu held.
func (c *Controller) stopFailfastLocked() {
	if c.failfast != nil {
		c.failfast.Stop()
		c.failfast = nil
	}
	c.ffGen++
	c.failfastExpired.Store(false)
}

// resetAsync is nvme_reset_ctrl for internal triggers (ANATT expiry,
// persistent internal error): like error recovery, but the first
// reconnect attempt is immediate. attempted is as for resetWork.
func (c *Controller) resetAsync(a *assoc, cause error, attempted func()) bool {
	if !c.beginBackground() {
		return false
	}
	if !c.changeState(StateResetting, a, cause) {
		c.bg.Done()
		return false
	}
	go func() {
		defer c.bg.Done()
		c.resetWork(a, cause, true, attempted)
	}()
	return true
}

// Reset resets the controller (sysfs reset_controller) as
// nvme_reset_ctrl_sync does: only a LIVE controller can be reset (else
// EBUSY at once); LIVE -> RESETTING, tear down, one immediate reconnect
// attempt, then it returns: nil if the controller is LIVE again, else
// ENETRESET (it keeps reconnecting every reconnect_delay in the background).
func (c *Controller) Reset(ctx context.Context) error {
	a := c.cur.Load()
	if a == nil || c.State() != StateLive {
		return fmt.Errorf("nvme host: cannot reset in state %s: %w", c.State(), syscall.EBUSY)
	}
	done := make(chan struct{})
	if !c.resetAsync(a, errors.New("reset requested"), func() { close(done) }) {
		return fmt.Errorf("nvme host: cannot reset in state %s: %w", c.State(), syscall.EBUSY)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s := c.State(); s != StateLive {
		return fmt.Errorf("nvme host: reset ended in state %s: %w", s, syscall.ENETRESET)
	}
	return nil
}

// WaitState blocks until cond(state) holds or ctx ends, then returns
// result(state) (or ctx's error).
func (c *Controller) WaitState(ctx context.Context, cond func(State) bool, result func(State) error) error {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.stateCond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for !cond(c.state) {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.stateCond.Wait()
	}
	if result == nil {
		return nil
	}
	return result(c.state)
}

// Close deletes the controller: DELETING (stop keep-alive, AER, reconnects),
// DELETING (NO IO), close the I/O queues, CC.SHN = normal and wait for
// CSTS.SHST = complete (bounded by the shutdown timeout and ctx), close the
// admin queue. In-flight commands fail with *AbortedError. Idempotent: a
// second call returns the first result.
func (c *Controller) Close(ctx context.Context) error {
	c.closeOnce.Do(func() { c.closeErr = c.doClose(ctx) })
	return c.closeErr
}

func (c *Controller) doClose(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true
	close(c.stop)
	c.mu.Unlock()
	c.bg.Wait() // reconnect and recovery work exit on c.stop

	c.mu.Lock()
	a := c.assoc
	st := c.state
	c.mu.Unlock()
	var err error
	switch st {
	case StateLive:
		c.changeState(StateDeleting, nil, nil)
		a.stopBackground()
		c.changeState(StateDeletingNoIO, nil, nil)
		err = c.shutdown(ctx, a)
	case StateResetting, StateConnecting:
		c.changeState(StateDeleting, nil, nil)
		if a != nil {
			a.teardown()
		}
		c.changeState(StateDeletingNoIO, nil, nil)
	case StateDead:
		c.changeState(StateDeletingNoIO, nil, nil)
	}
	c.events.close()
	return err
}

// shutdown closes the I/O queues, then CC.SHN=01 on the admin queue, waits
// for CSTS.SHST=10 and closes the admin queue (nvme_disable_ctrl with
// shutdown).
func (c *Controller) shutdown(ctx context.Context, a *assoc) error {
	for _, q := range a.io {
		q.Close()
	}
	defer a.teardown()
	cc := a.cc&^fabrics.CCShnMask | fabrics.CCShnNormal
	if err := c.propSet(ctx, a, fabrics.RegCC, uint64(cc)); err != nil {
		return fmt.Errorf("nvme host: shutdown: %w", err)
	}
	err := c.waitCSTS(ctx, a, c.cfg.shutdownTimeout, func(s fabrics.CSTS) (bool, error) {
		return s&fabrics.CSTSShstMask == fabrics.CSTSShstComplete, nil
	})
	if err != nil {
		return fmt.Errorf("nvme host: shutdown: %w", err)
	}
	return nil
}
