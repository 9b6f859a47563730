// Package fabrics is the NVMe over Fabrics vocabulary shared by the host and
// the target: the Connect command and its data, Property Get/Set and the
// controller registers they reach (CAP, VS, CC, CSTS), the kernel's
// /dev/nvme-fabrics option-string grammar, and host identity (host NQN and
// host ID) helpers.
//
// Everything here is pure data and codec: no sockets, goroutines, clocks or
// logging. Offsets follow the reference document §3 and §7.
package fabrics
