package sysfsview

import (
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"time"
)

type subsysObj struct {
	dir   *Dir
	info  SubsystemInfo
	src   SubsystemSource
	ctrls map[string]bool
	heads map[string]bool
}

type ctrlObj struct {
	dir    *Dir
	subsys string
	info   ControllerInfo
	src    ControllerSource
	paths  map[string]bool
}

type headObj struct {
	dir    *Dir
	info   HeadInfo
	src    HeadSource
	mp     *Dir // multipath/
	subsys string
	paths  map[string]bool
	byID   []string // disk/by-id names
}

type pathObj struct {
	dir        *Dir
	head, ctrl string
	src        PathSource
}

func ro(name string, show func() string) *Attr {
	return &Attr{Name: name, Mode: ModeRO, Show: show}
}

func roConst(name, value string) *Attr {
	return ro(name, func() string { return value })
}

func uintLine(v uint64) string { return strconv.FormatUint(v, 10) + "\n" }
func intLine(v int64) string   { return strconv.FormatInt(v, 10) + "\n" }

// AddSubsystem adds sys/class/nvme-subsystem/<name> (e.g. "nvme-subsys0").
func (t *Tree) AddSubsystem(name string, info SubsystemInfo, src SubsystemSource) error {
	if err := checkName(name); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.subsys[name]; ok {
		return fmt.Errorf("subsystem %s: %w", name, syscall.EEXIST)
	}
	policies := info.IOPolicies
	if policies == nil {
		policies = DefaultIOPolicies()
	}
	d := t.newDir(name)
	t.addAttrs(d, "sys/class/nvme-subsystem/"+name,
		roConst("subsysnqn", info.NQN+"\n"),
		roConst("model", fixedField(info.Model, 40)+"\n"),
		roConst("serial", fixedField(info.Serial, 20)+"\n"),
		roConst("firmware_rev", fixedField(info.FirmwareRev, 8)+"\n"),
		roConst("subsystype", info.Type+"\n"),
		&Attr{
			Name: "iopolicy", Mode: ModeRW,
			Show: func() string { return src.IOPolicy() + "\n" },
			Store: func(v string) error {
				v = cstr(v)
				for _, p := range policies {
					if !sysfsStreq(v, p) {
						continue
					}
					// The source logs the kernel's "subsysnqn %s iopolicy
					// changed from %s to %s" (mpath.Subsystem does).
					return src.SetIOPolicy(p)
				}
				return invalid(v)
			},
		},
	)
	if err := t.classSubsys.put(name, d); err != nil {
		return err
	}
	t.subsys[name] = &subsysObj{dir: d, info: info, src: src, ctrls: map[string]bool{}, heads: map[string]bool{}}
	return nil
}

// RemoveSubsystem removes a subsystem with its controllers, heads and paths.
func (t *Tree) RemoveSubsystem(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.subsys[name]
	if !ok {
		return fmt.Errorf("subsystem %s: %w", name, syscall.ENOENT)
	}
	for c := range s.ctrls {
		t.removeController(c)
	}
	for h := range s.heads {
		t.removeHead(h)
	}
	t.classSubsys.remove(name)
	delete(t.subsys, name)
	return nil
}

func formatTmo(d time.Duration) string {
	if d < 0 {
		return "off\n"
	}
	return intLine(int64(d / time.Second))
}

