package sysfsview

import (
	"sync/atomic"
	"syscall"
	"time"
)

// counter is one diag/ file.
type counter struct {
	name string
	get  func() uint64
}

// diagAttrs adds diag/ counters, writable (0644, kstrtoul) when src can set them.
func (t *Tree) diagAttrs(parent *Dir, where string, src any, counters ...counter) {
	d := t.mkdir(parent, "diag")
	set, _ := src.(CounterSetter)
	for _, c := range counters {
		a := ro(c.name, func() string { return uintLine(c.get()) })
		if set != nil {
			a.Mode = ModeRW
			a.Store = func(v string) error {
				n, e := kstrtoull(v, 10)
				if e != 0 {
					return &StoreError{Value: cstr(v), Code: e}
				}
				if !set.SetCounter(c.name, n) {
					return &StoreError{Value: cstr(v), Code: syscall.EACCES}
				}
				return nil
			}
		}
		t.addAttrs(d, where+"/diag", a)
	}
}

// passthruErrLog is passthru_err_log_enabled (kstrtobool, shown as on/off).
// This host sends no passthrough commands, so it only keeps the setting.
func passthruErrLog() *Attr {
	var on atomic.Bool
	return &Attr{
		Name: "passthru_err_log_enabled", Mode: ModeRW,
		Show: func() string {
			if on.Load() {
				return "on\n"
			}
			return "off\n"
		},
		Store: func(v string) error {
			b, ok := kstrtobool(v)
			if !ok {
				return invalid(cstr(v))
			}
			on.Store(b)
			return nil
		},
	}
}

// kstrtobool is the kernel's: y/Y/1/on → true, n/N/0/off → false, by the
// first one or two characters.
func kstrtobool(s string) (bool, bool) {
	s = cstr(s)
	if s == "" {
		return false, false
	}
	switch s[0] {
	case 'y', 'Y', '1':
		return true, true
	case 'n', 'N', '0':
		return false, true
	case 'o', 'O':
		if len(s) > 1 {
			switch s[1] {
			case 'n', 'N':
				return true, true
			case 'f', 'F':
				return false, true
			}
		}
	}
	return false, false
}

func msLine(d time.Duration) string { return intLine(int64(d / time.Millisecond)) }

// msStore parses a positive number of milliseconds (kstrtouint; 0 is EINVAL).
func msStore(apply func(time.Duration) error) func(string) error {
	return func(v string) error {
		n, e := kstrtouint(v, 10)
		if e != 0 {
			return &StoreError{Value: cstr(v), Code: e}
		}
		if n == 0 {
			return invalid(cstr(v))
		}
		return apply(time.Duration(n) * time.Millisecond)
	}
}

