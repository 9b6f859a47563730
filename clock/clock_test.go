package clock_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/clock"
	"github.com/mpathfs/mpathfs/mpath/mpathtest"
)

func TestTickerAndTimerOnFakeTime(t *testing.T) {
	c := mpathtest.NewClock()
	tk := clock.NewTicker(c, time.Second)
	tm := clock.NewTimer(c, 1500*time.Millisecond)
	c.Advance(time.Second)
	select {
	case <-tk.C:
	default:
		t.Fatal("no tick after 1 s")
	}
	select {
	case <-tm.C:
		t.Fatal("timer fired early")
	default:
	}
	c.Advance(time.Second)
	<-tk.C // re-armed
	<-tm.C
	tk.Stop()
	if c.Pending() != 0 {
		t.Fatalf("%d timers armed after Stop", c.Pending())
	}
	if clock.IsSystem(c) || !clock.IsSystem(clock.System()) || !clock.IsSystem(nil) {
		t.Fatal("IsSystem")
	}
}

func TestSleep(t *testing.T) {
	c := mpathtest.NewClock()
	done := make(chan error, 1)
	go func() { done <- clock.Sleep(context.Background(), c, time.Minute) }()
	c.WaitPending(1)
	c.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := clock.Sleep(ctx, c, time.Minute); err != context.Canceled {
		t.Fatalf("cancelled sleep: %v", err)
	}
}
