package host

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestReadWithinSilentController: a stalled port (TCP open, nothing
// answered) gives a ReadWithin up after its bound with ErrSilent; the
// controller is marked Silent (SilenceChanged) but stays live; the
// immediate keep-alive probe is answered once the port thaws, which clears
// the mark — no reset, since the stall was shorter than KATO. A plain Read
// and a write are never given up.
func TestReadWithinSilentController(t *testing.T) {
	e := newEnv(t)
	o := e.opts(0)
	o.KeepAliveTmo = 5 * time.Second
	c := connect(t, o)
	ev := record(c)
	buf := make([]byte, 4096)
	if err := c.ReadWithin(context.Background(), 1, 0, buf, 100*time.Millisecond); err != nil {
		t.Fatalf("ReadWithin on a live path: %v", err)
	}
	e.ports[0].Stall(true)
	plain := make(chan error, 1)
	go func() { plain <- c.Read(context.Background(), 1, 8, make([]byte, 4096)) }()
	start := time.Now()
	err := c.ReadWithin(context.Background(), 1, 0, buf, 100*time.Millisecond)
	if !errors.Is(err, ErrSilent) {
		t.Fatalf("ReadWithin on a stalled port: %v, want ErrSilent", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > time.Second {
		t.Errorf("given up after %v, want just after the 100ms bound", d)
	}
	ev.wait(t, "SilenceChanged (silent)", func(e Event) bool { return e.Kind == SilenceChanged })
	if !c.Silent() || c.State() != StateLive {
		t.Fatalf("Silent %v state %s, want silent and live", c.Silent(), c.State())
	}
	time.Sleep(500 * time.Millisecond) // the stall's length, well under KATO
	select {
	case err := <-plain:
		t.Fatalf("a plain Read on the stalled port returned %v", err)
	default:
	}
	e.ports[0].Stall(false)
	ev.wait(t, "SilenceChanged (answers again)", func(e Event) bool { return e.Kind == SilenceChanged })
	if c.Silent() {
		t.Error("still Silent after the probe was answered")
	}
	if err := <-plain; err != nil {
		t.Errorf("plain Read after the stall: %v", err)
	}
	if c.State() != StateLive {
		t.Errorf("state %s: a stall shorter than KATO reset the controller", c.State())
	}
	if err := c.ReadWithin(context.Background(), 1, 0, buf, 100*time.Millisecond); err != nil {
		t.Fatalf("ReadWithin after the stall: %v", err)
	}
}
