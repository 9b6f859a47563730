package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mpathfs/mpathfs/fusefs"
	"github.com/mpathfs/mpathfs/internal/nvmecli"
)

// The resv-* commands take nvme-cli's options and a namespace file of a
// mounted tree. They use the Linux PR ioctls on the file where those
// express the command, else the head's resv_command trigger; resv-report
// reads the head's resv_report attribute (a Reservation Report needs a data
// buffer a restricted FUSE ioctl cannot carry).

// resvFlags declares one nvme-cli option with its long and short names.
type resvFlags struct{ fs *flag.FlagSet }

func (r resvFlags) u64(long, short, usage string) *uint64 {
	v := new(uint64)
	r.fs.Func(long, usage, func(s string) error { return parseNum(s, 64, v) })
	r.fs.Func(short, "same as --"+long, func(s string) error { return parseNum(s, 64, v) })
	return v
}

func (r resvFlags) u8(long, short, usage string) *uint64 {
	v := new(uint64)
	r.fs.Func(long, usage, func(s string) error { return parseNum(s, 8, v) })
	r.fs.Func(short, "same as --"+long, func(s string) error { return parseNum(s, 8, v) })
	return v
}

func (r resvFlags) flag(long, short, usage string) *bool {
	v := new(bool)
	r.fs.BoolVar(v, long, false, usage)
	r.fs.BoolVar(v, short, false, "same as --"+long)
	return v
}

func parseNum(s string, bits int, v *uint64) error {
	n, err := strconv.ParseUint(s, 0, bits)
	if err != nil {
		return fmt.Errorf("%q: not a %d-bit number", s, bits)
	}
	*v = n
	return nil
}

// resvParse parses options before and after the namespace file (nvme-cli
// takes the device first: resv-register /dev/nvme0n1 --nrkey=4).
func resvParse(name string, fs *flag.FlagSet, args []string) (string, error) {
	var file string
	for {
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			break
		}
		if file != "" {
			return "", fmt.Errorf("%w: %s NAMESPACE_FILE [options]", errUsage, name)
		}
		file, args = fs.Arg(0), fs.Args()[1:]
	}
	if file == "" {
		return "", fmt.Errorf("%w: %s NAMESPACE_FILE [options]", errUsage, name)
	}
	return file, nil
}

// prIoctl runs a PR ioctl on file and returns its result: 0, a positive
// PR_STS_* status, or the errno.
func prIoctl(file string, cmd uintptr, arg []byte, write bool) (uintptr, error) {
	flags := os.O_RDONLY
	if write {
		flags = os.O_RDWR
	}
	f, err := os.OpenFile(file, flags, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), cmd, uintptr(unsafe.Pointer(&arg[0])))
	if e != 0 {
		return 0, &os.PathError{Op: "ioctl", Path: file, Err: e}
	}
	return r, nil
}

// prResult turns an ioctl's positive PR status into nvme-cli's wording.
func prResult(name string, r uintptr, ok string, stdout io.Writer) error {
	switch r {
	case 0:
		fmt.Fprintln(stdout, ok)
		return nil
	case 0x18:
		return fmt.Errorf("%s: NVMe status: Reservation Conflict (PR_STS_RESERVATION_CONFLICT)", name)
	case 0x10000:
		return fmt.Errorf("%s: path failed (PR_STS_PATH_FAILED)", name)
	}
	return fmt.Errorf("%s: I/O error (PR status %#x)", name, r)
}

