package mpath

import (
	"sync"
	"sync/atomic"
)

// Controller is the state shared by all paths through one controller (one connection
// to the subsystem): the in-flight command count used by queue-depth (per controller,
// like the kernel's ctrl->nr_active), the outstanding bytes and throughput estimate
// used by service-time, its NUMA node and its name.
type Controller struct {
	// Hot fields first; written on every I/O.
	inflight    atomic.Int64
	outstanding atomic.Int64 // bytes in flight
	nsPerKiB    atomic.Int64 // EWMA of service time per KiB; 0 = no sample yet
	lastDone    atomic.Int64 // ns (subsystem time) of the last successful completion

	name string
	node int

	mu    sync.Mutex
	paths []*Path
}

// NewController returns a Controller named name (e.g. "nvme0") on NUMA node numaNode
// (NoNode if unknown).
func NewController(name string, numaNode int) *Controller {
	return &Controller{name: name, node: numaNode}
}

// Name returns the controller name.
func (c *Controller) Name() string { return c.name }

// NUMANode returns the controller's NUMA node, or NoNode.
func (c *Controller) NUMANode() int { return c.node }

// Inflight returns the number of commands submitted through this controller's paths
// that have not completed (the kernel's nr_active, sysfs queue_depth). Like the
// kernel it is counted only while the subsystem's policy is queue-depth.
func (c *Controller) Inflight() int64 { return c.inflight.Load() }

// OutstandingBytes returns the bytes of the commands in flight on this controller,
// counted only while the subsystem's policy is service-time.
func (c *Controller) OutstandingBytes() int64 { return c.outstanding.Load() }

// Paths returns the controller's paths (one per head it serves).
func (c *Controller) Paths() []*Path {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Path(nil), c.paths...)
}

// Changed calls Path.Changed on every path of the controller; a driver calls it after
// a controller state change.
func (c *Controller) Changed() {
	for _, p := range c.Paths() {
		p.Changed()
	}
}

func (c *Controller) addPath(p *Path) {
	c.mu.Lock()
	c.paths = append(c.paths, p)
	c.mu.Unlock()
}

func (c *Controller) removePath(p *Path) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, q := range c.paths {
		if q == p {
			c.paths = append(c.paths[:i:i], c.paths[i+1:]...)
			return
		}
	}
}

// sample feeds one successful completion into the service-time estimate.
// Lost updates between racing completions are harmless for an average.
func (c *Controller) sample(latency, length, now int64) {
	if length < 512 {
		length = 512
	}
	s := latency * 1024 / length
	if s <= 0 {
		s = 1
	}
	old := c.nsPerKiB.Load()
	if old != 0 {
		s = old + (s-old)/8
	}
	c.nsPerKiB.Store(s)
	c.lastDone.Store(now)
}
