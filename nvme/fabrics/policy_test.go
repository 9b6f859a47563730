package fabrics

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

func TestSameControllerAndDuplicate(t *testing.T) {
	a := Options{TrAddr: "10.0.0.1", TrSvcID: "4420", SubsysNQN: "nqn.x", HostNQN: "nqn.h"}
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		same bool
	}{
		{"identical", func(*Options) {}, true},
		{"host nqn unset", func(o *Options) { o.HostNQN = "" }, true},
		{"other port", func(o *Options) { o.TrSvcID = "4421" }, false},
		{"other subsystem", func(o *Options) { o.SubsysNQN = "nqn.y" }, false},
		{"other host", func(o *Options) { o.HostNQN = "nqn.g" }, false},
		{"host_traddr on one side", func(o *Options) { o.HostTrAddr = "10.0.0.9" }, false},
		{"host_iface on one side", func(o *Options) { o.HostIface = "eth1" }, false},
	} {
		b := a
		tc.mod(&b)
		if got := a.SameController(b); got != tc.same {
			t.Errorf("%s: SameController %v, want %v", tc.name, got, tc.same)
		}
	}
	if err := CheckDuplicate(a, []Options{a}); !errors.Is(err, syscall.EALREADY) {
		t.Errorf("duplicate: %v, want EALREADY", err)
	}
	d := a
	d.DuplicateConnect = true
	if err := CheckDuplicate(d, []Options{a}); err != nil {
		t.Errorf("duplicate_connect: %v", err)
	}
	o := Options{CtrlLossTmo: 35 * time.Second, ReconnectDelay: 10 * time.Second}
	if n := o.MaxReconnects(); n != 4 {
		t.Errorf("MaxReconnects %d, want 4", n)
	}
	o.CtrlLossTmo = Off
	if n := o.MaxReconnects(); n != -1 {
		t.Errorf("MaxReconnects with ctrl_loss_tmo off: %d", n)
	}
}
