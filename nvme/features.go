package nvme

// Feature identifiers (reference §4.3).
const (
	FeatVolatileWC       = 0x06
	FeatNumQueues        = 0x07
	FeatAsyncEventConfig = 0x0B
	FeatTimestamp        = 0x0E
	FeatKeepAliveTimer   = 0x0F
	FeatHostBehavior     = 0x16 // Host Behavior Support: HostBehaviorSize bytes, byte 0 ACRE
	FeatResvNotifyMask   = 0x83 // per namespace; bit N set masks notification type N
)

// ResvNotifyMaskAll masks every reservation notification type (1..3).
const ResvNotifyMaskAll = 1<<ResvNotifyRegPreempt | 1<<ResvNotifyReleased | 1<<ResvNotifyResvPreempt

// Asynchronous Event Configuration bits (CDW11 of FeatAsyncEventConfig),
// the same bits as Identify OAES.
const (
	AENCfgNSAttr          = 1 << 8
	AENCfgFWActivation    = 1 << 9
	AENCfgANAChange       = 1 << 11
	AENCfgDiscoveryChange = 1 << 31
)

// NumQueues encodes the Number of Queues feature value for n submission and
// n completion queues (1's based count in, 0's based fields out).
func NumQueues(n int) uint32 {
	v := uint32(n-1) & 0xFFFF
	return v | v<<16
}

// ParseNumQueues decodes a Number of Queues value (CDW11 or completion DW0)
// into 1's based submission and completion queue counts.
func ParseNumQueues(v uint32) (nsq, ncq int) {
	return int(v&0xFFFF) + 1, int(v>>16) + 1
}

// HostBehaviorSize is the data size of the Host Behavior Support feature.
const HostBehaviorSize = 512
