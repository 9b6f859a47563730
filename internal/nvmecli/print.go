package nvmecli

import (
	"fmt"
	"io"
	"strings"
)

// Dialect selects which nvme-cli release's output to reproduce.
type Dialect int

const (
	// DialectCurrent is nvme-cli 2.x after 2.3 as distributions ship it (landscape doc §2):
	// the subsystem header adds "hostnqn=" and "iopolicy=" lines, -v adds model=, serial=,
	// firmware= and type=, subsystems without controllers are skipped and subsystems are
	// separated by a blank line; path lines carry the ANA state only for a device argument.
	DialectCurrent Dialect = iota
	// Dialect23 is nvme-cli 2.3 with libnvme 1.3 (Debian 12), verified byte for byte against
	// /usr/sbin/nvme: header "NAME - NQN=..." only, paths of the first namespace with a
	// trailing space where the ANA state would go, -v without effect.
	Dialect23
)

// Ranking is show-topology's -r option.
type Ranking int

const (
	RankNamespace Ranking = iota // default: namespaces, then their paths
	RankCtrl                     // controllers, then the namespaces reached through them
	RankMultipath                // heads, then path disks (DialectCurrent only)
)

// PrintOptions are the nvme-cli flags the printers honour.
type PrintOptions struct {
	Dialect Dialect
	JSON    bool   // -o json
	Verbose bool   // -v
	Device  string // list-subsys DEVICE ("nvme0n1" or "/dev/nvme0n1"): that subsystem only, ANA shown
	Ranking Ranking
}

// WriteListSubsys prints t like `nvme list-subsys [-v] [-o json] [DEVICE]`.
func WriteListSubsys(w io.Writer, t *Topology, opts PrintOptions) error {
	f, err := parseDevice(opts.Device)
	if err != nil {
		return err
	}
	v := buildView(t, f)
	var b strings.Builder
	if opts.JSON {
		listSubsysJSON(&b, v, opts, f.set)
	} else {
		listSubsysText(&b, v, opts, f.set)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("nvmecli: write list-subsys: %w", err)
	}
	return nil
}

// WriteShowTopology prints t like `nvme show-topology [-v] [-o json] [-r RANKING]`.
// nvme-cli ignores a device argument here, and so does this (opts.Device is not used).
func WriteShowTopology(w io.Writer, t *Topology, opts PrintOptions) error {
	v := buildView(t, devFilter{})
	var b strings.Builder
	switch {
	case opts.JSON:
		topologyJSON(&b, v, opts)
	case opts.Ranking == RankMultipath && opts.Dialect == Dialect23:
		return fmt.Errorf("nvmecli: show-topology -r multipath: not in nvme-cli 2.3")
	default:
		topologyText(&b, v, opts)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("nvmecli: write show-topology: %w", err)
	}
	return nil
}

// header writes the subsystem lines up to and including the "\" line.
func header(b *strings.Builder, h *hostView, sv *subsysView, opts PrintOptions) {
	s := sv.s
	fmt.Fprintf(b, "%s - NQN=%s\n", s.Name, s.NQN)
	if opts.Dialect == DialectCurrent {
		ind := strings.Repeat(" ", max(len(s.Name), 1)) + "   "
		fmt.Fprintf(b, "%shostnqn=%s\n", ind, cstr(h.nqn))
		fmt.Fprintf(b, "%siopolicy=%s\n", ind, cstr(s.IOPolicy))
		if opts.Verbose {
			fmt.Fprintf(b, "%smodel=%s\n", ind, cstr(s.Model))
			fmt.Fprintf(b, "%sserial=%s\n", ind, cstr(s.Serial))
			fmt.Fprintf(b, "%sfirmware=%s\n", ind, cstr(s.Firmware))
			fmt.Fprintf(b, "%stype=%s\n", ind, cstr(s.Type))
		}
	}
	b.WriteString("\\\n")
}

func listSubsysText(b *strings.Builder, v *view, opts PrintOptions, showANA bool) {
	first := true
	for _, h := range v.hosts {
		for _, sv := range h.subs {
			if opts.Dialect == DialectCurrent {
				if len(sv.ctrls) == 0 {
					continue
				}
				if !first {
					b.WriteByte('\n')
				}
			}
			first = false
			header(b, h, sv, opts)
			// 2.3 prints the first namespace's paths whenever there is one (ANA left empty
			// without a device); later releases only with a device.
			var paths []*Path
			if len(sv.nss) > 0 && (showANA || opts.Dialect == Dialect23) {
				paths = sv.nsPaths(sv.nss[0])
			}
			for _, p := range paths {
				ana := ""
				if showANA {
					ana = anaState(p)
				}
				c := p.Controller
				fmt.Fprintf(b, " +- %s %s %s %s %s\n", c.Name, c.Transport, c.Address, cstr(c.State), ana)
			}
			if len(paths) == 0 {
				for _, c := range sv.ctrls {
					fmt.Fprintf(b, " +- %s %s %s %s\n", c.Name, c.Transport, c.Address, cstr(c.State))
				}
			}
		}
	}
}

func subsysJSONHeader(sv *subsysView, opts PrintOptions) jobject {
	s := sv.s
	o := jobject{}
	o.add("Name", s.Name)
	o.add("NQN", s.NQN)
	if opts.Dialect == DialectCurrent && opts.Verbose {
		o.add("Model", jstr(s.Model))
		o.add("Serial", jstr(s.Serial))
		o.add("Firmware", jstr(s.Firmware))
		o.add("IOPolicy", jstr(s.IOPolicy))
		o.add("Type", jstr(s.Type))
	}
	return o
}