// AddController adds sys/class/nvme/<name> (e.g. "nvme0") and the link
// nvme-subsystem/<subsys>/<name>.
func (t *Tree) AddController(name, subsys string, info ControllerInfo, src ControllerSource) error {
	if err := checkName(name); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.subsys[subsys]
	if !ok {
		return fmt.Errorf("controller %s: subsystem %s: %w", name, subsys, syscall.ENOENT)
	}
	if _, ok := t.ctrls[name]; ok {
		return fmt.Errorf("controller %s: %w", name, syscall.EEXIST)
	}
	where := "sys/class/nvme/" + name
	d := t.newDir(name)
	t.addAttrs(d, where,
		ro("state", func() string { return src.State() + "\n" }),
		roConst("transport", info.Transport+"\n"),
		ro("address", func() string { return src.Address() + "\n" }),
		roConst("subsysnqn", info.SubsysNQN+"\n"),
		roConst("hostnqn", info.HostNQN+"\n"),
		roConst("hostid", formatUUID(info.HostID)+"\n"),
		ro("cntlid", func() string { return intLine(int64(src.CNTLID())) }),
		ro("queue_count", func() string { return intLine(int64(src.QueueCount())) }),
		ro("sqsize", func() string { return intLine(int64(src.SQSize())) }),
		ro("kato", func() string { return intLine(int64(src.KATO() / time.Second)) }),
		ro("numa_node", func() string { return intLine(int64(src.NUMANode())) }),
		roConst("model", fixedField(info.Model, 40)+"\n"),
		roConst("serial", fixedField(info.Serial, 20)+"\n"),
		roConst("firmware_rev", fixedField(info.FirmwareRev, 8)+"\n"),
		roConst("cntrltype", cntrlTypeName(info.CntrlType)+"\n"),
		roConst("dctype", dcTypeName(info.DCType)+"\n"),
	)
	t.addAttrs(d, where, t.timeoutAttrs(src)...)
	if ct, ok := src.(CommandTimeouts); ok {
		admin := ro("admin_timeout", func() string { return msLine(ct.AdminTimeout()) })
		io := ro("io_timeout", func() string { return msLine(ct.IOTimeout()) })
		if set, ok := src.(CommandTimeoutSetter); ok {
			admin.Mode, admin.Store = ModeRW, msStore(set.SetAdminTimeout)
			io.Mode, io.Store = ModeRW, msStore(set.SetIOTimeout)
		}
		t.addAttrs(d, where, admin, io)
	}
	if ds, ok := src.(DHCHAPSecrets); ok {
		t.addAttrs(d, where,
			&Attr{Name: "dhchap_secret", Mode: ModeSecret, Secret: true,
				Show: func() string { return ds.DHCHAPSecret() + "\n" }, Store: func(v string) error { return ds.SetDHCHAPSecret(cstr(v)) }},
			&Attr{Name: "dhchap_ctrl_secret", Mode: ModeSecret, Secret: true,
				Show: func() string { return ds.DHCHAPCtrlSecret() + "\n" }, Store: func(v string) error { return ds.SetDHCHAPCtrlSecret(cstr(v)) }},
		)
	}
	t.addAttrs(d, where, passthruErrLog(), roConst("quirks", "none\n"))
	if r, ok := src.(Resetter); ok {
		t.addAttrs(d, where, trigger("reset_controller", r.Reset))
	}
	if r, ok := src.(Rescanner); ok {
		t.addAttrs(d, where, trigger("rescan_controller", r.Rescan))
	}
	if r, ok := src.(Deleter); ok {
		t.addAttrs(d, where, trigger("delete_controller", r.Delete))
	}
	t.diagAttrs(d, where, src,
		counter{"command_error_count", func() uint64 { return src.Counters().CommandErrors }},
		counter{"reset_count", func() uint64 { return src.Counters().Resets }},
		counter{"reconnect_count", func() uint64 { return src.Counters().Reconnects }},
		counter{"reservation_notification_count", func() uint64 { return src.Counters().ResvNotifications }},
	)
	if err := t.link(s.dir, name, "../../nvme/"+name); err != nil {
		return err
	}
	if err := t.classNvme.put(name, d); err != nil {
		s.dir.remove(name)
		return err
	}
	s.ctrls[name] = true
	t.ctrls[name] = &ctrlObj{dir: d, subsys: subsys, info: info, src: src, paths: map[string]bool{}}
	return nil
}

func trigger(name string, fn func() error) *Attr {
	return &Attr{Name: name, Mode: ModeTrigger, Store: func(string) error { return fn() }}
}

