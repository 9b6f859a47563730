package plug

import (
	"sync"
	"sync/atomic"
	"testing"
)

type counter struct{ n atomic.Int32 }

func (c *counter) Flush() { c.n.Add(1) }

func TestUnplugFlushesEachOnce(t *testing.T) {
	var p Plug
	a, b := &counter{}, &counter{}
	if p.Held() {
		t.Fatal("empty plug holds")
	}
	p.Hold(a)
	p.Hold(b)
	p.Hold(a)
	if !p.Held() {
		t.Fatal("Held false after Hold")
	}
	p.Unplug()
	if a.n.Load() != 1 || b.n.Load() != 1 {
		t.Fatalf("flushes a=%d b=%d, want 1 each", a.n.Load(), b.n.Load())
	}
	if p.Held() {
		t.Fatal("Held after Unplug")
	}
	p.Unplug()
	if a.n.Load() != 1 {
		t.Fatal("an empty Unplug flushed")
	}
	if p.Epoch() != 1 {
		t.Fatalf("Epoch %d after one flushing Unplug, want 1 (an empty Unplug does not count)", p.Epoch())
	}
	if holds, unplugs, flushes := p.Stats(); holds != 3 || unplugs != 1 || flushes != 2 {
		t.Fatalf("Stats = %d, %d, %d; want 3 holds, 1 unplug, 2 flushes", holds, unplugs, flushes)
	}
	var nilPlug *Plug
	if nilPlug.Held() {
		t.Fatal("nil plug holds")
	}
}

// TestConcurrent: with two submitters sharing a plug, whatever is held
// before the last Unplug is flushed after it.
func TestConcurrent(t *testing.T) {
	var p Plug
	fs := make([]*counter, 8)
	for i := range fs {
		fs[i] = &counter{}
	}
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10000 {
				p.Hold(fs[(i+g)%len(fs)])
				if i%3 == 0 {
					p.Unplug()
				}
			}
		}()
	}
	wg.Wait()
	p.Unplug()
	if p.Held() {
		t.Fatal("held after the last Unplug")
	}
	for i, f := range fs {
		if f.n.Load() == 0 {
			t.Errorf("flusher %d never flushed", i)
		}
	}
}

func BenchmarkHoldUnplug(b *testing.B) {
	var p Plug
	f := &counter{}
	b.ReportAllocs()
	for b.Loop() {
		p.Hold(f)
		p.Hold(f)
		p.Unplug()
	}
}
