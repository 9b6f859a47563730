package nvme

import "testing"

// Limits against what Linux 7.2 showed in sysfs for nvmet over brd (NVMe
// 2.1, NSFEAT 0x32, NAWUPF = NPWG = 7, VWC 1, ONCS 0x2c, MDTS 0) and for a
// plain 1.3 controller with MDTS and a 4 KiB format.
func TestLimits(t *testing.T) {
	nvmet := &IdentifyController{Version: 0x20100, VWC: 1, ONCS: 0x2c}
	ns := &IdentifyNamespace{NSFEAT: 0x32, NAWUN: 7, NAWUPF: 7, NACWU: 7, NPWG: 7, NPWA: 7, NPDG: 7, NPDA: 7}
	l := Limits(nvmet, ns)
	want := QueueLimits{
		LogicalBlockSize: 512, PhysicalBlockSize: 4096, MinIO: 4096,
		AtomicWriteMax: 4096, AtomicWriteUnitMin: 512, AtomicWriteUnitMax: 4096,
		MaxHWSectors: ^uint32(0), MaxSectors: 8192,
		DiscardGranularity: 4096, MaxDiscardSectors: ^uint32(0), MaxDiscardSegments: 256,
		MaxWriteZeroesSectors: ^uint32(0),
	}
	if l != want {
		t.Errorf("nvmet/brd:\n got %+v\nwant %+v", l, want)
	}
	plain := &IdentifyController{Version: 0x10300, VWC: 1, MDTS: 5, ONCS: ONCSWriteZeroes}
	ns4k := &IdentifyNamespace{NSFEAT: NSFEATVWCNotPresent, DLFEAT: 0x09, NOWS: 15, NOIOB: 64}
	ns4k.LBAF[0] = LBAFormat{LBADS: 12, MS: 8}
	l = Limits(plain, ns4k)
	want = QueueLimits{
		LogicalBlockSize: 4096, PhysicalBlockSize: 4096, MinIO: 4096,
		AtomicWriteMax: 4096, AtomicWriteUnitMin: 4096, AtomicWriteUnitMax: 4096,
		MaxHWSectors: 256, MaxSectors: 256, ChunkSectors: 512,
		DiscardGranularity: 4096, MaxDiscardSegments: 256,
		MaxWriteZeroesSectors: 256, MaxWriteZeroesUnmapSectors: 256,
		WriteCache: true, MetadataBytes: 8,
	}
	if l != want {
		t.Errorf("1.3, MDTS 5, 4 KiB (VWCNP ignored below 2.0, NOWS without NSFEAT bit 4 ignored):\n got %+v\nwant %+v", l, want)
	}
}
