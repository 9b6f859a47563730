package target

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/auth"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// Config is an nvmetcli configuration: the JSON document `nvmetcli save`
// writes (/etc/nvmet/config.json), so a setup tested against this target
// runs on a Linux kernel target unchanged (`nvmetcli restore`).
//
// nvmetcli writes configfs attribute values as strings ("16384") and a few
// identifiers as numbers (portid, grpid, nsid, enable, ana_grpid); both forms
// are accepted everywhere. Unknown keys are errors naming the key.
//
// Extensions (ignored by nothing: the kernel has no such attributes, so a
// file using them does not restore on Linux):
//   - namespaces[].device.path "" or "ram:SIZE" (SIZE like "64M", "1G",
//     "4096", binary suffixes K M G T) is a RAM namespace;
//   - namespaces[].device.size "SIZE" gives the size of a RAM namespace
//     (when path is "") or of a file that does not exist yet (created
//     sparse); an existing file keeps its size;
//   - namespaces[].device.eui64 (16 hex digits) and .block_size (512 or
//     4096, default 512);
//   - ports[].param.max_h2c_data, .max_c2h_data, .mdts.
type Config struct {
	Hosts      []ConfigHost      `json:"hosts"`
	Ports      []ConfigPort      `json:"ports"`
	Subsystems []ConfigSubsystem `json:"subsystems"`
}

// ConfigHost is an entry of "hosts" (a host NQN subsystems may allow),
// with the DH-HMAC-CHAP attributes of nvmet's hosts/<nqn> directory under
// their configfs names (nvmetcli itself does not save them): dhchap_key
// and dhchap_ctrl_key as nvme gen-dhchap-key writes them ("DHHC-1:..."),
// dhchap_hash "hmac(sha256)" (default), "hmac(sha384)" or "hmac(sha512)",
// dhchap_dhgroup "null" (default) or "ffdhe2048" ... "ffdhe8192". They
// take effect where a subsystem lists the host in allowed_hosts.
type ConfigHost struct {
	NQN           string `json:"nqn"`
	DHCHAPKey     Attr   `json:"dhchap_key,omitempty"`
	DHCHAPCtrlKey Attr   `json:"dhchap_ctrl_key,omitempty"`
	DHCHAPHash    Attr   `json:"dhchap_hash,omitempty"`
	DHCHAPDHGroup Attr   `json:"dhchap_dhgroup,omitempty"`
}

// hostAuth parses the DH-HMAC-CHAP attributes (errors never repeat a key).
func (h *ConfigHost) hostAuth(p string) (HostAuth, error) {
	var a HostAuth
	var err error
	key := func(name string, v Attr) (*auth.Key, error) {
		s := strings.TrimSpace(string(v))
		if s == "" {
			return nil, nil
		}
		k, err := auth.ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", p, name, err)
		}
		return k, nil
	}
	if a.Key, err = key("dhchap_key", h.DHCHAPKey); err != nil {
		return a, err
	}
	if a.CtrlKey, err = key("dhchap_ctrl_key", h.DHCHAPCtrlKey); err != nil {
		return a, err
	}
	if a.CtrlKey != nil && a.Key == nil {
		return a, fmt.Errorf("%s.dhchap_ctrl_key: needs a dhchap_key", p)
	}
	a.Hash = auth.SHA256
	if v := strings.TrimSpace(string(h.DHCHAPHash)); v != "" {
		if a.Hash, err = auth.ParseHash(v); err != nil {
			return a, fmt.Errorf("%s.dhchap_hash: %w", p, err)
		}
	}
	if v := strings.TrimSpace(string(h.DHCHAPDHGroup)); v != "" {
		if a.Group, err = auth.ParseDHGroup(v); err != nil {
			return a, fmt.Errorf("%s.dhchap_dhgroup: %w", p, err)
		}
	}
	return a, nil
}

// ConfigAddr is the "addr" group of a port or a referral.
type ConfigAddr struct {
	AdrFam  Attr `json:"adrfam"`  // "ipv4" or "ipv6"
	TrAddr  Attr `json:"traddr"`  // IP address
	TReq    Attr `json:"treq"`    // "not specified", "required", "not required"
	TrSvcID Attr `json:"trsvcid"` // TCP port
	TrType  Attr `json:"trtype"`  // "tcp" (the only transport served)
	TSAS    Attr `json:"tsas"`    // "none" or "" (TLS is not supported)
	PortID  Attr `json:"portid"`  // referrals only
}

