package host

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/tcp"
)

// Queue is one NVMe queue pair as the controller core uses it (the
// transport half of nvme_ctrl_ops): nvme/tcp.Queue implements it.
type Queue interface {
	// Exec sends cmd (with data for host-to-controller transfers, or
	// receiving into data) and waits for its completion. err != nil means
	// no completion arrived (queue dead, command timeout, ctx done); a
	// controller error status is in the Completion.
	Exec(ctx context.Context, cmd *nvme.Command, data []byte) (nvme.Completion, error)
	// SetInCapsuleMax sets the largest write sent in-capsule.
	SetInCapsuleMax(n int)
	// Dead is closed when the queue died; Err says why.
	Dead() <-chan struct{}
	Err() error
	Close() error
	LocalAddr() net.Addr
}

// QueueConfig is what the controller asks of a new queue.
type QueueConfig struct {
	Addr       string // host:port
	HostTrAddr string // optional local IP
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
	Log        hclog.Logger
}

// Transport opens queues (one connection each).
type Transport interface {
	Dial(ctx context.Context, cfg QueueConfig) (Queue, error)
}

// TCPTransport is the NVMe/TCP transport (nvme/tcp).
type TCPTransport struct {
	// ICRespTimeout bounds the wait for ICResp (0: nvme/tcp's default, 10 s).
	ICRespTimeout time.Duration
}

// Dial connects one NVMe/TCP queue.
func (t TCPTransport) Dial(ctx context.Context, cfg QueueConfig) (Queue, error) {
	q, err := tcp.Dial(ctx, tcp.Config{
		Addr:          cfg.Addr,
		HostTrAddr:    cfg.HostTrAddr,
		HdrDigest:     cfg.HdrDigest,
		DataDigest:    cfg.DataDigest,
		Depth:         cfg.Depth,
		InCapsuleMax:  cfg.InCapsuleMax,
		ICRespTimeout: t.ICRespTimeout,
		CmdTimeout:    cfg.CmdTimeout,
		Log:           cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}

// isQueueLoss reports an error meaning the command got no completion
// because its queue died or timed out (it is then cancelled by error
// recovery).
func isQueueLoss(err error) bool {
	return errors.Is(err, tcp.ErrQueueDead) || errors.Is(err, tcp.ErrTimeout)
}
