// Package fabrics is the NVMe over Fabrics vocabulary shared by the host and
// the target: the Connect command and its data, Property Get/Set and the
// controller registers they reach (CAP, VS, CC, CSTS), the kernel's
// /dev/nvme-fabrics option-string grammar with the reconnect and duplicate
// policy those options drive, host identity (host NQN and host ID) helpers,
// and the Transport a host transport implements (nvmf_transport_ops).
//
// Everything here is pure data, codec and interfaces: no sockets or
// goroutines. Offsets follow the reference document §3 and §7.
package fabrics