// resvCommand writes "OP ACTION RTYPE IEKEY CRKEY KEY2" to the head's
// resv_command trigger.
func resvCommand(name, file, op string, action, rtype uint64, iekey bool, crkey, key2 uint64, ok string, stdout io.Writer) error {
	ie := 0
	if iekey {
		ie = 1
	}
	attr := headAttr(file, "resv_command")
	err := os.WriteFile(attr, []byte(fmt.Sprintf("%s %d %d %d %#x %#x", op, action, rtype, ie, crkey, key2)), 0)
	if errors.Is(err, syscall.EBADE) {
		return fmt.Errorf("%s: NVMe status: Reservation Conflict", name)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintln(stdout, ok)
	return nil
}

// headAttr is MOUNT/sys/block/NAME/attr for the namespace file MOUNT/NAME.
func headAttr(file, attr string) string {
	return filepath.Join(filepath.Dir(file), "sys", "block", filepath.Base(file), attr)
}

func cmdResvRegister(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("resv-register", flag.ContinueOnError)
	f := resvFlags{fs}
	crkey := f.u64("crkey", "c", "current reservation key")
	nrkey := f.u64("nrkey", "k", "new reservation key")
	rrega := f.u8("rrega", "r", "register action: 0 register, 1 unregister, 2 replace")
	cptpl := f.u8("cptpl", "p", "change persist through power loss (only 0: the ioctl path asks for persist, as Linux does)")
	iekey := f.flag("iekey", "i", "ignore existing key")
	f.u64("namespace-id", "n", "ignored: the namespace is the file")
	file, err := resvParse("resv-register", fs, args)
	if err != nil {
		return err
	}
	if *cptpl != 0 {
		return fmt.Errorf("%w: --cptpl %d: not supported", errUsage, *cptpl)
	}
	const ok = nvmecli.ResvRegisterSuccess
	switch {
	case *rrega > 2:
		return fmt.Errorf("%w: --rrega %d: want 0, 1 or 2", errUsage, *rrega)
	case *rrega == 0 || (*rrega == 2 && *crkey != 0):
		old := uint64(0)
		if *rrega == 2 {
			old = *crkey
		}
		b := make([]byte, 24)
		binary.LittleEndian.PutUint64(b[0:], old)
		binary.LittleEndian.PutUint64(b[8:], *nrkey)
		if *iekey {
			binary.LittleEndian.PutUint32(b[16:], 1)
		}
		r, err := prIoctl(file, fusefs.IocPRRegister, b, true)
		if err != nil {
			return err
		}
		return prResult("resv-register", r, ok, stdout)
	}
	return resvCommand("resv-register", file, "register", *rrega, 0, *iekey, *crkey, *nrkey, ok, stdout)
}

func cmdResvAcquire(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("resv-acquire", flag.ContinueOnError)
	f := resvFlags{fs}
	crkey := f.u64("crkey", "c", "current reservation key")
	prkey := f.u64("prkey", "p", "pre-empt reservation key")
	rtype := f.u8("rtype", "t", "reservation type")
	racqa := f.u8("racqa", "a", "acquire action: 0 acquire, 1 preempt, 2 preempt and abort")
	iekey := f.flag("iekey", "i", "ignore existing key")
	f.u64("namespace-id", "n", "ignored: the namespace is the file")
	file, err := resvParse("resv-acquire", fs, args)
	if err != nil {
		return err
	}
	const ok = nvmecli.ResvAcquireSuccess
	le := binary.LittleEndian
	switch {
	case *racqa > 2:
		return fmt.Errorf("%w: --racqa %d: want 0, 1 or 2", errUsage, *racqa)
	case *racqa == 0:
		b := make([]byte, 16)
		le.PutUint64(b[0:], *crkey)
		le.PutUint32(b[8:], uint32(*rtype))
		if *iekey {
			le.PutUint32(b[12:], 1)
		}
		r, err := prIoctl(file, fusefs.IocPRReserve, b, true)
		if err != nil {
			return err
		}
		return prResult("resv-acquire", r, ok, stdout)
	case !*iekey:
		b := make([]byte, 24)
		le.PutUint64(b[0:], *crkey)
		le.PutUint64(b[8:], *prkey)
		le.PutUint32(b[16:], uint32(*rtype))
		cmd := uintptr(fusefs.IocPRPreempt)
		if *racqa == 2 {
			cmd = fusefs.IocPRPreemptAbort
		}
		r, err := prIoctl(file, cmd, b, true)
		if err != nil {
			return err
		}
		return prResult("resv-acquire", r, ok, stdout)
	}
	return resvCommand("resv-acquire", file, "acquire", *racqa, *rtype, *iekey, *crkey, *prkey, ok, stdout)
}

func cmdResvRelease(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("resv-release", flag.ContinueOnError)
	f := resvFlags{fs}
	crkey := f.u64("crkey", "c", "current reservation key")
	rtype := f.u8("rtype", "t", "reservation type")
	rrela := f.u8("rrela", "a", "release action: 0 release, 1 clear")
	iekey := f.flag("iekey", "i", "ignore existing key")
	f.u64("namespace-id", "n", "ignored: the namespace is the file")
	file, err := resvParse("resv-release", fs, args)
	if err != nil {
		return err
	}
	const ok = nvmecli.ResvReleaseSuccess
	if *rrela > 1 {
		return fmt.Errorf("%w: --rrela %d: want 0 or 1", errUsage, *rrela)
	}
	// The ioctls set IEKEY exactly when the key is 0.
	if *iekey != (*crkey == 0) {
		return resvCommand("resv-release", file, "release", *rrela, *rtype, *iekey, *crkey, 0, ok, stdout)
	}
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b[0:], *crkey)
	cmd := uintptr(fusefs.IocPRClear)
	if *rrela == 0 {
		cmd = fusefs.IocPRRelease
		binary.LittleEndian.PutUint32(b[8:], uint32(*rtype))
	}
	r, err := prIoctl(file, cmd, b, true)
	if err != nil {
		return err
	}
	return prResult("resv-release", r, ok, stdout)
}

func cmdResvReport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("resv-report", flag.ContinueOnError)
	f := resvFlags{fs}
	output := fs.String("o", "normal", "output format: normal or json")
	fs.StringVar(output, "output-format", "normal", "same as -o")
	f.flag("eds", "e", "extended data structure (always: the report is read with EDS)")
	f.u64("numd", "d", "ignored: the whole report is read")
	f.u64("namespace-id", "n", "ignored: the namespace is the file")
	file, err := resvParse("resv-report", fs, args)
	if err != nil {
		return err
	}
	if *output != "normal" && *output != "json" {
		return fmt.Errorf("%w: -o %q: want normal or json", errUsage, *output)
	}
	data, err := os.ReadFile(headAttr(file, "resv_report"))
	if err != nil {
		return fmt.Errorf("resv-report: %w", err)
	}
	return nvmecli.WriteResvReport(stdout, data, *output == "json")
}
