// Package plug lets a submitter that knows more work is on its way hold
// back the sending of what it submitted, so that a transport writes many
// commands with one system call: the Linux block layer's plug (blk_plug,
// and blk-mq's bd->last with commit_rqs), for goroutines.
//
// A submitter passes a *Plug down with each submission it may hold. A
// transport that accepts the hold keeps the command's bytes ready to go
// and records itself with Hold; the submitter calls Unplug once it has
// nothing more to submit at once, and every held transport sends. A nil
// *Plug holds nothing: submissions go out at once.
//
// One Plug may be shared by several submitters (the FUSE loop's readers):
// whichever finds no more work unplugs everything held so far, its own
// and the others'.
package plug

import (
	"sync"
	"sync/atomic"
)

// Flusher is a transport holding submissions back: Flush sends them. It
// must not block for long (one socket write) and must be safe to call
// when nothing is held.
type Flusher interface {
	Flush()
}

// Plug records the Flushers holding submissions. The zero value is ready.
type Plug struct {
	n     atomic.Int32 // len(held), readable without mu
	mu    sync.Mutex
	held  []Flusher
	spare []Flusher

	holds   atomic.Uint64
	unplugs atomic.Uint64 // also the epoch: Unplugs that flushed
	flushes atomic.Uint64 // Flusher.Flush calls
}

// Hold records that f holds a submission until the next Unplug. Holding
// the same f again before then records nothing new.
func (p *Plug) Hold(f Flusher) {
	p.holds.Add(1)
	p.mu.Lock()
	for _, g := range p.held {
		if g == f {
			p.mu.Unlock()
			return
		}
	}
	p.held = append(p.held, f)
	p.n.Store(int32(len(p.held)))
	p.mu.Unlock()
}

// Held reports whether any Flusher is held: the submitter must Unplug
// before it waits for more work.
func (p *Plug) Held() bool { return p != nil && p.n.Load() > 0 }

// Unplug flushes every Flusher held, each once, and forgets them.
func (p *Plug) Unplug() {
	p.mu.Lock()
	fs := p.held
	if len(fs) == 0 {
		p.mu.Unlock()
		return
	}
	p.held, p.spare = p.spare[:0], nil
	p.n.Store(0)
	p.unplugs.Add(1)
	p.flushes.Add(uint64(len(fs)))
	p.mu.Unlock()
	for i, f := range fs {
		f.Flush()
		fs[i] = nil
	}
	p.mu.Lock()
	if p.spare == nil {
		p.spare = fs[:0]
	}
	p.mu.Unlock()
}

// Epoch changes with every Unplug that flushed something. A transport
// with several queues can pick one by it, so that the submissions held
// together leave together, and successive batches rotate.
func (p *Plug) Epoch() uint64 { return p.unplugs.Load() }

// Stats returns how many submissions were held, how many Unplugs flushed
// something, and how many Flushers those Unplugs flushed: holds/unplugs
// is the batching achieved, flushes/unplugs how many transports (socket
// writes) a batch took.
func (p *Plug) Stats() (holds, unplugs, flushes uint64) {
	return p.holds.Load(), p.unplugs.Load(), p.flushes.Load()
}
