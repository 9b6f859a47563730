package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme/auth"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
	"github.com/mpathfs/mpathfs/nvme/target"
)

const (
	authKey   = "DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:"
	authCtrl  = "DHHC-1:01:AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09pl1OOC:"
	authOther = "DHHC-1:03:AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661vPDs2cs=:"
)

func key(t *testing.T, s string) *auth.Key {
	t.Helper()
	k, err := auth.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// authTarget is our target with one subsystem that lists testHostNQN with
// bidirectional DH-HMAC-CHAP (SHA-384, ffdhe3072).
func authTarget(t *testing.T) (*target.Target, *target.Port) {
	tg := target.New(testLogger(t).Named("target"))
	t.Cleanup(func() { tg.Close() })
	s, err := tg.AddSubsystem(target.SubsystemConfig{NQN: testNQN, Hosts: []string{testHostNQN}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddNamespace(target.NamespaceConfig{NSID: 1, Size: 4 << 20, NGUID: [16]byte{1, 15: 1}}); err != nil {
		t.Fatal(err)
	}
	p, err := tg.AddPort(target.PortConfig{ID: 1, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.LinkSubsystem(testNQN); err != nil {
		t.Fatal(err)
	}
	tg.SetHostAuth(testHostNQN, target.HostAuth{Key: key(t, authKey), CtrlKey: key(t, authCtrl), Hash: auth.SHA384, Group: auth.FFDHE3072})
	return tg, p
}

func authOpts(p *target.Port, k, c string) fabrics.Options {
	o := fabrics.DefaultOptions()
	o.Transport, o.TrAddr, o.TrSvcID, o.SubsysNQN = "tcp", "127.0.0.1", fmt.Sprint(p.Addr().Port), testNQN
	o.HostNQN = testHostNQN
	o.HostID = [16]byte{0, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 15: 1}
	o.KeepAliveTmo, o.ReconnectDelay, o.CtrlLossTmo = time.Second, 100*time.Millisecond, fabrics.Off
	o.NrIOQueues, o.QueueSize = 2, 32
	if k != "" {
		o.DHCHAPSecret, _ = auth.ParseKey(k)
	}
	if c != "" {
		o.DHCHAPCtrlSecret, _ = auth.ParseKey(c)
	}
	return o
}

// TestAuthOurTarget: host and our target authenticate every queue,
// again on a reconnect and on a secret change; I/O works; the sysfs
// secret semantics; wrong keys are EKEYREJECTED and no key ENOKEY.
func TestAuthOurTarget(t *testing.T) {
	_, p := authTarget(t)
	c := connect(t, authOpts(p, authKey, authCtrl))
	w := randBuf(t, 8192)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, 1, 0, w); err != nil {
		t.Fatal(err)
	}
	if c.DHCHAPSecret() != authKey || c.DHCHAPCtrlSecret() != authCtrl {
		t.Fatalf("secrets %q %q", c.DHCHAPSecret(), c.DHCHAPCtrlSecret())
	}
	// A reconnect authenticates again.
	ev := record(c)
	p.DropConnections()
	ev.waitState(t, StateConnecting)
	ev.waitState(t, StateLive)
	r := make([]byte, len(w))
	if err := c.Read(ctx, 1, 0, r); err != nil || !bytes.Equal(r, w) {
		t.Fatalf("read after reconnect: %v", err)
	}
	if err := c.Reauthenticate(ctx); err != nil {
		t.Fatalf("re-authenticate: %v", err)
	}
	// Concurrent re-authentications (sysfs writes racing) run one at a time.
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- c.Reauthenticate(ctx) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent re-authentication: %v", err)
		}
	}
	if err := c.Read(ctx, 1, 0, r); err != nil || c.State() != StateLive {
		t.Fatalf("after concurrent re-authentications: %v, %s", err, c.State())
	}
	// sysfs writes: EINVAL for garbage, EKEYREJECTED for a bad CRC.
	if err := c.SetDHCHAPSecret("nonsense"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("nonsense secret: %v", err)
	}
	if err := c.SetDHCHAPSecret(strings.Replace(authOther, "AwoR", "AwoS", 1)); !errors.Is(err, syscall.EKEYREJECTED) {
		t.Errorf("bad CRC: %v", err)
	}
	if c.DHCHAPSecret() != authKey {
		t.Fatalf("secret changed by a refused write: %q", c.DHCHAPSecret())
	}

	for name, tc := range map[string]struct {
		k, c string
		want error
	}{
		"wrong host key": {authOther, authCtrl, syscall.EKEYREJECTED},
		"wrong ctrl key": {authKey, authOther, syscall.EKEYREJECTED},
		"no key":         {"", "", syscall.ENOKEY},
	} {
		cc, err := Connect(ctx, authOpts(p, tc.k, tc.c), testLogger(t).Named(strings.ReplaceAll(name, " ", "-")), testOpts()...)
		if err == nil {
			cc.Close(ctx)
			t.Fatalf("%s: connected", name)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
