package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

var fabricsAnswer = regexp.MustCompile(`^instance=(\d+),cntlid=(\d+)`)

// fabricsConnect writes opts to MOUNTPOINT/dev/nvme-fabrics and reads the
// answer on the same descriptor, as libnvme does with the kernel's device.
// It returns the controller name.
func fabricsConnect(root, opts string) (string, error) {
	dev := filepath.Join(root, "dev", "nvme-fabrics")
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write([]byte(opts)); err != nil {
		return "", fmt.Errorf("%s: %w", fabrics.RedactSecrets(opts), err)
	}
	buf := make([]byte, 4096)
	n, err := f.Read(buf)
	if err != nil {
		return "", fmt.Errorf("%s: reading the answer: %w", dev, err)
	}
	m := fabricsAnswer.FindSubmatch(buf[:n])
	if m == nil {
		return "", fmt.Errorf("%s: unexpected answer %q", dev, buf[:n])
	}
	return "nvme" + string(m[1]), nil
}

// withTransport adds transport=tcp when the options do not name one.
func withTransport(s string) string {
	if strings.Contains(s, "transport=") {
		return s
	}
	return "transport=tcp," + s
}

// cmdConnect is `mpathfs connect MOUNTPOINT OPTS`.
func cmdConnect(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: connect MOUNTPOINT traddr=ADDR,trsvcid=PORT,nqn=NQN[,...]", errUsage)
	}
	name, err := fabricsConnect(fs.Arg(0), withTransport(fs.Arg(1)))
	if err != nil {
		if errors.Is(err, syscall.EALREADY) {
			return fmt.Errorf("already connected: %w", err)
		}
		return err
	}
	fmt.Fprintf(stdout, "device: %s\n", name)
	return nil
}

// cmdDisconnect is `mpathfs disconnect MOUNTPOINT -n NQN | -d nvmeX[,nvmeY]`
// (nqn=NQN and device=nvmeX are accepted as the last argument too): it
// writes delete_controller of each controller and waits until they are
// gone, as the kernel's synchronous delete does.
func cmdDisconnect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("disconnect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nqn := fs.String("n", "", "disconnect every controller of this subsystem NQN")
	devs := fs.String("d", "", "disconnect these controllers (nvme1[,nvme2])")
	if err := fs.Parse(args); err != nil {
		return err
	}
	usage := fmt.Errorf("%w: disconnect MOUNTPOINT (-n NQN | -d nvmeX[,nvmeY] | nqn=NQN | device=nvmeX)", errUsage)
	if fs.NArg() < 1 {
		return usage
	}
	root := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil { // flags after MOUNTPOINT
		return err
	}
	if fs.NArg() > 1 {
		return usage
	}
	if fs.NArg() == 1 {
		k, v, _ := strings.Cut(fs.Arg(0), "=")
		switch k {
		case "nqn":
			*nqn = v
		case "device":
			*devs = v
		default:
			return usage
		}
	}
	if (*nqn == "") == (*devs == "") {
		return usage
	}
	class := filepath.Join(root, "sys", "class", "nvme")
	var names []string
	if *devs != "" {
		for _, d := range strings.Split(*devs, ",") {
			d = strings.TrimPrefix(strings.TrimSpace(d), "/dev/")
			if _, err := os.Stat(filepath.Join(class, d)); err != nil {
				return fmt.Errorf("did not find device %s: %w", d, err)
			}
			names = append(names, d)
		}
	} else {
		ents, err := os.ReadDir(class)
		if err != nil {
			return err
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(class, e.Name(), "subsysnqn"))
			if err == nil && strings.TrimSpace(string(b)) == *nqn {
				names = append(names, e.Name())
			}
		}
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(class, n, "delete_controller"), []byte("1"), 0); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range names {
		for {
			if _, err := os.Stat(filepath.Join(class, n)); errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%s: still there after delete_controller", n)
			}
			time.Sleep(20 * time.Millisecond) // the tree has no change notification
		}
	}
	if *nqn != "" {
		fmt.Fprintf(stdout, "NQN:%s disconnected %d controller(s)\n", *nqn, len(names))
	}
	return nil
}

// cmdConnectAll is `mpathfs connect-all MOUNTPOINT traddr=ADDR[,trsvcid=8009,...]`:
// it reads the discovery log itself and connects each NVM subsystem entry
// through MOUNTPOINT/dev/nvme-fabrics, skipping those already connected;
// other options (keep_alive_tmo, hostnqn, ...) apply to every entry.
func cmdConnectAll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("connect-all", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf logFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: connect-all MOUNTPOINT traddr=ADDR[,trsvcid=8009,...]", errUsage)
	}
	root, s := fs.Arg(0), withTransport(fs.Arg(1))
	var keep []string // options passed on to every entry
	for _, kv := range strings.Split(s, ",") {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "transport", "traddr", "trsvcid", "nqn", "discovery", "":
		default:
			keep = append(keep, kv)
		}
	}
	dl, err := readDiscoveryLog(ctx, s, lf.logger(stderr, "warn", "text"))
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range dl.Entries {
		if e.SubType != 2 || e.TrType != 3 {
			continue
		}
		opts := strings.Join(append([]string{"transport=tcp", "traddr=" + e.TrAddr, "trsvcid=" + e.TrSvcID, "nqn=" + e.SubNQN}, keep...), ",")
		name, err := fabricsConnect(root, opts)
		switch {
		case errors.Is(err, syscall.EALREADY):
			continue
		case err != nil:
			errs = append(errs, err)
			fmt.Fprintf(stderr, "mpathfs connect-all: %v\n", err)
		default:
			fmt.Fprintf(stdout, "device: %s\n", name)
		}
	}
	return errors.Join(errs...)
}
