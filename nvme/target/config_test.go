package target

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/mpathfs/mpathfs/nvme/auth"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mpathfs/mpathfs/nvme"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden (only commit what you understand)")

// describe renders what a configuration turns into, for the golden file.
func describe(c *Config) string {
	var b strings.Builder
	for i := range c.Subsystems {
		s := &c.Subsystems[i]
		sc, err := s.toConfig("s")
		fmt.Fprintf(&b, "subsystem %+v err=%v\n", sc, err)
		for j := range s.Namespaces {
			nc, en, err := s.Namespaces[j].toConfig("n")
			fmt.Fprintf(&b, "  namespace nsid=%d size=%d bs=%d path=%q grp=%d uuid=%x nguid=%x eui64=%x enabled=%v err=%v\n",
				nc.NSID, nc.Size, nc.BlockSize, nc.Path, nc.ANAGroup, nc.UUID, nc.NGUID, nc.EUI64, en, err)
		}
	}
	for i := range c.Ports {
		p := &c.Ports[i]
		pc, err := p.toConfig("p")
		states, _ := p.anaStates("p")
		fmt.Fprintf(&b, "port id=%d addr=%s incap=%d h2c=%d c2h=%d mdts=%d qsize=%d treq=%d subsystems=%v ana=%v err=%v\n",
			pc.ID, pc.Addr, pc.InCapsule, pc.MaxH2CData, pc.MaxC2HData, pc.MDTS, pc.MaxQueueSize, pc.TReq, p.Subsystems, states, err)
		for j := range p.Referrals {
			r, err := p.Referrals[j].toReferral("r")
			fmt.Fprintf(&b, "  referral %+v err=%v\n", r, err)
		}
	}
	return b.String()
}

func loadFile(t *testing.T, path string) *Config {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := LoadNvmetcliJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func TestLoadNvmetcliJSONGolden(t *testing.T) {
	c := loadFile(t, "testdata/nvmetcli-save.json")
	got := describe(c)
	golden := "testdata/nvmetcli-save.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("loaded config differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
	}
}

