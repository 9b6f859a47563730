// Package ratelog limits how often a repeated log line is written, like the
// kernel's printk_ratelimited: per message, at most Burst lines per Interval;
// the first line after a quiet spell says how many were suppressed.
package ratelog

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The kernel's defaults (DEFAULT_RATELIMIT_INTERVAL, DEFAULT_RATELIMIT_BURST).
const (
	DefaultInterval = 5 * time.Second
	DefaultBurst    = 10
)

// Logger writes through an hclog.Logger, rate-limited per message text.
// Keys are the message strings, which must be constants (never formatted
// with per-event values), so the set of windows stays small.
type Logger struct {
	log      hclog.Logger
	now      func() time.Time
	interval time.Duration
	burst    int

	mu      sync.Mutex
	windows map[string]*window
}

type window struct {
	start      time.Time
	printed    int
	suppressed int
}

// New returns a Logger with the kernel's defaults; now is the clock (tests
// inject a fake one).
func New(log hclog.Logger, now func() time.Time) *Logger {
	return NewLimits(log, now, DefaultInterval, DefaultBurst)
}

// NewLimits returns a Logger allowing burst lines per interval per message.
func NewLimits(log hclog.Logger, now func() time.Time, interval time.Duration, burst int) *Logger {
	return &Logger{log: log, now: now, interval: interval, burst: burst, windows: map[string]*window{}}
}

// allow reports whether msg may be written now and how many lines of it were
// suppressed since the last one written.
func (l *Logger) allow(msg string) (bool, int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.windows[msg]
	if w == nil {
		w = &window{start: now}
		l.windows[msg] = w
	}
	if now.Sub(w.start) >= l.interval {
		w.start, w.printed = now, 0
	}
	if w.printed >= l.burst {
		w.suppressed++
		return false, 0
	}
	w.printed++
	n := w.suppressed
	w.suppressed = 0
	return true, n
}

// Warn logs msg at warn level unless rate-limited.
func (l *Logger) Warn(msg string, args ...any) { l.emit(hclog.Warn, msg, args) }

// Error logs msg at error level unless rate-limited.
func (l *Logger) Error(msg string, args ...any) { l.emit(hclog.Error, msg, args) }

// Info logs msg at info level unless rate-limited.
func (l *Logger) Info(msg string, args ...any) { l.emit(hclog.Info, msg, args) }

func (l *Logger) emit(level hclog.Level, msg string, args []any) {
	if l.log.GetLevel() > level {
		return
	}
	ok, suppressed := l.allow(msg)
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.log.Log(level, msg, args...)
}