// diskAttrs are the attributes Linux gives every NVMe gendisk, the visible
// multipath head and the hidden per-path disk alike (block/genhd.c,
// block/blk-sysfs.c, block/blk-integrity.c, drivers/nvme/host/sysfs.c),
// with the values an NVMe/TCP namespace has there. Tunables of the kernel's
// request queue are shown read-only: there is no request queue to tune.
func (t *Tree) diskAttrs(d *Dir, where string, g BlockGeometry, hidden bool, ioTimeout func() string) {
	lim := func() QueueLimits { return g.Limits() }
	b01 := func(b bool) string {
		if b {
			return "1\n"
		}
		return "0\n"
	}
	t.addAttrs(d, where,
		roConst("alignment_offset", "0\n"),
		roConst("capability", "0\n"),
		roConst("discard_alignment", "0\n"),
		roConst("events", ""),
		roConst("events_async", ""),
		roConst("events_poll_msecs", "-1\n"),
		roConst("ext_range", "256\n"),
		roConst("hidden", b01(hidden)),
		roConst("partscan", b01(!hidden)), // hidden disks are never partitioned
		roConst("range", "0\n"),
		roConst("removable", "0\n"),
		ro("ro", func() string { return b01(lim().ReadOnly) }),
		ro("nuse", func() string { return uintLine(g.NUse()) }),
		ro("metadata_bytes", func() string { return uintLine(uint64(lim().MetadataBytes)) }),
		passthruErrLog(),
	)
	t.mkdir(d, "holders")
	t.mkdir(d, "slaves")
	integ := t.mkdir(d, "integrity")
	t.addAttrs(integ, where+"/integrity",
		roConst("device_is_integrity_capable", "0\n"),
		roConst("format", "none\n"),
		roConst("protection_interval_bytes", "0\n"),
		roConst("read_verify", "0\n"),
		roConst("tag_size", "0\n"),
		roConst("write_generate", "0\n"),
	)
	u := func(name string, f func(l QueueLimits) uint64) *Attr {
		return ro(name, func() string { return uintLine(f(lim())) })
	}
	q := t.mkdir(d, "queue")
	t.addAttrs(q, where+"/queue",
		roConst("add_random", "0\n"),
		u("atomic_write_boundary_bytes", func(l QueueLimits) uint64 { return uint64(l.AtomicWriteBoundary) }),
		u("atomic_write_max_bytes", func(l QueueLimits) uint64 { return uint64(l.AtomicWriteMax) }),
		u("atomic_write_unit_max_bytes", func(l QueueLimits) uint64 { return uint64(l.AtomicWriteUnitMax) }),
		u("atomic_write_unit_min_bytes", func(l QueueLimits) uint64 { return uint64(l.AtomicWriteUnitMin) }),
		u("chunk_sectors", func(l QueueLimits) uint64 { return uint64(l.ChunkSectors) }),
		roConst("dax", "0\n"),
		u("discard_granularity", func(l QueueLimits) uint64 { return uint64(l.DiscardGranularity) }),
		u("discard_max_bytes", func(l QueueLimits) uint64 { return uint64(l.MaxDiscardSectors) << 9 }),
		u("discard_max_hw_bytes", func(l QueueLimits) uint64 { return uint64(l.MaxDiscardSectors) << 9 }),
		roConst("discard_zeroes_data", "0\n"),
		roConst("dma_alignment", "3\n"),
		ro("fua", func() string { return b01(lim().WriteCache) }),
		u("hw_sector_size", func(l QueueLimits) uint64 { return uint64(l.LogicalBlockSize) }),
		roConst("io_poll", "0\n"),
		roConst("io_poll_delay", "-1\n"),
		roConst("iostats", "1\n"),
		roConst("iostats_passthrough", "0\n"),
		u("logical_block_size", func(l QueueLimits) uint64 { return uint64(l.LogicalBlockSize) }),
		u("max_discard_segments", func(l QueueLimits) uint64 { return uint64(l.MaxDiscardSegments) }),
		u("max_hw_sectors_kb", func(l QueueLimits) uint64 { return uint64(l.MaxHWSectors) >> 1 }),
		roConst("max_integrity_segments", "0\n"),
		u("max_sectors_kb", func(l QueueLimits) uint64 { return uint64(l.MaxSectors) >> 1 }),
		roConst("max_segment_size", "4294967295\n"),
		roConst("max_segments", "65535\n"),
		roConst("max_write_streams", "0\n"),
		u("minimum_io_size", func(l QueueLimits) uint64 { return uint64(l.MinIO) }),
		roConst("nomerges", "0\n"),
		roConst("nr_zones", "0\n"),
		u("optimal_io_size", func(l QueueLimits) uint64 { return uint64(l.OptIO) }),
		u("physical_block_size", func(l QueueLimits) uint64 { return uint64(l.PhysicalBlockSize) }),
		// blk_apply_bdi_limits: twice io_opt, at least VM_READAHEAD_PAGES.
		u("read_ahead_kb", func(l QueueLimits) uint64 { return max(uint64(l.OptIO)*2/1024, 128) }),
		roConst("rotational", "0\n"),
		roConst("stable_writes", "0\n"),
		roConst("virt_boundary_mask", "0\n"),
		ro("write_cache", func() string {
			if lim().WriteCache {
				return "write back\n"
			}
			return "write through\n"
		}),
		roConst("write_same_max_bytes", "0\n"),
		roConst("write_stream_granularity", "0\n"),
		u("write_zeroes_max_bytes", func(l QueueLimits) uint64 { return uint64(l.MaxWriteZeroesSectors) << 9 }),
		u("write_zeroes_unmap_max_bytes", func(l QueueLimits) uint64 { return uint64(l.MaxWriteZeroesUnmapSectors) << 9 }),
		u("write_zeroes_unmap_max_hw_bytes", func(l QueueLimits) uint64 { return uint64(l.MaxWriteZeroesUnmapSectors) << 9 }),
		roConst("zone_append_max_bytes", "0\n"),
		roConst("zone_write_granularity", "0\n"),
		roConst("zoned", "none\n"),
	)
	if ioTimeout != nil {
		t.addAttrs(q, where+"/queue", ro("io_timeout", ioTimeout))
	}
}
