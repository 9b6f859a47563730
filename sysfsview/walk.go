package sysfsview

import (
	"sort"

	"github.com/mpathfs/mpathfs/internal/natsort"
)

// Objects lists the tree's objects with the sources behind their
// attributes, for readers that want values rather than text (the metrics
// collector reads the same counters the files show). Each slice is sorted
// by name.
type Objects struct {
	Subsystems  []SubsystemObject
	Controllers []ControllerObject
	Heads       []HeadObject
	Paths       []PathObject
}

// SubsystemObject is one nvme-subsysN.
type SubsystemObject struct {
	Name   string
	Info   SubsystemInfo
	Source SubsystemSource
}

// ControllerObject is one nvmeX.
type ControllerObject struct {
	Name, Subsystem string
	Info            ControllerInfo
	Source          ControllerSource
}

// HeadObject is one multipath namespace nvmeNnM.
type HeadObject struct {
	Name, Subsystem string
	Info            HeadInfo
	Source          HeadSource
}

// PathObject is one path nvmeNcXnM.
type PathObject struct {
	Name, Head, Controller string
	Source                 PathSource
}

// Objects returns a consistent listing of the current objects.
func (t *Tree) Objects() Objects {
	t.mu.Lock()
	defer t.mu.Unlock()
	var o Objects
	for n, s := range t.subsys {
		o.Subsystems = append(o.Subsystems, SubsystemObject{Name: n, Info: s.info, Source: s.src})
	}
	for n, c := range t.ctrls {
		o.Controllers = append(o.Controllers, ControllerObject{Name: n, Subsystem: c.subsys, Info: c.info, Source: c.src})
	}
	for n, h := range t.heads {
		o.Heads = append(o.Heads, HeadObject{Name: n, Subsystem: h.subsys, Info: h.info, Source: h.src})
	}
	for n, p := range t.paths {
		o.Paths = append(o.Paths, PathObject{Name: n, Head: p.head, Controller: p.ctrl, Source: p.src})
	}
	sort.Slice(o.Subsystems, func(i, j int) bool { return o.Subsystems[i].Name < o.Subsystems[j].Name })
	sort.Slice(o.Controllers, func(i, j int) bool { return natsort.Less(o.Controllers[i].Name, o.Controllers[j].Name) })
	sort.Slice(o.Heads, func(i, j int) bool { return natsort.Less(o.Heads[i].Name, o.Heads[j].Name) })
	sort.Slice(o.Paths, func(i, j int) bool { return natsort.Less(o.Paths[i].Name, o.Paths[j].Name) })
	return o
}
