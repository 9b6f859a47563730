// Package nvmecli reads an NVMe sysfs-shaped tree (a mounted mpathfs, or the kernel's /sys)
// into a Topology and prints it the way nvme-cli's `nvme list-subsys` and
// `nvme show-topology` do, text and JSON.
//
// The output model follows libnvme's scan (see /work/contract/NVME-CLI-SYSFS.md): libnvme
// inserts hosts, subsystems, controllers and namespaces at the head of its lists, so nvme-cli
// prints them in reverse scandir (byte-wise name) order; paths of a namespace come out in
// forward controller order. The printers reproduce that ordering so that our output is
// byte-for-byte what nvme-cli prints for the same tree.
package nvmecli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Topology is the NVMe subsystems found under one root, in natural name order.
type Topology struct {
	Subsystems []*Subsystem
}

// Subsystem is one sys/class/nvme-subsystem/nvme-subsysN entry.
type Subsystem struct {
	Name        string // "nvme-subsys0"
	NQN         string
	Model       string // trailing padding removed, as libnvme does
	Serial      string
	Firmware    string
	Type        string // subsystype: nvm, discovery
	IOPolicy    string // numa, round-robin, queue-depth ("" if the file is absent)
	Controllers []*Controller
	Namespaces  []*Namespace
}

// Controller is one sys/class/nvme/nvmeX entry (a path to the subsystem, in nvme-cli's words).
type Controller struct {
	Name      string // "nvme0"
	Transport string
	Address   string // raw sysfs value, e.g. "traddr=127.0.0.1,trsvcid=4420,src_addr=127.0.0.1"
	State     string
	SubsysNQN string
	HostNQN   string
	HostID    string
	CNTLID    string
	Model     string
	Serial    string
	Firmware  string
	NUMANode  string
}

// Namespace is a multipath head, sys/block/nvmeXnY.
type Namespace struct {
	Name  string // "nvme0n1"
	NSID  uint32
	Paths []*Path // ordered by controller name
}

// Path is one per-controller path disk of a head, sys/block/nvmeXcYnZ.
type Path struct {
	Name       string      // "nvme0c1n1"
	Controller *Controller // nil if the controller is not in the subsystem
	ANAState   string      // "" if the file is absent
	ANAGroup   string
	NUMANodes  string // numa_nodes (numa policy only)
	QueueDepth string // queue_depth (queue-depth policy only)
}

// AddressFields returns c.Address split into its key=value fields.
func (c *Controller) AddressFields() (Address, error) {
	return ParseAddress(c.Address)
}

