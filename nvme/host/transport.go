package host

import "github.com/mpathfs/mpathfs/nvme/fabrics"

// The host core is transport-agnostic: it dials queues through a
// fabrics.Transport given with WithTransport (the NVMe/TCP one is
// nvme/tcp.Transport), as the kernel's core reaches a transport through
// nvme_ctrl_ops.
type (
	// Queue is one NVMe queue pair (fabrics.Queue).
	Queue = fabrics.Queue
	// QueueConfig is what the controller asks of a new queue.
	QueueConfig = fabrics.QueueConfig
	// Transport opens queues (fabrics.Transport).
	Transport = fabrics.Transport
)

// isQueueLoss reports an error meaning the command got no completion
// because its queue died or timed out (it is then cancelled by error
// recovery).
func isQueueLoss(err error) bool { return fabrics.IsQueueLoss(err) }