// ConfigParam is the "param" group of a port.
type ConfigParam struct {
	InlineDataSize Attr `json:"inline_data_size"`
	MaxQueueSize   Attr `json:"max_queue_size"`
	PIEnable       Attr `json:"pi_enable"`
	// Extensions of this target.
	MaxH2CData Attr `json:"max_h2c_data"`
	MaxC2HData Attr `json:"max_c2h_data"`
	MDTS       Attr `json:"mdts"`
}

// ConfigANA is the "ana" group of a port's ANA group.
type ConfigANA struct {
	State Attr `json:"state"` // kernel names: optimized, non-optimized, inaccessible, persistent-loss, change
}

// ConfigANAGroup is an entry of a port's "ana_groups".
type ConfigANAGroup struct {
	GrpID Attr      `json:"grpid"`
	ANA   ConfigANA `json:"ana"`
}

// ConfigReferral is an entry of a port's "referrals": another discovery
// service reported in the discovery log.
type ConfigReferral struct {
	Name   string     `json:"name"`
	Addr   ConfigAddr `json:"addr"`
	Enable Attr       `json:"enable"`
}

// ConfigPort is an entry of "ports".
type ConfigPort struct {
	PortID     Attr             `json:"portid"`
	Addr       ConfigAddr       `json:"addr"`
	Param      ConfigParam      `json:"param"`
	Subsystems []string         `json:"subsystems"`
	ANAGroups  []ConfigANAGroup `json:"ana_groups"`
	Referrals  []ConfigReferral `json:"referrals"`
}

// ConfigSubsysAttr is the "attr" group of a subsystem.
type ConfigSubsysAttr struct {
	AllowAnyHost Attr `json:"allow_any_host"`
	Serial       Attr `json:"serial"`
	Model        Attr `json:"model"`
	Firmware     Attr `json:"firmware"`
	Version      Attr `json:"version"` // "1.3" etc.; only 1.3 is served
	CntlIDMin    Attr `json:"cntlid_min"`
	CntlIDMax    Attr `json:"cntlid_max"`
	IEEEOUI      Attr `json:"ieee_oui"`
	PIEnable     Attr `json:"pi_enable"`
	QIDMax       Attr `json:"qid_max"`
}

// ConfigDevice is the "device" group of a namespace.
type ConfigDevice struct {
	Path  Attr `json:"path"`
	UUID  Attr `json:"uuid"`
	NGUID Attr `json:"nguid"`
	// Extensions of this target.
	EUI64     Attr `json:"eui64"`
	Size      Attr `json:"size"`
	BlockSize Attr `json:"block_size"`
}

// ConfigNSANA is the "ana" group of a namespace (nvmetcli writes both it and
// "ana_grpid").
type ConfigNSANA struct {
	GrpID Attr `json:"grpid"`
}

// ConfigResv is the "resv" group of a namespace.
type ConfigResv struct {
	Enable Attr `json:"enable"`
}

// ConfigNamespace is an entry of a subsystem's "namespaces".
type ConfigNamespace struct {
	NSID     Attr         `json:"nsid"`
	Enable   Attr         `json:"enable"`
	Device   ConfigDevice `json:"device"`
	ANAGrpID Attr         `json:"ana_grpid"`
	ANA      ConfigNSANA  `json:"ana"`
	Resv     ConfigResv   `json:"resv"`
}

// ConfigSubsystem is an entry of "subsystems".
type ConfigSubsystem struct {
	NQN          string            `json:"nqn"`
	AllowedHosts []string          `json:"allowed_hosts"`
	Attr         ConfigSubsysAttr  `json:"attr"`
	Namespaces   []ConfigNamespace `json:"namespaces"`
}

// Attr is a configfs attribute value: nvmetcli writes strings, some keys as
// JSON numbers; both decode into the string form. Attr "" means absent.
type Attr string

// UnmarshalJSON accepts a JSON string, number, boolean or null.
func (a *Attr) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return errors.New("empty value")
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = Attr(s)
	case string(b) == "null":
		*a = ""
	case string(b) == "true":
		*a = "1"
	case string(b) == "false":
		*a = "0"
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*a = Attr(n.String())
	default:
		return fmt.Errorf("value %s is not a string or number", b)
	}
	return nil
}

