package fabrics

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/clock"
	"github.com/mpathfs/mpathfs/internal/plug"
	"github.com/mpathfs/mpathfs/nvme"
)

// Errors a Queue's Exec returns when no completion arrived; the host core
// treats both as the loss of the queue (error recovery cancels the
// command). Transports wrap them.
var (
	// ErrQueueDead: the queue died (socket or protocol error, Close)
	// before the command completed.
	ErrQueueDead = errors.New("nvme fabrics: queue dead")
	// ErrTimeout: the command got no completion within its timeout; the
	// queue has been declared dead.
	ErrTimeout = errors.New("nvme fabrics: command timeout")
	// ErrSilent: SilentExecer gave the command up (nothing received on the
	// queue within its bound); the command stays in flight, the queue
	// lives.
	ErrSilent = errors.New("nvme fabrics: queue silent, command abandoned")
)

// SilentExecer is the optional Queue capability behind a bounded read
// (host.Controller.ReadWithin); nvme/tcp.Queue implements it.
type SilentExecer interface {
	ExecWithin(ctx context.Context, cmd *nvme.Command, data []byte, within time.Duration) (nvme.Completion, error)
}

// Completer receives the result of a command submitted with ExecAsync.
type Completer interface {
	// CommandDone is called exactly once per accepted command, with what
	// Exec (or ExecWithin) would have returned. It runs on a transport
	// goroutine (or on the submitter's, when the queue is already dead) and
	// must not block.
	CommandDone(cqe nvme.Completion, err error)
}

// AsyncExecer is the optional Queue capability behind the asynchronous
// data path: submit without a goroutine waiting for the completion.
type AsyncExecer interface {
	// ExecAsync submits cmd as ExecWithin would (within 0: as Exec) and
	// returns at once. It reports false, having sent nothing and kept
	// nothing, when the command cannot go this way now: a write not sent
	// in-capsule (its data is owed on R2T), no free tag, a dead queue.
	// Otherwise done.CommandDone follows exactly once; data must stay
	// untouched until then, and is never touched after it.
	//
	// With a non-nil pl the queue may hold the command back (pl.Hold)
	// until pl.Unplug, to send it with others in one write; nil sends at
	// once. A queue may decline a large write that comes with a plug
	// (the submitter has more to do than wait for a socket write) and
	// write one without a plug before returning.
	ExecAsync(cmd *nvme.Command, data []byte, within time.Duration, done Completer, pl *plug.Plug) bool
}

// IsQueueLoss reports an error meaning the command got no completion
// because its queue died or timed out.
func IsQueueLoss(err error) bool {
	return errors.Is(err, ErrQueueDead) || errors.Is(err, ErrTimeout)
}

// Queue is one NVMe queue pair as the host core uses it (the transport half
// of nvme_ctrl_ops).
type Queue interface {
	// Exec sends cmd (with data for host-to-controller transfers, or
	// receiving into data) and waits for its completion. err != nil means
	// no completion arrived (ErrQueueDead, ErrTimeout, ctx done); a
	// controller error status is in the Completion.
	Exec(ctx context.Context, cmd *nvme.Command, data []byte) (nvme.Completion, error)
	// SetInCapsuleMax sets the largest write sent in-capsule.
	SetInCapsuleMax(n int)
	// SetCmdTimeout changes the command timeout of the running queue
	// (io_timeout's store applies at once, as nvme_set_io_timeout does).
	SetCmdTimeout(d time.Duration)
	// Dead is closed when the queue died; Err says why.
	Dead() <-chan struct{}
	Err() error
	Close() error
	LocalAddr() net.Addr
}

// QueueConfig is what the host core asks of a new queue.
type QueueConfig struct {
	Addr       string // host:port
	HostTrAddr string // optional local IP (host_traddr)
	HostIface  string // optional interface to bind to (host_iface)
	Tos        int    // IP type of service; < 0: transport default
	HdrDigest  bool
	DataDigest bool
	// Depth is the number of commands that may be in flight.
	Depth int
	// InCapsuleMax is the largest write sent in-capsule (8 KiB until the
	// controller's IOCCSZ is known).
	InCapsuleMax int
	// CmdTimeout is the per-command timeout (0: none); a timeout kills the
	// queue.
	CmdTimeout time.Duration
	// Clock drives command timeouts (nil: the system clock).
	Clock clock.Clock
	Log   hclog.Logger
}

// Transport opens queues, one connection each (nvmf_transport_ops). The
// TCP transport is nvme/tcp.Transport.
type Transport interface {
	Dial(ctx context.Context, cfg QueueConfig) (Queue, error)
}
