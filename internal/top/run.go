package top

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
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
		var b strings.Builder
		if err := v.WriteText(&b, root); err != nil {
			return err
		}
		text := b.String()
		if tty {
			text = "\x1b[H\x1b[2J" + clip(text, width(out))
		} else {
			text += "\n"
		}
		_, err := io.WriteString(out, text)
		return err
	}
	if err := draw(Compute(nil, prev)); err != nil {
		return err
	}
	// Readings run on their own goroutine, so q and Ctrl-C are answered at
	// once even while a slow tree (a loaded FUSE mount) is being read.
	type result struct {
		r   *Reading
		err error
	}
	readings := make(chan result)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			r, err := Read(root)
			select {
			case readings <- result{r, err}:
			case <-stop:
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-quit:
			return nil
		case res := <-readings:
			if res.err != nil {
				return res.err
			}
			if err := draw(Compute(prev, res.r)); err != nil {
				return err
			}
			prev = res.r
		}
	}
}

// width is the terminal's column count (0 if unknown).
func width(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}

// clip cuts every line to w columns (bytes: the screen is ASCII), so long
// addresses do not wrap and scroll the view.
func clip(s string, w int) string {
	if w <= 0 {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if len(l) > w {
			lines[i] = l[:w]
		}
	}
	return strings.Join(lines, "\n")
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