// MarshalJSON writes the string form.
func (a Attr) MarshalJSON() ([]byte, error) { return json.Marshal(string(a)) }

// LoadNvmetcliJSON decodes and validates an nvmetcli JSON configuration.
// Errors name the offending key, e.g. `ports[0].addr.trsvcid: "x" is not a
// TCP port` or `json: unknown field "foo"`.
func LoadNvmetcliJSON(r io.Reader) (*Config, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("nvmetcli config: %w", err)
	}
	if dec.More() {
		return nil, errors.New("nvmetcli config: trailing data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("nvmetcli config: %w", err)
	}
	return &c, nil
}

// Validate checks every value and cross reference (ports link existing
// subsystems, allowed hosts are listed in "hosts", IDs are unique).
func (c *Config) Validate() error {
	hosts := map[string]bool{}
	for i, h := range c.Hosts {
		if h.NQN == "" {
			return fmt.Errorf("hosts[%d].nqn: missing", i)
		}
		if err := checkNQN(h.NQN); err != nil {
			return fmt.Errorf("hosts[%d].nqn: %w", i, err)
		}
		if _, err := h.hostAuth(fmt.Sprintf("hosts[%d]", i)); err != nil {
			return err
		}
		hosts[h.NQN] = true
	}
	subs := map[string]bool{}
	for i := range c.Subsystems {
		s := &c.Subsystems[i]
		p := fmt.Sprintf("subsystems[%d]", i)
		if _, err := s.toConfig(p); err != nil {
			return err
		}
		if subs[s.NQN] {
			return fmt.Errorf("%s.nqn: duplicate subsystem %q", p, s.NQN)
		}
		subs[s.NQN] = true
		for j, h := range s.AllowedHosts {
			if !hosts[h] {
				return fmt.Errorf("%s.allowed_hosts[%d]: host %q is not in \"hosts\"", p, j, h)
			}
		}
		nsids := map[uint32]bool{}
		for j := range s.Namespaces {
			np := fmt.Sprintf("%s.namespaces[%d]", p, j)
			nc, _, err := s.Namespaces[j].toConfig(np)
			if err != nil {
				return err
			}
			if nsids[nc.NSID] {
				return fmt.Errorf("%s.nsid: duplicate nsid %d", np, nc.NSID)
			}
			nsids[nc.NSID] = true
		}
	}
	ports := map[uint16]bool{}
	for i := range c.Ports {
		p := &c.Ports[i]
		pp := fmt.Sprintf("ports[%d]", i)
		pc, err := p.toConfig(pp)
		if err != nil {
			return err
		}
		if ports[pc.ID] {
			return fmt.Errorf("%s.portid: duplicate port %d", pp, pc.ID)
		}
		ports[pc.ID] = true
		for j, nqn := range p.Subsystems {
			if !subs[nqn] {
				return fmt.Errorf("%s.subsystems[%d]: subsystem %q is not defined", pp, j, nqn)
			}
		}
		if _, err := p.anaStates(pp); err != nil {
			return err
		}
		for j := range p.Referrals {
			if _, err := p.Referrals[j].toReferral(fmt.Sprintf("%s.referrals[%d]", pp, j)); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkNQN(s string) error {
	if len(s) >= fabrics.NQNSize {
		return fmt.Errorf("NQN of %d bytes is too long (max %d)", len(s), fabrics.NQNSize-1)
	}
	if strings.ContainsAny(s, "/\x00") {
		return fmt.Errorf("NQN %q contains '/' or NUL", s)
	}
	return nil
}

func (a Attr) uint(key string, bits int, def uint64) (uint64, error) {
	if a == "" {
		return def, nil
	}
	s := strings.TrimSpace(string(a))
	v, err := strconv.ParseUint(s, 0, bits)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not an unsigned %d-bit number", key, string(a), bits)
	}
	return v, nil
}

func (a Attr) bool(key string, def bool) (bool, error) {
	switch strings.TrimSpace(string(a)) {
	case "":
		return def, nil
	case "1", "y", "Y", "yes", "true":
		return true, nil
	case "0", "n", "N", "no", "false":
		return false, nil
	}
	return false, fmt.Errorf("%s: %q is not a boolean (0 or 1)", key, string(a))
}

// ParseSize parses a size like "4096", "64M", "1G", "512K" or "2T" (binary
// multiples; an optional trailing "iB" or "B" is accepted).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a number with an optional K, M, G or T suffix", s)
	}
	return v * mult, nil
}

