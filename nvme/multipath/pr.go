package multipath

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/host"
)

// Linux's enum pr_type (uapi linux/pr.h). Values equal NVMe's RTYPE; the
// mapping still goes through PRTypeToNVMe, as nvme_pr_type_from_blk does.
const (
	PRWriteExclusive            = 1
	PRExclusiveAccess           = 2
	PRWriteExclusiveRegOnly     = 3
	PRExclusiveAccessRegOnly    = 4
	PRWriteExclusiveAllRegs     = 5
	PRExclusiveAccessAllRegs    = 6
	PRFlagIgnoreKey             = 1 << 0 // PR_FL_IGNORE_KEY
	prStatusSuccess             = 0
	PRStatusIOErr               = 0x2     // PR_STS_IOERR
	PRStatusReservationConflict = 0x18    // PR_STS_RESERVATION_CONFLICT
	PRStatusPathFailed          = 0x10000 // PR_STS_PATH_FAILED
)

// PRTypeToNVMe is nvme_pr_type_from_blk: 0 for an unknown pr_type.
func PRTypeToNVMe(t uint32) nvme.ReservationType {
	if t >= PRWriteExclusive && t <= PRExclusiveAccessAllRegs {
		return nvme.ReservationType(t)
	}
	return 0
}

// PRTypeFromNVMe is block_pr_type_from_nvme: 0 for an unknown RTYPE.
func PRTypeFromNVMe(t nvme.ReservationType) uint32 {
	if t >= nvme.ResvWriteExclusive && t <= nvme.ResvExclusiveAccessAllRegs {
		return uint32(t)
	}
	return 0
}

// PRStatus is nvme_status_to_pr_err: the positive PR_STS_* value the Linux
// PR ioctls return for an NVMe completion status, or an error (EINVAL) for
// the statuses the kernel turns into -EINVAL.
func PRStatus(st nvme.Status) (int32, error) {
	if st.IsPathError() {
		return PRStatusPathFailed, nil
	}
	switch st.Code() {
	case nvme.StatusSuccess:
		return prStatusSuccess, nil
	case nvme.StatusReservationConflict:
		return PRStatusReservationConflict, nil
	case nvme.StatusInvalidOpcode, nvme.StatusInvalidField, nvme.StatusInvalidNamespace, statusBadAttributes:
		return 0, fmt.Errorf("reservation command: %w: %w", st, errInval)
	}
	return PRStatusIOErr, nil
}

// statusBadAttributes is NVME_SC_BAD_ATTRIBUTES (command specific 0x80).
const statusBadAttributes nvme.Status = 0x180

var (
	errInval      = syscallError{syscall.EINVAL}
	errNotSupp    = syscallError{syscall.EOPNOTSUPP}
	errWouldBlock = syscallError{syscall.EWOULDBLOCK}
)

// syscallError is an error with an Errno method (fusefs.ToErrno reads it).
type syscallError struct{ errno syscall.Errno }

func (e syscallError) Error() string        { return e.errno.Error() }
func (e syscallError) Errno() syscall.Errno { return e.errno }
func (e syscallError) Is(target error) bool { return target == e.errno }

// Reservations sends the block layer's persistent-reservation operations
// (Linux's nvme_pr_ops) for one multipath head. Like
// nvme_send_ns_head_pr_command, each command goes to the path the head's
// selector picks; unlike the kernel (whose synchronous PR commands are
// never retried: a path error returns PR_STS_PATH_FAILED), a command that
// fails on a path fails over. Re-sending is safe only for some actions:
//
//	action                     idempotent  after a lost (in-doubt) attempt
//	Register (RREGA 000)       yes         re-send (same NRKEY again succeeds)
//	Unregister (RREGA 001)     no          done iff this host is not registered
//	Replace (RREGA 010)        no          done iff this host is registered with NRKEY
//	Acquire (RACQA 000)        yes         re-send (holder re-acquiring the same type succeeds)
//	Preempt[-abort] (001/010)  no          done iff no other host is registered with PRKEY
//	                                       (PRKEY 0: no other host registered; PRKEY our
//	                                       own key: we hold the reservation with RTYPE)
//	Release (RRELA 000)        yes         re-send (a non-holder's release succeeds)
//	Clear (RRELA 001)          no          done iff this host is not registered
//
// "Done" is decided with a Reservation Report on the new path, sent only
// after mpath's write fence (reservation commands are OpOther, a write):
// by then the lost attempt can no longer execute, so the report is final.
// With the fence off ([multipath] fence_writes = "off") the lost attempt
// may still run after the report, and the decision is only a best guess.
// Registrations and the reservation belong to the host (Host Identifier),
// not to a controller, so the new path acts for the same holder.
type Reservations struct {
	h *mpath.Head
}

