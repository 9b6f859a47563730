// Package tcp is the host side of one NVMe/TCP queue: one TCP connection,
// its ICReq/ICResp handshake, one reader goroutine and a table of in-flight
// commands indexed by tag.
//
// # Ownership
//
// The reader goroutine owns the pdu.Reader and the receive state of every
// command (bytes of C2H data received, R2T window requested). It never
// writes to the socket: an R2T is handed to the goroutine blocked in Exec
// for that command, which sends the H2CData PDUs itself from the caller's
// buffer. Sends (capsules and H2CData) are serialized by one mutex around
// the pdu.Writer, one vectored write per PDU; no payload is ever copied.
// (A flat-combining sender that batches the capsules of concurrent
// submitters into one writev was measured against this: at most 8% less
// CPU at 32 in flight against nvme/target, but it lets a sender read a
// caller's buffer after that caller's Exec may have returned on queue
// death, so the mutex stays.)
//
// # Tags and CIDs
//
// Tags 0..Depth-1 each own a preallocated request slot (completion
// channel, R2T channel, timer); free tags live in a buffered channel, so
// waiting for a tag honours ctx and costs no allocation. CID = tag |
// (genctr&0xF)<<12 as in Linux; a CQE whose CID is not in flight, or whose
// generation does not match, is a protocol violation.
//
// # Failure
//
// Any protocol violation, a C2HTermReq, a socket error, Close or a command
// timeout kills the queue: the socket is closed, Dead is closed and the
// reader goroutine — the only place that does so — fails every command
// still in flight, exactly once, with an error wrapping ErrQueueDead and
// the cause (the command that timed out gets ErrTimeout instead). The
// reader stops at the first violation and never parses a desynchronised
// stream. A data digest mismatch is not fatal: that command completes with
// nvme.StatusDataTransferError.
//
// # Lying controllers
//
// C2H data must arrive in order: each C2HData starts where the previous one
// ended (a gap, an overlap or a repeat is fatal) and never runs past the
// command's length. A read that completes with success (CapsuleResp, or
// C2HData with SUCCESS) before every byte arrived is fatal too: its buffer
// holds stale bytes, so it is failed with the queue and re-sent on another
// path (Linux completes it). Likewise a write completed with success before
// its R2Ts asked for all its data (it would be acknowledged, never written).
// An error status after partial data is the command's own error. lyingTargetMatrix in lying_test.go lists every lie
// the queue detects, one scripted case each; TestICRespChecks the setup-time
// ones.
//
// # Cancellation
//
// Exec stops waiting when its ctx is done and returns ctx.Err(). The
// command stays in flight and its tag is recycled only when its completion
// arrives or the queue dies. After Exec returned, the queue no longer
// touches the caller's buffer: further C2H data of an abandoned read is
// discarded. A write that still owes R2T data cannot be taken back without
// tearing down the connection, so a cancelled Exec first finishes that data
// phase (bounded by the controller's R2T and the command timeout) and then
// returns; the queue survives.
package tcp
