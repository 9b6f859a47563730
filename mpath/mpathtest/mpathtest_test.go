package mpathtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/mpath"
)

func TestFailNextRunsScriptsInOrder(t *testing.T) {
	d := NewDriver("p")
	cause := errors.New("boom")
	d.FailNext(2, mpath.Verdict{Action: mpath.ActionRetry}, cause)
	d.FailNext(1, mpath.Verdict{Action: mpath.ActionFailover, ANA: true}, nil)
	req := &mpath.Request{Op: mpath.OpRead}
	want := []mpath.Action{mpath.ActionRetry, mpath.ActionRetry, mpath.ActionFailover}
	for i, a := range want {
		err := d.Submit(context.Background(), req)
		if err == nil {
			t.Fatalf("submission %d succeeded", i)
		}
		if v := d.Classify(err, 0); v.Action != a {
			t.Fatalf("submission %d classified %v, want %v", i, v.Action, a)
		}
		if i < 2 && !errors.Is(err, cause) {
			t.Fatalf("cause lost: %v", err)
		}
	}
	if err := d.Submit(context.Background(), req); err != nil {
		t.Fatalf("script exhausted but got %v", err)
	}
	if d.Submits() != 4 || d.Successes() != 1 {
		t.Fatalf("submits %d successes %d", d.Submits(), d.Successes())
	}
}

func TestClassifyCapsRetriesAndCompletesForeignErrors(t *testing.T) {
	d := NewDriver("p")
	f := &Fault{Verdict: mpath.Verdict{Action: mpath.ActionRetry}}
	if v := d.Classify(f, mpath.MaxRetries); v.Action != mpath.ActionComplete {
		t.Errorf("retry at the cap: %v", v.Action)
	}
	if v := d.Classify(errors.New("x"), 0); v.Action != mpath.ActionComplete {
		t.Errorf("foreign error: %v", v.Action)
	}
}

func TestStoreBacksReadsAndWrites(t *testing.T) {
	d := NewDriver("p")
	d.Store = make([]byte, 8192)
	w := &mpath.Request{Op: mpath.OpWrite, Offset: 4096, Length: 4, Buf: []byte("data")}
	r := &mpath.Request{Op: mpath.OpRead, Offset: 4096, Length: 4, Buf: make([]byte, 4)}
	if d.Submit(context.Background(), w) != nil || d.Submit(context.Background(), r) != nil || string(r.Buf) != "data" {
		t.Fatalf("read back %q", r.Buf)
	}
}

func TestClockRunsDueTimersInOrderAndStops(t *testing.T) {
	c := NewClock()
	var got []int
	c.AfterFunc(2*time.Second, func() { got = append(got, 2) })
	c.AfterFunc(time.Second, func() { got = append(got, 1) })
	stopped := c.AfterFunc(time.Second, func() { got = append(got, 99) })
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop must report true once")
	}
	start := c.Now()
	c.Advance(1500 * time.Millisecond)
	if len(got) != 1 || got[0] != 1 || c.Pending() != 1 {
		t.Fatalf("after 1.5s: %v, %d pending", got, c.Pending())
	}
	c.Advance(time.Second)
	if len(got) != 2 || got[1] != 2 || c.Now().Sub(start) != 2500*time.Millisecond {
		t.Fatalf("after 2.5s: %v", got)
	}
	done := make(chan struct{})
	go func() { c.WaitPending(1); close(done) }()
	c.AfterFunc(time.Hour, func() {})
	<-done
}
