package fabrics

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/auth"
)

// Defaults of the kernel's fabrics options (reference §7.3, fabrics.h).
const (
	DefaultKATO           = 5 * time.Second
	DefaultReconnectDelay = 10 * time.Second
	DefaultCtrlLossTmo    = 600 * time.Second
	DefaultQueueSize      = 128
	MinQueueSize          = 16
	MaxQueueSize          = 1024
	// DiscoveryPort is the TCP port the kernel uses when trsvcid is not
	// given (NVME_TCP_DISC_PORT); IOPort is the NVMe-oF I/O port.
	DiscoveryPort = "8009"
	IOPort        = "4420"
)

// Off is the value of CtrlLossTmo (reconnect forever) and FastIOFailTmo
// (never fail fast) that the kernel writes as -1.
const Off time.Duration = -time.Second

// Options are the connect options of one controller, in the grammar of the
// kernel's /dev/nvme-fabrics ("transport=tcp,traddr=...,nqn=...").
// Timeouts are whole seconds on the wire; a negative CtrlLossTmo means
// reconnect forever and a negative FastIOFailTmo means off.
type Options struct {
	Transport        string // "tcp"
	TrAddr           string
	TrSvcID          string
	HostTrAddr       string
	HostIface        string
	SubsysNQN        string // nqn=
	HostNQN          string
	HostID           [16]byte
	KeepAliveTmo     time.Duration
	ReconnectDelay   time.Duration
	CtrlLossTmo      time.Duration
	FastIOFailTmo    time.Duration
	NrIOQueues       int
	NrWriteQueues    int
	NrPollQueues     int
	QueueSize        int
	HdrDigest        bool
	DataDigest       bool
	DisableSQFlow    bool
	DuplicateConnect bool
	Discovery        bool // discovery controller (discovery flag or nqn= the discovery NQN)
	Tos              int  // IP type of service; -1 = transport default
	// DHCHAPSecret (dhchap_secret=) is the host's DH-HMAC-CHAP secret;
	// DHCHAPCtrlSecret (dhchap_ctrl_secret=) the controller's, which asks
	// for bidirectional authentication. Nil: none.
	DHCHAPSecret     *auth.Key
	DHCHAPCtrlSecret *auth.Key
}

// DefaultOptions returns the kernel defaults: keep_alive_tmo 5 s,
// reconnect_delay 10 s, ctrl_loss_tmo 600 s, fast_io_fail_tmo off,
// queue_size 128, nr_io_queues = number of CPUs, tos -1.
func DefaultOptions() Options {
	return Options{
		KeepAliveTmo:   DefaultKATO,
		ReconnectDelay: DefaultReconnectDelay,
		CtrlLossTmo:    DefaultCtrlLossTmo,
		FastIOFailTmo:  Off,
		QueueSize:      DefaultQueueSize,
		NrIOQueues:     runtime.NumCPU(),
		Tos:            -1,
	}
}

// ErrOption is wrapped by every ParseOptions error.
var ErrOption = errors.New("invalid fabrics option")

type optKind uint8

const (
	optString optKind = iota
	optInt
	optFlag
	optUnsupported
)

// kindOf classifies an option key (the kernel's opt_tokens table).
func kindOf(key string) (optKind, bool) {
	switch key {
	case "transport", "traddr", "trsvcid", "nqn", "hostnqn", "host_traddr", "host_iface", "hostid",
		"dhchap_secret", "dhchap_ctrl_secret":
		return optString, true
	case "queue_size", "nr_io_queues", "nr_write_queues", "nr_poll_queues",
		"reconnect_delay", "ctrl_loss_tmo", "keep_alive_tmo", "fast_io_fail_tmo", "tos":
		return optInt, true
	case "duplicate_connect", "disable_sqflow", "hdr_digest", "data_digest", "discovery":
		return optFlag, true
	case "keyring", "tls_key", "tls", "concat":
		return optUnsupported, true
	}
	return 0, false
}

