package fusefs

import (
	"context"
	"encoding/binary"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/fusefs/fusefstest"
)

// prDev is a RAM device with recording PR operations.
type prDev struct {
	*fusefstest.RAM
	calls []string
}

func (d *prDev) PROps() PROps { return d }
func (d *prDev) Register(_ context.Context, old, new uint64, flags uint32) (int32, error) {
	d.calls = append(d.calls, "register")
	return 0, nil
}
func (d *prDev) Reserve(_ context.Context, key uint64, typ, flags uint32) (int32, error) {
	d.calls = append(d.calls, "reserve")
	return 0x18, nil
}
func (d *prDev) Release(context.Context, uint64, uint32) (int32, error) { return 0, nil }
func (d *prDev) Preempt(context.Context, uint64, uint64, uint32, bool) (int32, error) {
	return 0, nil
}
func (d *prDev) Clear(context.Context, uint64) (int32, error) { return 0, nil }
func (d *prDev) ReadKeys(context.Context) (uint32, []uint64, int32, error) {
	return 7, []uint64{1, 2}, 0, nil
}
func (d *prDev) ReadReservation(context.Context) (uint64, uint32, uint32, int32, error) {
	return 0xA1, 7, 3, 0, nil
}

// TestPRIoctlChecks: the block layer's checks run before anything is sent.
func TestPRIoctlChecks(t *testing.T) {
	dev := &prDev{RAM: fusefstest.NewRAM(1<<20, 512)}
	io, err := newBlockIO(dev)
	if err != nil {
		t.Fatal(err)
	}
	n := &nsNode{io: io, log: hclog.NewNullLogger()}
	user := &fuse.Context{Caller: fuse.Caller{Owner: fuse.Owner{Uid: 1000}}}
	root := &fuse.Context{Caller: fuse.Caller{Owner: fuse.Owner{Uid: 0}}}
	reg := make([]byte, 24)
	out := make([]byte, 16)

	if _, e := n.Ioctl(user, &nsHandle{write: false}, IocPRRegister, 0, reg, nil); e != syscall.EPERM {
		t.Errorf("register on a read-only open by a user: %v, want EPERM", e)
	}
	if _, e := n.Ioctl(user, &nsHandle{write: true}, IocPRRegister, 0, reg, nil); e != 0 {
		t.Errorf("register on a writable open: %v", e)
	}
	if _, e := n.Ioctl(root, &nsHandle{}, IocPRRegister, 0, reg, nil); e != 0 {
		t.Errorf("register by root: %v", e)
	}
	binary.LittleEndian.PutUint32(reg[16:], 2)
	if _, e := n.Ioctl(root, nil, IocPRRegister, 0, reg, nil); e != syscall.EOPNOTSUPP {
		t.Errorf("unknown flag: %v, want EOPNOTSUPP", e)
	}
	if _, e := n.Ioctl(root, nil, IocPRRegister, 0, reg[:8], nil); e != syscall.EFAULT {
		t.Errorf("short input: %v, want EFAULT", e)
	}
	if r, e := n.Ioctl(root, nil, IocPRReserve, 0, make([]byte, 16), nil); e != 0 || r != 0x18 {
		t.Errorf("reserve = %d, %v; want the positive PR status 24", r, e)
	}
	if _, e := n.Ioctl(root, nil, 0x5401 /* TCGETS */, 0, nil, nil); e != syscall.ENOTTY {
		t.Errorf("TCGETS: %v, want ENOTTY", e)
	}
	if r, e := n.Ioctl(user, &nsHandle{}, IocPRReadReservation, 0, nil, out); e != 0 || r != 0 ||
		binary.LittleEndian.Uint64(out) != 0xA1 || binary.LittleEndian.Uint32(out[8:]) != 7 || binary.LittleEndian.Uint32(out[12:]) != 3 {
		t.Errorf("read reservation = %d, %v, % x", r, e, out)
	}
	in := make([]byte, 16)
	if _, e := n.Ioctl(user, &nsHandle{}, IocPRReadKeys, 0, in, out); e != 0 ||
		binary.LittleEndian.Uint32(out) != 7 || binary.LittleEndian.Uint32(out[4:]) != 2 {
		t.Errorf("read keys count query: %v, % x", e, out)
	}
	binary.LittleEndian.PutUint32(in[4:], 1)
	if _, e := n.Ioctl(user, &nsHandle{}, IocPRReadKeys, 0, in, out); e != syscall.EOPNOTSUPP {
		t.Errorf("read keys with an array: %v, want EOPNOTSUPP", e)
	}
	binary.LittleEndian.PutUint32(in[4:], 1<<16+1)
	if _, e := n.Ioctl(user, &nsHandle{}, IocPRReadKeys, 0, in, out); e != syscall.EINVAL {
		t.Errorf("read keys beyond PR_KEYS_MAX: %v, want EINVAL", e)
	}
	if len(dev.calls) != 3 {
		t.Errorf("operations sent: %v, want 2 registers and 1 reserve", dev.calls)
	}
}

// FuzzPRIoctl: any command with any buffer sizes gets an answer, never a
// panic or an out-of-range access.
func FuzzPRIoctl(f *testing.F) {
	f.Add(uint32(IocPRRegister), make([]byte, 24), 0)
	f.Add(uint32(IocPRReadKeys), make([]byte, 16), 16)
	f.Add(uint32(IocPRPreemptAbort), make([]byte, 3), 0)
	dev := &prDev{RAM: fusefstest.NewRAM(1<<20, 512)}
	io, err := newBlockIO(dev)
	if err != nil {
		f.Fatal(err)
	}
	n := &nsNode{io: io, log: hclog.NewNullLogger()}
	root := &fuse.Context{Caller: fuse.Caller{Owner: fuse.Owner{Uid: 0}}}
	f.Fuzz(func(t *testing.T, cmd uint32, in []byte, outLen int) {
		if outLen < 0 || outLen > 1<<12 {
			return
		}
		n.Ioctl(root, nil, cmd, 0, in, make([]byte, outLen))
	})
}
