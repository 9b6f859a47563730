package mpath

import (
	"math/bits"
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
	// InFlightRW splits InFlight as the block layer's inflight file does
	// (blk_mq_in_flight_rw, by op_is_write): [0] reads and flushes, [1]
	// writes, write-zeroes and discards.
	InFlightRW [2]uint64
}

// NumLatencyBuckets is the number of latency histogram buckets: bucket i
// (i < NumLatencyBuckets-1) counts I/Os that took less than
// LatencyBucketBound(i); the last bucket counts the rest.
const NumLatencyBuckets = 26

// LatencyBucketBound is the upper bound of bucket i: 2^i microseconds.
func LatencyBucketBound(i int) time.Duration { return time.Duration(1<<i) * time.Microsecond }

// LatencyHistogram is one direction's completion-latency distribution
// (non-cumulative bucket counts) and the total time of the I/Os counted.
type LatencyHistogram struct {
	Buckets [NumLatencyBuckets]uint64
	Sum     time.Duration
}

// Count is the number of I/Os in the histogram.
func (h *LatencyHistogram) Count() uint64 {
	var n uint64
	for _, b := range h.Buckets {
		n += b
	}
	return n
}

// Latencies are the latency histograms by direction (the stat groups).
type Latencies struct {
	Read, Write, Discard, Flush LatencyHistogram
}

// PathCounters are a path's diag/ counters.
type PathCounters struct {
	FailoverCount uint64 // multipath_failover_count
	RetryCount    uint64 // command_retries_count
	ErrorCount    uint64 // command_error_count
}

// HeadCounters are a head's diag/ counters plus the write-fence statistics.
type HeadCounters struct {
	RetryCount          uint64 // retries of the head's requests (not shown)
	ErrorCount          uint64 // errors of the head's requests (not shown)
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

// rwDir is op_is_write of a stat group: 0 for reads and flushes (REQ_OP_FLUSH
// is even), 1 for writes and discards.
func rwDir(g int) int {
	if g == grpWrite || g == grpDiscard {
		return 1
	}
	return 0
}

// latencyBucket is the histogram bucket of a d-nanosecond I/O.
func latencyBucket(d int64) int {
	if d <= 0 {
		return 0
	}
	return min(bits.Len64(uint64(d)/1000), NumLatencyBuckets-1)
}

// ioStats is the lock-free accounting behind IOStat and Latencies: fixed
// arrays of atomics, nothing allocated per I/O.
type ioStats struct {
	ios      [numGroups]atomic.Uint64
	sectors  [numGroups]atomic.Uint64
	nsecs    [numGroups]atomic.Uint64
	lat      [numGroups][NumLatencyBuckets]atomic.Uint64
	inflight [2]atomic.Int64 // by rwDir
	ioTicks  atomic.Uint64   // ms
	stamp    atomic.Int64    // ms, last io_ticks update
}

func (s *ioStats) inFlight() int64 { return s.inflight[0].Load() + s.inflight[1].Load() }

// updateIOTicks mirrors the kernel's update_io_ticks at millisecond granularity, so
// the stamp is written at most once per millisecond however high the I/O rate.
func (s *ioStats) updateIOTicks(nowMs int64, end bool) {
	stamp := s.stamp.Load()
	if nowMs > stamp && s.stamp.CompareAndSwap(stamp, nowMs) && (end || s.inFlight() > 0) {
		s.ioTicks.Add(uint64(nowMs - stamp))
	}
}

func (s *ioStats) start(g int, now int64) {
	if g == grpNone {
		return
	}
	s.updateIOTicks(now/1e6, false)
	s.inflight[rwDir(g)].Add(1)
}

// cancel takes back a start of group g that never became an I/O.
func (s *ioStats) cancel(g int) {
	if g != grpNone {
		s.inflight[rwDir(g)].Add(-1)
	}
}

func (s *ioStats) done(g int, length int64, start, end int64) {
	if g == grpNone {
		return
	}
	s.updateIOTicks(end/1e6, true)
	s.inflight[rwDir(g)].Add(-1)
	s.ios[g].Add(1)
	if g != grpFlush && length > 0 {
		s.sectors[g].Add(uint64(length) >> 9)
	}
	d := end - start
	if d > 0 {
		s.nsecs[g].Add(uint64(d))
	}
	s.lat[g][latencyBucket(d)].Add(1)
}

func (s *ioStats) latencies() Latencies {
	h := func(g int) LatencyHistogram {
		var out LatencyHistogram
		for i := range out.Buckets {
			out.Buckets[i] = s.lat[g][i].Load()
		}
		out.Sum = time.Duration(s.nsecs[g].Load())
		return out
	}
	return Latencies{Read: h(grpRead), Write: h(grpWrite), Discard: h(grpDiscard), Flush: h(grpFlush)}
}

func (s *ioStats) snapshot() IOStat {
	ms := func(g int) uint64 { return s.nsecs[g].Load() / 1e6 }
	pos := func(v int64) uint64 { return uint64(max(v, 0)) }
	rw := [2]uint64{pos(s.inflight[0].Load()), pos(s.inflight[1].Load())}
	return IOStat{
		ReadIOs: s.ios[grpRead].Load(), ReadSectors: s.sectors[grpRead].Load(), ReadTicksMs: ms(grpRead),
		WriteIOs: s.ios[grpWrite].Load(), WriteSectors: s.sectors[grpWrite].Load(), WriteTicksMs: ms(grpWrite),
		InFlight:   rw[0] + rw[1],
		InFlightRW: rw,
		IOTicksMs:  s.ioTicks.Load(),
		// Since Linux 5.0 time_in_queue is the sum of the per-group times.
		TimeInQueueMs: (s.nsecs[grpRead].Load() + s.nsecs[grpWrite].Load() +
			s.nsecs[grpDiscard].Load() + s.nsecs[grpFlush].Load()) / 1e6,
		DiscardIOs: s.ios[grpDiscard].Load(), DiscardSectors: s.sectors[grpDiscard].Load(), DiscardTicksMs: ms(grpDiscard),
		FlushIOs: s.ios[grpFlush].Load(), FlushTicksMs: ms(grpFlush),
	}
}
