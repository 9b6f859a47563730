package fusefs

import (
	"context"
	"encoding/binary"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// PROps is the block layer's persistent-reservation interface (Linux's
// struct pr_ops) of a namespace. Each operation returns what the kernel's
// PR ioctls return: 0, a positive PR_STS_* value for a device status
// (reservation conflict is 0x18), or an error carrying the errno.
type PROps interface {
	Register(ctx context.Context, old, new uint64, flags uint32) (int32, error)
	Reserve(ctx context.Context, key uint64, typ, flags uint32) (int32, error)
	Release(ctx context.Context, key uint64, typ uint32) (int32, error)
	Preempt(ctx context.Context, old, new uint64, typ uint32, abort bool) (int32, error)
	Clear(ctx context.Context, key uint64) (int32, error)
	ReadKeys(ctx context.Context) (gen uint32, keys []uint64, sts int32, err error)
	ReadReservation(ctx context.Context) (key uint64, gen, typ uint32, sts int32, err error)
}

// PRDevice is a BlockDevice that supports persistent reservations; its
// namespace file answers the PR ioctls of linux/pr.h.
type PRDevice interface {
	PROps() PROps
}

// The PR ioctls of linux/pr.h: _IOW('p', 200..205), and since Linux 6.19
// _IOWR('p', 206) and _IOR('p', 207). FUSE forwards an ioctl on a regular
// file in restricted mode: it copies _IOC_SIZE(cmd) bytes at arg in (for
// _IOC_WRITE) and out (for _IOC_READ), nothing else.
const (
	IocPRRegister        = 0x401870C8 // struct pr_registration (24 B)
	IocPRReserve         = 0x401070C9 // struct pr_reservation (16 B)
	IocPRRelease         = 0x401070CA // struct pr_reservation
	IocPRPreempt         = 0x401870CB // struct pr_preempt (24 B)
	IocPRPreemptAbort    = 0x401870CC // struct pr_preempt
	IocPRClear           = 0x401070CD // struct pr_clear (16 B)
	IocPRReadKeys        = 0xC01070CE // struct pr_read_keys (16 B), keys behind keys_ptr
	IocPRReadReservation = 0x801070CF // struct pr_read_reservation (16 B)

	prFlIgnoreKey = 1 << 0       // PR_FL_IGNORE_KEY
	prKeysMax     = 1 << 16      // PR_KEYS_MAX
	iocSizeMask   = 0x3FFF << 16 // _IOC_SIZEMASK << _IOC_SIZESHIFT
)

// nsHandle is an open namespace file; PR ioctls check its access mode as
// the block layer checks BLK_OPEN_WRITE.
type nsHandle struct{ write bool }

var _ = (fs.NodeIoctler)((*nsNode)(nil))

// Ioctl implements fs.NodeIoctler: the PR ioctls, with the block layer's
// checks (blkdev_pr_*) and the kernel's results. Other commands get ENOTTY.
func (n *nsNode) Ioctl(ctx context.Context, f fs.FileHandle, cmd uint32, arg uint64, in, out []byte) (int32, syscall.Errno) {
	pd, ok := n.io.dev.(PRDevice)
	if !ok {
		return 0, syscall.ENOTTY
	}
	size := int((cmd & iocSizeMask) >> 16)
	switch cmd {
	case IocPRRegister, IocPRReserve, IocPRRelease, IocPRPreempt, IocPRPreemptAbort, IocPRClear:
		if !prAllowed(ctx, f, true) {
			return 0, syscall.EPERM
		}
		if len(in) < size {
			return 0, syscall.EFAULT
		}
	case IocPRReadKeys, IocPRReadReservation:
		if !prAllowed(ctx, f, false) {
			return 0, syscall.EPERM
		}
		if len(out) < size || (cmd == IocPRReadKeys && len(in) < size) {
			return 0, syscall.EFAULT
		}
	default:
		return 0, syscall.ENOTTY
	}
	ops := pd.PROps()
	le := binary.LittleEndian
	var sts int32
	var err error
	switch cmd {
	case IocPRRegister: // old_key, new_key, flags, pad
		flags := le.Uint32(in[16:])
		if flags&^prFlIgnoreKey != 0 {
			return 0, syscall.EOPNOTSUPP
		}
		sts, err = ops.Register(ctx, le.Uint64(in[0:]), le.Uint64(in[8:]), flags)
	case IocPRReserve: // key, type, flags
		flags := le.Uint32(in[12:])
		if flags&^prFlIgnoreKey != 0 {
			return 0, syscall.EOPNOTSUPP
		}
		sts, err = ops.Reserve(ctx, le.Uint64(in[0:]), le.Uint32(in[8:]), flags)
	case IocPRRelease:
		if le.Uint32(in[12:])&^prFlIgnoreKey != 0 {
			return 0, syscall.EOPNOTSUPP
		}
		sts, err = ops.Release(ctx, le.Uint64(in[0:]), le.Uint32(in[8:]))
	case IocPRPreempt, IocPRPreemptAbort: // old_key, new_key, type, flags
		if le.Uint32(in[20:]) != 0 {
			return 0, syscall.EOPNOTSUPP
		}
		sts, err = ops.Preempt(ctx, le.Uint64(in[0:]), le.Uint64(in[8:]), le.Uint32(in[16:]), cmd == IocPRPreemptAbort)
	case IocPRClear: // key, flags, pad
		if le.Uint32(in[8:]) != 0 {
			return 0, syscall.EOPNOTSUPP
		}
		sts, err = ops.Clear(ctx, le.Uint64(in[0:]))
	case IocPRReadReservation: // key, generation, type
		var key uint64
		var gen, typ uint32
		key, gen, typ, sts, err = ops.ReadReservation(ctx)
		if err == nil && sts == 0 {
			le.PutUint64(out[0:], key)
			le.PutUint32(out[8:], gen)
			le.PutUint32(out[12:], typ)
		}
	case IocPRReadKeys: // generation, num_keys, keys_ptr
		// The keys array lies behind keys_ptr in the caller's memory, which
		// a restricted FUSE ioctl cannot reach (FUSE_IOCTL_RETRY with iovecs
		// is refused unless unrestricted, i.e. CUSE). Only the count query
		// (num_keys 0: nothing to copy) can be answered.
		num := le.Uint32(in[4:])
		if num > prKeysMax {
			return 0, syscall.EINVAL
		}
		if num != 0 {
			return 0, syscall.EOPNOTSUPP
		}
		var gen uint32
		var keys []uint64
		gen, keys, sts, err = ops.ReadKeys(ctx)
		copy(out, in[:size])
		if err == nil && sts == 0 {
			le.PutUint32(out[0:], gen)
			le.PutUint32(out[4:], uint32(len(keys)))
		}
	}
	if err != nil {
		n.log.Debug("reservation ioctl failed", "cmd", cmd, "error", err)
		return 0, ToErrno(err)
	}
	return sts, 0
}

// prAllowed is blkdev_pr_allowed: CAP_SYS_ADMIN (here: uid 0) or a file
// opened for writing; the read ioctls need only an open file.
func prAllowed(ctx context.Context, f fs.FileHandle, write bool) bool {
	if !write {
		return true
	}
	if c, ok := fuse.FromContext(ctx); ok && c.Uid == 0 {
		return true
	}
	h, ok := f.(*nsHandle)
	return ok && h.write
}