// parseHexID parses a UUID/NGUID ("91fdba0d-f87b-4c25-b80f-db7be1418b9e",
// dashes optional) or EUI64 (16 hex digits) into dst.
func parseHexID(key string, a Attr, dst []byte) error {
	s := strings.ReplaceAll(strings.TrimSpace(string(a)), "-", "")
	if s == "" {
		return nil
	}
	if len(s) != 2*len(dst) {
		return fmt.Errorf("%s: %q is not %d hex digits", key, string(a), 2*len(dst))
	}
	for i := range dst {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return fmt.Errorf("%s: %q is not hexadecimal", key, string(a))
		}
		dst[i] = byte(v)
	}
	return nil
}

func (s *ConfigSubsystem) toConfig(p string) (SubsystemConfig, error) {
	if s.NQN == "" {
		return SubsystemConfig{}, fmt.Errorf("%s.nqn: missing", p)
	}
	if err := checkNQN(s.NQN); err != nil {
		return SubsystemConfig{}, fmt.Errorf("%s.nqn: %w", p, err)
	}
	if s.NQN == nvme.DiscoveryNQN {
		return SubsystemConfig{}, fmt.Errorf("%s.nqn: the discovery NQN is reserved", p)
	}
	a := &s.Attr
	cfg := SubsystemConfig{NQN: s.NQN, Model: string(a.Model), Serial: string(a.Serial),
		Firmware: string(a.Firmware), Hosts: s.AllowedHosts}
	var err error
	if cfg.AllowAnyHost, err = a.AllowAnyHost.bool(p+".attr.allow_any_host", len(s.AllowedHosts) == 0); err != nil {
		return cfg, err
	}
	if len(cfg.Serial) > 20 {
		return cfg, fmt.Errorf("%s.attr.serial: %q is longer than 20 characters", p, cfg.Serial)
	}
	if len(cfg.Model) > 40 {
		return cfg, fmt.Errorf("%s.attr.model: %q is longer than 40 characters", p, cfg.Model)
	}
	if len(cfg.Firmware) > 8 {
		return cfg, fmt.Errorf("%s.attr.firmware: %q is longer than 8 characters", p, cfg.Firmware)
	}
	switch strings.TrimSpace(string(a.Version)) {
	case "", "1.3", "1.3.0":
	default:
		return cfg, fmt.Errorf("%s.attr.version: %q: this target serves NVMe 1.3 only", p, string(a.Version))
	}
	lo, err := a.CntlIDMin.uint(p+".attr.cntlid_min", 16, 1)
	if err != nil {
		return cfg, err
	}
	hi, err := a.CntlIDMax.uint(p+".attr.cntlid_max", 16, MaxCNTLID)
	if err != nil {
		return cfg, err
	}
	if lo < 1 || hi > MaxCNTLID || lo > hi {
		return cfg, fmt.Errorf("%s.attr.cntlid_min/cntlid_max: range %d..%d not within 1..%d", p, lo, hi, MaxCNTLID)
	}
	cfg.CntlIDMin, cfg.CntlIDMax = uint16(lo), uint16(hi)
	if _, err := a.IEEEOUI.uint(p+".attr.ieee_oui", 24, 0); err != nil {
		return cfg, err
	}
	if pi, err := a.PIEnable.bool(p+".attr.pi_enable", false); err != nil {
		return cfg, err
	} else if pi {
		return cfg, fmt.Errorf("%s.attr.pi_enable: protection information is not supported", p)
	}
	q, err := a.QIDMax.uint(p+".attr.qid_max", 16, DefaultMaxIOQueues)
	if err != nil {
		return cfg, err
	}
	if q < 1 {
		return cfg, fmt.Errorf("%s.attr.qid_max: must be at least 1", p)
	}
	cfg.MaxIOQueues = int(q)
	return cfg, nil
}

