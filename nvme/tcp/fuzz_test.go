package tcp

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

// Commands the fuzz harness puts in flight, in this order on a fresh queue,
// so their CIDs are fuzzCIDRead, fuzzCIDWrite, fuzzCIDFlush.
const (
	fuzzCIDRead  = 0x1000
	fuzzCIDWrite = 0x1001
	fuzzCIDFlush = 0x1002
	fuzzReadLen  = 4096
	fuzzWriteLen = 8192
)

// FuzzQueueReader feeds arbitrary bytes as the controller's stream after a
// valid ICResp, with a read (C2H), an R2T write and a no-data command in
// flight. The queue must never panic, never hang, and every command must
// complete exactly once (by a completion or by the queue dying at EOF).
// The first input byte selects the digests (bit 0 header, bit 1 data).
func FuzzQueueReader(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		cfg := Config{Depth: 4, HdrDigest: in[0]&1 != 0, DataDigest: in[0]&2 != 0, Addr: "pipe"}
		stream := in[1:]
		// A hang anywhere (handshake, completion, Close) is the failure
		// this target looks for: crash with every goroutine's stack.
		wd := time.AfterFunc(10*time.Second, func() {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			panic("FuzzQueueReader: hang:\n" + string(buf))
		})
		defer wd.Stop()

		host, ctrl := net.Pipe()
		defer ctrl.Close()
		hs := make(chan error, 1)
		cr := pdu.NewReader(ctrl, 1<<20)
		go func() {
			if _, err := cr.Next(); err != nil {
				hs <- err
				return
			}
			hs <- pdu.NewWriter(ctrl).ICResp(goodICResp(cfg))
		}()
		q, err := newQueue(context.Background(), host, cfg)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if err := <-hs; err != nil {
			t.Fatalf("controller handshake: %v", err)
		}
		cr.SetDigests(goodICResp(cfg).Digest)

		// Submit one command at a time and wait until its capsule was read
		// so the CIDs are deterministic.
		results := make([]<-chan execResult, 0, 3)
		readBuf := make([]byte, fuzzReadLen)
		for _, sub := range []struct {
			cmd  nvme.Command
			data []byte
		}{
			{readCmd(1, 0, fuzzReadLen/512), readBuf},
			{writeCmd(1, 0, fuzzWriteLen/512), make([]byte, fuzzWriteLen)},
			{nvme.Command{Opcode: uint8(nvme.IOFlush)}, nil},
		} {
			results = append(results, goExec(context.Background(), q, sub.cmd, sub.data))
			if _, err := cr.Next(); err != nil {
				t.Fatalf("controller: reading capsule: %v", err)
			}
		}
		// From now on the host may write H2CData at any time: drain it.
		go io.Copy(io.Discard, ctrl)
		go func() {
			ctrl.Write(stream)
			ctrl.Close()
		}()
		for _, ch := range results {
			<-ch // exactly one result per command (buffered, sent once)
		}
		q.Close()
		if n := q.Inflight(); n != 0 {
			t.Fatalf("Inflight = %d after Close", n)
		}
	})
}

// fuzzSeeds builds well-formed controller streams for the harness.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	for _, dg := range []pdu.DigestFlags{0, pdu.DigestHeader | pdu.DigestData} {
		build := func(fn func(w *pdu.Writer)) {
			var b bytes.Buffer
			b.WriteByte(byte(dg))
			w := pdu.NewWriter(&b)
			w.SetDigests(dg)
			fn(w)
			seeds = append(seeds, b.Bytes())
		}
		data := make([]byte, fuzzReadLen)
		build(func(w *pdu.Writer) { // everything completes
			w.C2HData(pdu.Data{CCCID: fuzzCIDRead}, data[:1000], false, false)
			w.C2HData(pdu.Data{CCCID: fuzzCIDRead, Offset: 1000}, data[1000:], true, false)
			w.CapsuleResp(&nvme.Completion{CID: fuzzCIDRead})
			w.R2T(pdu.R2T{CCCID: fuzzCIDWrite, TTAG: 3, Length: fuzzWriteLen})
			w.CapsuleResp(&nvme.Completion{CID: fuzzCIDWrite})
			w.CapsuleResp(&nvme.Completion{CID: fuzzCIDFlush, Status: nvme.StatusInternalError})
		})
		build(func(w *pdu.Writer) { // SUCCESS flag, out of order
			w.CapsuleResp(&nvme.Completion{CID: fuzzCIDFlush})
			w.C2HData(pdu.Data{CCCID: fuzzCIDRead}, data, true, true)
			w.R2T(pdu.R2T{CCCID: fuzzCIDWrite, Offset: 4096, Length: 4096})
		})
		build(func(w *pdu.Writer) { // protocol errors
			w.CapsuleResp(&nvme.Completion{CID: 0x2003})
		})
		build(func(w *pdu.Writer) {
			w.TermReq(pdu.TypeC2HTermReq, pdu.TermReq{FES: pdu.FESSequenceError, Header: make([]byte, 24)})
		})
		build(func(w *pdu.Writer) {
			w.R2T(pdu.R2T{CCCID: fuzzCIDWrite, Length: fuzzWriteLen / 2})
			w.R2T(pdu.R2T{CCCID: fuzzCIDWrite, Offset: fuzzWriteLen / 2, Length: fuzzWriteLen / 2})
		})
	}
	seeds = append(seeds, []byte{0, 7, 0x0c, 24, 24, 0xff, 0xff, 0xff, 0x7f}, []byte{3})
	return seeds
}
