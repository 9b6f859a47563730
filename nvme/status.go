package nvme

import (
	"fmt"
	"syscall"
)

// Status is an NVMe completion status in the form Linux uses internally:
// the 16-bit wire status field shifted right by one (the phase bit dropped).
// Bits 7:0 are the Status Code, 10:8 the Status Code Type, 12:11 the Command
// Retry Delay index, 0x2000 More and 0x4000 Do Not Retry (reference §2.2).
//
// Status implements error; the zero value means success and should not be
// used as an error (see Err).
type Status uint16

// Status bits and masks.
const (
	StatusSCMask  Status = 0x00FF
	StatusSCTMask Status = 0x0700
	StatusCRDMask Status = 0x1800
	StatusMore    Status = 0x2000
	StatusDNR     Status = 0x4000
	// StatusCodeMask selects SCT and SC, the part that names the condition.
	StatusCodeMask Status = 0x07FF
)

// Status Code Types.
const (
	SCTGeneric         = 0
	SCTCommandSpecific = 1
	SCTMedia           = 2
	SCTPath            = 3
	SCTVendor          = 7
)

// Status values (SCT<<8 | SC) a host and our target use (reference §6.1).
const (
	StatusSuccess              Status = 0x000
	StatusInvalidOpcode        Status = 0x001
	StatusInvalidField         Status = 0x002
	StatusCIDConflict          Status = 0x003
	StatusDataTransferError    Status = 0x004
	StatusAbortedPowerLoss     Status = 0x005
	StatusInternalError        Status = 0x006
	StatusAbortRequested       Status = 0x007
	StatusAbortedSQDeletion    Status = 0x008
	StatusInvalidNamespace     Status = 0x00B
	StatusCommandSequenceError Status = 0x00C
	StatusInvalidSGLSegment    Status = 0x00D
	StatusInvalidSGLCount      Status = 0x00E
	StatusDataSGLLengthInvalid Status = 0x00F
	StatusSGLTypeInvalid       Status = 0x011
	StatusInvalidSGLOffset     Status = 0x016
	StatusHostIDInconsistent   Status = 0x018
	StatusKeepAliveExpired     Status = 0x019
	StatusKeepAliveInvalid     Status = 0x01A
	StatusAbortedPreempt       Status = 0x01B
	StatusNSWriteProtected     Status = 0x020
	StatusCommandInterrupted   Status = 0x021
	StatusTransientTransport   Status = 0x022
	StatusLBARange             Status = 0x080
	StatusCapacityExceeded     Status = 0x081
	StatusNSNotReady           Status = 0x082
	StatusReservationConflict  Status = 0x083
	StatusFormatInProgress     Status = 0x084
	StatusInvalidQID           Status = 0x101
	StatusInvalidQueueSize     Status = 0x102
	StatusAERLimitExceeded     Status = 0x105
	StatusInvalidLogPage       Status = 0x109
	StatusFeatureNotSaveable   Status = 0x10D
	StatusFeatureNotChangeable Status = 0x10E
	StatusFeatureNotNSSpecific Status = 0x10F
	StatusConnectIncompatible  Status = 0x180
	StatusConnectCtrlBusy      Status = 0x181
	StatusConnectInvalidParam  Status = 0x182
	StatusConnectRestartDisc   Status = 0x183
	StatusConnectInvalidHost   Status = 0x184
	StatusAuthRequired         Status = 0x191
	StatusWriteFault           Status = 0x280
	StatusUnrecoveredRead      Status = 0x281
	StatusAccessDenied         Status = 0x286
	StatusDeallocatedBlock     Status = 0x287
	StatusInternalPathError    Status = 0x300
	StatusANAPersistentLoss    Status = 0x301
	StatusANAInaccessible      Status = 0x302
	StatusANATransition        Status = 0x303
	StatusControllerPathError  Status = 0x360
	StatusHostPathError        Status = 0x370
	StatusHostAborted          Status = 0x371
)

// SC returns the Status Code.
func (s Status) SC() uint8 { return uint8(s & StatusSCMask) }

// SCT returns the Status Code Type.
func (s Status) SCT() uint8 { return uint8((s & StatusSCTMask) >> 8) }