// toConfig converts a namespace entry; enabled is false for "enable": 0.
func (n *ConfigNamespace) toConfig(p string) (NamespaceConfig, bool, error) {
	var cfg NamespaceConfig
	nsid, err := n.NSID.uint(p+".nsid", 32, 0)
	if err != nil {
		return cfg, false, err
	}
	if nsid < 1 || nsid > MaxNSID {
		return cfg, false, fmt.Errorf("%s.nsid: %d not in 1..%d", p, nsid, MaxNSID)
	}
	cfg.NSID = uint32(nsid)
	enabled, err := n.Enable.bool(p+".enable", true)
	if err != nil {
		return cfg, false, err
	}
	grp, err := n.ANAGrpID.uint(p+".ana_grpid", 32, 0)
	if err != nil {
		return cfg, false, err
	}
	grp2, err := n.ANA.GrpID.uint(p+".ana.grpid", 32, 0)
	if err != nil {
		return cfg, false, err
	}
	switch {
	case grp == 0:
		grp = grp2
	case grp2 != 0 && grp2 != grp:
		return cfg, false, fmt.Errorf("%s.ana.grpid: %d differs from ana_grpid %d", p, grp2, grp)
	}
	if grp == 0 {
		grp = 1
	}
	if grp > MaxANAGroups {
		return cfg, false, fmt.Errorf("%s.ana_grpid: %d not in 1..%d", p, grp, MaxANAGroups)
	}
	cfg.ANAGroup = uint32(grp)
	if _, err := n.Resv.Enable.bool(p+".resv.enable", false); err != nil {
		return cfg, false, err
	}
	d := &n.Device
	path := strings.TrimSpace(string(d.Path))
	var ramSize int64
	switch {
	case path == "":
	case strings.HasPrefix(path, "ram:"):
		if ramSize, err = ParseSize(path[len("ram:"):]); err != nil {
			return cfg, false, fmt.Errorf("%s.device.path: %w", p, err)
		}
		path = ""
	default:
		cfg.Path = path
	}
	if d.Size != "" {
		if cfg.Size, err = ParseSize(string(d.Size)); err != nil {
			return cfg, false, fmt.Errorf("%s.device.size: %w", p, err)
		}
	}
	if ramSize != 0 {
		if cfg.Size != 0 && cfg.Size != ramSize {
			return cfg, false, fmt.Errorf("%s.device.size: %d differs from the size in path %q", p, cfg.Size, string(d.Path))
		}
		cfg.Size = ramSize
	}
	if cfg.Path == "" && cfg.Size == 0 {
		return cfg, false, fmt.Errorf("%s.device.path: a RAM namespace needs a size (\"ram:64M\" or device.size)", p)
	}
	bs, err := d.BlockSize.uint(p+".device.block_size", 32, 512)
	if err != nil {
		return cfg, false, err
	}
	if bs != 512 && bs != 4096 {
		return cfg, false, fmt.Errorf("%s.device.block_size: %d is not 512 or 4096", p, bs)
	}
	cfg.BlockSize = int(bs)
	if cfg.Size%int64(bs) != 0 {
		return cfg, false, fmt.Errorf("%s.device.size: %d is not a multiple of the block size %d", p, cfg.Size, bs)
	}
	if err := parseHexID(p+".device.uuid", d.UUID, cfg.UUID[:]); err != nil {
		return cfg, false, err
	}
	if err := parseHexID(p+".device.nguid", d.NGUID, cfg.NGUID[:]); err != nil {
		return cfg, false, err
	}
	if err := parseHexID(p+".device.eui64", d.EUI64, cfg.EUI64[:]); err != nil {
		return cfg, false, err
	}
	return cfg, enabled, nil
}

