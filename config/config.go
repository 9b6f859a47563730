// Package config loads the mpathfs daemon configuration: a TOML file with
// [host], [multipath], [fuse], [log], [[controller]] and [[discovery]]
// tables. Controller and discovery entries use the key names of the
// kernel's /dev/nvme-fabrics option grammar (traddr, trsvcid, nqn,
// keep_alive_tmo, ...), so a line of `nvme connect` options translates one
// to one. Unknown keys and bad values are errors naming the key and line.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme/auth"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("config")

// Config is a validated daemon configuration.
type Config struct {
	Host        Host
	Multipath   Multipath
	FUSE        FUSE
	Log         Log
	Metrics     Metrics
	Controllers []fabrics.Options // connect options, host identity filled in
	Discovery   []Discovery
}

// Host is the [host] table: the host NQN and ID sent in Connect. Empty
// values come from /etc/nvme/hostnqn and /etc/nvme/hostid, else are
// generated, as nvme-cli does.
type Host struct {
	HostNQN string
	HostID  [16]byte
	// DHCHAPSecret (dhchap_secret) is the default DH-HMAC-CHAP secret of
	// every [[controller]] and [[discovery]] that does not name its own.
	DHCHAPSecret *auth.Key
}

// Multipath is the [multipath] table.
type Multipath struct {
	// IOPolicy is the initial iopolicy of every subsystem (numa,
	// round-robin, queue-depth, service-time).
	IOPolicy mpath.IOPolicy
	// DelayedRemovalSecs is the initial delayed_removal_secs of every head.
	DelayedRemovalSecs uint32
	// FenceWrites: before an in-doubt write (sent on a path that died
	// without completing it) is re-sent on another path, wait until the old
	// controller can no longer execute it ("kato": the keep-alive timeout
	// after the loss, or the Command Quiesce Time when the controller
	// reports one); "off" re-sends at once like Linux and SPDK do.
	FenceWrites bool
}

// FUSE is the [fuse] table: knobs of the FUSE server.
type FUSE struct {
	MaxWrite      int  // bytes per FUSE request, default 1 MiB
	MaxBackground int  // requests the kernel may have outstanding, default 128
	MaxReaders    int  // goroutines reading /dev/fuse (0: go-fuse default)
	AllowOther    bool // let other users access the mount
	Debug         bool // log every FUSE request
	// GoFuseLoop serves every request from go-fuse's own /dev/fuse loop
	// instead of mpathfs's (whose namespace I/O completes asynchronously).
	GoFuseLoop bool
	// GoMaxProcs is the Go scheduler's P count (0: 4 x CPUs, at least 8).
	// FUSE and socket I/O block in syscalls that hold a P until the
	// runtime takes it back; with only as many Ps as cores, 4 KiB I/O at
	// QD 32 ran about 30% slower here.
	GoMaxProcs int
	// MemoryLimitMiB is the Go runtime's soft memory limit in MiB (default
	// 96, 0: none; the GOMEMLIMIT variable wins). It bounds go-fuse's
	// per-size buffer pools, which otherwise grow to GBs under mixed
	// request sizes.
	MemoryLimitMiB int
}

// Log is the [log] table.
type Log struct {
	Level  string // trace, debug, info, warn, error
	Format string // text or json
}

// Metrics is the [metrics] table: the Prometheus endpoint.
type Metrics struct {
	// Listen is the host:port serving /metrics; empty: no endpoint.
	Listen string
}

// Discovery is one [[discovery]] entry: a discovery controller whose log
// entries are all connected (like `nvme connect-all`).
type Discovery struct {
	Options fabrics.Options
	// TrAddrMap rewrites traddr values of discovery log entries, e.g. a
	// target behind NAT reporting its inside address.
	TrAddrMap map[string]string
	// Persistent keeps the discovery controller connected and connects the
	// entries that appear on a discovery-log-change AEN.
	Persistent bool
}

// Default returns the configuration used when no file is given.
func Default() Config {
	return Config{
		Multipath: Multipath{IOPolicy: mpath.PolicyNUMA, FenceWrites: true},
		FUSE:      FUSE{MaxWrite: 1 << 20, MaxBackground: 128, MemoryLimitMiB: 96},
		Log:       Log{Level: "info", Format: "text"},
	}
}

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return Parse(path, b)
}

type rawFile struct {
	Host       map[string]any   `toml:"host"`
	Multipath  map[string]any   `toml:"multipath"`
	FUSE       map[string]any   `toml:"fuse"`
	Log        map[string]any   `toml:"log"`
	Metrics    map[string]any   `toml:"metrics"`
	Controller []map[string]any `toml:"controller"`
	Discovery  []map[string]any `toml:"discovery"`
}

