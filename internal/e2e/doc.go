// Package e2e holds the end-to-end tests of mpathfs: a real FUSE mount
// driven with real tools (dd, fio --verify, cat, echo) over real TCP to a
// real NVMe/TCP target — our own (nvme/target) and, when
// MPATHFS_KERNEL_TARGET=1, the Linux kernel target of shared/kernel-target.
// They need root and /dev/fuse and skip with the reason otherwise.
package e2e