// ParseOptions parses a kernel fabrics option string on top of base
// (usually DefaultOptions()), with the kernel's nvmf_parse_options rules:
// options separated by ',' or newline, empty ones skipped, later ones win;
// integers in C notation (decimal, 0x hex, 0 octal); queue_size 16..1024;
// nr_io_queues > 0, capped at the number of CPUs; keep_alive_tmo >= 0;
// reconnect_delay > 0; negative ctrl_loss_tmo reconnects forever and
// negative fast_io_fail_tmo is off (both stored as Off); tos >= 0, clamped
// to 255. After parsing, as the kernel does: nqn equal to the discovery NQN
// implies discovery; a discovery controller gets no I/O queues,
// duplicate_connect, and keep_alive_tmo 0 unless given; any other
// controller with keep_alive_tmo 0 gets 5 s. A tcp transport without
// trsvcid gets 8009, as the kernel's TCP transport does.
//
// Errors wrap ErrOption and name the key: `unknown option "foo"`,
// `keep_alive_tmo: invalid value "x"`; base is then returned unchanged.
// dhchap_secret and dhchap_ctrl_secret must be DHHC-1 secrets that pass
// auth.ParseKey (the kernel checks them when it creates the controller;
// errors here do not repeat the secret). TLS options are recognised but
// not supported. Call the
// result's Validate for what creating a TCP controller requires.
func ParseOptions(s string, base Options) (Options, error) {
	o := base
	katoSet := false
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		key, val, hasVal := strings.Cut(p, "=")
		kind, ok := kindOf(key)
		if !ok {
			return base, fmt.Errorf("%w: unknown option %q", ErrOption, key)
		}
		switch kind {
		case optUnsupported:
			return base, fmt.Errorf("%w: %s: not supported", ErrOption, key)
		case optFlag:
			if hasVal {
				return base, fmt.Errorf("%w: %s: takes no value, got %q", ErrOption, key, val)
			}
		default:
			if val == "" {
				return base, fmt.Errorf("%w: %s: missing value", ErrOption, key)
			}
		}
		var n int
		if kind == optInt {
			v, err := parseCInt(val)
			if err != nil {
				return base, fmt.Errorf("%w: %s: invalid value %q", ErrOption, key, val)
			}
			n = v
		}
		bad := func(why string) error {
			return fmt.Errorf("%w: %s: invalid value %q: %s", ErrOption, key, val, why)
		}
		switch key {
		case "transport":
			o.Transport = val
		case "traddr":
			o.TrAddr = val
		case "trsvcid":
			o.TrSvcID = val
		case "nqn":
			if len(val) >= NQNSize {
				return base, bad(fmt.Sprintf("must be shorter than %d bytes", NQNSize))
			}
			o.SubsysNQN = val
			if val == nvme.DiscoveryNQN {
				o.Discovery = true
			}
		case "hostnqn":
			if len(val) >= NQNSize {
				return base, bad(fmt.Sprintf("must be shorter than %d bytes", NQNSize))
			}
			o.HostNQN = val
		case "host_traddr":
			o.HostTrAddr = val
		case "host_iface":
			o.HostIface = val
		case "dhchap_secret", "dhchap_ctrl_secret":
			k, err := auth.ParseKey(val)
			if err != nil {
				return base, fmt.Errorf("%w: %s: invalid DH-HMAC-CHAP secret: %w", ErrOption, key, err)
			}
			if key == "dhchap_secret" {
				o.DHCHAPSecret = k
			} else {
				o.DHCHAPCtrlSecret = k
			}
		case "hostid":
			id, err := ParseUUID(val)
			if err != nil {
				return base, bad("not a UUID")
			}
			o.HostID = id
		case "queue_size":
			if n < MinQueueSize || n > MaxQueueSize {
				return base, bad(fmt.Sprintf("must be %d..%d", MinQueueSize, MaxQueueSize))
			}
			o.QueueSize = n
		case "nr_io_queues":
			if n <= 0 {
				return base, bad("must be positive")
			}
			o.NrIOQueues = min(n, runtime.NumCPU())
		case "nr_write_queues":
			if n <= 0 {
				return base, bad("must be positive")
			}
			o.NrWriteQueues = n
		case "nr_poll_queues":
			if n <= 0 {
				return base, bad("must be positive")
			}
			o.NrPollQueues = n
		case "reconnect_delay":
			if n <= 0 {
				return base, bad("must be positive")
			}
			o.ReconnectDelay = time.Duration(n) * time.Second
		case "ctrl_loss_tmo":
			o.CtrlLossTmo = seconds(n)
		case "keep_alive_tmo":
			if n < 0 {
				return base, bad("must not be negative")
			}
			o.KeepAliveTmo = time.Duration(n) * time.Second
			katoSet = true
		case "fast_io_fail_tmo":
			o.FastIOFailTmo = seconds(n)
		case "tos":
			if n < 0 {
				return base, bad("must not be negative")
			}
			o.Tos = min(n, 255)
		case "duplicate_connect":
			o.DuplicateConnect = true
		case "disable_sqflow":
			o.DisableSQFlow = true
		case "hdr_digest":
			o.HdrDigest = true
		case "data_digest":
			o.DataDigest = true
		case "discovery":
			o.Discovery = true
		}
	}
	if o.Discovery {
		o.NrIOQueues, o.NrWriteQueues, o.NrPollQueues = 0, 0, 0
		o.DuplicateConnect = true
		if !katoSet {
			o.KeepAliveTmo = 0
		}
	} else if o.KeepAliveTmo == 0 {
		o.KeepAliveTmo = DefaultKATO
	}
	if o.Transport == "tcp" && o.TrSvcID == "" {
		o.TrSvcID = DiscoveryPort
	}
	return o, nil
}

// seconds converts an option value to a duration, mapping negative values
// to Off.
func seconds(n int) time.Duration {
	if n < 0 {
		return Off
	}
	return time.Duration(n) * time.Second
}