// Parse validates a configuration read from name.
func Parse(name string, data []byte) (*Config, error) {
	var raw rawFile
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%w: %s:%d: %s", ErrConfig, name, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, name, err)
	}
	p := parser{name: name, lines: strings.Split(string(data), "\n")}
	for _, k := range md.Undecoded() {
		if len(k) == 1 {
			return nil, p.errf(k.String(), k[0], "unknown table %q", k[0])
		}
	}
	c := Default()
	if err := p.host(raw.Host, &c.Host); err != nil {
		return nil, err
	}
	if err := p.multipath(raw.Multipath, &c.Multipath); err != nil {
		return nil, err
	}
	if err := p.fuse(raw.FUSE, &c.FUSE); err != nil {
		return nil, err
	}
	if err := p.log(raw.Log, &c.Log); err != nil {
		return nil, err
	}
	if err := p.metrics(raw.Metrics, &c.Metrics); err != nil {
		return nil, err
	}
	base := fabrics.DefaultOptions()
	base.HostNQN, base.HostID = c.Host.HostNQN, c.Host.HostID
	base.DHCHAPSecret = c.Host.DHCHAPSecret
	for i, m := range raw.Controller {
		o, err := p.fabrics(fmt.Sprintf("controller[%d]", i), "controller", m, base, nil)
		if err != nil {
			return nil, err
		}
		c.Controllers = append(c.Controllers, o)
	}
	for i, m := range raw.Discovery {
		var d Discovery
		db := base
		db.TrSvcID = fabrics.DiscoveryPort
		o, err := p.fabrics(fmt.Sprintf("discovery[%d]", i), "discovery", m, db, &d)
		if err != nil {
			return nil, err
		}
		o.Discovery = true
		d.Options = o
		c.Discovery = append(c.Discovery, d)
	}
	return &c, nil
}

type parser struct {
	name  string
	lines []string
}

// line finds the line defining key inside table (best effort: the first
// "key =" after the table's header).
func (p *parser) line(table, key string) int {
	start := 0
	if table != "" {
		hdr := regexp.MustCompile(`^\s*\[\[?\s*` + regexp.QuoteMeta(table) + `\s*\]\]?`)
		for i, l := range p.lines {
			if hdr.MatchString(l) {
				start = i
				break
			}
		}
	}
	kre := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(key) + `"?\s*=`)
	for i := start; i < len(p.lines); i++ {
		if kre.MatchString(p.lines[i]) {
			return i + 1
		}
	}
	return start + 1
}

func (p *parser) errf(path, key, format string, args ...any) error {
	table, _, _ := strings.Cut(path, ".")
	table, _, _ = strings.Cut(table, "[")
	if !strings.Contains(path, ".") {
		table = ""
	}
	return fmt.Errorf("%w: %s:%d: %s: %s", ErrConfig, p.name, p.line(table, key), path, fmt.Sprintf(format, args...))
}

// fields walks a table's keys in a stable order, refusing unknown ones.
func (p *parser) fields(table string, m map[string]any, set map[string]func(v any) error) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fn, ok := set[k]
		if !ok {
			return p.errf(table+"."+k, k, "unknown key")
		}
		if err := fn(m[k]); err != nil {
			return p.errf(table+"."+k, k, "%v", err)
		}
	}
	return nil
}

func asString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want a string, got %T %v", v, v)
	}
	return s, nil
}

func asInt(v any) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("want an integer, got %T %v", v, v)
	}
	return n, nil
}

func asBool(v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("want true or false, got %T %v", v, v)
	}
	return b, nil
}

func (p *parser) host(m map[string]any, h *Host) error {
	err := p.fields("host", m, map[string]func(any) error{
		"hostnqn": func(v any) (err error) {
			if h.HostNQN, err = asString(v); err == nil && len(h.HostNQN) >= fabrics.NQNSize {
				// Refused like --connect's hostnqn= (the kernel's NVMF_NQN_SIZE),
				// not truncated on the wire.
				err = fmt.Errorf("%d bytes, must be shorter than %d", len(h.HostNQN), fabrics.NQNSize)
			}
			return err
		},
		"hostid": func(v any) error {
			s, err := asString(v)
			if err != nil {
				return err
			}
			h.HostID, err = fabrics.ParseUUID(s)
			return err
		},
		"dhchap_secret": func(v any) error {
			s, err := asString(v)
			if err != nil {
				return err
			}
			h.DHCHAPSecret, err = auth.ParseKey(s)
			return err
		},
	})
	if err != nil {
		return err
	}
	if h.HostNQN == "" || h.HostID == [16]byte{} {
		nqn, id, err := fabrics.DefaultHostIdentity()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if h.HostNQN == "" {
			h.HostNQN = nqn
		}
		if h.HostID == [16]byte{} {
			h.HostID = id
		}
	}
	return nil
}

func (p *parser) multipath(m map[string]any, mp *Multipath) error {
	return p.fields("multipath", m, map[string]func(any) error{
		"iopolicy": func(v any) error {
			s, err := asString(v)
			if err != nil {
				return err
			}
			mp.IOPolicy, err = mpath.ParseIOPolicy(s)
			return err
		},
		"delayed_removal_secs": func(v any) error {
			n, err := asInt(v)
			if err != nil {
				return err
			}
			if n < 0 || n > 1<<32-1 {
				return fmt.Errorf("out of range: %d", n)
			}
			mp.DelayedRemovalSecs = uint32(n)
			return nil
		},
		"fence_writes": func(v any) error {
			s, err := asString(v)
			if err != nil {
				return err
			}
			switch s {
			case "kato":
				mp.FenceWrites = true
			case "off":
				mp.FenceWrites = false
			default:
				return fmt.Errorf("want \"kato\" or \"off\", got %q", s)
			}
			return nil
		},
	})
}

