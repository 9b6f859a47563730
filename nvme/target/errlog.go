package target

import (
	"encoding/binary"
	"sync"

	"github.com/mpathfs/mpathfs/nvme"
)

// errLogSlots is nvmet's NVMET_ERROR_LOG_SLOTS (ELPE 127 = 128 entries).
const errLogSlots = 128

// errLogEntrySize is the size of one Error Information log entry.
const errLogEntrySize = 64

// errLog is a controller's Error Information log (LID 01h), kept as nvmet
// keeps it (nvmet_set_error): every failed command fills the next of 128
// slots with the running error count, its SQID, CID, status, NSID, and
// its completion gets the More bit.
type errLog struct {
	mu    sync.Mutex
	count uint64
	slot  int // the newest entry
	slots [errLogSlots]errEntry
}

type errEntry struct {
	count     uint64
	sqid, cid uint16
	status    nvme.Status
	nsid      uint32
}

// record logs a failed command and returns its status with the More bit.
func (l *errLog) record(sqid, cid uint16, st nvme.Status, nsid uint32) nvme.Status {
	l.mu.Lock()
	l.count++
	l.slot = int(l.count % errLogSlots)
	l.slots[l.slot] = errEntry{count: l.count, sqid: sqid, cid: cid, status: st &^ nvme.StatusMore, nsid: nsid}
	l.mu.Unlock()
	return st | nvme.StatusMore
}

// page returns the log newest entry first, as nvmet_execute_get_log_page_error.
func (l *errLog) page() []byte {
	b := make([]byte, errLogSlots*errLogEntrySize)
	le := binary.LittleEndian
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; i < errLogSlots; i++ {
		e := l.slots[(l.slot-i+errLogSlots)%errLogSlots]
		o := b[i*errLogEntrySize:]
		le.PutUint64(o[0:], e.count)
		le.PutUint16(o[8:], e.sqid)
		le.PutUint16(o[10:], e.cid)
		le.PutUint16(o[12:], uint16(e.status)<<1) // status field: phase tag in bit 0
		le.PutUint16(o[14:], 0xFFFF)              // parameter error location: not given
		le.PutUint32(o[24:], e.nsid)
		if e.count != 0 {
			o[29] = nvme.TrTypeTCP
		}
	}
	return b
}
