package mpath_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// logSink captures hclog output and lets a test wait for a line.
type logSink struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func newLogSink() *logSink { return &logSink{lines: make(chan string, 1024)} }

func (l *logSink) Write(b []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(b)
	l.mu.Unlock()
	select {
	case l.lines <- string(b):
	default:
	}
	return len(b), nil
}

func (l *logSink) logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: l, Level: hclog.Trace})
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logSink) count(sub string) int { return strings.Count(l.String(), sub) }

// waitFor blocks until a line containing sub is logged (failing after 10 s).
func (l *logSink) waitFor(t testing.TB, sub string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line := <-l.lines:
			if strings.Contains(line, sub) {
				return
			}
		case <-timeout:
			t.Fatalf("no log line %q; log:\n%s", sub, l.String())
		}
	}
}

// result waits for an error from a goroutine (failing after 10 s).
func result(t testing.TB, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("request did not complete")
		return nil
	}
}

// pending asserts that nothing arrived on ch yet.
func pending(t testing.TB, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("request completed early: %v", err)
	default:
	}
}