func (a *ConfigAddr) check(p string, referral bool) (addr string, adrfam uint8, treq uint8, err error) {
	switch strings.TrimSpace(string(a.TrType)) {
	case "tcp":
	case "":
		return "", 0, 0, fmt.Errorf("%s.addr.trtype: missing (this target serves \"tcp\")", p)
	default:
		if !referral {
			return "", 0, 0, fmt.Errorf("%s.addr.trtype: %q is not served by this target (only \"tcp\")", p, string(a.TrType))
		}
	}
	switch strings.TrimSpace(string(a.AdrFam)) {
	case "ipv4", "":
		adrfam = nvme.AdrFamIPv4
	case "ipv6":
		adrfam = nvme.AdrFamIPv6
	default:
		return "", 0, 0, fmt.Errorf("%s.addr.adrfam: %q is not \"ipv4\" or \"ipv6\"", p, string(a.AdrFam))
	}
	switch strings.TrimSpace(string(a.TReq)) {
	case "", "not specified":
		treq = nvme.TReqNotSpecified
	case "required":
		return "", 0, 0, fmt.Errorf("%s.addr.treq: \"required\" (secure channel) is not supported", p)
	case "not required":
		treq = nvme.TReqNotRequired
	default:
		return "", 0, 0, fmt.Errorf("%s.addr.treq: %q is not \"not specified\", \"required\" or \"not required\"", p, string(a.TReq))
	}
	switch strings.TrimSpace(string(a.TSAS)) {
	case "", "none", "not specified":
	default:
		return "", 0, 0, fmt.Errorf("%s.addr.tsas: %q: TLS is not supported", p, string(a.TSAS))
	}
	host := strings.TrimSpace(string(a.TrAddr))
	if host == "" {
		return "", 0, 0, fmt.Errorf("%s.addr.traddr: missing", p)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "", 0, 0, fmt.Errorf("%s.addr.traddr: %q is not an IP address", p, host)
	}
	if (ip.To4() != nil) != (adrfam == nvme.AdrFamIPv4) {
		return "", 0, 0, fmt.Errorf("%s.addr.traddr: %q does not match adrfam %q", p, host, string(a.AdrFam))
	}
	svc, err := a.TrSvcID.uint(p+".addr.trsvcid", 16, 4420)
	if err != nil {
		return "", 0, 0, err
	}
	return net.JoinHostPort(host, strconv.FormatUint(svc, 10)), adrfam, treq, nil
}

func (cp *ConfigPort) toConfig(p string) (PortConfig, error) {
	var cfg PortConfig
	id, err := cp.PortID.uint(p+".portid", 16, 0)
	if err != nil {
		return cfg, err
	}
	if cp.PortID == "" {
		return cfg, fmt.Errorf("%s.portid: missing", p)
	}
	cfg.ID = uint16(id)
	if cfg.Addr, _, cfg.TReq, err = cp.Addr.check(p, false); err != nil {
		return cfg, err
	}
	pa := &cp.Param
	ic, err := pa.InlineDataSize.uint(p+".param.inline_data_size", 32, DefaultInCapsule)
	if err != nil {
		return cfg, err
	}
	if ic > MaxInCapsule {
		return cfg, fmt.Errorf("%s.param.inline_data_size: %d above %d", p, ic, MaxInCapsule)
	}
	cfg.InCapsule = int(ic)
	if cfg.InCapsule == 0 {
		cfg.InCapsule = -1 // explicitly none
	}
	mq, err := pa.MaxQueueSize.uint(p+".param.max_queue_size", 16, 0)
	if err != nil {
		return cfg, err
	}
	if mq != 0 && mq < 16 {
		return cfg, fmt.Errorf("%s.param.max_queue_size: %d below 16", p, mq)
	}
	cfg.MaxQueueSize = int(mq)
	if pi, err := pa.PIEnable.bool(p+".param.pi_enable", false); err != nil {
		return cfg, err
	} else if pi {
		return cfg, fmt.Errorf("%s.param.pi_enable: protection information is not supported", p)
	}
	h2c, err := pa.MaxH2CData.uint(p+".param.max_h2c_data", 32, 0)
	if err != nil {
		return cfg, err
	}
	if h2c != 0 && (h2c < 4096 || h2c%4 != 0) {
		return cfg, fmt.Errorf("%s.param.max_h2c_data: %d must be at least 4096 and a multiple of 4", p, h2c)
	}
	cfg.MaxH2CData = uint32(h2c)
	c2h, err := pa.MaxC2HData.uint(p+".param.max_c2h_data", 32, 0)
	if err != nil {
		return cfg, err
	}
	cfg.MaxC2HData = uint32(c2h)
	mdts, err := pa.MDTS.uint(p+".param.mdts", 8, 0)
	if err != nil {
		return cfg, err
	}
	if mdts > 20 {
		return cfg, fmt.Errorf("%s.param.mdts: %d above 20", p, mdts)
	}
	cfg.MDTS = uint8(mdts)
	return cfg, nil
}