// ReadTopology reads the tree under root (the directory holding sys/class/nvme-subsystem,
// sys/class/nvme and sys/block; "/" for the kernel's sysfs). A missing nvme-subsystem class
// directory yields an empty Topology. Controllers are members of the subsystem whose
// directory has an entry of their name, as libnvme decides it.
func ReadTopology(root string) (*Topology, error) {
	subsysDir := filepath.Join(root, "sys", "class", "nvme-subsystem")
	ents, err := os.ReadDir(subsysDir)
	if errors.Is(err, fs.ErrNotExist) {
		return &Topology{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nvmecli: read %s: %w", subsysDir, err)
	}
	t := &Topology{}
	for _, e := range ents {
		if _, ok := parseSubsysName(e.Name()); !ok {
			continue
		}
		s, err := readSubsystem(root, e.Name())
		if err != nil {
			return nil, err
		}
		t.Subsystems = append(t.Subsystems, s)
	}
	sort.Slice(t.Subsystems, func(i, j int) bool {
		return naturalLess(t.Subsystems[i].Name, t.Subsystems[j].Name)
	})
	return t, nil
}

func readSubsystem(root, name string) (*Subsystem, error) {
	dir := filepath.Join(root, "sys", "class", "nvme-subsystem", name)
	s := &Subsystem{Name: name}
	var err error
	if s.NQN, err = readAttr(dir, "subsysnqn"); err != nil {
		return nil, err
	}
	for _, a := range []struct {
		dst  *string
		name string
	}{
		{&s.Model, "model"}, {&s.Serial, "serial"}, {&s.Firmware, "firmware_rev"},
		{&s.Type, "subsystype"}, {&s.IOPolicy, "iopolicy"},
	} {
		if *a.dst, err = readOptAttr(dir, a.name); err != nil {
			return nil, err
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("nvmecli: read %s: %w", dir, err)
	}
	ctrls := map[string]*Controller{}
	var heads []string
	for _, e := range ents {
		n := e.Name()
		switch {
		case isCtrlName(n):
			c, err := readController(root, n)
			if err != nil {
				return nil, err
			}
			s.Controllers = append(s.Controllers, c)
			ctrls[n] = c
		case isHeadName(n):
			heads = append(heads, n)
		}
	}
	sort.Slice(s.Controllers, func(i, j int) bool {
		return naturalLess(s.Controllers[i].Name, s.Controllers[j].Name)
	})
	for _, h := range heads {
		ns, err := readNamespace(root, h, ctrls)
		if err != nil {
			return nil, err
		}
		s.Namespaces = append(s.Namespaces, ns)
	}
	sort.Slice(s.Namespaces, func(i, j int) bool {
		return naturalLess(s.Namespaces[i].Name, s.Namespaces[j].Name)
	})
	return s, nil
}

func readController(root, name string) (*Controller, error) {
	dir := filepath.Join(root, "sys", "class", "nvme", name)
	c := &Controller{Name: name}
	var err error
	for _, a := range []struct {
		dst  *string
		name string
	}{
		{&c.Transport, "transport"}, {&c.Address, "address"}, {&c.State, "state"},
		{&c.SubsysNQN, "subsysnqn"}, {&c.HostNQN, "hostnqn"}, {&c.HostID, "hostid"},
		{&c.CNTLID, "cntlid"}, {&c.Model, "model"}, {&c.Serial, "serial"},
		{&c.Firmware, "firmware_rev"}, {&c.NUMANode, "numa_node"},
	} {
		if *a.dst, err = readOptAttr(dir, a.name); err != nil {
			return nil, err
		}
	}
	if c.Transport == "" {
		return nil, fmt.Errorf("nvmecli: %s: no transport: %w", dir, fs.ErrNotExist)
	}
	return c, nil
}

func readNamespace(root, name string, ctrls map[string]*Controller) (*Namespace, error) {
	dir := filepath.Join(root, "sys", "block", name)
	ns := &Namespace{Name: name}
	v, err := readOptAttr(dir, "nsid")
	if err != nil {
		return nil, err
	}
	if v != "" {
		id, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("nvmecli: %s/nsid %q: %w", dir, v, err)
		}
		ns.NSID = uint32(id)
	} else if _, id, ok := parseHeadName(name); ok {
		ns.NSID = id
	}
	paths, err := pathNames(root, name, ctrls)
	if err != nil {
		return nil, err
	}
	for _, pn := range paths {
		p, err := readPath(root, pn, ctrls)
		if err != nil {
			return nil, err
		}
		ns.Paths = append(ns.Paths, p)
	}
	sort.SliceStable(ns.Paths, func(i, j int) bool {
		return naturalLess(ctrlNameOf(ns.Paths[i]), ctrlNameOf(ns.Paths[j]))
	})
	return ns, nil
}

// pathNames lists the path disks of head: from its multipath/ directory when present,
// otherwise (older kernels) from the controller directories, the way libnvme finds them.
func pathNames(root, head string, ctrls map[string]*Controller) ([]string, error) {
	mp := filepath.Join(root, "sys", "block", head, "multipath")
	ents, err := os.ReadDir(mp)
	if err == nil {
		var names []string
		for _, e := range ents {
			if isPathName(e.Name()) {
				names = append(names, e.Name())
			}
		}
		return names, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("nvmecli: read %s: %w", mp, err)
	}
	hs, hn, _ := parseHeadName(head)
	var names []string
	for cname := range ctrls {
		cdir := filepath.Join(root, "sys", "class", "nvme", cname)
		ents, err := os.ReadDir(cdir)
		if err != nil {
			return nil, fmt.Errorf("nvmecli: read %s: %w", cdir, err)
		}
		for _, e := range ents {
			if ps, _, pn, ok := parsePathName(e.Name()); ok && ps == hs && pn == hn {
				names = append(names, e.Name())
			}
		}
	}
	return names, nil
}

func readPath(root, name string, ctrls map[string]*Controller) (*Path, error) {
	dir := filepath.Join(root, "sys", "block", name)
	p := &Path{Name: name}
	var err error
	for _, a := range []struct {
		dst  *string
		name string
	}{
		{&p.ANAState, "ana_state"}, {&p.ANAGroup, "ana_grpid"},
		{&p.NUMANodes, "numa_nodes"}, {&p.QueueDepth, "queue_depth"},
	} {
		if *a.dst, err = readOptAttr(dir, a.name); err != nil {
			return nil, err
		}
	}
	if _, c, _, ok := parsePathName(name); ok {
		p.Controller = ctrls["nvme"+strconv.FormatUint(uint64(c), 10)]
	}
	if p.Controller == nil {
		// The kernel's path name carries the controller instance, but a tree may only say it
		// through the device link.
		if target, err := os.Readlink(filepath.Join(dir, "device")); err == nil {
			p.Controller = ctrls[filepath.Base(target)]
		}
	}
	return p, nil
}

func ctrlNameOf(p *Path) string {
	if p.Controller == nil {
		return ""
	}
	return p.Controller.Name
}

// readAttr reads a sysfs attribute that must exist.
func readAttr(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", fmt.Errorf("nvmecli: %w", err)
	}
	return trimAttr(b), nil
}

// readOptAttr reads a sysfs attribute that may be absent ("" then).
func readOptAttr(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("nvmecli: %w", err)
	}
	return trimAttr(b), nil
}

// trimAttr drops the trailing newline and the space padding of fixed-width fields
// (model, serial, firmware_rev), as libnvme's nvme_get_attr does.
func trimAttr(b []byte) string {
	return strings.TrimRight(string(b), " \t\r\n")
}