func (p *parser) fuse(m map[string]any, f *FUSE) error {
	intIn := func(dst *int, lo, hi int64) func(any) error {
		return func(v any) error {
			n, err := asInt(v)
			if err != nil {
				return err
			}
			if n < lo || n > hi {
				return fmt.Errorf("out of range %d..%d: %d", lo, hi, n)
			}
			*dst = int(n)
			return nil
		}
	}
	return p.fields("fuse", m, map[string]func(any) error{
		"max_write":        intIn(&f.MaxWrite, 4096, 1<<20),
		"max_background":   intIn(&f.MaxBackground, 1, 65535),
		"max_readers":      intIn(&f.MaxReaders, 0, 1024),
		"gomaxprocs":       intIn(&f.GoMaxProcs, 0, 1024),
		"memory_limit_mib": intIn(&f.MemoryLimitMiB, 0, 1<<20),
		"allow_other":      func(v any) (err error) { f.AllowOther, err = asBool(v); return },
		"debug":            func(v any) (err error) { f.Debug, err = asBool(v); return },
		"go_fuse_loop":     func(v any) (err error) { f.GoFuseLoop, err = asBool(v); return },
	})
}

func (p *parser) log(m map[string]any, l *Log) error {
	return p.fields("log", m, map[string]func(any) error{
		"level": func(v any) error {
			s, err := asString(v)
			if err != nil {
				return err
			}
			switch s {
			case "trace", "debug", "info", "warn", "error", "off":
				l.Level = s
				return nil
			}
			return fmt.Errorf("want trace, debug, info, warn, error or off, got %q", s)
		},
		"format": func(v any) error {
			s, err := asString(v)
			if err != nil {
				return err
			}
			if s != "text" && s != "json" {
				return fmt.Errorf("want text or json, got %q", s)
			}
			l.Format = s
			return nil
		},
	})
}

func (p *parser) metrics(m map[string]any, mt *Metrics) error {
	return p.fields("metrics", m, map[string]func(any) error{
		"listen": func(v any) error {
			s, err := asString(v)
			if err != nil {
				return err
			}
			if err := CheckListen(s); err != nil {
				return err
			}
			mt.Listen = s
			return nil
		},
	})
}

// CheckListen validates a host:port listen address ("" means off).
func CheckListen(s string) error {
	if s == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("want a port 0..65535, got %q", port)
	}
	return nil
}

// fabrics turns a [[controller]] or [[discovery]] table into connect
// options by writing it in the kernel grammar and parsing that, so the two
// accept exactly the same keys and values.
func (p *parser) fabrics(path, table string, m map[string]any, base fabrics.Options, d *Discovery) (fabrics.Options, error) {
	keys := slices.Sorted(maps.Keys(m))
	var parts []string
	for _, k := range keys {
		v := m[k]
		if d != nil && k == "persistent" {
			b, err := asBool(v)
			if err != nil {
				return base, p.errf(path+"."+k, k, "%v", err)
			}
			d.Persistent = b
			continue
		}
		if d != nil && k == "traddr_map" {
			mm, ok := v.(map[string]any)
			if !ok {
				return base, p.errf(path+"."+k, k, "want a table of strings")
			}
			d.TrAddrMap = map[string]string{}
			for from, to := range mm {
				s, err := asString(to)
				if err != nil {
					return base, p.errf(path+"."+k, k, "%v", err)
				}
				d.TrAddrMap[from] = s
			}
			continue
		}
		switch x := v.(type) {
		case string:
			if strings.ContainsAny(x, ",\n") {
				return base, p.errf(path+"."+k, k, "value %q contains ',' or newline", x)
			}
			parts = append(parts, k+"="+x)
		case int64:
			parts = append(parts, k+"="+strconv.FormatInt(x, 10))
		case bool:
			if x {
				parts = append(parts, k)
			}
		default:
			return base, p.errf(path+"."+k, k, "unsupported value %T", v)
		}
	}
	if _, ok := m["transport"]; !ok {
		parts = append([]string{"transport=tcp"}, parts...)
	}
	o, err := fabrics.ParseOptions(strings.Join(parts, ","), base)
	if err != nil {
		key := errKey(err, keys)
		return base, p.errf(path+"."+key, key, "%v", err)
	}
	if d == nil {
		if err := o.Validate(); err != nil {
			return base, p.errf(path, table, "%v", err)
		}
	} else if o.TrAddr == "" {
		return base, p.errf(path, table, "missing traddr")
	}
	return o, nil
}

// errKey finds which key an option error is about.
func errKey(err error, keys []string) string {
	msg := err.Error()
	for _, k := range keys {
		if strings.Contains(msg, k+":") || strings.Contains(msg, "\""+k+"\"") {
			return k
		}
	}
	if len(keys) > 0 {
		return keys[0]
	}
	return "?"
}