// NewReservations returns the PR operations of head h.
func NewReservations(h *mpath.Head) *Reservations { return &Reservations{h: h} }

// resvCmd is the mpath.Request argument of a reservation command.
type resvCmd struct {
	cmd     nvme.Command
	crkey   uint64
	key2    uint64 // NRKEY (register) or PRKEY (acquire)
	inDoubt bool   // an attempt got no completion
	final   bool   // the in-doubt attempt was found to have taken effect
}

// finalStatus wraps a device status that must reach the caller as is
// (Classify: complete, no retry, no failover): a PR command is a sync
// command (REQ_FAILFAST_DRIVER) in the kernel, never retried.
type finalStatus struct{ st nvme.Status }

func (f *finalStatus) Error() string { return f.st.Error() }
func (f *finalStatus) Unwrap() error { return f.st }

// idempotent reports whether re-sending cmd after an in-doubt attempt is
// safe (see Reservations).
func idempotent(c *nvme.Command) bool {
	action, _, _, _ := nvme.ParseReservationCommand(c)
	switch nvme.IOOpcode(c.Opcode) {
	case nvme.IOReservationRegister:
		return action == nvme.ResvRegister
	case nvme.IOReservationAcquire:
		return action == nvme.ResvAcquire
	case nvme.IOReservationRelease:
		return action == nvme.ResvRelease
	}
	return false
}

// tookEffect decides from st (a Reservation Report) whether an in-doubt
// attempt of r by host hostID has taken effect.
func (r *resvCmd) tookEffect(st *nvme.ReservationStatus, hostID [16]byte) bool {
	var mine *nvme.RegisteredController
	for i := range st.Regs {
		if st.Regs[i].HostID == hostID {
			mine = &st.Regs[i]
		}
	}
	action, _, _, _ := nvme.ParseReservationCommand(&r.cmd)
	switch nvme.IOOpcode(r.cmd.Opcode) {
	case nvme.IOReservationRegister:
		switch action {
		case nvme.ResvUnregister:
			return mine == nil
		case nvme.ResvReplace:
			return mine != nil && mine.RKey == r.key2
		}
	case nvme.IOReservationAcquire: // preempt, preempt-and-abort
		_, _, rtype, _ := nvme.ParseReservationCommand(&r.cmd)
		if mine != nil && mine.RKey == r.key2 {
			// Preempting our own key changes the type of our reservation.
			return mine.Holds && st.RType == rtype
		}
		for _, g := range st.Regs {
			// PRKEY 0 (all-registrants reservation): every other
			// registrant goes; else those holding PRKEY.
			if g.HostID != hostID && (r.key2 == 0 || g.RKey == r.key2) {
				return false
			}
		}
		return true
	case nvme.IOReservationRelease: // clear
		return mine == nil
	}
	return false
}

