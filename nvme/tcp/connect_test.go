package tcp

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// fabricsConnect does by hand what nvme/host does to get an I/O queue:
// admin queue Connect (dynamic controller, KATO 0), CC.EN and CSTS.RDY,
// then an I/O queue with cfg and its Connect. Both queues are closed at
// cleanup.
func fabricsConnect(tb testing.TB, addr, nqn string, cfg Config) *Queue {
	tb.Helper()
	ctx := context.Background()
	var id [16]byte
	rand.Read(id[:])
	id[6], id[8] = id[6]&0x0f|0x40, id[8]&0x3f|0x80
	cd := fabrics.ConnectData{CNTLID: fabrics.CNTLIDDynamic, SubNQN: nqn, HostID: id,
		HostNQN: fmt.Sprintf("nqn.2014-08.org.nvmexpress:uuid:%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:])}
	connect := func(q *Queue, qid, sqsize uint16) uint16 {
		tb.Helper()
		data := make([]byte, fabrics.ConnectDataSize)
		cd.Marshal(data)
		cmd := fabrics.NewConnect(qid, sqsize, 0, false)
		cqe, err := q.Exec(ctx, &cmd, data)
		if err != nil || cqe.Status != 0 {
			tb.Fatalf("Connect qid %d: %v %v", qid, cqe.Status, err)
		}
		return uint16(cqe.DW0)
	}

	acfg := cfg
	acfg.Addr, acfg.Depth, acfg.InCapsuleMax = addr, fabrics.AdminQueueDepth, fabrics.AdminInCapsuleMax
	admin, err := Dial(ctx, acfg)
	if err != nil {
		tb.Fatalf("admin queue: %v", err)
	}
	tb.Cleanup(func() { admin.Close() })
	cd.CNTLID = connect(admin, 0, fabrics.AdminQueueDepth-1)
	set := fabrics.NewPropertySet(fabrics.RegCC, uint64(fabrics.CCEnable|fabrics.CCIOSQES|fabrics.CCIOCQES), false)
	if cqe, err := admin.Exec(ctx, &set, nil); err != nil || cqe.Status != 0 {
		tb.Fatalf("Property Set CC: %v %v", cqe.Status, err)
	}
	get := fabrics.NewPropertyGet(fabrics.RegCSTS, false)
	if cqe, err := admin.Exec(ctx, &get, nil); err != nil || cqe.Status != 0 || !fabrics.CSTS(cqe.DW0).RDY() {
		tb.Fatalf("CSTS %#x: %v %v", cqe.DW0, cqe.Status, err)
	}

	cfg.Addr = addr
	q, err := Dial(ctx, cfg)
	if err != nil {
		tb.Fatalf("I/O queue: %v", err)
	}
	tb.Cleanup(func() { q.Close() })
	connect(q, 1, 127)
	return q
}
