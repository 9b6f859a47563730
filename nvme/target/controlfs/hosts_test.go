package controlfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme/auth"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/host"
	"github.com/mpathfs/mpathfs/nvme/tcp"
)

// TestHostsDHCHAP drives nvmet's configfs shape with shell-like steps:
// mkdir hosts/H, the dhchap_* attributes (keys 0600), ln -s into
// allowed_hosts, attr_allow_any_host 0 — then a host must authenticate:
// the right secrets connect, a wrong one is EKEYREJECTED, an unlisted host
// is refused.
func TestHostsDHCHAP(t *testing.T) {
	const hostNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000c1"
	const k1 = "DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:"
	const k2 = "DHHC-1:01:AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09pl1OOC:"
	tg, dir := mount(t)
	h := filepath.Join(dir, "hosts", hostNQN)
	if err := os.Mkdir(h, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"dhchap_key": k1, "dhchap_ctrl_key": k2, "dhchap_hash": "hmac(sha384)", "dhchap_dhgroup": "ffdhe2048"} {
		if err := write(filepath.Join(h, name), v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := read(t, filepath.Join(h, name)); got != v+"\n" {
			t.Fatalf("%s = %q", name, got)
		}
	}
	if fi, err := os.Stat(filepath.Join(h, "dhchap_key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dhchap_key mode: %v %v", fi.Mode(), err)
	}
	if err := write(filepath.Join(h, "dhchap_key"), strings.Replace(k1, "AAcO", "AAcP", 1)); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("bad key: %v", err)
	}
	if err := write(filepath.Join(h, "dhchap_dhgroup"), "ffdhe1024"); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("bad group: %v", err)
	}
	sub := filepath.Join(dir, "subsystems", nqn)
	if err := os.Symlink("../../../hosts/"+hostNQN, filepath.Join(sub, "allowed_hosts", hostNQN)); err != nil {
		t.Fatal(err)
	}
	if err := write(filepath.Join(sub, "attr_allow_any_host"), "0"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(sub, "attr_allow_any_host")); got != "0\n" {
		t.Fatalf("attr_allow_any_host = %q", got)
	}
	a := tg.HostAuth(hostNQN)
	if a.Key.Text() != k1 || a.CtrlKey.Text() != k2 || a.Hash != auth.SHA384 || a.Group != auth.FFDHE2048 {
		t.Fatalf("host auth %+v", a)
	}

	o := fabrics.DefaultOptions()
	o.Transport, o.TrAddr, o.TrSvcID, o.SubsysNQN = "tcp", "127.0.0.1", fmt.Sprint(tg.Port(1).Addr().Port), nqn
	o.HostNQN, o.HostID, o.NrIOQueues = hostNQN, [16]byte{0, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 15: 0xc1}, 1
	o.DHCHAPSecret, _ = auth.ParseKey(k1)
	o.DHCHAPCtrlSecret, _ = auth.ParseKey(k2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := host.Connect(ctx, o, nil, host.WithAdminTimeout(5*time.Second), host.WithTransport(tcp.Transport{}))
	if err != nil {
		t.Fatalf("authenticated connect: %v", err)
	}
	c.Close(ctx)
	o.DHCHAPSecret, _ = auth.ParseKey(k2)
	if c, err := host.Connect(ctx, o, nil, host.WithAdminTimeout(5*time.Second), host.WithTransport(tcp.Transport{})); !errors.Is(err, syscall.EKEYREJECTED) {
		if c != nil {
			c.Close(ctx)
		}
		t.Fatalf("wrong key: %v", err)
	}
	// rm the link: the host is no longer allowed.
	if err := os.Remove(filepath.Join(sub, "allowed_hosts", hostNQN)); err != nil {
		t.Fatal(err)
	}
	if c, err := host.Connect(ctx, o, nil, host.WithAdminTimeout(5*time.Second), host.WithTransport(tcp.Transport{})); err == nil || !strings.Contains(err.Error(), "Invalid Host") {
		if c != nil {
			c.Close(ctx)
		}
		t.Fatalf("unlisted host: %v", err)
	}
	if err := os.Remove(h); err != nil {
		t.Fatal(err)
	}
	if len(tg.Hosts()) != 0 {
		t.Fatalf("hosts left: %v", tg.Hosts())
	}
}