// submitResv runs a reservation command on path p (Path.Submit).
func (p *Path) submitResv(ctx context.Context, r *resvCmd, data []byte) error {
	if r.inDoubt && !idempotent(&r.cmd) {
		hid, ok := p.ctrl.(hostIdentified)
		if !ok {
			return &finalStatus{nvme.StatusHostAborted}
		}
		st, err := p.report(ctx)
		if err != nil {
			return err
		}
		if r.tookEffect(st, hid.HostID()) {
			p.log.Info("in-doubt reservation command took effect before the path was lost; not re-sent",
				"nsid", p.nsid, "opcode", fmt.Sprintf("0x%02x", r.cmd.Opcode))
			r.final = true
			return nil
		}
	}
	c := r.cmd
	c.NSID = p.nsid
	_, err := p.ctrl.Exec(ctx, &c, data)
	var st nvme.Status
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*host.AbortedError)):
		r.inDoubt = true
	case errors.As(err, &st):
		if !st.IsPathError() {
			return &finalStatus{st}
		}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
	default:
		r.inDoubt = true
	}
	return err
}

// report reads the reservation status through this path (EDS, growing the
// buffer until every registrant fits).
func (p *Path) report(ctx context.Context) (*nvme.ReservationStatus, error) {
	b, err := p.reportRaw(ctx)
	if err != nil {
		return nil, err
	}
	st, _, err := nvme.ParseReservationStatus(b)
	return st, err
}

func (p *Path) reportRaw(ctx context.Context) ([]byte, error) {
	size := 4096
	for {
		buf := make([]byte, size)
		cmd := nvme.NewReservationReport(p.nsid, uint32(size), true)
		if _, err := p.ctrl.Exec(ctx, &cmd, buf); err != nil {
			return nil, err
		}
		_, regctl, err := nvme.ParseReservationStatus(buf)
		if err != nil {
			return nil, err
		}
		need := nvme.ResvStatusHeaderSize + int(regctl)*nvme.ResvStatusEntrySize
		if need <= size || size >= 1<<20 {
			return buf[:min(need, size)], nil
		}
		size = need
	}
}

// send runs one reservation command through the head and maps the outcome
// like nvme_send_pr_command: (PR_STS_*, nil) for a device status, or an
// error for a host-side failure.
func (rs *Reservations) send(ctx context.Context, cmd nvme.Command, crkey, key2 uint64, n int) (int32, error) {
	var data [16]byte
	nvme.MarshalReservationKeys(data[:n], crkey, key2)
	r := &resvCmd{cmd: cmd, crkey: crkey, key2: key2}
	req := &mpath.Request{Op: mpath.OpOther, Buf: data[:n], Node: 0, Arg: r}
	return statusOf(rs.h.Do(ctx, req))
}

// statusOf maps the outcome of a PR command like nvme_send_pr_command: a
// device status becomes PR_STS_* (or EINVAL), no usable path EWOULDBLOCK
// (nvme_send_ns_head_pr_command), other failures stay errors.
func statusOf(err error) (int32, error) {
	if err == nil {
		return prStatusSuccess, nil
	}
	if errors.Is(err, mpath.ErrNoPath) {
		return 0, fmt.Errorf("%w: %w", err, errWouldBlock)
	}
	var st nvme.Status
	if errors.As(err, &st) && st != nvme.StatusHostAborted {
		return PRStatus(st)
	}
	return 0, err
}

// Register is pr_register (IOC_PR_REGISTER): replace when old is non-zero,
// else register; flags may hold PR_FL_IGNORE_KEY; CPTPL is "persist", as
// the kernel sends it.
func (rs *Reservations) Register(ctx context.Context, old, new uint64, flags uint32) (int32, error) {
	if flags&^PRFlagIgnoreKey != 0 {
		return 0, errNotSupp
	}
	action := uint8(nvme.ResvRegister)
	if old != 0 {
		action = nvme.ResvReplace
	}
	cmd := nvme.NewReservationRegister(0, action, flags&PRFlagIgnoreKey != 0, nvme.ResvPTPLPersist)
	return rs.send(ctx, cmd, old, new, nvme.ResvRegisterDataSize)
}

