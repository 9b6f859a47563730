package target

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/auth"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

const (
	authKey   = "DHHC-1:00:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk/PUPo:"
	authCtrl  = "DHHC-1:01:AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09pl1OOC:"
	authOther = "DHHC-1:03:AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661vPDs2cs=:"
)

func mustKey(t testing.TB, s string) *auth.Key {
	t.Helper()
	k, err := auth.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rawAuth runs the host side of DH-HMAC-CHAP over the raw test client.
type rawAuth struct{ c *client }

func (r rawAuth) Send(_ context.Context, msg []byte) error {
	if cqe := r.c.exec(fabrics.NewAuthSend(uint32(len(msg))), nil, msg); cqe.Status != 0 {
		return cqe.Status
	}
	return nil
}

func (r rawAuth) Receive(_ context.Context, n int) ([]byte, error) {
	buf := make([]byte, n)
	if cqe := r.c.exec(fabrics.NewAuthReceive(uint32(n)), buf, nil); cqe.Status != 0 {
		return nil, cqe.Status
	}
	return buf, nil
}

// authFixture restricts the fixture's subsystem to testHostNQN with
// DH-HMAC-CHAP (bidirectional, SHA-384, ffdhe2048).
func authFixture(t *testing.T) *fixture {
	f := newFixture(t, PortConfig{})
	f.s.SetAllowAnyHost(false)
	f.s.AllowHost(testHostNQN)
	f.t.SetHostAuth(testHostNQN, HostAuth{Key: mustKey(t, authKey), CtrlKey: mustKey(t, authCtrl), Hash: auth.SHA384, Group: auth.FFDHE2048})
	return f
}

func hostParams(t *testing.T, key, ctrl string) auth.HostParams {
	p := auth.HostParams{HostNQN: testHostNQN, SubNQN: testNQN, Key: mustKey(t, key), TID: 1}
	if ctrl != "" {
		p.CtrlKey = mustKey(t, ctrl)
	}
	return p
}

// TestAuthGatesQueues: Connect asks for authentication (ATR); until the
// queue authenticated, every command but Connect and AUTH_Send/Receive
// fails with Authentication Required (DNR), on the admin and on I/O
// queues; afterwards they work.
func TestAuthGatesQueues(t *testing.T) {
	f := authFixture(t)
	adm := dial(t, f.a1, 0)
	adm.inCap = fabrics.AdminInCapsuleMax
	cqe := must(t, "admin connect", adm.connect(0, 31, 0, testNQN, fabrics.CNTLIDDynamic, testHostNQN))
	if cqe.DW0&fabrics.ConnectAuthATR == 0 {
		t.Fatalf("connect dw0 %#x without ATR", cqe.DW0)
	}
	adm.cntlid = uint16(cqe.DW0)
	wantStatus(t, "property get before auth", adm.exec(fabrics.NewPropertyGet(fabrics.RegCAP, true), nil, nil), nvme.StatusAuthRequired|nvme.StatusDNR)
	wantStatus(t, "identify before auth", adm.exec(nvme.NewIdentify(nvme.CNSController, 0, 0, 0), make([]byte, 4096), nil), nvme.StatusAuthRequired|nvme.StatusDNR)
	res, err := auth.Authenticate(context.Background(), rawAuth{adm}, hostParams(t, authKey, authCtrl))
	if err != nil || res.Hash != auth.SHA384 || res.Group != auth.FFDHE2048 || !res.Bidirectional {
		t.Fatalf("authenticate: %+v %v", res, err)
	}
	adm.enable()
	must(t, "num queues", adm.exec(nvme.NewSetFeatures(nvme.FeatNumQueues, nvme.NumQueues(2)), nil, nil))

	q := dial(t, f.a1, 0)
	q.inCap = DefaultInCapsule
	cqe = must(t, "io connect", q.connect(1, 127, 0, testNQN, adm.cntlid, testHostNQN))
	if cqe.DW0&fabrics.ConnectAuthATR == 0 {
		t.Fatalf("io connect dw0 %#x without ATR", cqe.DW0)
	}
	buf := make([]byte, 4096)
	wantStatus(t, "read before auth", q.exec(nvme.NewRead(1, 0, 8), buf, nil), nvme.StatusAuthRequired|nvme.StatusDNR)
	if _, err := auth.Authenticate(context.Background(), rawAuth{q}, hostParams(t, authKey, "")); err != nil {
		t.Fatalf("io queue authenticate: %v", err)
	}
	must(t, "read after auth", q.exec(nvme.NewRead(1, 0, 8), buf, nil))
	// Re-authentication on the live admin queue (the host's sysfs secret write).
	p := hostParams(t, authKey, authCtrl)
	p.TID = 2
	if _, err := auth.Authenticate(context.Background(), rawAuth{adm}, p); err != nil {
		t.Fatalf("re-authenticate: %v", err)
	}
	_ = adm.propGet(fabrics.RegCSTS, false)
}

// TestAuthWrongKey: a wrong host key gets AUTH_Failure1 and the controller
// is torn down (nvmet_ctrl_fatal_error); a wrong controller key makes the
// host refuse, which also ends the controller.
func TestAuthWrongKey(t *testing.T) {
	f := authFixture(t)
	for _, tc := range []struct{ key, ctrl string }{{authOther, authCtrl}, {authKey, authOther}} {
		adm := dial(t, f.a1, 0)
		adm.inCap = fabrics.AdminInCapsuleMax
		must(t, "admin connect", adm.connect(0, 31, 0, testNQN, fabrics.CNTLIDDynamic, testHostNQN))
		_, err := auth.Authenticate(context.Background(), rawAuth{adm}, hostParams(t, tc.key, tc.ctrl))
		var ae *auth.Error
		if !errors.As(err, &ae) || !errors.Is(err, syscall.EKEYREJECTED) {
			t.Fatalf("wrong key: %v", err)
		}
		adm.expectEOF(5 * time.Second)
	}
	if n := len(f.s.controllers()); n != 0 {
		t.Errorf("%d controllers left", n)
	}
}

// TestAuthNotListed: with allow_any_host off, a host not in allowed_hosts
// is refused at Connect with Connect Invalid Host (SCT 1 / SC 0x84), DNR.
func TestAuthNotListed(t *testing.T) {
	f := authFixture(t)
	c := dial(t, f.a1, 0)
	c.inCap = fabrics.AdminInCapsuleMax
	cqe := c.connect(0, 31, 0, testNQN, fabrics.CNTLIDDynamic, strings.Replace(testHostNQN, "0001", "0002", 1))
	wantStatus(t, "connect", cqe, nvme.StatusConnectInvalidHost|nvme.StatusDNR)
}

// TestAuthKeyRotation: a host key changed on the target applies when the
// host negotiates again on the admin queue (and to I/O queues after
// that); the old key is refused then.
func TestAuthKeyRotation(t *testing.T) {
	f := authFixture(t)
	adm := dial(t, f.a1, 0)
	adm.inCap = fabrics.AdminInCapsuleMax
	adm.cntlid = uint16(must(t, "admin connect", adm.connect(0, 31, 0, testNQN, fabrics.CNTLIDDynamic, testHostNQN)).DW0)
	if _, err := auth.Authenticate(context.Background(), rawAuth{adm}, hostParams(t, authKey, authCtrl)); err != nil {
		t.Fatal(err)
	}
	adm.enable()
	f.t.SetHostAuth(testHostNQN, HostAuth{Key: mustKey(t, authOther), CtrlKey: mustKey(t, authCtrl), Hash: auth.SHA512, Group: auth.DHNull})
	p := hostParams(t, authOther, authCtrl)
	p.TID = 2
	res, err := auth.Authenticate(context.Background(), rawAuth{adm}, p)
	if err != nil || res.Hash != auth.SHA512 || res.Group != auth.DHNull {
		t.Fatalf("re-authentication with the new key: %+v %v", res, err)
	}
	_ = adm.propGet(fabrics.RegCSTS, false)
	must(t, "num queues", adm.exec(nvme.NewSetFeatures(nvme.FeatNumQueues, nvme.NumQueues(2)), nil, nil))
	q := dial(t, f.a1, 0)
	q.inCap = DefaultInCapsule
	must(t, "io connect", q.connect(1, 127, 0, testNQN, adm.cntlid, testHostNQN))
	if _, err := auth.Authenticate(context.Background(), rawAuth{q}, hostParams(t, authKey, "")); !errors.Is(err, syscall.EKEYREJECTED) {
		t.Fatalf("old key on a new I/O queue: %v", err)
	}
}
