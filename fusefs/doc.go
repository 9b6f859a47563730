// Package fusefs serves mpathfs over FUSE (go-fuse v2 fs nodes): one file per
// multipath namespace at the mount root, and the sysfsview attribute tree
// under sys/.
//
// Namespace files take reads and writes at any offset and length over a
// block-aligned BlockDevice: sub-block edges are read-modify-written under
// striped per-block locks, the aligned middle goes to the device straight
// from go-fuse's request buffer, lock-free unless an RMW of one of its blocks
// is in flight (then it waits for it, so the two writes land in a serial
// order). fsync is Flush, fallocate PUNCH_HOLE is
// Deallocate and ZERO_RANGE is WriteZeroes; O_DIRECT opens are
// FOPEN_DIRECT_IO with parallel direct writes.
//
// Attribute files are opened FOPEN_DIRECT_IO with a per-open snapshot of the
// value; each write(2) calls the row's Store. Directories are looked up and
// listed live with zero kernel timeouts, so objects added to or removed from
// the tree, and namespace files added or removed on the Root, show at once.
//
// Errors become errnos in one function, ToErrno.
package fusefs
