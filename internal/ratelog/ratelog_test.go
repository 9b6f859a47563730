package ratelog

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestRateLimit(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	l := NewLimits(hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info}), func() time.Time { return now }, 5*time.Second, 3)
	for i := 0; i < 100; i++ {
		l.Warn("unhandled async event", "dw0", i)
	}
	l.Warn("other message")
	if n := strings.Count(buf.String(), "unhandled async event"); n != 3 {
		t.Fatalf("%d lines within the interval, want the burst of 3:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "other message") {
		t.Fatal("a different message was limited by the first one's window")
	}
	now = now.Add(4 * time.Second)
	l.Warn("unhandled async event", "dw0", 100)
	if n := strings.Count(buf.String(), "unhandled async event"); n != 3 {
		t.Fatalf("a line before the interval ended was written")
	}
	now = now.Add(time.Second)
	buf.Reset()
	l.Warn("unhandled async event", "dw0", 101)
	if got := buf.String(); !strings.Contains(got, "dw0=101") || !strings.Contains(got, "suppressed=98") {
		t.Fatalf("first line of the next interval: %q, want dw0=101 suppressed=98", got)
	}
	buf.Reset()
	l.Warn("unhandled async event", "dw0", 102)
	if got := buf.String(); strings.Contains(got, "suppressed") {
		t.Fatalf("suppressed count repeated: %q", got)
	}
}

func TestDisabledLevelCountsNothing(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	l := NewLimits(hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Error}), func() time.Time { return now }, time.Second, 1)
	for i := 0; i < 5; i++ {
		l.Warn("x")
	}
	l.Error("x")
	if got := buf.String(); !strings.Contains(got, "[ERROR] x") || strings.Contains(got, "suppressed") {
		t.Fatalf("got %q", got)
	}
}