// timeoutAttrs are ctrl_loss_tmo, reconnect_delay and fast_io_fail_tmo with the
// kernel's parsing: kstrtoint (negative = off) for the two timeouts, kstrtou32
// for the delay.
func (t *Tree) timeoutAttrs(src ControllerSource) []*Attr {
	ctrlLoss := &Attr{Name: "ctrl_loss_tmo", Mode: ModeRO, Show: func() string { return formatTmo(src.Timeouts().CtrlLoss) }}
	delay := &Attr{Name: "reconnect_delay", Mode: ModeRO, Show: func() string { return formatTmo(src.Timeouts().ReconnectDelay) }}
	fast := &Attr{Name: "fast_io_fail_tmo", Mode: ModeRO, Show: func() string { return formatTmo(src.Timeouts().FastIOFail) }}
	if set, ok := src.(TimeoutSetter); ok {
		signed := func(apply func(time.Duration) error) func(string) error {
			return func(v string) error {
				n, e := kstrtoint(v, 10)
				if e != 0 {
					return invalid(cstr(v)) // the kernel maps every parse error to EINVAL here
				}
				if n < 0 {
					return apply(-1)
				}
				return apply(time.Duration(n) * time.Second)
			}
		}
		ctrlLoss.Mode, ctrlLoss.Store = ModeRW, signed(set.SetCtrlLossTmo)
		fast.Mode, fast.Store = ModeRW, signed(set.SetFastIOFailTmo)
		delay.Mode = ModeRW
		delay.Store = func(v string) error {
			n, e := kstrtouint(v, 10)
			if e != 0 {
				return &StoreError{Value: cstr(v), Code: e}
			}
			return set.SetReconnectDelay(time.Duration(n) * time.Second)
		}
	}
	return []*Attr{ctrlLoss, delay, fast}
}

func cntrlTypeName(t uint8) string {
	switch t {
	case 1:
		return "io"
	case 2:
		return "discovery"
	case 3:
		return "admin"
	}
	return "reserved"
}

func dcTypeName(t uint8) string {
	switch t {
	case 0:
		return "none"
	case 1:
		return "ddc"
	case 2:
		return "cdc"
	}
	return "reserved"
}

// RemoveController removes a controller, its paths and its subsystem link.
func (t *Tree) RemoveController(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.ctrls[name]; !ok {
		return fmt.Errorf("controller %s: %w", name, syscall.ENOENT)
	}
	t.removeController(name)
	return nil
}

func (t *Tree) removeController(name string) {
	c := t.ctrls[name]
	for p := range c.paths {
		t.removePath(p)
	}
	if s := t.subsys[c.subsys]; s != nil {
		s.dir.remove(name)
		delete(s.ctrls, name)
	}
	t.classNvme.remove(name)
	delete(t.ctrls, name)
}

// idAttrs are the namespace identity attributes shared by a head and its paths.
func (t *Tree) idAttrs(s *subsysObj, info HeadInfo, warnOnce *sync.Once, where string) []*Attr {
	uuidZero, nguidZero, euiZero := isZero(info.UUID[:]), isZero(info.NGUID[:]), isZero(info.EUI64[:])
	return []*Attr{
		roConst("nsid", uintLine(uint64(info.NSID))),
		roConst("wwid", wwid(s.info, info)+"\n"),
		{
			Name: "uuid", Mode: ModeRO,
			Show: func() string {
				if uuidZero {
					warnOnce.Do(func() { t.log.Warn(where + ": No UUID available providing old NGUID") })
					return formatUUID(info.NGUID) + "\n"
				}
				return formatUUID(info.UUID) + "\n"
			},
			Visible: func() bool { return !(uuidZero && nguidZero) },
		},
		{Name: "nguid", Mode: ModeRO, Show: func() string { return formatUUID(info.NGUID) + "\n" }, Visible: func() bool { return !nguidZero }},
		{Name: "eui", Mode: ModeRO, Show: func() string { return formatHexSpaced(info.EUI64[:]) + "\n" }, Visible: func() bool { return !euiZero }},
		roConst("csi", uintLine(uint64(info.CSI))),
	}
}

