package nvmecli

import (
	"errors"
	"fmt"
	"path"
	"sort"
)

// view is the topology as libnvme's object lists hold it after nvme_scan_topology(), in the
// order nvme-cli walks them.
type view struct {
	hosts []*hostView
}

type hostView struct {
	nqn, id string
	subs    []*subsysView
}

type subsysView struct {
	s     *Subsystem
	ctrls []*Controller // libnvme order (reverse scan order)
	nss   []*Namespace  // libnvme order, after the device filter
}

// ErrBadDevice is returned for a PrintOptions.Device that is not a namespace name like
// nvme0n1 (nvme-cli prints "Invalid device name %s" and exits 1).
var ErrBadDevice = errors.New("invalid device name")

type devFilter struct {
	set      bool
	name     string
	instance uint32
}

func parseDevice(dev string) (devFilter, error) {
	if dev == "" {
		return devFilter{}, nil
	}
	base := path.Base(dev)
	inst, _, ok := parseHeadName(base)
	if !ok {
		return devFilter{}, fmt.Errorf("nvmecli: %q: %w", dev, ErrBadDevice)
	}
	return devFilter{set: true, name: base, instance: inst}, nil
}

// buildView mirrors libnvme's scan: controllers are scanned in byte-wise name order (scandir
// with alphasort); each creates or finds its host (hostnqn, hostid) and, in that host, its
// subsystem; every list inserts at the head, so nvme-cli sees everything reversed.
func buildView(t *Topology, f devFilter) *view {
	type pair struct {
		c *Controller
		s *Subsystem
	}
	var all []pair
	for _, s := range t.Subsystems {
		for _, c := range s.Controllers {
			if c.Address == "" && c.Transport != "loop" && c.Transport != "pcie" {
				continue // libnvme drops it (ENXIO)
			}
			all = append(all, pair{c, s})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].c.Name < all[j].c.Name })

	v := &view{}
	lookupHost := func(nqn, id string) *hostView {
		for _, h := range v.hosts {
			if h.nqn == nqn && (id == "" || h.id == id) {
				return h
			}
		}
		h := &hostView{nqn: nqn, id: id}
		v.hosts = append(v.hosts, h)
		return h
	}
	lookupSubsys := func(h *hostView, s *Subsystem) *subsysView {
		for _, sv := range h.subs {
			if sv.s == s {
				return sv
			}
		}
		sv := &subsysView{s: s}
		h.subs = append(h.subs, sv)
		return sv
	}
	seen := map[*Subsystem]bool{}
	for _, p := range all {
		sv := lookupSubsys(lookupHost(p.c.HostNQN, p.c.HostID), p.s)
		sv.ctrls = append(sv.ctrls, p.c)
		seen[p.s] = true
	}
	// Subsystems without controllers are attached to libnvme's default host (the machine's
	// /etc/nvme/hostnqn); we use the first host seen, which is that host in practice.
	var detached []*Subsystem
	for _, s := range t.Subsystems {
		if !seen[s] {
			detached = append(detached, s)
		}
	}
	sort.SliceStable(detached, func(i, j int) bool { return detached[i].Name < detached[j].Name })
	for _, s := range detached {
		var h *hostView
		if len(v.hosts) > 0 {
			h = v.hosts[0]
		} else {
			h = lookupHost("", "")
		}
		lookupSubsys(h, s)
	}

	reverse(v.hosts)
	for _, h := range v.hosts {
		if f.set {
			kept := h.subs[:0]
			for _, sv := range h.subs {
				if n, ok := parseSubsysName(sv.s.Name); ok && n == f.instance {
					kept = append(kept, sv)
				}
			}
			h.subs = kept
		}
		reverse(h.subs)
		for _, sv := range h.subs {
			reverse(sv.ctrls)
			sv.nss = append([]*Namespace(nil), sv.s.Namespaces...)
			sort.SliceStable(sv.nss, func(i, j int) bool { return sv.nss[i].Name > sv.nss[j].Name })
			if f.set {
				kept := sv.nss[:0]
				for _, n := range sv.nss {
					if n.Name == f.name {
						kept = append(kept, n)
					}
				}
				sv.nss = kept
			}
		}
	}
	return v
}

// nsPaths returns the paths of n as libnvme links them: controllers walked in list order,
// each matching path inserted at the head.
func (sv *subsysView) nsPaths(n *Namespace) []*Path {
	var out []*Path
	for _, c := range sv.ctrls {
		for _, p := range n.Paths {
			if p.Controller == c {
				out = append(out, p)
			}
		}
	}
	reverse(out)
	return out
}

type ctrlPath struct {
	p  *Path
	ns *Namespace
}

// ctrlPaths returns the paths of c that belong to a scanned namespace, in libnvme's per
// controller list order (reverse byte-wise path name).
func (sv *subsysView) ctrlPaths(c *Controller) []ctrlPath {
	var out []ctrlPath
	for _, n := range sv.nss {
		for _, p := range n.Paths {
			if p.Controller == c {
				out = append(out, ctrlPath{p, n})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].p.Name > out[j].p.Name })
	return out
}

func reverse[T any](s []T) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

// anaState is what libnvme reports for a path: the file's value, "optimized" when absent.
func anaState(p *Path) string {
	if p.ANAState == "" {
		return "optimized"
	}
	return p.ANAState
}

// cstr renders a possibly absent libnvme string the way glibc's printf("%s", NULL) does.
func cstr(s string) string {
	if s == "" {
		return "(null)"
	}
	return s
}

// jstr renders a possibly absent libnvme string the way nvme-cli's JSON does (null).
func jstr(s string) jvalue {
	if s == "" {
		return nil
	}
	return s
}
