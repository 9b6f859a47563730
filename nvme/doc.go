// Package nvme is the NVMe vocabulary shared by the host and the target:
// submission and completion queue entries, status codes and their Linux
// classification, opcodes, and the data structures returned by Identify and
// Get Log Page (controller, namespace, namespace identification descriptors,
// ANA log, discovery log).
//
// Everything here is pure data and codec: no sockets, goroutines, clocks or
// logging. All multi-byte fields are little-endian. Offsets follow
// ../shared/docs/nvme-tcp-reference.md, which cites the NVMe base and TCP
// transport specifications and the Linux and SPDK sources.
package nvme
