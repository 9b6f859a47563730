// Package clock is the one source of time for mpathfs: the NVMe host
// (keep-alive, reconnect, fast_io_fail, ANATT, register polling), the TCP
// transport (command timeouts), the multipath library (retry delays,
// delayed removal) and the write fence take a Clock, so timing tests run on
// fake time (mpath/mpathtest.Clock).
package clock

import (
	"context"
	"sync"
	"time"
)

// Clock is the source of time and timers.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, like time.AfterFunc.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not started; it reports whether it did.
	Stop() bool
}

// System returns the Clock backed by package time.
func System() Clock { return system{} }

// IsSystem reports whether c is the system clock (or nil), so a hot path
// may use package time directly and stay allocation-free.
func IsSystem(c Clock) bool {
	if c == nil {
		return true
	}
	_, ok := c.(system)
	return ok
}

type system struct{}

func (system) Now() time.Time { return time.Now() }
func (system) AfterFunc(d time.Duration, f func()) Timer {
	return time.AfterFunc(d, f)
}

// Since is c.Now().Sub(t).
func Since(c Clock, t time.Time) time.Duration { return c.Now().Sub(t) }

// Ticker delivers ticks on C every period, built on AfterFunc so a fake
// clock drives it. A tick is dropped if the previous one was not taken.
type Ticker struct {
	C      <-chan time.Time
	c      chan time.Time
	clk    Clock
	period time.Duration
	mu     sync.Mutex
	t      Timer
	done   bool
}

// NewTicker starts a ticker with the given period.
func NewTicker(c Clock, period time.Duration) *Ticker {
	ch := make(chan time.Time, 1)
	t := &Ticker{C: ch, c: ch, clk: c, period: period}
	t.mu.Lock()
	t.t = c.AfterFunc(period, t.fire)
	t.mu.Unlock()
	return t
}

func (t *Ticker) fire() {
	select {
	case t.c <- t.clk.Now():
	default:
	}
	t.mu.Lock()
	if !t.done {
		t.t = t.clk.AfterFunc(t.period, t.fire)
	}
	t.mu.Unlock()
}

// Stop turns the ticker off.
func (t *Ticker) Stop() {
	t.mu.Lock()
	t.done = true
	t.t.Stop()
	t.mu.Unlock()
}

// OneShot is a timer with a channel, built on AfterFunc.
type OneShot struct {
	C <-chan time.Time
	t Timer
}

// NewTimer returns a one-shot timer whose C receives once after d.
func NewTimer(c Clock, d time.Duration) *OneShot {
	ch := make(chan time.Time, 1)
	o := &OneShot{C: ch}
	o.t = c.AfterFunc(d, func() {
		select {
		case ch <- c.Now():
		default:
		}
	})
	return o
}

// Stop stops the timer; it reports whether the timer had not fired.
func (o *OneShot) Stop() bool { return o.t.Stop() }

// Sleep waits d on c, or until ctx ends (its error is returned).
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := NewTimer(c, d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
