package host

import "sync"

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// StateChanged: the controller state went from Old to New (Err says
	// why, for error recovery and giving up).
	StateChanged EventKind = iota + 1
	// ANAChanged: the ANA log was read, changed or not (a read clears the
	// ANA-pending mark of the namespaces it lists); see
	// Controller.ANAState and Controller.Namespaces.
	ANAChanged
	// NamespacesChanged: a scan found namespaces added, removed or
	// changed; see Controller.Namespaces.
	NamespacesChanged
	// DiscoveryChanged: a discovery-log-change AEN arrived (discovery
	// controllers only).
	DiscoveryChanged
	// FailfastExpired: fast_io_fail_tmo ran out while connecting; the
	// controller is no longer Available, so I/O queued for it should now
	// fail (Linux kicks the requeue lists here).
	FailfastExpired
	// SilenceChanged: the controller stopped answering (a read got nothing
	// back within its silence bound; see ReadWithin) or a keep-alive probe
	// got an answer again; see Controller.Silent. The state stays LIVE.
	SilenceChanged
)

func (k EventKind) String() string {
	switch k {
	case StateChanged:
		return "state-changed"
	case ANAChanged:
		return "ana-changed"
	case NamespacesChanged:
		return "namespaces-changed"
	case DiscoveryChanged:
		return "discovery-changed"
	case FailfastExpired:
		return "failfast-expired"
	case SilenceChanged:
		return "silence-changed"
	}
	return "UNKNOWN_EVENT"
}

// Event is delivered to subscribers, in order, from one goroutine per
// controller. Old and New are set for every kind (the state when the event
// happened for non-state events).
type Event struct {
	Kind     EventKind
	Old, New State
	// Err is the cause of a state change into resetting or dead, if any.
	Err error
}

// eventQueue delivers events in order to the current subscribers from a
// single goroutine, so that subscribers may call back into the controller
// (which holds c.mu while pushing) without deadlock.
type eventQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []Event
	subs    map[uint64]func(Event)
	next    uint64
	closed  bool
	drained chan struct{}
}

func newEventQueue() *eventQueue {
	q := &eventQueue{subs: map[uint64]func(Event){}, drained: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	go q.run()
	return q
}

func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	if !q.closed {
		q.queue = append(q.queue, e)
		q.cond.Signal()
	}
	q.mu.Unlock()
}

func (q *eventQueue) subscribe(fn func(Event)) (cancel func()) {
	q.mu.Lock()
	id := q.next
	q.next++
	q.subs[id] = fn
	q.mu.Unlock()
	return func() {
		q.mu.Lock()
		delete(q.subs, id)
		q.mu.Unlock()
	}
}

// close delivers what is queued, then stops the goroutine.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Signal()
	q.mu.Unlock()
	<-q.drained
}

func (q *eventQueue) run() {
	defer close(q.drained)
	var fns []func(Event)
	for {
		q.mu.Lock()
		for len(q.queue) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.queue) == 0 {
			q.mu.Unlock()
			return
		}
		e := q.queue[0]
		q.queue = q.queue[1:]
		fns = fns[:0]
		for _, fn := range q.subs {
			fns = append(fns, fn)
		}
		q.mu.Unlock()
		for _, fn := range fns {
			fn(e)
		}
	}
}
