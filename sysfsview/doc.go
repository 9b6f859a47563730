// Package sysfsview is the kernel-compatible NVMe attribute tree as data.
//
// Every attribute is a declarative row (Attr: name, mode, show, store,
// visibility), grouped in directories (Dir) with relative symlinks (Symlink),
// so the tree can be tested without mounting and package fusefs only serves it.
// The layout below the root mirrors sysfs:
//
//	sys/class/nvme-subsystem/nvme-subsysN/  subsysnqn model serial firmware_rev subsystype iopolicy, links nvmeX and nvmeNnM
//	sys/class/nvme/nvmeX/                    state transport address ... diag/, triggers, links to its paths
//	sys/block/nvmeNnM/                       size nsid wwid uuid nguid eui csi delayed_removal_secs stat multipath/ diag/
//	sys/block/nvmeNcXnM/                     ana_state ana_grpid queue_depth numa_nodes nsid size stat ... diag/ device
//
// Names, value formats and accepted writes are Linux's (drivers/nvme/host
// sysfs.c and multipath.c, block/genhd.c): one value plus "\n", printk's %pU,
// %ph and %pbl, sysfs_streq and kstrto* parsing, and the kernel's errnos.
// Objects are added and removed at runtime with Tree.Add*/Remove*; a rejected
// write is logged once, naming the attribute and the value.
package sysfsview