// TestApplyNvmetcliJSON applies the nvmetcli file and checks the target a
// host sees.
func TestApplyNvmetcliJSON(t *testing.T) {
	c := loadFile(t, "testdata/nvmetcli-save.json")
	tg := New(nil)
	t.Cleanup(func() { tg.Close() })
	if err := tg.Apply(c); err != nil {
		t.Fatal(err)
	}
	s := tg.Subsystem("nqn.2026-11.io.mpathfs:golden")
	if s == nil || s.Namespace(1) == nil || s.Namespace(2) == nil || s.Namespace(3) != nil {
		t.Fatalf("namespaces: want 1 and 2 (3 disabled)")
	}
	if ns := s.Namespace(2); ns.BlockSize() != 4096 || ns.Size() != 8<<20 || ns.ANAGroup() != 2 {
		t.Errorf("ns 2: bs %d size %d group %d", ns.BlockSize(), ns.Size(), ns.ANAGroup())
	}
	p1, p2 := tg.Port(1), tg.Port(2)
	if p1.ANAState(2) != nvme.ANANonOptimized || p2.ANAState(2) != nvme.ANAInaccessible || p2.ANAState(1) != nvme.ANAOptimized {
		t.Errorf("ANA: port1 grp2 %s, port2 grp2 %s (unlisted: inaccessible like nvmet), port2 grp1 %s",
			p1.ANAState(2), p2.ANAState(2), p2.ANAState(1))
	}
	a := admin(t, p1.Addr().String(), "nqn.2026-11.io.mpathfs:golden", 0, 0)
	buf := make([]byte, 4096)
	must(t, "identify", a.exec(nvme.NewIdentify(nvme.CNSController, 0, 0, 0), buf, nil))
	id, _ := nvme.ParseIdentifyController(buf)
	if strings.TrimSpace(id.SerialNumber) != "0c74361069d9db6c65ef" || strings.TrimSpace(id.FirmwareRev) != "6.8.0" {
		t.Errorf("serial %q firmware %q", id.SerialNumber, id.FirmwareRev)
	}
	// Through port 1, as nvmet: the discovery subsystem itself, the
	// subsystem on port 1, port 1's referral.
	d := admin(t, p1.Addr().String(), nvme.DiscoveryNQN, 0, 0)
	raw := readLog(t, d, nvme.LogDiscovery, 0, false, 0, 4*1024)
	l, err := nvme.ParseDiscoveryLog(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 3 || l.Entries[0].SubType != nvme.SubTypeCurrentDiscovery ||
		l.Entries[2].SubType != nvme.SubTypeReferral || l.Entries[2].TrAddr != "192.0.2.10" || l.Entries[2].TrSvcID != "8009" {
		t.Errorf("discovery log: %+v", l.Entries)
	}
}

func TestDemoConfig(t *testing.T) {
	c := loadFile(t, filepath.Join("..", "..", "etc", "nvmet-demo.json"))
	if len(c.Subsystems) != 1 || c.Subsystems[0].NQN != "nqn.2026-11.io.mpathfs:demo" || len(c.Subsystems[0].Namespaces) != 2 || len(c.Ports) != 2 {
		t.Fatalf("demo config: %+v", c)
	}
	for i, want := range []string{"127.0.0.1:4420", "127.0.0.1:4421"} {
		pc, err := c.Ports[i].toConfig("p")
		if err != nil || pc.Addr != want {
			t.Errorf("port %d: %s (%v), want %s", i, pc.Addr, err, want)
		}
		c.Ports[i].Addr.TrSvcID = "0" // the fixed ports may be in use here
	}
	tg := New(nil)
	t.Cleanup(func() { tg.Close() })
	if err := tg.Apply(c); err != nil {
		t.Fatal(err)
	}
	s := tg.Subsystem("nqn.2026-11.io.mpathfs:demo")
	for nsid, grp := range map[uint32]uint32{1: 1, 2: 2} {
		ns := s.Namespace(nsid)
		if ns == nil || ns.Size() != 64<<20 || ns.ANAGroup() != grp {
			t.Errorf("ns %d: %+v", nsid, ns)
		}
	}
}

func TestApplyFileNamespace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.img")
	js := fmt.Sprintf(`{"subsystems":[{"nqn":"nqn.x:y","attr":{"allow_any_host":"1"},"namespaces":[{"nsid":1,"enable":1,"device":{"path":%q,"size":"2M"}}]}],"ports":[],"hosts":[]}`, path)
	c, err := LoadNvmetcliJSON(strings.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	tg := New(nil)
	defer tg.Close()
	if err := tg.Apply(c); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() != 2<<20 {
		t.Fatalf("file %v size %d", err, st.Size())
	}
}

const testDHKey = "DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:"

// TestHostsDHCHAP: the hosts' DH-HMAC-CHAP attributes load and apply;
// errors never repeat the key.
func TestHostsDHCHAP(t *testing.T) {
	js := `{"hosts":[{"nqn":"nqn.h:1","dhchap_key":"` + testDHKey + `","dhchap_ctrl_key":"` + testDHKey + `","dhchap_hash":"hmac(sha512)","dhchap_dhgroup":"ffdhe4096"},{"nqn":"nqn.h:2"}],` +
		`"subsystems":[{"nqn":"nqn.a:b","attr":{"allow_any_host":"0"},"allowed_hosts":["nqn.h:1"],"namespaces":[]}],"ports":[]}`
	cfg, err := LoadNvmetcliJSON(strings.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	tg := New(nil)
	defer tg.Close()
	if err := tg.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	a := tg.HostAuth("nqn.h:1")
	if a.Key == nil || a.Key.Text() != testDHKey || a.CtrlKey == nil || a.Hash != auth.SHA512 || a.Group != auth.FFDHE4096 {
		t.Fatalf("host auth %+v", a)
	}
	if a := tg.HostAuth("nqn.h:2"); a.Key != nil || a.Hash != auth.SHA256 || a.Group != auth.DHNull {
		t.Fatalf("host without keys: %+v", a)
	}
	if p := tg.authParams(tg.Subsystem("nqn.a:b"), "nqn.h:1"); p == nil || p.Group != auth.FFDHE4096 {
		t.Fatalf("authParams = %+v", p)
	}
	bad := strings.Replace(js, testDHKey[10:30], "AAAAAAAAAAAAAAAAAAAA", 1)
	if _, err := LoadNvmetcliJSON(strings.NewReader(bad)); err == nil || strings.Contains(err.Error(), "AAAAAAAAAAAA") || strings.Contains(err.Error(), testDHKey[30:40]) {
		t.Fatalf("bad key: %v", err)
	}
}

func TestLoadNvmetcliJSONErrors(t *testing.T) {
	base := `{"hosts":[],"subsystems":[{"nqn":"nqn.a:b","namespaces":[{"nsid":1,"device":{"path":"ram:1M"}}]}],"ports":[{"portid":1,"addr":{"trtype":"tcp","adrfam":"ipv4","traddr":"127.0.0.1","trsvcid":"4420"},"subsystems":["nqn.a:b"]}]}`
	if _, err := LoadNvmetcliJSON(strings.NewReader(base)); err != nil {
		t.Fatalf("base config: %v", err)
	}
	for _, tc := range []struct{ old, new, want string }{
		{`"hosts":[]`, `"hosts":[],"bogus":1`, `unknown field "bogus"`},
		{`"adrfam":"ipv4"`, `"adrfam":"ipv4","colour":"red"`, `unknown field "colour"`},
		{`"nsid":1,`, `"nsid":1,"weird":true,`, `unknown field "weird"`},
		{`"trsvcid":"4420"`, `"trsvcid":"http"`, `ports[0].addr.trsvcid`},
		{`"trtype":"tcp"`, `"trtype":"rdma"`, `ports[0].addr.trtype`},
		{`"traddr":"127.0.0.1"`, `"traddr":"localhost"`, `ports[0].addr.traddr`},
		{`"subsystems":["nqn.a:b"]`, `"subsystems":["nqn.a:c"]`, `ports[0].subsystems[0]`},
		{`"subsystems":["nqn.a:b"]}`, `"subsystems":["nqn.a:b"],"ana_groups":[{"grpid":1,"ana":{"state":"great"}}]}`, `ports[0].ana_groups[0].ana.state`},
		{`"path":"ram:1M"`, `"path":"ram:lots"`, `subsystems[0].namespaces[0].device.path`},
		{`"path":"ram:1M"`, `"path":""`, `subsystems[0].namespaces[0].device.path`},
		{`"nsid":1,`, `"nsid":0,`, `subsystems[0].namespaces[0].nsid`},
		{`"device":{"path":"ram:1M"}`, `"device":{"path":"ram:1M","uuid":"xyz"}`, `device.uuid`},
		{`"nqn":"nqn.a:b","namespaces"`, `"nqn":"nqn.a:b","allowed_hosts":["h"],"namespaces"`, `allowed_hosts[0]`},
		{`"portid":1,`, `"portid":"one",`, `ports[0].portid`},
		{`"portid":1,`, ``, `ports[0].portid: missing`},
		{`"hosts":[]`, `"hosts":[{"nqn":"nqn.h:1","dhchap_key":"DHHC-1:00:AAAA:"}]`, `hosts[0].dhchap_key`},
		{`"hosts":[]`, `"hosts":[{"nqn":"nqn.h:1","dhchap_key":"` + testDHKey[:20] + "B" + testDHKey[21:] + `"}]`, `key crc mismatch`},
		{`"hosts":[]`, `"hosts":[{"nqn":"nqn.h:1","dhchap_ctrl_key":"` + testDHKey + `"}]`, `hosts[0].dhchap_ctrl_key: needs a dhchap_key`},
		{`"hosts":[]`, `"hosts":[{"nqn":"nqn.h:1","dhchap_key":"` + testDHKey + `","dhchap_hash":"md5"}]`, `hosts[0].dhchap_hash`},
		{`"hosts":[]`, `"hosts":[{"nqn":"nqn.h:1","dhchap_key":"` + testDHKey + `","dhchap_dhgroup":"ffdhe1024"}]`, `hosts[0].dhchap_dhgroup`},
	} {
		js := strings.Replace(base, tc.old, tc.new, 1)
		if js == base {
			t.Fatalf("case %q: replacement did not apply", tc.want)
		}
		_, err := LoadNvmetcliJSON(strings.NewReader(js))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", tc.new, err, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "64M": 64 << 20, "1G": 1 << 30, "512K": 512 << 10, "2T": 2 << 40, "256MiB": 256 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1", "1X", "99999999999T"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

// FuzzLoadNvmetcliJSON: never panics, and whatever loads survives a
// marshal/load round trip unchanged.
func FuzzLoadNvmetcliJSON(f *testing.F) {
	for _, p := range []string{"testdata/nvmetcli-save.json", filepath.Join("..", "..", "etc", "nvmet-demo.json")} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"ports":[{"portid":1,"addr":{"trtype":"tcp","traddr":"::1","adrfam":"ipv6"}}]}`))
	f.Add([]byte(`{"subsystems":[{"nqn":"n","namespaces":[{"nsid":"7","device":{"size":"1M","eui64":"0102030405060708"}}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := LoadNvmetcliJSON(bytes.NewReader(b))
		if err != nil {
			return
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		c2, err := LoadNvmetcliJSON(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("reload of %s: %v", out, err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, c2)
		}
	})
}