// wwid is wwid_show: uuid., then eui. (NGUID, then EUI-64), then the nvme.
// form vid-serial-model-nsid with serial and model hex-encoded and trimmed.
func wwid(s SubsystemInfo, h HeadInfo) string {
	switch {
	case !isZero(h.UUID[:]):
		return "uuid." + formatUUID(h.UUID)
	case !isZero(h.NGUID[:]):
		return fmt.Sprintf("eui.%x", h.NGUID[:])
	case !isZero(h.EUI64[:]):
		return fmt.Sprintf("eui.%x", h.EUI64[:])
	}
	return fmt.Sprintf("nvme.%04x-%x-%x-%08x", s.VID, trimIDField(s.Serial, 20), trimIDField(s.Model, 40), h.NSID)
}

// AddHead adds sys/block/<name> (e.g. "nvme0n1") and the link
// nvme-subsystem/<subsys>/<name>.
func (t *Tree) AddHead(name, subsys string, info HeadInfo, src HeadSource) error {
	if err := checkName(name); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.subsys[subsys]
	if !ok {
		return fmt.Errorf("head %s: subsystem %s: %w", name, subsys, syscall.ENOENT)
	}
	if t.block.Lookup(name) != nil {
		return fmt.Errorf("block %s: %w", name, syscall.EEXIST)
	}
	where := "sys/block/" + name
	d := t.newDir(name)
	t.addAttrs(d, where,
		ro("size", func() string { return uintLine(src.Sectors()) }),
		ro("stat", func() string { return FormatStat(src.Stat()) }),
		ro("inflight", func() string { return FormatInflight(src.Stat()) }),
		&Attr{
			Name: "delayed_removal_secs", Mode: ModeRW,
			Show: func() string { return uintLine(uint64(src.DelayedRemovalSecs())) },
			Store: func(v string) error {
				n, e := kstrtouint(v, 0)
				if e != 0 {
					return &StoreError{Value: cstr(v), Code: e}
				}
				return src.SetDelayedRemovalSecs(n)
			},
		},
	)
	t.addAttrs(d, where, t.idAttrs(s, info, new(sync.Once), where)...)
	if g, ok := src.(BlockGeometry); ok {
		t.diskAttrs(d, where, g, false, nil)
	}
	if r, ok := src.(ReservationReporter); ok {
		t.addAttrs(d, where, &Attr{Name: "resv_report", Mode: ModeBin, Read: r.ReservationReport})
	}
	if c, ok := src.(ReservationCommander); ok {
		t.addAttrs(d, where, &Attr{Name: "resv_command", Mode: ModeTrigger, Store: c.ReservationCommand, Secret: true})
	}
	mp := t.mkdir(d, "multipath")
	t.diagAttrs(d, where, src,
		counter{"io_requeue_no_usable_path_count", func() uint64 { return src.Counters().RequeueNoUsablePath }},
		counter{"io_fail_no_available_path_count", func() uint64 { return src.Counters().FailNoAvailablePath }},
	)
	if err := t.link(d, "device", "../../class/nvme-subsystem/"+subsys); err != nil {
		return err
	}
	if err := t.link(s.dir, name, "../../../block/"+name); err != nil {
		return err
	}
	if err := t.block.put(name, d); err != nil {
		s.dir.remove(name)
		return err
	}
	s.heads[name] = true
	byID := byIDNames(s.info, info)
	t.addByID(name, byID)
	t.heads[name] = &headObj{dir: d, info: info, src: src, mp: mp, subsys: subsys, paths: map[string]bool{}, byID: byID}
	return nil
}

// RemoveHead removes a head, its paths and its subsystem link.
func (t *Tree) RemoveHead(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.heads[name]; !ok {
		return fmt.Errorf("head %s: %w", name, syscall.ENOENT)
	}
	t.removeHead(name)
	return nil
}

func (t *Tree) removeHead(name string) {
	h := t.heads[name]
	for p := range h.paths {
		t.removePath(p)
	}
	if s := t.subsys[h.subsys]; s != nil {
		s.dir.remove(name)
		delete(s.heads, name)
	}
	t.removeByID(name, h.byID)
	t.block.remove(name)
	delete(t.heads, name)
}