// CRD returns the Command Retry Delay index (0: none; 1..3 select CRDT1..3).
func (s Status) CRD() uint8 { return uint8((s & StatusCRDMask) >> 11) }

// More reports the More bit (an error log entry exists).
func (s Status) More() bool { return s&StatusMore != 0 }

// DNR reports the Do Not Retry bit.
func (s Status) DNR() bool { return s&StatusDNR != 0 }

// Code returns SCT and SC only, for comparison with the Status constants.
func (s Status) Code() Status { return s & StatusCodeMask }

// OK reports success.
func (s Status) OK() bool { return s.Code() == StatusSuccess }

// IsPathError reports a path-related status (SCT 3), Linux's
// nvme_is_path_error.
func (s Status) IsPathError() bool { return s&StatusSCTMask == SCTPath<<8 }

// IsANAError reports the ANA statuses that make Linux re-read the ANA log:
// persistent loss, inaccessible and transition.
func (s Status) IsANAError() bool {
	switch s.Code() {
	case StatusANAPersistentLoss, StatusANAInaccessible, StatusANATransition:
		return true
	}
	return false
}

// Err returns nil for success and s otherwise.
func (s Status) Err() error {
	if s.OK() {
		return nil
	}
	return s
}

// Error implements error.
func (s Status) Error() string { return "nvme status: " + s.String() }

var statusNames = map[Status]string{
	StatusSuccess: "Success", StatusInvalidOpcode: "Invalid Command Opcode",
	StatusInvalidField: "Invalid Field in Command", StatusCIDConflict: "Command ID Conflict",
	StatusDataTransferError: "Data Transfer Error", StatusAbortedPowerLoss: "Commands Aborted due to Power Loss Notification",
	StatusInternalError: "Internal Error", StatusAbortRequested: "Command Abort Requested",
	StatusAbortedSQDeletion: "Command Aborted due to SQ Deletion", StatusInvalidNamespace: "Invalid Namespace or Format",
	StatusCommandSequenceError: "Command Sequence Error", StatusInvalidSGLSegment: "Invalid SGL Segment Descriptor",
	StatusInvalidSGLCount: "Invalid Number of SGL Descriptors", StatusDataSGLLengthInvalid: "Data SGL Length Invalid",
	StatusSGLTypeInvalid: "SGL Descriptor Type Invalid", StatusInvalidSGLOffset: "Invalid SGL Offset",
	StatusHostIDInconsistent: "Host Identifier Inconsistent Format", StatusKeepAliveExpired: "Keep Alive Timer Expired",
	StatusKeepAliveInvalid: "Keep Alive Timeout Invalid", StatusAbortedPreempt: "Command Aborted due to Preempt and Abort",
	StatusNSWriteProtected: "Namespace is Write Protected", StatusCommandInterrupted: "Command Interrupted",
	StatusTransientTransport: "Transient Transport Error", StatusLBARange: "LBA Out of Range",
	StatusCapacityExceeded: "Capacity Exceeded", StatusNSNotReady: "Namespace Not Ready",
	StatusReservationConflict: "Reservation Conflict", StatusFormatInProgress: "Format In Progress",
	StatusInvalidQID: "Invalid Queue Identifier", StatusInvalidQueueSize: "Invalid Queue Size",
	StatusAERLimitExceeded: "Asynchronous Event Request Limit Exceeded", StatusInvalidLogPage: "Invalid Log Page",
	StatusFeatureNotSaveable: "Feature Identifier Not Saveable", StatusFeatureNotChangeable: "Feature Not Changeable",
	StatusFeatureNotNSSpecific: "Feature Not Namespace Specific", StatusConnectIncompatible: "Connect Incompatible Format",
	StatusConnectCtrlBusy: "Connect Controller Busy", StatusConnectInvalidParam: "Connect Invalid Parameters",
	StatusConnectRestartDisc: "Connect Restart Discovery", StatusConnectInvalidHost: "Connect Invalid Host",
	StatusAuthRequired: "Authentication Required", StatusWriteFault: "Write Fault",
	StatusUnrecoveredRead: "Unrecovered Read Error", StatusAccessDenied: "Access Denied",
	StatusDeallocatedBlock: "Deallocated or Unwritten Logical Block", StatusInternalPathError: "Internal Path Error",
	StatusANAPersistentLoss: "Asymmetric Access Persistent Loss", StatusANAInaccessible: "Asymmetric Access Inaccessible",
	StatusANATransition: "Asymmetric Access Transition", StatusControllerPathError: "Controller Pathing Error",
	StatusHostPathError: "Host Pathing Error", StatusHostAborted: "Command Aborted By Host",
}