// parseCInt parses a 32-bit integer like the kernel's match_int (kstrtoint
// with base 0): optional sign, then 0x/0X hex, leading-0 octal or decimal.
func parseCInt(s string) (int, error) {
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	base := 10
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, strconv.ErrSyntax
	}
	v, err := strconv.ParseInt(s, base, 64)
	if err != nil {
		return 0, err
	}
	if neg {
		v = -v
	}
	if v < -1<<31 || v > 1<<31-1 {
		return 0, strconv.ErrRange
	}
	return int(v), nil
}

// Validate checks what the kernel requires to create a TCP controller:
// transport=tcp, traddr and nqn.
func (o Options) Validate() error {
	switch {
	case o.Transport == "":
		return fmt.Errorf("%w: missing parameter 'transport=%%s'", ErrOption)
	case o.Transport != "tcp":
		return fmt.Errorf("%w: transport: unsupported transport %q (only tcp)", ErrOption, o.Transport)
	case o.SubsysNQN == "":
		return fmt.Errorf("%w: missing parameter 'nqn=%%s'", ErrOption)
	case o.TrAddr == "":
		return fmt.Errorf("%w: missing parameter 'traddr=%%s'", ErrOption)
	}
	return nil
}

// String is Encode with the DH-HMAC-CHAP secrets written as "<hidden>",
// safe to log.
func (o Options) String() string { return o.encode(false) }

// Encode formats o in the option grammar, secrets included (do not log
// it), so that ParseOptions(o.Encode(),
// DefaultOptions()) returns o for any o ParseOptions produced. Empty
// strings, a zero HostID, zero queue counts, a negative Tos and a
// non-positive ReconnectDelay are left out; durations are written in whole
// seconds (Off as -1).
func (o Options) Encode() string { return o.encode(true) }

func (o Options) encode(secrets bool) string {
	var b strings.Builder
	add := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		if v != "" {
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	str := func(k, v string) {
		if v != "" {
			add(k, v)
		}
	}
	num := func(k string, v int, keep bool) {
		if keep {
			add(k, strconv.Itoa(v))
		}
	}
	secs := func(d time.Duration) int {
		if d < 0 {
			return -1
		}
		return int(d / time.Second)
	}
	flag := func(k string, v bool) {
		if v {
			add(k, "")
		}
	}
	str("transport", o.Transport)
	str("traddr", o.TrAddr)
	str("trsvcid", o.TrSvcID)
	str("host_traddr", o.HostTrAddr)
	str("host_iface", o.HostIface)
	str("nqn", o.SubsysNQN)
	str("hostnqn", o.HostNQN)
	if o.HostID != [16]byte{} {
		add("hostid", FormatUUID(o.HostID))
	}
	secret := func(k string, key *auth.Key) {
		switch {
		case key == nil:
		case secrets:
			add(k, key.Text())
		default:
			add(k, "<hidden>")
		}
	}
	secret("dhchap_secret", o.DHCHAPSecret)
	secret("dhchap_ctrl_secret", o.DHCHAPCtrlSecret)
	num("queue_size", o.QueueSize, o.QueueSize > 0)
	num("nr_io_queues", o.NrIOQueues, o.NrIOQueues > 0)
	num("nr_write_queues", o.NrWriteQueues, o.NrWriteQueues > 0)
	num("nr_poll_queues", o.NrPollQueues, o.NrPollQueues > 0)
	num("keep_alive_tmo", secs(o.KeepAliveTmo), true)
	num("reconnect_delay", secs(o.ReconnectDelay), o.ReconnectDelay >= time.Second)
	num("ctrl_loss_tmo", secs(o.CtrlLossTmo), true)
	num("fast_io_fail_tmo", secs(o.FastIOFailTmo), true)
	num("tos", o.Tos, o.Tos >= 0)
	flag("hdr_digest", o.HdrDigest)
	flag("data_digest", o.DataDigest)
	flag("disable_sqflow", o.DisableSQFlow)
	flag("duplicate_connect", o.DuplicateConnect)
	flag("discovery", o.Discovery)
	return b.String()
}

// Address returns the controller address as the kernel's sysfs "address"
// attribute shows it (nvmf_get_address), without the trailing newline and
// without the src_addr the TCP transport appends while connected:
// "traddr=<a>,trsvcid=<p>[,host_traddr=<h>][,host_iface=<i>]", each field
// only if set.
func (o Options) Address() string {
	var parts []string
	for _, kv := range [...][2]string{
		{"traddr", o.TrAddr}, {"trsvcid", o.TrSvcID},
		{"host_traddr", o.HostTrAddr}, {"host_iface", o.HostIface},
	} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	return strings.Join(parts, ",")
}

// RedactSecrets returns an option string with the values of dhchap_secret
// and dhchap_ctrl_secret replaced by "<hidden>", for messages.
func RedactSecrets(s string) string {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' })
	for i, p := range parts {
		if k, _, ok := strings.Cut(p, "="); ok && (k == "dhchap_secret" || k == "dhchap_ctrl_secret") {
			parts[i] = k + "=<hidden>"
		}
	}
	return strings.Join(parts, ",")
}
