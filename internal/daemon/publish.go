package daemon

import (
	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/multipath"
	"github.com/mpathfs/mpathfs/sysfsview"
)

// publisher shows the multipath lifecycle in the sysfs tree and the FUSE
// namespace files.
type publisher struct{ d *Daemon }

var _ multipath.Listener = publisher{}

func (p publisher) SubsystemAdded(s *multipath.Subsystem, id *nvme.IdentifyController) {
	subtype := "nvm"
	if id.CNTRLTYPE == 2 {
		subtype = "discovery"
	}
	err := p.d.tree.AddSubsystem(s.Name(), sysfsview.SubsystemInfo{
		NQN: s.NQN(), Model: id.ModelNumber, Serial: id.SerialNumber, FirmwareRev: id.FirmwareRev,
		VID: id.VID, Type: subtype,
		IOPolicies: []string{"numa", "round-robin", "queue-depth", "service-time"},
	}, &subsysSource{mp: s.MPath()})
	if err != nil {
		p.d.log.Error("sysfs: add subsystem", "name", s.Name(), "error", err)
	}
}

func (p publisher) ControllerAdded(c *multipath.Ctrl) error {
	d := p.d
	d.mu.Lock()
	hc := d.hosts[c.Instance()]
	d.mu.Unlock()
	id := hc.Identify()
	o := hc.Options()
	info := sysfsview.ControllerInfo{
		Transport: "tcp", SubsysNQN: c.Subsystem().NQN(), HostNQN: o.HostNQN, HostID: o.HostID,
		Model: id.ModelNumber, Serial: id.SerialNumber, FirmwareRev: id.FirmwareRev,
		CntrlType: id.CNTRLTYPE,
	}
	return d.tree.AddController(c.Name(), c.Subsystem().Name(), info, &ctrlSource{c: c, hc: hc, d: d})
}

func (p publisher) ControllerRemoved(c *multipath.Ctrl) {
	_ = p.d.tree.RemoveController(c.Name())
}

func (p publisher) HeadAdded(s *multipath.Subsystem, h *mpath.Head) {
	d := p.d
	info := h.Info()
	id := h.Identity()
	dev := newDevice(h)
	err := d.tree.AddHead(h.Name(), s.Name(), sysfsview.HeadInfo{NSID: id.NSID, UUID: id.UUID, NGUID: id.NGUID, EUI64: id.EUI64, CSI: id.CSI}, &headSource{h: h})
	if err != nil {
		d.log.Error("sysfs: add head", "name", h.Name(), "error", err)
	}
	d.mu.Lock()
	d.devices[h.Name()] = dev
	l := d.listener
	d.mu.Unlock()
	d.log.Info("new multipath namespace", "name", h.Name(), "nsid", id.NSID, "bytes", info.Capacity, "block_size", info.BlockSize)
	if l != nil {
		l.HeadAdded(h.Name(), dev)
	}
}

func (p publisher) HeadRemoved(s *multipath.Subsystem, h *mpath.Head) {
	d := p.d
	_ = d.tree.RemoveHead(h.Name())
	d.mu.Lock()
	delete(d.devices, h.Name())
	l := d.listener
	d.mu.Unlock()
	d.log.Info("multipath namespace removed", "name", h.Name())
	if l != nil {
		l.HeadRemoved(h.Name())
	}
}

func (p publisher) PathAdded(mp *multipath.Path, head string) {
	c := mp.Ctrl()
	if err := p.d.tree.AddPath(mp.Name(), head, c.Name(), &pathSource{p: mp, c: c}); err != nil {
		p.d.log.Error("sysfs: add path", "name", mp.Name(), "error", err)
	}
}

func (p publisher) PathRemoved(mp *multipath.Path) {
	if err := p.d.tree.RemovePath(mp.Name()); err != nil {
		p.d.log.Debug("sysfs: remove path", "name", mp.Name(), "error", err)
	}
}