func (cp *ConfigPort) anaStates(p string) (map[uint32]nvme.ANAState, error) {
	m := map[uint32]nvme.ANAState{}
	for j, g := range cp.ANAGroups {
		gp := fmt.Sprintf("%s.ana_groups[%d]", p, j)
		id, err := g.GrpID.uint(gp+".grpid", 32, 0)
		if err != nil {
			return nil, err
		}
		if id < 1 || id > MaxANAGroups {
			return nil, fmt.Errorf("%s.grpid: %d not in 1..%d", gp, id, MaxANAGroups)
		}
		st := nvme.ANAOptimized
		if g.ANA.State != "" {
			if st, err = nvme.ParseANAState(strings.TrimSpace(string(g.ANA.State))); err != nil {
				return nil, fmt.Errorf("%s.ana.state: %w", gp, err)
			}
		}
		if _, dup := m[uint32(id)]; dup {
			return nil, fmt.Errorf("%s.grpid: duplicate group %d", gp, id)
		}
		m[uint32(id)] = st
	}
	return m, nil
}

func (r *ConfigReferral) toReferral(p string) (Referral, error) {
	var ref Referral
	if r.Name == "" {
		return ref, fmt.Errorf("%s.name: missing", p)
	}
	addr, adrfam, treq, err := r.Addr.check(p, true)
	if err != nil {
		return ref, err
	}
	host, svc, _ := net.SplitHostPort(addr)
	pid, err := r.Addr.PortID.uint(p+".addr.portid", 16, 0)
	if err != nil {
		return ref, err
	}
	en, err := r.Enable.bool(p+".enable", true)
	if err != nil {
		return ref, err
	}
	return Referral{Name: r.Name, TrAddr: host, TrSvcID: svc, AdrFam: adrfam, TReq: treq,
		PortID: uint16(pid), Enabled: en}, nil
}

// Referral is a discovery log entry pointing at another discovery service.
type Referral struct {
	Name            string
	TrAddr, TrSvcID string
	AdrFam, TReq    uint8
	PortID          uint16
	Enabled         bool
}

// Apply creates the configuration's subsystems, namespaces (RAM, or files
// created sparse if missing), ports (listening at once), links, ANA group
// states and referrals. As on a Linux target, an ANA group that namespaces
// use but a port does not list (other than group 1) is inaccessible
// through that port. On error, what was created so far stays.
func (t *Target) Apply(cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	for i := range cfg.Hosts {
		a, _ := cfg.Hosts[i].hostAuth("") // checked by Validate
		t.SetHostAuth(cfg.Hosts[i].NQN, a)
	}
	used := map[uint32]bool{}
	for i := range cfg.Subsystems {
		cs := &cfg.Subsystems[i]
		p := fmt.Sprintf("subsystems[%d]", i)
		sc, err := cs.toConfig(p)
		if err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		s, err := t.AddSubsystem(sc)
		if err != nil {
			return fmt.Errorf("apply: %s: %w", p, err)
		}
		for j := range cs.Namespaces {
			np := fmt.Sprintf("%s.namespaces[%d]", p, j)
			nc, enabled, err := cs.Namespaces[j].toConfig(np)
			if err != nil {
				return fmt.Errorf("apply: %w", err)
			}
			if !enabled {
				continue
			}
			used[nc.ANAGroup] = true
			if _, err := s.AddNamespace(nc); err != nil {
				return fmt.Errorf("apply: %s: %w", np, err)
			}
		}
	}
	for i := range cfg.Ports {
		cp := &cfg.Ports[i]
		p := fmt.Sprintf("ports[%d]", i)
		pc, err := cp.toConfig(p)
		if err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		states, err := cp.anaStates(p)
		if err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		for g := range used {
			if _, ok := states[g]; !ok && g != 1 {
				states[g] = nvme.ANAInaccessible
			}
		}
		pc.ANAStates = states
		for j := range cp.Referrals {
			ref, err := cp.Referrals[j].toReferral(fmt.Sprintf("%s.referrals[%d]", p, j))
			if err != nil {
				return fmt.Errorf("apply: %w", err)
			}
			pc.Referrals = append(pc.Referrals, ref)
		}
		port, err := t.AddPort(pc)
		if err != nil {
			return fmt.Errorf("apply: %s: %w", p, err)
		}
		for j, nqn := range cp.Subsystems {
			if err := port.LinkSubsystem(nqn); err != nil {
				return fmt.Errorf("apply: %s.subsystems[%d]: %w", p, j, err)
			}
		}
	}
	return nil
}