// String names the status like nvme-cli, with the raw value and the DNR and
// More bits, e.g. "Asymmetric Access Inaccessible (0x302)" or
// "Invalid Field in Command (0x2) DNR". Unknown codes print as
// UNKNOWN_STATUS_0xNNN.
func (s Status) String() string {
	name, ok := statusNames[s.Code()]
	if !ok {
		name = "UNKNOWN_STATUS"
	}
	out := fmt.Sprintf("%s (0x%x)", name, uint16(s.Code()))
	if s.DNR() {
		out += " DNR"
	}
	if s.More() {
		out += " MORE"
	}
	if crd := s.CRD(); crd != 0 {
		out += fmt.Sprintf(" CRD%d", crd)
	}
	return out
}

// Errno maps an error status to the errno Linux returns to the caller of a
// block request that completed with it (nvme_error_status followed by
// blk_status_to_errno): ENOSPC for capacity exceeded, EBADE for reservation
// conflict, ENOLINK for host path error, EOPNOTSUPP for unsupported commands,
// ENODATA for media errors, EILSEQ for protection errors, EREMOTEIO for
// target errors, EIO otherwise (also for 0x20, Namespace is Write
// Protected, which nvme_error_status does not list).
func (s Status) Errno() syscall.Errno {
	switch s.Code() {
	case StatusSuccess:
		return 0
	case StatusCapacityExceeded:
		return syscall.ENOSPC
	case StatusLBARange, StatusCommandInterrupted, StatusNSNotReady:
		return syscall.EREMOTEIO
	case StatusConnectIncompatible, StatusConnectRestartDisc, StatusInvalidOpcode, StatusInvalidField, StatusInvalidNamespace:
		return syscall.EOPNOTSUPP
	case StatusWriteFault, StatusUnrecoveredRead, StatusDeallocatedBlock, StatusAccessDenied, 0x285, 0x182:
		return syscall.ENODATA
	case 0x282, 0x283, 0x284, 0x181:
		return syscall.EILSEQ
	case StatusReservationConflict:
		return syscall.EBADE
	case StatusHostPathError:
		return syscall.ENOLINK
	}
	return syscall.EIO
}

// Disposition is what to do with a completed command, as decided by Linux's
// nvme_decide_disposition.
type Disposition uint8

// Dispositions.
const (
	// Complete hands the status (success or error) to the caller.
	Complete Disposition = iota
	// Retry resubmits on the same path after the CRD delay.
	Retry
	// Failover requeues the whole command to another path.
	Failover
	// Authenticate re-authenticates and retries.
	Authenticate
)

func (d Disposition) String() string {
	switch d {
	case Complete:
		return "complete"
	case Retry:
		return "retry"
	case Failover:
		return "failover"
	case Authenticate:
		return "authenticate"
	}
	return fmt.Sprintf("UNKNOWN_DISPOSITION_%d", uint8(d))
}

// MaxRetries is Linux's nvme_max_retries default.
const MaxRetries = 5

// DecideDisposition classifies a completion in the order Linux's
// nvme_decide_disposition does (reference §6.2): success; fail-fast
// request, DNR or retries exhausted; authentication required; a path error
// on a multipath request; otherwise retry on the same path.
func DecideDisposition(s Status, retries int, failfast, multipath bool) Disposition {
	if s.OK() {
		return Complete
	}
	if failfast || s.DNR() || retries >= MaxRetries {
		return Complete
	}
	if s.Code() == StatusAuthRequired {
		return Authenticate
	}
	if multipath && s.IsPathError() {
		return Failover
	}
	return Retry
}
