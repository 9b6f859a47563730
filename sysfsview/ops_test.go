package sysfsview_test

import (
	"errors"
	"syscall"
	"testing"

	"github.com/mpathfs/mpathfs/sysfsview"
	"github.com/mpathfs/mpathfs/sysfsview/sysfsviewtest"
)

// inflight is part_inflight_show's "%8u %8u\n" on heads and paths.
func TestInflight(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t)
	f.Head.SetStat(sysfsview.IOStat{InFlight: 7, InFlightRW: [2]uint64{3, 4}})
	f.Path1.SetStat(sysfsview.IOStat{InFlight: 12, InFlightRW: [2]uint64{12, 0}})
	for p, want := range map[string]string{
		"sys/block/nvme0n1/inflight":   "       3        4\n",
		"sys/block/nvme0c1n1/inflight": "      12        0\n",
		"sys/block/nvme0c0n1/inflight": "       0        0\n",
	} {
		if got, err := f.Tree.Read(p); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
}

// disk/by-id has udev's three NVMe links for a head: its wwid,
// model_serial and model_serial_nsid; a name shared by two heads points at
// the latest and falls back when it goes.
func TestByIDLinks(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t)
	want := map[string]string{
		"disk/by-id/nvme-uuid.12345678-9abc-def0-0123-456789abcdef": "../../nvme0n1",
		"disk/by-id/nvme-mpathfs_demo_0123456789":                   "../../nvme0n1",
		"disk/by-id/nvme-mpathfs_demo_0123456789_1":                 "../../nvme0n1",
	}
	for p, target := range want {
		l, ok := f.Tree.Lookup(p).(*sysfsview.Symlink)
		if !ok || l.Target != target {
			t.Errorf("%s: %#v, want a link to %s", p, f.Tree.Lookup(p), target)
		}
	}
	if n := len(f.Tree.Lookup("disk/by-id").(*sysfsview.Dir).List()); n != 3 {
		t.Errorf("disk/by-id has %d entries, want 3", n)
	}
	// A second namespace with only an EUI-64.
	info := sysfsview.HeadInfo{NSID: 2, EUI64: [8]byte{0x00, 0x25, 0x38, 0xb1, 0x21, 0xaa, 0xbb, 0xcd}}
	if err := f.Tree.AddHead("nvme0n2", "nvme-subsys0", info, sysfsviewtest.NewHead(1<<20)); err != nil {
		t.Fatal(err)
	}
	for p, target := range map[string]string{
		"disk/by-id/nvme-eui.002538b121aabbcd":      "../../nvme0n2",
		"disk/by-id/nvme-mpathfs_demo_0123456789":   "../../nvme0n2",
		"disk/by-id/nvme-mpathfs_demo_0123456789_2": "../../nvme0n2",
		"disk/by-id/nvme-mpathfs_demo_0123456789_1": "../../nvme0n1",
	} {
		if l, ok := f.Tree.Lookup(p).(*sysfsview.Symlink); !ok || l.Target != target {
			t.Errorf("%s: %#v, want a link to %s", p, f.Tree.Lookup(p), target)
		}
	}
	if err := f.Tree.RemoveHead("nvme0n2"); err != nil {
		t.Fatal(err)
	}
	if l, ok := f.Tree.Lookup("disk/by-id/nvme-mpathfs_demo_0123456789").(*sysfsview.Symlink); !ok || l.Target != "../../nvme0n1" {
		t.Errorf("shared link after removal: %#v", f.Tree.Lookup("disk/by-id/nvme-mpathfs_demo_0123456789"))
	}
	if f.Tree.Lookup("disk/by-id/nvme-eui.002538b121aabbcd") != nil {
		t.Error("link of a removed head stays")
	}
}

type echoSession struct{ got []byte }

func (s *echoSession) Write(p []byte) error {
	if string(p) == "bad" {
		return &sysfsview.StoreError{Value: "bad", Code: syscall.EINVAL}
	}
	s.got = append(s.got, p...)
	return nil
}
func (s *echoSession) Show() (string, error) { return string(s.got) + "\n", nil }

func TestDevice(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t)
	if err := f.Tree.AddDevice("nvme-fabrics", 0o600, func() sysfsview.DeviceSession { return &echoSession{} }); err != nil {
		t.Fatal(err)
	}
	if err := f.Tree.AddDevice("nvme-fabrics", 0o600, nil); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("duplicate device: %v", err)
	}
	d, ok := f.Tree.Lookup("dev/nvme-fabrics").(*sysfsview.Device)
	if !ok || d.Mode != 0o600 {
		t.Fatalf("dev/nvme-fabrics: %#v", f.Tree.Lookup("dev/nvme-fabrics"))
	}
	a, b := d.Open(), d.Open()
	if err := a.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if s, _ := a.Show(); s != "x\n" {
		t.Errorf("session a shows %q", s)
	}
	if s, _ := b.Show(); s != "\n" {
		t.Errorf("session b shows %q: sessions share state", s)
	}
}

func TestObjects(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t)
	o := f.Tree.Objects()
	if len(o.Subsystems) != 1 || len(o.Controllers) != 2 || len(o.Heads) != 1 || len(o.Paths) != 2 {
		t.Fatalf("objects: %+v", o)
	}
	if o.Paths[1].Name != "nvme0c1n1" || o.Paths[1].Head != "nvme0n1" || o.Paths[1].Controller != "nvme1" || o.Paths[1].Source != sysfsview.PathSource(f.Path1) {
		t.Errorf("path 1: %+v", o.Paths[1])
	}
	if o.Heads[0].Source != sysfsview.HeadSource(f.Head) || o.Heads[0].Subsystem != "nvme-subsys0" {
		t.Errorf("head: %+v", o.Heads[0])
	}
}
