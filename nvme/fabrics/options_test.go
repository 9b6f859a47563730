package fabrics

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
)

// Reference §7.3 defaults.
func TestDefaultOptionsAreKernels(t *testing.T) {
	o := DefaultOptions()
	if o.KeepAliveTmo != 5*time.Second || o.ReconnectDelay != 10*time.Second || o.CtrlLossTmo != 600*time.Second ||
		o.FastIOFailTmo >= 0 || o.QueueSize != 128 || o.NrIOQueues != runtime.NumCPU() || o.Tos != -1 {
		t.Fatalf("DefaultOptions = %+v", o)
	}
}

func TestParseOptions(t *testing.T) {
	ncpu := runtime.NumCPU()
	base := DefaultOptions()
	with := func(f func(o *Options)) Options {
		o := base
		o.Transport, o.TrAddr, o.TrSvcID, o.SubsysNQN = "tcp", "10.0.0.1", "4420", "nqn.x"
		f(&o)
		return o
	}
	const pre = "transport=tcp,traddr=10.0.0.1,trsvcid=4420,nqn=nqn.x"
	tests := []struct {
		name string
		in   string
		want Options
	}{
		{"minimal connect keeps the defaults", pre, with(func(o *Options) {})},
		{"boolean flags take no '='", pre + ",hdr_digest,data_digest,disable_sqflow,duplicate_connect",
			with(func(o *Options) {
				o.HdrDigest, o.DataDigest, o.DisableSQFlow, o.DuplicateConnect = true, true, true, true
			})},
		{"timeouts in seconds", pre + ",keep_alive_tmo=30,reconnect_delay=2,ctrl_loss_tmo=60,fast_io_fail_tmo=0",
			with(func(o *Options) {
				o.KeepAliveTmo, o.ReconnectDelay, o.CtrlLossTmo, o.FastIOFailTmo = 30*time.Second, 2*time.Second, time.Minute, 0
			})},
		{"negative ctrl_loss_tmo reconnects forever", pre + ",ctrl_loss_tmo=-5", with(func(o *Options) { o.CtrlLossTmo = Off })},
		{"fast_io_fail_tmo -1 is off", pre + ",fast_io_fail_tmo=5,fast_io_fail_tmo=-1", with(func(o *Options) { o.FastIOFailTmo = Off })},
		{"keep_alive_tmo 0 on an I/O controller becomes the default 5 s", pre + ",keep_alive_tmo=0", with(func(o *Options) {})},
		{"integers in C notation (0x, leading 0)", pre + ",queue_size=0x40,reconnect_delay=010", with(func(o *Options) {
			o.QueueSize, o.ReconnectDelay = 64, 8*time.Second
		})},
		{"nr_io_queues is capped at the CPU count", pre + ",nr_io_queues=100000", with(func(o *Options) { o.NrIOQueues = ncpu })},
		{"tos above 255 is clamped", pre + ",tos=300", with(func(o *Options) { o.Tos = 255 })},
		{"hostnqn, hostid, host_traddr, host_iface", pre + ",hostnqn=nqn.h,hostid=00112233-4455-6677-8899-AABBCCDDEEFF,host_traddr=10.0.0.9,host_iface=eth1",
			with(func(o *Options) {
				o.HostNQN, o.HostTrAddr, o.HostIface = "nqn.h", "10.0.0.9", "eth1"
				o.HostID = [16]byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF}
			})},
		{"later options win, empty options and newlines are skipped", pre + ",,traddr=10.0.0.2\nqueue_size=32\n", with(func(o *Options) {
			o.TrAddr, o.QueueSize = "10.0.0.2", 32
		})},
		{"tcp without trsvcid defaults to 8009 (NVME_TCP_DISC_PORT)", "transport=tcp,traddr=10.0.0.1,nqn=nqn.x", with(func(o *Options) { o.TrSvcID = "8009" })},
		{"discovery NQN: no I/O queues, duplicate_connect, keep_alive_tmo 0", "transport=tcp,traddr=10.0.0.1,trsvcid=8009,nqn=" + nvme.DiscoveryNQN,
			with(func(o *Options) {
				o.TrSvcID, o.SubsysNQN, o.Discovery, o.DuplicateConnect = "8009", nvme.DiscoveryNQN, true, true
				o.NrIOQueues, o.KeepAliveTmo = 0, 0
			})},
		{"persistent discovery flag keeps an explicit keep_alive_tmo", pre + ",discovery,keep_alive_tmo=30,nr_io_queues=4",
			with(func(o *Options) {
				o.Discovery, o.DuplicateConnect, o.NrIOQueues, o.KeepAliveTmo = true, true, 0, 30*time.Second
			})},
		{"value may contain '='", pre + ",host_iface=a=b", with(func(o *Options) { o.HostIface = "a=b" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOptions(tt.in, base)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseOptions(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
			again, err := ParseOptions(got.String(), base)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("String() round trip via %q:\n got %+v, %v\nwant %+v", got.String(), again, err, got)
			}
		})
	}
}

func TestParseOptionsErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"foo=1", `unknown option "foo"`},
		{"Traddr=x", `unknown option "Traddr"`},
		{"keep_alive_tmo=x", `keep_alive_tmo: invalid value "x"`},
		{"keep_alive_tmo=-1", `keep_alive_tmo: invalid value "-1"`},
		{"keep_alive_tmo=1_0", `keep_alive_tmo: invalid value "1_0"`},
		{"ctrl_loss_tmo=99999999999", `ctrl_loss_tmo: invalid value "99999999999"`},
		{"queue_size=15", `queue_size: invalid value "15"`},
		{"queue_size=1025", `queue_size: invalid value "1025"`},
		{"nr_io_queues=0", `nr_io_queues: invalid value "0"`},
		{"reconnect_delay=0", `reconnect_delay: invalid value "0"`},
		{"tos=-1", `tos: invalid value "-1"`},
		{"hostid=not-a-uuid", `hostid: invalid value "not-a-uuid"`},
		{"nqn=" + strings.Repeat("n", 223), `nqn: invalid value`},
		{"hostnqn=" + strings.Repeat("n", 300), `hostnqn: invalid value`},
		{"traddr", `traddr: missing value`},
		{"traddr=", `traddr: missing value`},
		{"hdr_digest=1", `hdr_digest: takes no value`},
		{"dhchap_secret=DHHC-1:00:abc", `dhchap_secret: invalid DH-HMAC-CHAP secret`},
		{"dhchap_ctrl_secret=DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPp:", `dhchap_ctrl_secret: invalid DH-HMAC-CHAP secret: nvme auth: key crc mismatch`},
		{"tls", `tls: not supported`},
	}
	base := DefaultOptions()
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseOptions("transport=tcp,"+tt.in, base)
			if err == nil || !errors.Is(err, ErrOption) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q wrapping ErrOption", err, tt.want)
			}
			if !reflect.DeepEqual(got, base) {
				t.Fatalf("on error returned %+v, want base", got)
			}
		})
	}
}

func TestDHCHAPOptions(t *testing.T) {
	const k1 = "DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:"
	const k2 = "DHHC-1:01:AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09pl1OOC:"
	o, err := ParseOptions("transport=tcp,traddr=1.2.3.4,nqn=nqn.x,dhchap_secret="+k1+",dhchap_ctrl_secret="+k2, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if o.DHCHAPSecret.Text() != k1 || o.DHCHAPCtrlSecret.Text() != k2 {
		t.Fatalf("secrets %q %q", o.DHCHAPSecret.Text(), o.DHCHAPCtrlSecret.Text())
	}
	if s := fmt.Sprintf("%v %+v", o, o); strings.Contains(s, "AAcOFRw") || strings.Contains(s, "AQgPFh0") {
		t.Errorf("formatting the options shows a secret: %s", s)
	}
	if again, err := ParseOptions(o.Encode(), DefaultOptions()); err != nil || !reflect.DeepEqual(again, o) {
		t.Errorf("Encode round trip: %v", err)
	}
	_, err = ParseOptions("dhchap_secret=DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPp:", DefaultOptions())
	if err == nil || strings.Contains(err.Error(), "AAcOFRw") {
		t.Errorf("bad secret: %v (must fail without repeating it)", err)
	}
}

// Landscape §2: address = traddr=..,trsvcid=..[,host_traddr=..][,host_iface=..].
func TestAddressIsKernelSysfsOrder(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"traddr and trsvcid", Options{TrAddr: "10.0.0.1", TrSvcID: "4420"}, "traddr=10.0.0.1,trsvcid=4420"},
		{"with host_traddr and host_iface, in that order", Options{TrAddr: "10.0.0.1", TrSvcID: "4420", HostTrAddr: "10.0.0.9", HostIface: "eth0"},
			"traddr=10.0.0.1,trsvcid=4420,host_traddr=10.0.0.9,host_iface=eth0"},
		{"host_iface only", Options{TrAddr: "fe80::1", TrSvcID: "4420", HostIface: "eth0"}, "traddr=fe80::1,trsvcid=4420,host_iface=eth0"},
		{"nothing set", Options{}, ""},
	}
	for _, tt := range tests {
		if got := tt.o.Address(); got != tt.want {
			t.Errorf("%s: Address() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok, _ := ParseOptions("transport=tcp,traddr=1.2.3.4,nqn=nqn.x", DefaultOptions())
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	for in, want := range map[string]string{
		"traddr=1.2.3.4,nqn=nqn.x":                "transport",
		"transport=rdma,traddr=1.2.3.4,nqn=nqn.x": "unsupported transport",
		"transport=tcp,nqn=nqn.x":                 "traddr",
		"transport=tcp,traddr=1.2.3.4":            "nqn",
	} {
		o, err := ParseOptions(in, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%q) = %v, want mention of %q", in, err, want)
		}
	}
}

func FuzzParseOptions(f *testing.F) {
	f.Add("transport=tcp,traddr=127.0.0.1,trsvcid=4420,nqn=nqn.2014-08.org.example:s1,hdr_digest,ctrl_loss_tmo=-1")
	f.Add("nqn=" + nvme.DiscoveryNQN + ",keep_alive_tmo=0x10,tos=0777,hostid=00000000-0000-4000-8000-000000000000")
	f.Add("queue_size=16\n,,fast_io_fail_tmo=-2,duplicate_connect,discovery")
	f.Add("dhchap_secret=DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:,dhchap_ctrl_secret=DHHC-1:01:AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09pl1OOC:")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOptions(s, DefaultOptions())
		if err != nil {
			if !errors.Is(err, ErrOption) {
				t.Fatalf("error %v does not wrap ErrOption", err)
			}
			return
		}
		again, err := ParseOptions(o.Encode(), DefaultOptions())
		if err != nil || !reflect.DeepEqual(again, o) {
			t.Fatalf("round trip via %q:\n got %+v, %v\nwant %+v", o.Encode(), again, err, o)
		}
		_ = o.Address()
	})
}

func TestRedactSecrets(t *testing.T) {
	in := "traddr=1.2.3.4,dhchap_secret=DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:,nqn=n,dhchap_ctrl_secret=DHHC-1:01:x:"
	if got := RedactSecrets(in); got != "traddr=1.2.3.4,dhchap_secret=<hidden>,nqn=n,dhchap_ctrl_secret=<hidden>" {
		t.Fatalf("RedactSecrets = %q", got)
	}
}