// Reserve is pr_reserve (IOC_PR_RESERVE): Acquire with rtype from typ.
// An unknown type is EINVAL and nothing is sent.
func (rs *Reservations) Reserve(ctx context.Context, key uint64, typ uint32, flags uint32) (int32, error) {
	if flags&^PRFlagIgnoreKey != 0 {
		return 0, errNotSupp
	}
	rt := PRTypeToNVMe(typ)
	if rt == 0 {
		return 0, fmt.Errorf("pr_type %d: %w", typ, errInval)
	}
	cmd := nvme.NewReservationAcquire(0, nvme.ResvAcquire, flags&PRFlagIgnoreKey != 0, rt)
	return rs.send(ctx, cmd, key, 0, nvme.ResvAcquireDataSize)
}

// Release is pr_release (IOC_PR_RELEASE): IEKEY when key is 0.
func (rs *Reservations) Release(ctx context.Context, key uint64, typ uint32) (int32, error) {
	rt := PRTypeToNVMe(typ)
	if rt == 0 {
		return 0, fmt.Errorf("pr_type %d: %w", typ, errInval)
	}
	cmd := nvme.NewReservationRelease(0, nvme.ResvRelease, key == 0, rt)
	return rs.send(ctx, cmd, key, 0, nvme.ResvReleaseDataSize)
}

// Preempt is pr_preempt (IOC_PR_PREEMPT, IOC_PR_PREEMPT_ABORT): CRKEY old,
// PRKEY new.
func (rs *Reservations) Preempt(ctx context.Context, old, new uint64, typ uint32, abort bool) (int32, error) {
	rt := PRTypeToNVMe(typ)
	if rt == 0 {
		return 0, fmt.Errorf("pr_type %d: %w", typ, errInval)
	}
	action := uint8(nvme.ResvPreempt)
	if abort {
		action = nvme.ResvPreemptAbort
	}
	cmd := nvme.NewReservationAcquire(0, action, false, rt)
	return rs.send(ctx, cmd, old, new, nvme.ResvAcquireDataSize)
}

// Clear is pr_clear (IOC_PR_CLEAR): IEKEY when key is 0.
func (rs *Reservations) Clear(ctx context.Context, key uint64) (int32, error) {
	cmd := nvme.NewReservationRelease(0, nvme.ResvClear, key == 0, 0)
	return rs.send(ctx, cmd, key, 0, nvme.ResvReleaseDataSize)
}

// Command sends Reservation Register (op 0x0D), Acquire (0x11) or Release
// (0x15) with any action, RTYPE and IEKEY: what nvme-cli's resv-register,
// resv-acquire and resv-release send, for the cases the PR ioctls cannot
// express (unregister, IEKEY with a key). key2 is NRKEY or PRKEY.
func (rs *Reservations) Command(ctx context.Context, c ResvCommand) (int32, error) {
	op, action, rtype, iekey, crkey, key2 := c.Op, c.Action, c.RType, c.IEKey, c.CRKey, c.Key2
	if action > 7 || rtype > nvme.ResvExclusiveAccessAllRegs {
		return 0, fmt.Errorf("reservation action %d rtype %d: %w", action, rtype, errInval)
	}
	switch op {
	case nvme.IOReservationRegister:
		if action > nvme.ResvReplace {
			return 0, fmt.Errorf("rrega %d: %w", action, errInval)
		}
		return rs.send(ctx, nvme.NewReservationRegister(0, action, iekey, nvme.ResvPTPLNoChange), crkey, key2, nvme.ResvRegisterDataSize)
	case nvme.IOReservationAcquire:
		if action > nvme.ResvPreemptAbort || rtype == 0 {
			return 0, fmt.Errorf("racqa %d rtype %d: %w", action, rtype, errInval)
		}
		return rs.send(ctx, nvme.NewReservationAcquire(0, action, iekey, rtype), crkey, key2, nvme.ResvAcquireDataSize)
	case nvme.IOReservationRelease:
		if action > nvme.ResvClear || (action == nvme.ResvRelease && rtype == 0) {
			return 0, fmt.Errorf("rrela %d rtype %d: %w", action, rtype, errInval)
		}
		return rs.send(ctx, nvme.NewReservationRelease(0, action, iekey, rtype), crkey, 0, nvme.ResvReleaseDataSize)
	}
	return 0, fmt.Errorf("opcode 0x%02x: %w", uint8(op), errInval)
}

