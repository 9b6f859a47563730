package sysfsview

import "sort"

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
	sort.Slice(o.Controllers, func(i, j int) bool { return natLess(o.Controllers[i].Name, o.Controllers[j].Name) })
	sort.Slice(o.Heads, func(i, j int) bool { return natLess(o.Heads[i].Name, o.Heads[j].Name) })
	sort.Slice(o.Paths, func(i, j int) bool { return natLess(o.Paths[i].Name, o.Paths[j].Name) })
	return o
}

// natLess orders names with embedded numbers numerically (nvme2 < nvme10).
func natLess(a, b string) bool {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			i, j := 0, 0
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			na, nb := trimZeros(a[:i]), trimZeros(b[:j])
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = a[i:], b[j:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}