func pathJSON(c *Controller, p *Path, opts PrintOptions, showANA bool) jobject {
	o := jobject{}
	o.add("Name", c.Name)
	o.add("Transport", c.Transport)
	o.add("Address", c.Address)
	if opts.Dialect == DialectCurrent {
		d := jobject{}
		if a, err := ParseAddress(c.Address); err == nil {
			for _, f := range a {
				d.add(f.Key, f.Value)
			}
		}
		o.add("AddressDetails", d)
	}
	o.add("State", jstr(c.State))
	if showANA && p != nil {
		o.add("ANAState", anaState(p))
	}
	return o
}

func listSubsysJSON(b *strings.Builder, v *view, opts PrintOptions, showANA bool) {
	root := jarray{}
	for _, h := range v.hosts {
		ho := jobject{}
		ho.add("HostNQN", jstr(h.nqn))
		ho.add("HostID", jstr(h.id))
		subs := jarray{}
		for _, sv := range h.subs {
			if opts.Dialect == DialectCurrent && len(sv.ctrls) == 0 {
				continue
			}
			so := subsysJSONHeader(sv, opts)
			paths := jarray{}
			if len(sv.nss) > 0 && (showANA || opts.Dialect == Dialect23) {
				for _, p := range sv.nsPaths(sv.nss[0]) {
					paths = append(paths, pathJSON(p.Controller, p, opts, showANA))
				}
			}
			if len(paths) == 0 {
				for _, c := range sv.ctrls {
					paths = append(paths, pathJSON(c, nil, opts, false))
				}
			}
			so.add("Paths", paths)
			subs = append(subs, so)
		}
		ho.add("Subsystems", subs)
		root = append(root, ho)
	}
	writeJSON(b, root)
}

func topologyText(b *strings.Builder, v *view, opts PrintOptions) {
	for _, h := range v.hosts {
		for _, sv := range h.subs {
			header(b, h, sv, opts)
			switch opts.Ranking {
			case RankCtrl:
				for _, c := range sv.ctrls {
					fmt.Fprintf(b, " +- %s %s %s\n \\\n", c.Name, c.Transport, c.Address)
					for _, cp := range sv.ctrlPaths(c) {
						fmt.Fprintf(b, "  +- ns %d %s %s\n", cp.ns.NSID, cstr(c.State), anaState(cp.p))
					}
				}
			case RankMultipath:
				for _, n := range sv.nss {
					fmt.Fprintf(b, " +- %s (ns %d)\n \\\n", n.Name, n.NSID)
					for _, p := range sv.nsPaths(n) {
						c := p.Controller
						mid := ""
						switch sv.s.IOPolicy {
						case "numa":
							mid = " " + p.NUMANodes
						case "queue-depth":
							mid = " " + p.QueueDepth
						}
						fmt.Fprintf(b, "  +- %s %s%s %s %s %s %s\n", p.Name, anaState(p), mid,
							c.Name, c.Transport, c.Address, cstr(c.State))
					}
				}
			default:
				for _, n := range sv.nss {
					fmt.Fprintf(b, " +- ns %d\n \\\n", n.NSID)
					for _, p := range sv.nsPaths(n) {
						c := p.Controller
						fmt.Fprintf(b, "  +- %s %s %s %s %s\n", c.Name, c.Transport, c.Address,
							cstr(c.State), anaState(p))
					}
				}
			}
		}
	}
}

func topologyJSON(b *strings.Builder, v *view, opts PrintOptions) {
	root := jarray{}
	for _, h := range v.hosts {
		ho := jobject{}
		ho.add("HostNQN", jstr(h.nqn))
		ho.add("HostID", jstr(h.id))
		subs := jarray{}
		for _, sv := range h.subs {
			so := subsysJSONHeader(sv, opts)
			nss := jarray{}
			for _, n := range sv.nss {
				no := jobject{}
				no.add("NSID", int64(n.NSID))
				paths := jarray{}
				for _, p := range sv.nsPaths(n) {
					paths = append(paths, pathJSON(p.Controller, p, opts, true))
				}
				no.add("Paths", paths)
				nss = append(nss, no)
			}
			so.add("Namespaces", nss)
			subs = append(subs, so)
		}
		ho.add("Subsystems", subs)
		root = append(root, ho)
	}
	writeJSON(b, root)
}

// ParseRanking parses show-topology's -r value: "namespace", "ctrl" or "multipath".
func ParseRanking(s string) (Ranking, error) {
	switch s {
	case "", "namespace":
		return RankNamespace, nil
	case "ctrl":
		return RankCtrl, nil
	case "multipath":
		return RankMultipath, nil
	}
	return 0, fmt.Errorf("nvmecli: ranking %q: want namespace, ctrl or multipath", s)
}

// ParseDialect parses a dialect name: "current" (or "") and "2.3".
func ParseDialect(s string) (Dialect, error) {
	switch s {
	case "", "current":
		return DialectCurrent, nil
	case "2.3":
		return Dialect23, nil
	}
	return 0, fmt.Errorf("nvmecli: nvme-cli dialect %q: want current or 2.3", s)
}
