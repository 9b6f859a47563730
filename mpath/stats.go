package mpath

import (
	"sync/atomic"
	"time"
)

// IOStat holds the fields of /sys/block/*/stat (the 17-field form; merges are 0).
// Sectors are 512 bytes; ticks are milliseconds.
type IOStat struct {
	ReadIOs, ReadSectors, ReadTicksMs          uint64
	WriteIOs, WriteSectors, WriteTicksMs       uint64
	InFlight, IOTicksMs, TimeInQueueMs         uint64
	DiscardIOs, DiscardSectors, DiscardTicksMs uint64
	FlushIOs, FlushTicksMs                     uint64
}

// PathCounters are a path's diag/ counters.
type PathCounters struct {
	FailoverCount uint64 // multipath_failover_count
	RetryCount    uint64 // command_retry_count
	ErrorCount    uint64 // command_error_count
}

// HeadCounters are a head's diag/ counters plus the write-fence statistics.
type HeadCounters struct {
	RetryCount          uint64 // command_retry_count
	ErrorCount          uint64 // command_error_count
	RequeueNoUsablePath uint64 // io_requeue_no_usable_path_count
	FailNoAvailablePath uint64 // io_fail_no_available_path_count
	FenceWaits          uint64 // failed-over in-doubt writes that waited for Fencer.Fence
	FenceWaitTotal      time.Duration
}

// stat groups, as the kernel's STAT_READ/WRITE/DISCARD/FLUSH.
const (
	grpRead = iota
	grpWrite
	grpDiscard
	grpFlush
	numGroups
	grpNone = -1
)

func statGroup(o Op) int {
	switch o {
	case OpRead:
		return grpRead
	case OpWrite, OpWriteZeroes:
		return grpWrite
	case OpDiscard:
		return grpDiscard
	case OpFlush:
		return grpFlush
	}
	return grpNone
}

// ioStats is the lock-free accounting behind IOStat.
type ioStats struct {
	ios      [numGroups]atomic.Uint64
	sectors  [numGroups]atomic.Uint64
	nsecs    [numGroups]atomic.Uint64
	inflight atomic.Int64
	ioTicks  atomic.Uint64 // ms
	stamp    atomic.Int64  // ms, last io_ticks update
}

// updateIOTicks mirrors the kernel's update_io_ticks at millisecond granularity, so
// the stamp is written at most once per millisecond however high the I/O rate.
func (s *ioStats) updateIOTicks(nowMs int64, end bool) {
	stamp := s.stamp.Load()
	if nowMs > stamp && s.stamp.CompareAndSwap(stamp, nowMs) && (end || s.inflight.Load() > 0) {
		s.ioTicks.Add(uint64(nowMs - stamp))
	}
}

func (s *ioStats) start(g int, now int64) {
	if g == grpNone {
		return
	}
	s.updateIOTicks(now/1e6, false)
	s.inflight.Add(1)
}

func (s *ioStats) done(g int, length int64, start, end int64) {
	if g == grpNone {
		return
	}
	s.updateIOTicks(end/1e6, true)
	s.inflight.Add(-1)
	s.ios[g].Add(1)
	if g != grpFlush && length > 0 {
		s.sectors[g].Add(uint64(length) >> 9)
	}
	if d := end - start; d > 0 {
		s.nsecs[g].Add(uint64(d))
	}
}

func (s *ioStats) snapshot() IOStat {
	ms := func(g int) uint64 { return s.nsecs[g].Load() / 1e6 }
	inflight := s.inflight.Load()
	if inflight < 0 {
		inflight = 0
	}
	return IOStat{
		ReadIOs: s.ios[grpRead].Load(), ReadSectors: s.sectors[grpRead].Load(), ReadTicksMs: ms(grpRead),
		WriteIOs: s.ios[grpWrite].Load(), WriteSectors: s.sectors[grpWrite].Load(), WriteTicksMs: ms(grpWrite),
		InFlight:  uint64(inflight),
		IOTicksMs: s.ioTicks.Load(),
		// Since Linux 5.0 time_in_queue is the sum of the per-group times.
		TimeInQueueMs: (s.nsecs[grpRead].Load() + s.nsecs[grpWrite].Load() +
			s.nsecs[grpDiscard].Load() + s.nsecs[grpFlush].Load()) / 1e6,
		DiscardIOs: s.ios[grpDiscard].Load(), DiscardSectors: s.sectors[grpDiscard].Load(), DiscardTicksMs: ms(grpDiscard),
		FlushIOs: s.ios[grpFlush].Load(), FlushTicksMs: ms(grpFlush),
	}
}
