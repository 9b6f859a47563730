package sysfsview

import (
	"context"
	"time"

	"github.com/mpathfs/mpathfs/mpath"
	"github.com/mpathfs/mpathfs/nvme"
)

// The glue feeds the tree through the values and small interfaces below. Static
// identity is passed once as a plain struct; live values are read through a
// source interface on every open of the attribute. Optional capabilities
// (writable timeouts, triggers) are separate one-method interfaces found by type
// assertion: when a source lacks one, the attribute is absent, as the kernel
// hides attributes a transport cannot back.

// IOStat is the 17-field /sys/block/*/stat, merges excluded (always 0):
// mpath's per-head and per-path statistics.
type IOStat = mpath.IOStat

// PathCounters are a path's diag/ counters (multipath_failover_count,
// command_retries_count, command_error_count).
type PathCounters = mpath.PathCounters

// HeadCounters are a head's counters; diag/ shows
// io_requeue_no_usable_path_count and io_fail_no_available_path_count.
type HeadCounters = mpath.HeadCounters

// ControllerCounters are a controller's diag/ counters.
type ControllerCounters struct {
	CommandErrors uint64 // command_error_count
	Resets        uint64 // reset_count
	Reconnects    uint64 // reconnect_count
	// ResvNotifications counts Reservation Notification log pages read
	// (reservation_notification_count).
	ResvNotifications uint64
}

// DefaultIOPolicies returns the iopolicy names the kernel accepts.
func DefaultIOPolicies() []string { return []string{"numa", "round-robin", "queue-depth"} }

// SubsystemInfo is the fixed identity of nvme-subsysN.
type SubsystemInfo struct {
	NQN string
	// Model, Serial and FirmwareRev are raw Identify Controller fields (40, 20
	// and 8 bytes, space padded); they are shown as "%.*s\n" like the kernel.
	Model, Serial, FirmwareRev string
	VID                        uint16 // PCI vendor id, for the nvme.* wwid form
	Type                       string // subsystype: "nvm", "discovery"
	// IOPolicies are the names iopolicy accepts; nil means DefaultIOPolicies().
	IOPolicies []string
}

// SubsystemSource backs the live subsystem attribute.
type SubsystemSource interface {
	IOPolicy() string
	// SetIOPolicy is called with one of SubsystemInfo.IOPolicies, already validated.
	SetIOPolicy(name string) error
}

// ControllerInfo is the fixed identity of nvmeX.
type ControllerInfo struct {
	Transport          string // "tcp"
	SubsysNQN, HostNQN string
	HostID             [16]byte
	// Raw Identify Controller fields, as SubsystemInfo.
	Model, Serial, FirmwareRev string
	CntrlType                  uint8 // Identify CNTRLTYPE: 1 io, 2 discovery, 3 admin
	DCType                     uint8 // Identify DCTYPE: 0 none, 1 ddc, 2 cdc
}

// Timeouts are a controller's fabrics timeouts; a negative value means "off".
type Timeouts struct {
	CtrlLoss, ReconnectDelay, FastIOFail time.Duration
}

// ControllerSource backs the live controller attributes.
type ControllerSource interface {
	State() string   // "live", "connecting", ... (kernel names)
	Address() string // "traddr=..,trsvcid=..[,src_addr=..]" without "\n"
	CNTLID() uint16
	NUMANode() int
	QueueCount() int
	SQSize() int
	KATO() time.Duration
	Timeouts() Timeouts
	Counters() ControllerCounters
}

// TimeoutSetter makes ctrl_loss_tmo, reconnect_delay and fast_io_fail_tmo
// writable (0644). A negative duration means "off".
type TimeoutSetter interface {
	SetCtrlLossTmo(time.Duration) error
	SetReconnectDelay(time.Duration) error
	SetFastIOFailTmo(time.Duration) error
}

