// Package top is `mpathfs top`: a live view of controllers, paths and
// namespaces computed only from the tree's stat, state, ana_state and
// diag/ files, so it works on a mpathfs mount and on a kernel's /sys alike.
package top

import (
	"fmt"
	"github.com/mpathfs/mpathfs/internal/natsort"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Stat is the part of a block stat file top uses (17-field form; older
// kernels' 11 or 15 fields work too).
type Stat struct {
	ReadIOs, ReadSectors, ReadTicksMs    uint64
	WriteIOs, WriteSectors, WriteTicksMs uint64
	InFlight                             uint64
}

func (s Stat) add(o Stat) Stat {
	return Stat{
		ReadIOs: s.ReadIOs + o.ReadIOs, ReadSectors: s.ReadSectors + o.ReadSectors, ReadTicksMs: s.ReadTicksMs + o.ReadTicksMs,
		WriteIOs: s.WriteIOs + o.WriteIOs, WriteSectors: s.WriteSectors + o.WriteSectors, WriteTicksMs: s.WriteTicksMs + o.WriteTicksMs,
		InFlight: s.InFlight + o.InFlight,
	}
}

// ParseStat parses a /sys/block/*/stat line.
func ParseStat(s string) (Stat, error) {
	f := strings.Fields(s)
	if len(f) < 11 {
		return Stat{}, fmt.Errorf("stat: %d fields, want at least 11", len(f))
	}
	var v [11]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return Stat{}, fmt.Errorf("stat field %d: %w", i+1, err)
		}
		v[i] = n
	}
	return Stat{ReadIOs: v[0], ReadSectors: v[2], ReadTicksMs: v[3], WriteIOs: v[4], WriteSectors: v[6], WriteTicksMs: v[7], InFlight: v[8]}, nil
}

// Reading is one pass over the tree.
type Reading struct {
	Time        time.Time
	Controllers []CtrlReading
	Paths       []PathReading
	Namespaces  []NSReading
}

// CtrlReading is one controller; its Stat sums its paths (or, without
// multipath, its namespaces). Counters are nil where the diag/ file is
// absent (kernels before the diag attributes).
type CtrlReading struct {
	Name, Subsystem, State, Transport, Address string
	Resets, Reconnects, Errors                 *uint64
	Stat                                       Stat
}

// PathReading is one path nvmeScCnH (or, without multipath, a namespace
// seen through one controller).
type PathReading struct {
	Name, Namespace, Controller, ANAState string
	Retries, Failovers, Errors            *uint64
	Stat                                  Stat
}

// NSReading is one multipath namespace (head) or plain namespace.
type NSReading struct {
	Name, Subsystem string
	Stat            Stat
}

var (
	pathName = regexp.MustCompile(`^nvme(\d+)c(\d+)n(\d+)$`)
	nsName   = regexp.MustCompile(`^nvme(\d+)n(\d+)$`)
)

func readLine(p string) (string, bool) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

func readCount(p string) *uint64 {
	s, ok := readLine(p)
	if !ok {
		return nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return nil
	}
	return &n
}

// Read takes one reading of the tree at root (a mpathfs mount point, or
// "/" for the kernel's /sys). Objects that vanish mid-read are skipped.
func Read(root string) (*Reading, error) {
	sys := filepath.Join(root, "sys")
	r := &Reading{Time: time.Now()}
	ctrls, err := os.ReadDir(filepath.Join(sys, "class", "nvme"))
	if err != nil {
		return nil, fmt.Errorf("no NVMe controllers under %s: %w", root, err)
	}
	subsysOf := map[string]string{} // controller or namespace -> subsystem
	if subs, err := os.ReadDir(filepath.Join(sys, "class", "nvme-subsystem")); err == nil {
		for _, s := range subs {
			ents, _ := os.ReadDir(filepath.Join(sys, "class", "nvme-subsystem", s.Name()))
			for _, e := range ents {
				subsysOf[e.Name()] = s.Name()
			}
		}
	}
	for _, c := range ctrls {
		dir := filepath.Join(sys, "class", "nvme", c.Name())
		state, ok := readLine(filepath.Join(dir, "state"))
		if !ok {
			continue
		}
		cr := CtrlReading{Name: c.Name(), Subsystem: subsysOf[c.Name()], State: state}
		cr.Transport, _ = readLine(filepath.Join(dir, "transport"))
		cr.Address, _ = readLine(filepath.Join(dir, "address"))
		cr.Resets = readCount(filepath.Join(dir, "diag", "reset_count"))
		cr.Reconnects = readCount(filepath.Join(dir, "diag", "reconnect_count"))
		cr.Errors = readCount(filepath.Join(dir, "diag", "command_error_count"))
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			name := e.Name()
			pdir := filepath.Join(dir, name)
			var pr PathReading
			switch {
			case pathName.MatchString(name):
				m := pathName.FindStringSubmatch(name)
				pr = PathReading{Name: name, Namespace: "nvme" + m[1] + "n" + m[3], Controller: c.Name()}
				pr.ANAState, _ = readLine(filepath.Join(pdir, "ana_state"))
				pr.Retries = readCount(filepath.Join(pdir, "diag", "command_retries_count")) // Linux 7.2's name
				if pr.Retries == nil {
					pr.Retries = readCount(filepath.Join(pdir, "diag", "command_retry_count"))
				}
				pr.Failovers = readCount(filepath.Join(pdir, "diag", "multipath_failover_count"))
				pr.Errors = readCount(filepath.Join(pdir, "diag", "command_error_count"))
			case nsName.MatchString(name): // no multipath: the namespace itself
				pr = PathReading{Name: name, Namespace: name, Controller: c.Name()}
			default:
				continue
			}
			line, ok := readLine(filepath.Join(pdir, "stat"))
			if !ok {
				continue
			}
			st, err := ParseStat(line)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(pdir, "stat"), err)
			}
			pr.Stat = st
			cr.Stat = cr.Stat.add(st)
			r.Paths = append(r.Paths, pr)
		}
		r.Controllers = append(r.Controllers, cr)
	}
	blocks, _ := os.ReadDir(filepath.Join(sys, "block"))
	for _, b := range blocks {
		if !nsName.MatchString(b.Name()) {
			continue
		}
		line, ok := readLine(filepath.Join(sys, "block", b.Name(), "stat"))
		if !ok {
			continue
		}
		st, err := ParseStat(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		r.Namespaces = append(r.Namespaces, NSReading{Name: b.Name(), Subsystem: subsysOf[b.Name()], Stat: st})
	}
	sort.Slice(r.Controllers, func(i, j int) bool { return natsort.Less(r.Controllers[i].Name, r.Controllers[j].Name) })
	sort.Slice(r.Paths, func(i, j int) bool { return natsort.Less(r.Paths[i].Name, r.Paths[j].Name) })
	sort.Slice(r.Namespaces, func(i, j int) bool { return natsort.Less(r.Namespaces[i].Name, r.Namespaces[j].Name) })
	return r, nil
}