// ResvCommand is one reservation command in the resv_command form
// "OP ACTION RTYPE IEKEY CRKEY KEY2" (OP register, acquire or release;
// numbers in C notation; KEY2 is NRKEY or PRKEY).
type ResvCommand struct {
	Op          nvme.IOOpcode
	Action      uint8
	RType       nvme.ReservationType
	IEKey       bool
	CRKey, Key2 uint64
}

// ParseResvCommand parses the resv_command form. It checks the syntax and
// ranges (ACTION, RTYPE 0..255, IEKEY 0 or 1); Command checks the values.
func ParseResvCommand(line string) (ResvCommand, error) {
	f := strings.Fields(line)
	ops := map[string]nvme.IOOpcode{"register": nvme.IOReservationRegister,
		"acquire": nvme.IOReservationAcquire, "release": nvme.IOReservationRelease}
	if len(f) != 6 {
		return ResvCommand{}, fmt.Errorf("want OP ACTION RTYPE IEKEY CRKEY KEY2: %w", errInval)
	}
	op, ok := ops[f[0]]
	if !ok {
		return ResvCommand{}, fmt.Errorf("op %q: %w", f[0], errInval)
	}
	var n [5]uint64
	for i, w := range f[1:] {
		bits := 64
		switch i {
		case 0, 1:
			bits = 8
		case 2:
			bits = 1
		}
		v, err := strconv.ParseUint(w, 0, bits)
		if err != nil {
			return ResvCommand{}, fmt.Errorf("field %d: %w", i+2, errInval)
		}
		n[i] = v
	}
	return ResvCommand{Op: op, Action: uint8(n[0]), RType: nvme.ReservationType(n[1]), IEKey: n[2] == 1,
		CRKey: n[3], Key2: n[4]}, nil
}

// reportReq is the mpath.Request argument of a Reservation Report: a
// read-only command (OpOtherRead), safe to re-send anywhere.
type reportReq struct{ buf []byte }

// Report returns the raw Reservation Report data (extended data
// structure: a 64-byte header and one 64-byte entry per registrant), read
// through a selected path.
func (rs *Reservations) Report(ctx context.Context) ([]byte, error) {
	r := &reportReq{}
	req := &mpath.Request{Op: mpath.OpOtherRead, Node: 0, Arg: r}
	if err := rs.h.Do(ctx, req); err != nil {
		return nil, err
	}
	return r.buf, nil
}

// ReadReservation is pr_read_reservation (IOC_PR_READ_RESERVATION): the
// holder's key, the generation and the pr_type (0 when none is held); sts
// is a PR_STS_* value when the device failed the report.
func (rs *Reservations) ReadReservation(ctx context.Context) (key uint64, gen, typ uint32, sts int32, err error) {
	b, err := rs.Report(ctx)
	if err != nil {
		sts, err = statusOf(err)
		return 0, 0, 0, sts, err
	}
	st, _, err := nvme.ParseReservationStatus(b)
	if err != nil {
		return 0, 0, 0, PRStatusIOErr, nil
	}
	for _, g := range st.Regs {
		if g.Holds {
			key = g.RKey
			break
		}
	}
	return key, st.Gen, PRTypeFromNVMe(st.RType), 0, nil
}

// ReadKeys is pr_read_keys (IOC_PR_READ_KEYS): the generation and every
// registered key; sts as for ReadReservation.
func (rs *Reservations) ReadKeys(ctx context.Context) (gen uint32, keys []uint64, sts int32, err error) {
	b, err := rs.Report(ctx)
	if err != nil {
		sts, err = statusOf(err)
		return 0, nil, sts, err
	}
	st, _, err := nvme.ParseReservationStatus(b)
	if err != nil {
		return 0, nil, PRStatusIOErr, nil
	}
	for _, g := range st.Regs {
		keys = append(keys, g.RKey)
	}
	return st.Gen, keys, 0, nil
}
