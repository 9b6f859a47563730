// Package host is the NVMe-over-Fabrics controller core of the mpathfs
// initiator: what Linux splits between drivers/nvme/host/core.c and
// fabrics.c, on top of one transport queue per connection (nvme/tcp).
//
// A Controller is one path to a subsystem. Connect runs the Linux host
// sequence (reference §3.3, §4.6): admin queue, Connect (CNTLID 0xFFFF,
// KATO), CAP, CC, CC.EN, CSTS.RDY, VS, Identify Controller with Linux's
// checks, ANA log (CMIC bit 3), Number of Queues, one TCP connection per
// I/O queue, Async Event Configuration, namespace scan; then the
// controller is LIVE and keeps alive (every KATO/2), keeps one AER
// outstanding and reacts to ANA-change and namespace-change AENs.
//
// Lifecycle: one state machine (changeState) with the kernel's states and
// transition table. A dead queue (EOF, protocol error, TermReq), a
// keep-alive timeout or a command timeout starts error recovery: LIVE ->
// RESETTING, every queue closed and every in-flight command failed once
// with *AbortedError (0x371), -> CONNECTING, then a full reconnect (a new
// controller on the target) every reconnect_delay until ctrl_loss_tmo
// (negative: forever), after which the controller is deleted and DEAD.
// While not LIVE, Exec fails at once with nvme.StatusHostPathError (0x370);
// queueing is the multipath layer's job, guided by Available().
//
// Discover and DiscoverPersistent read discovery logs.
//
// A controller may lie. What it says at setup is checked as Linux checks it
// (TestIdentifyChecks, TestEnableFailures); the namespace scan stops at NN,
// at 4096 namespaces and on cancellation, and skips geometry the block layer
// refuses (lying_test.go); lines a controller can make the host repeat are
// rate-limited (internal/ratelog). Transport-level lies are nvme/tcp's
// lyingTargetMatrix.
package host
