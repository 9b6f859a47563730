package host

import (
	"crypto/rand"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	testNQN     = "nqn.2026-11.io.mpathfs:host-test"
	testHostNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001"
	// failAfter bounds every wait on an event: reaching it fails the test,
	// it is not a synchronisation sleep.
	failAfter = 20 * time.Second
)

func testLogger(t *testing.T) hclog.Logger {
	if os.Getenv("MPATHFS_TEST_LOG") != "" {
		return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug})
	}
	return hclog.NewNullLogger()
}

// events records a controller's events on a channel.
type events struct {
	ch     chan Event
	cancel func()
}

func record(c *Controller) *events {
	ev := &events{ch: make(chan Event, 1024)}
	ev.cancel = c.Subscribe(func(e Event) { ev.ch <- e })
	return ev
}

// wait returns the first event matching pred, failing the test after
// failAfter.
func (ev *events) wait(t *testing.T, what string, pred func(Event) bool) Event {
	t.Helper()
	timer := time.NewTimer(failAfter)
	defer timer.Stop()
	for {
		select {
		case e := <-ev.ch:
			if pred(e) {
				return e
			}
		case <-timer.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (ev *events) waitState(t *testing.T, s State) Event {
	t.Helper()
	return ev.wait(t, "state "+s.String(), func(e Event) bool { return e.Kind == StateChanged && e.New == s })
}

func randBuf(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
