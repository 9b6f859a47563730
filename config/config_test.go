package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

const good = `# example
[host]
hostnqn = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-4333-8444-555555555555"
hostid = "11111111-2222-4333-8444-555555555555"

[multipath]
iopolicy = "round-robin"
delayed_removal_secs = 30
fence_writes = "off"

[fuse]
max_write = 131072
memory_limit_mib = 200

[log]
level = "debug"
format = "json"

[metrics]
listen = "127.0.0.1:9563"

[[controller]]
traddr = "127.0.0.1"
trsvcid = "4420"
nqn = "nqn.2026-11.io.mpathfs:demo"
keep_alive_tmo = 2
ctrl_loss_tmo = -1
hdr_digest = true

[[controller]]
traddr = "127.0.0.1"
trsvcid = "4421"
nqn = "nqn.2026-11.io.mpathfs:demo"

[[discovery]]
traddr = "10.0.0.1"
persistent = true
traddr_map = { "10.0.3.15" = "127.0.0.1" }
`

func TestParseGood(t *testing.T) {
	c, err := Parse("good.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Multipath.IOPolicy != mpath.PolicyRoundRobin || c.Multipath.DelayedRemovalSecs != 30 || c.Multipath.FenceWrites {
		t.Errorf("multipath %+v", c.Multipath)
	}
	if c.Metrics.Listen != "127.0.0.1:9563" {
		t.Errorf("metrics %+v", c.Metrics)
	}
	if c.FUSE.MaxWrite != 131072 || c.FUSE.MaxBackground != 128 || c.FUSE.MemoryLimitMiB != 200 {
		t.Errorf("fuse %+v", c.FUSE)
	}
	if c.Log.Level != "debug" || c.Log.Format != "json" {
		t.Errorf("log %+v", c.Log)
	}
	if len(c.Controllers) != 2 {
		t.Fatalf("%d controllers", len(c.Controllers))
	}
	c0 := c.Controllers[0]
	if c0.TrSvcID != "4420" || c0.KeepAliveTmo != 2*time.Second || c0.CtrlLossTmo >= 0 || !c0.HdrDigest || c0.Transport != "tcp" {
		t.Errorf("controller 0: %+v", c0)
	}
	if c0.HostNQN != c.Host.HostNQN || fabrics.FormatUUID(c0.HostID) != "11111111-2222-4333-8444-555555555555" {
		t.Errorf("host identity not applied: %q", c0.HostNQN)
	}
	if c1 := c.Controllers[1]; c1.KeepAliveTmo != fabrics.DefaultKATO || c1.ReconnectDelay != fabrics.DefaultReconnectDelay {
		t.Errorf("controller 1 defaults: %+v", c1)
	}
	if len(c.Discovery) != 1 || c.Discovery[0].Options.TrSvcID != "8009" || !c.Discovery[0].Persistent || c.Discovery[0].TrAddrMap["10.0.3.15"] != "127.0.0.1" {
		t.Errorf("discovery %+v", c.Discovery)
	}
}

// Bad input names the key and its line, and wraps ErrConfig.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"unknown table", "[hosts]\nx = 1\n", `x.toml:1: hosts: unknown table "hosts"`},
		{"unknown key in host", "[host]\nhostnqn = \"a\"\nhost_nqn = \"b\"\n", "x.toml:3: host.host_nqn: unknown key"},
		{"hostnqn too long", "[host]\nhostnqn = \"nqn.2014-08.org.nvmexpress:" + strings.Repeat("x", 196) + "\"\n", "x.toml:2: host.hostnqn: 223 bytes, must be shorter than 223"},
		{"bad iopolicy", "[multipath]\n\niopolicy = \"fastest\"\n", "x.toml:3: multipath.iopolicy:"},
		{"iopolicy wrong type", "[multipath]\niopolicy = 3\n", "x.toml:2: multipath.iopolicy: want a string"},
		{"bad fence", "[multipath]\nfence_writes = \"maybe\"\n", "x.toml:2: multipath.fence_writes: want \"kato\" or \"off\""},
		{"max_write too big", "[fuse]\nmax_write = 2097152\n", "x.toml:2: fuse.max_write: out of range"},
		{"memory_limit_mib negative", "[fuse]\nmemory_limit_mib = -1\n", "x.toml:2: fuse.memory_limit_mib: out of range"},
		{"bad log level", "[log]\nlevel = \"loud\"\n", "x.toml:2: log.level:"},
		{"metrics listen without port", "[metrics]\nlisten = \"localhost\"\n", "x.toml:2: metrics.listen: want host:port"},
		{"metrics listen bad port", "[metrics]\nlisten = \":http\"\n", "x.toml:2: metrics.listen: want a port"},
		{"unknown controller key", "[[controller]]\ntraddr = \"a\"\nnqn = \"n\"\ncolour = \"red\"\n", "x.toml:4: controller[0].colour: "},
		{"bad controller value", "[[controller]]\ntraddr = \"a\"\nnqn = \"n\"\nkeep_alive_tmo = \"soon\"\n", "x.toml:4: controller[0].keep_alive_tmo:"},
		{"missing nqn", "[[controller]]\ntraddr = \"a\"\n", "x.toml:1: controller[0]: "},
		{"syntax", "[host\n", "x.toml:2: expected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.toml", []byte(tc.in))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("%v does not wrap ErrConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\n does not contain %q", err, tc.want)
			}
		})
	}
}

// TestDHCHAPSecrets: [host] dhchap_secret is the default of every
// controller; a controller's own secret wins; bad secrets are errors that
// do not repeat them.
func TestDHCHAPSecrets(t *testing.T) {
	const k1 = "DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:"
	const k2 = "DHHC-1:01:AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09pl1OOC:"
	c, err := Parse("x.toml", []byte("[host]\ndhchap_secret = \""+k1+"\"\n"+
		"[[controller]]\ntraddr=\"a\"\nnqn=\"n\"\ntrsvcid=\"1\"\n"+
		"[[controller]]\ntraddr=\"b\"\nnqn=\"n\"\ntrsvcid=\"1\"\ndhchap_secret=\""+k2+"\"\ndhchap_ctrl_secret=\""+k1+"\"\n"+
		"[[discovery]]\ntraddr=\"c\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Host.DHCHAPSecret.Text() != k1 || c.Controllers[0].DHCHAPSecret.Text() != k1 || c.Controllers[0].DHCHAPCtrlSecret != nil ||
		c.Controllers[1].DHCHAPSecret.Text() != k2 || c.Controllers[1].DHCHAPCtrlSecret.Text() != k1 ||
		c.Discovery[0].Options.DHCHAPSecret.Text() != k1 {
		t.Fatalf("secrets not applied: %+v", c.Controllers)
	}
	bad := strings.Replace(k2, "AQgP", "AQgQ", 1)
	for _, in := range []string{"[host]\ndhchap_secret = \"" + bad + "\"\n",
		"[[controller]]\ntraddr=\"a\"\nnqn=\"n\"\ndhchap_secret=\"" + bad + "\"\n"} {
		_, err := Parse("x.toml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), "dhchap_secret") || strings.Contains(err.Error(), "AQgQ") {
			t.Errorf("bad secret: %v", err)
		}
	}
}

func TestExampleConfigLoads(t *testing.T) {
	path := filepath.Join("..", "etc", "mpathfs.toml")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no example config: %v", err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("[[controller]]\ntraddr=\"x\"\nnqn=\"y\"\nqueue_size=0x40\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("f.toml", b)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
		if err != nil && !errors.Is(err, ErrConfig) {
			t.Fatalf("error does not wrap ErrConfig: %v", err)
		}
	})
}