// AddPath adds sys/block/<name> (e.g. "nvme0c0n1") for the path of head through
// ctrl, with the links block/<head>/multipath/<name>, nvme/<ctrl>/<name> and
// block/<name>/device -> class/nvme/<ctrl>. The path shows the identity given
// to AddHead.
func (t *Tree) AddPath(name, head, ctrl string, src PathSource) error {
	if err := checkName(name); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	h, ok := t.heads[head]
	if !ok {
		return fmt.Errorf("path %s: head %s: %w", name, head, syscall.ENOENT)
	}
	c, ok := t.ctrls[ctrl]
	if !ok {
		return fmt.Errorf("path %s: controller %s: %w", name, ctrl, syscall.ENOENT)
	}
	if t.block.Lookup(name) != nil {
		return fmt.Errorf("block %s: %w", name, syscall.EEXIST)
	}
	s := t.subsys[h.subsys]
	policy := s.src.IOPolicy
	where := "sys/block/" + name
	d := t.newDir(name)
	t.addAttrs(d, where,
		&Attr{Name: "ana_state", Mode: ModeRO, Show: func() string { return src.ANAState() + "\n" }, Visible: src.UsesANA},
		&Attr{Name: "ana_grpid", Mode: ModeRO, Show: func() string { return intLine(int64(int32(src.ANAGroup()))) }, Visible: src.UsesANA},
		ro("queue_depth", func() string {
			if policy() != "queue-depth" {
				return ""
			}
			return intLine(int64(src.QueueDepth()))
		}),
		ro("numa_nodes", func() string {
			if policy() != "numa" {
				return ""
			}
			return formatNodeList(src.NUMANodes()) + "\n"
		}),
		ro("size", func() string { return uintLine(src.Sectors()) }),
		ro("stat", func() string { return FormatStat(src.Stat()) }),
		ro("inflight", func() string { return FormatInflight(src.Stat()) }),
	)
	t.addAttrs(d, where, t.idAttrs(s, h.info, new(sync.Once), where)...)
	t.diagAttrs(d, where, src,
		counter{"multipath_failover_count", func() uint64 { return src.Counters().FailoverCount }},
		counter{"command_retries_count", func() uint64 { return src.Counters().RetryCount }},
		counter{"command_error_count", func() uint64 { return src.Counters().ErrorCount }},
	)
	if g, ok := src.(BlockGeometry); ok {
		var ioTimeout func() string
		if ct, ok := c.src.(CommandTimeouts); ok {
			ioTimeout = func() string { return msLine(ct.IOTimeout()) }
		}
		t.diskAttrs(d, where, g, true, ioTimeout)
	}
	if err := t.link(d, "device", "../../class/nvme/"+ctrl); err != nil {
		return err
	}
	if err := t.link(h.mp, name, "../../"+name); err != nil {
		return err
	}
	if err := t.link(c.dir, name, "../../../block/"+name); err != nil {
		h.mp.remove(name)
		return err
	}
	if err := t.block.put(name, d); err != nil {
		h.mp.remove(name)
		c.dir.remove(name)
		return err
	}
	h.paths[name] = true
	c.paths[name] = true
	t.paths[name] = &pathObj{dir: d, head: head, ctrl: ctrl, src: src}
	return nil
}

// RemovePath removes a path and the links to it.
func (t *Tree) RemovePath(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.paths[name]; !ok {
		return fmt.Errorf("path %s: %w", name, syscall.ENOENT)
	}
	t.removePath(name)
	return nil
}

func (t *Tree) removePath(name string) {
	p := t.paths[name]
	if h := t.heads[p.head]; h != nil {
		h.mp.remove(name)
		delete(h.paths, name)
	}
	if c := t.ctrls[p.ctrl]; c != nil {
		c.dir.remove(name)
		delete(c.paths, name)
	}
	t.block.remove(name)
	delete(t.paths, name)
}
