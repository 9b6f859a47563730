package nvme

import "math/bits"

// QueueLimits are the block-device limits Linux gives an NVMe namespace over
// a fabrics transport (TCP), derived from Identify Controller and Identify
// Namespace as drivers/nvme/host/core.c does (nvme_update_disk_info,
// nvme_configure_atomic_write, nvme_config_discard, nvme_set_ctrl_limits)
// and then validated as block/blk-settings.c does (blk_validate_limits,
// blk_atomic_writes_update_limits). Sizes are in bytes, *Sectors in 512-byte
// sectors; they are what queue/ in sysfs shows.
type QueueLimits struct {
	LogicalBlockSize  uint32
	PhysicalBlockSize uint32 // min(preferred write granularity, atomic write unit)
	MinIO, OptIO      uint32 // io_min (NPWG), io_opt (NOWS)

	AtomicWriteMax, AtomicWriteUnitMin, AtomicWriteUnitMax, AtomicWriteBoundary uint32

	MaxHWSectors, MaxSectors uint32
	ChunkSectors             uint32 // NOIOB

	DiscardGranularity    uint32
	MaxDiscardSectors     uint32 // 0: no Dataset Management
	MaxDiscardSegments    uint32
	MaxWriteZeroesSectors uint32 // 0: no Write Zeroes
	// MaxWriteZeroesUnmapSectors is set when Write Zeroes deallocates and
	// deallocated blocks read as zeroes (NVME_NS_DEAC).
	MaxWriteZeroesUnmapSectors uint32

	WriteCache    bool   // VWC present: "write back" and FUA
	ReadOnly      bool   // NSATTR write protected
	MetadataBytes uint32 // metadata per block of the LBA format in use
}

// NSFEAT bits.
const (
	NSFEATAtomics       = 1 << 1 // NAWUN, NAWUPF, NACWU, NABSN, NABO, NABSPF valid
	NSFEATOptPerf       = 1 << 4 // NPWG, NPWA, NPDG, NPDA, NOWS valid
	NSFEATVWCNotPresent = 1 << 5 // no volatile write cache for this namespace
)

// Linux constants behind QueueLimits.
const (
	ctrlPageShift      = 12      // NVME_CTRL_PAGE_SHIFT
	dsmMaxRanges       = 256     // NVME_DSM_MAX_RANGES
	defMaxSectorsCap   = 4 << 20 // BLK_DEF_MAX_SECTORS_CAP, in bytes
	maxSectorsUnlimted = ^uint32(0)
)

// Limits derives the queue limits of namespace n on controller c.
func Limits(c *IdentifyController, n *IdentifyNamespace) QueueLimits {
	bs := n.BlockSize()
	if bs < 512 || bs > 64<<10 {
		bs = 512 // blk_validate_block_size failed: the kernel falls back to 512
	}
	var l QueueLimits
	l.LogicalBlockSize = bs
	l.MetadataBytes = uint32(n.LBAF[n.FormatIndex()].MS)
	l.ReadOnly = n.NSATTR&1 != 0

	// nvme_set_ctrl_limits: MDTS in units of the controller page (4 KiB).
	l.MaxHWSectors = maxSectorsUnlimted
	if c.MDTS != 0 && int(c.MDTS)+ctrlPageShift-9 < 32 {
		l.MaxHWSectors = 1 << (uint(c.MDTS) + ctrlPageShift - 9)
	}
	sectorsPerBlock := bs >> 9
	l.MaxHWSectors -= l.MaxHWSectors % sectorsPerBlock

	// nvme_configure_atomic_write: per namespace when NSFEAT bit 1 and
	// NAWUPF say so, else the controller's AWUPF; not at all with NABO.
	atomic := bs
	if n.NABO == 0 {
		var boundary uint32
		if n.NSFEAT&NSFEATAtomics != 0 && n.NAWUPF != 0 {
			atomic = (1 + uint32(n.NAWUPF)) * bs
			if n.NABSPF != 0 {
				boundary = (1 + uint32(n.NABSPF)) * bs
			}
		} else {
			atomic = (1 + uint32(c.AWUPF)) * bs
		}
		// blk_atomic_writes_update_limits.
		unitLimit := uint64(l.MaxHWSectors) << 9
		if segs := uint64(0xffff) << 12; segs < unitLimit {
			unitLimit = segs
		}
		l.AtomicWriteMax = uint32(min(uint64(atomic), uint64(l.MaxHWSectors)<<9))
		l.AtomicWriteUnitMin = uint32(min(uint64(bs), unitLimit))
		l.AtomicWriteUnitMax = uint32(min(uint64(1)<<(bits.Len32(atomic)-1), unitLimit))
		l.AtomicWriteBoundary = boundary
	}

	// nvme_update_disk_info.
	phys := bs
	if n.NSFEAT&NSFEATOptPerf != 0 {
		phys = bs * (1 + uint32(n.NPWG))
		if n.NOWS != 0 {
			l.OptIO = bs * (1 + uint32(n.NOWS))
		}
	}
	l.PhysicalBlockSize = min(phys, atomic)
	l.MinIO = phys
	if n.NOIOB != 0 && n.NOIOB&(n.NOIOB-1) == 0 {
		l.ChunkSectors = uint32(n.NOIOB) * sectorsPerBlock
	}

	// blk_validate_limits: max_sectors from io_opt, io_min or the cap.
	cap := uint32(defMaxSectorsCap >> 9)
	switch {
	case l.OptIO > defMaxSectorsCap:
		cap = l.OptIO >> 9
	case l.MinIO > defMaxSectorsCap:
		cap = l.MinIO >> 9
	}
	l.MaxSectors = min(l.MaxHWSectors, cap)
	l.MaxSectors -= l.MaxSectors % sectorsPerBlock

	// nvme_config_discard, then the granularity is at least a physical block.
	if c.ONCS&ONCSDSM != 0 {
		l.MaxDiscardSectors = maxSectorsUnlimted
		l.MaxDiscardSegments = dsmMaxRanges
	} else {
		l.MaxDiscardSegments = dsmMaxRanges
	}
	l.DiscardGranularity = max(bs, l.PhysicalBlockSize)

	// nvme_init_non_mdts_limits: Write Zeroes up to the transfer limit.
	if c.ONCS&ONCSWriteZeroes != 0 {
		l.MaxWriteZeroesSectors = l.MaxHWSectors
		if n.DLFEAT&0x7 == 0x1 && n.DLFEAT&(1<<3) != 0 {
			l.MaxWriteZeroesUnmapSectors = l.MaxWriteZeroesSectors
		}
	}
	// A volatile write cache unless the namespace says it has none
	// (nvme_update_ns_info_block). Linux reads that bit (VWCNP, NSFEAT
	// bit 5) from the I/O Command Set Independent Identify Namespace
	// (CNS 08h), which it asks only NVMe 2.0+ controllers for; nvmet sets
	// the same bit in CNS 00h's NSFEAT, which is what we read.
	l.WriteCache = c.VWC&1 != 0 && !(c.Version >= 0x20000 && n.NSFEAT&NSFEATVWCNotPresent != 0)
	return l
}