// CommandTimeouts is an optional ControllerSource capability adding
// admin_timeout and io_timeout (milliseconds), and queue/io_timeout on the
// controller's paths.
type CommandTimeouts interface {
	AdminTimeout() time.Duration
	IOTimeout() time.Duration
}

// CommandTimeoutSetter makes admin_timeout and io_timeout writable (0644):
// milliseconds, kstrtouint, 0 refused with EINVAL as in Linux.
type CommandTimeoutSetter interface {
	SetAdminTimeout(time.Duration) error
	SetIOTimeout(time.Duration) error
}

// DHCHAPSecrets is an optional ControllerSource capability adding
// dhchap_secret and dhchap_ctrl_secret (mode 0600, the secret as given or
// "none"; a write of a new DHHC-1 secret re-authenticates the controller,
// as CONFIG_NVME_HOST_AUTH does). Set errors are syscall.Errno values.
type DHCHAPSecrets interface {
	DHCHAPSecret() string
	DHCHAPCtrlSecret() string
	SetDHCHAPSecret(string) error
	SetDHCHAPCtrlSecret(string) error
}

// Resetter adds the reset_controller trigger.
type Resetter interface{ Reset() error }

// Rescanner adds the rescan_controller trigger.
type Rescanner interface{ Rescan() error }

// Deleter adds the delete_controller trigger.
type Deleter interface{ Delete() error }

// HeadInfo is the fixed identity of a namespace (shared by the head and its paths).
type HeadInfo struct {
	NSID  uint32
	UUID  [16]byte
	NGUID [16]byte
	EUI64 [8]byte
	CSI   uint8
}

// HeadSource backs the live attributes of a head (nvmeNnM).
type HeadSource interface {
	Sectors() uint64 // capacity in 512-byte sectors
	Stat() IOStat
	Counters() HeadCounters
	DelayedRemovalSecs() uint32
	SetDelayedRemovalSecs(uint32) error
}

// ReservationReporter is an optional HeadSource capability adding the
// binary attribute resv_report (0400): the namespace's Reservation Report
// data (extended data structure), read through a selected path at open.
type ReservationReporter interface {
	ReservationReport(ctx context.Context) ([]byte, error)
}

// ReservationCommander is an optional HeadSource capability adding the
// write-only trigger resv_command (0200): one write of
// "OP ACTION RTYPE IEKEY CRKEY KEY2" (OP register, acquire or release;
// numbers in C notation) sends that reservation command through the head.
// It carries what the PR ioctls cannot express (unregister, IEKEY with a
// key); a reservation conflict fails the write with EBADE. The value is
// never logged.
type ReservationCommander interface {
	ReservationCommand(line string) error
}

// QueueLimits are the block-device limits a gendisk's queue/ shows.
type QueueLimits = nvme.QueueLimits

// BlockGeometry is an optional HeadSource and PathSource capability adding
// the attributes the kernel gives every NVMe gendisk (nuse, metadata_bytes,
// ro, queue/, integrity/, ...), which lsblk and newer libnvme read; without
// it they are hidden.
type BlockGeometry interface {
	Limits() QueueLimits
	NUse() uint64 // logical blocks in use (Identify Namespace NUSE)
}

// CounterSetter is an optional capability of head, path and controller
// sources making their diag/ counters writable (0644), as in Linux: a write
// (kstrtoul) sets the counter named by the file. It reports false for a
// counter it does not know.
type CounterSetter interface {
	SetCounter(name string, v uint64) bool
}

// PathSource backs the live attributes of a path (nvmeNcXnM).
type PathSource interface {
	// UsesANA reports whether the controller uses ANA; without it ana_state and
	// ana_grpid are hidden.
	UsesANA() bool
	ANAState() string // "optimized", "non-optimized", ... (kernel names)
	ANAGroup() uint32
	QueueDepth() int  // commands in flight on the controller (shown under queue-depth)
	NUMANodes() []int // nodes whose current path this is (shown under numa)
	Sectors() uint64
	Stat() IOStat
	Counters() PathCounters
}
