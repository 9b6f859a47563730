package top

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Run shows the live view of root on out every interval until ctx ends or
// q is typed on in. On a terminal it uses the alternate screen and
// restores the terminal on exit; otherwise it prints one frame per
// interval.
func Run(ctx context.Context, root string, interval time.Duration, in *os.File, out *os.File) error {
	prev, err := Read(root)
	if err != nil {
		return err
	}
	tty := isTerminal(out)
	quit := make(chan struct{})
	if in != nil && isTerminal(in) {
		restore, err := cbreak(in)
		if err != nil {
			return err
		}
		defer restore()
		go func() {
			b := make([]byte, 1)
			for {
				n, err := in.Read(b)
				if err != nil {
					return
				}
				if n == 1 && (b[0] == 'q' || b[0] == 'Q' || b[0] == 3) {
					close(quit)
					return
				}
			}
		}()
	}
	if tty {
		fmt.Fprint(out, "\x1b[?1049h\x1b[?25l") // alternate screen, hide cursor
		defer fmt.Fprint(out, "\x1b[?25h\x1b[?1049l")
	}
	draw := func(v *View) error {
		if tty {
			fmt.Fprint(out, "\x1b[H\x1b[2J")
		}
		if err := v.WriteText(out, root); err != nil {
			return err
		}
		if !tty {
			fmt.Fprintln(out)
		}
		return nil
	}
	if err := draw(Compute(nil, prev)); err != nil {
		return err
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-quit:
			return nil
		case <-t.C:
		}
		cur, err := Read(root)
		if err != nil {
			return err
		}
		if err := draw(Compute(prev, cur)); err != nil {
			return err
		}
		prev = cur
	}
}

// Snapshot takes two readings interval apart and returns the view (the
// -o json form).
func Snapshot(ctx context.Context, root string, interval time.Duration) (*View, error) {
	a, err := Read(root)
	if err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(interval):
	}
	b, err := Read(root)
	if err != nil {
		return nil, err
	}
	return Compute(a, b), nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// cbreak turns off line buffering and echo (signals stay on, so Ctrl-C
// still interrupts) and returns the restore function.
func cbreak(f *os.File) (func(), error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	t := *old
	t.Lflag &^= unix.ICANON | unix.ECHO
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
