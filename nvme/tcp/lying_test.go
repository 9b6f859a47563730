package tcp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/pdu"
)

// lie is one scripted misbehaviour of a controller towards one command.
type lie struct {
	name  string
	write bool // the command is an 8 KiB write (else an 8 KiB read)
	// script answers the command (CID cid) as the lying controller does.
	script func(f *fakeCtrl, cid uint16)
	// wantErr is in the error of the queue's death; "" means the lie is
	// not fatal and wantStatus is the command's status.
	wantErr    string
	wantStatus nvme.Status
}

// lyingTargetMatrix is every lie a controller can tell on an established
// queue that the host detects. Each fatal one kills the queue (the command
// fails with ErrQueueDead and goes to another path); none completes a read
// with success and a buffer that is not wholly the controller's data.
// Setup-time lies (ICResp) are TestICRespChecks.
var lyingTargetMatrix = []lie{
	// Completion before all data (issue 12.2): a success with stale bytes.
	{name: "short C2HData, CapsuleResp success", script: func(f *fakeCtrl, cid uint16) {
		f.sendC2H(cid, 0, pattern(4096, 1), true, false)
		f.sendResp(cid, 0, 0)
	}, wantErr: "completed with success after 4096 of 8192"},
	{name: "CapsuleResp success without C2HData", script: func(f *fakeCtrl, cid uint16) {
		f.sendResp(cid, 0, 0)
	}, wantErr: "completed with success after 0 of 8192"},
	{name: "C2HData SUCCESS early", script: func(f *fakeCtrl, cid uint16) {
		f.sendC2H(cid, 0, pattern(1024, 1), true, true)
	}, wantErr: "completed with success after 1024 of 8192"},
	// A write completed with success before the controller asked for all
	// its data: acknowledged, never written.
	{name: "write: CapsuleResp success without R2T", write: true, script: func(f *fakeCtrl, cid uint16) {
		f.sendResp(cid, 0, 0)
	}, wantErr: "write completed with success after R2Ts for 0 of 8192"},
	{name: "write: CapsuleResp success after half the R2Ts", write: true, script: func(f *fakeCtrl, cid uint16) {
		f.sendR2T(cid, 1, 0, 4096)
		f.wantH2C()
		f.sendResp(cid, 0, 0)
	}, wantErr: "after R2Ts for 4096 of 8192"},
	{name: "write: R2T gap, then success", write: true, script: func(f *fakeCtrl, cid uint16) {
		f.sendR2T(cid, 1, 4096, 4096)
		f.wantH2C()
		f.sendResp(cid, 0, 0)
	}, wantErr: "after R2Ts for 4096 of 8192"},
	// Data placement: strictly in order, no gaps, no overlap, no excess.
	{name: "C2HData DATAO skips", script: func(f *fakeCtrl, cid uint16) {
		f.sendC2H(cid, 512, make([]byte, 512), false, false)
	}, wantErr: "DATAO 512, expected 0"},
	{name: "C2HData overlaps", script: func(f *fakeCtrl, cid uint16) {
		f.sendC2H(cid, 0, make([]byte, 1024), false, false)
		f.sendC2H(cid, 512, make([]byte, 1024), false, false)
	}, wantErr: "DATAO 512, expected 1024"},
	{name: "C2HData out of order", script: func(f *fakeCtrl, cid uint16) {
		f.sendC2H(cid, 4096, make([]byte, 4096), false, false)
		f.sendC2H(cid, 0, make([]byte, 4096), true, false)
	}, wantErr: "DATAO 4096, expected 0"},
	{name: "C2HData beyond the length", script: func(f *fakeCtrl, cid uint16) {
		f.sendC2H(cid, 0, make([]byte, 8192+512), true, false)
	}, wantErr: "exceed"},
	{name: "C2HData for a write", write: true, script: func(f *fakeCtrl, cid uint16) {
		f.sendC2H(cid, 0, make([]byte, 512), true, false)
	}, wantErr: "reads no data"},
	{name: "C2HData SUCCESS without LAST", script: func(f *fakeCtrl, cid uint16) {
		psh := make([]byte, 16)
		binary.LittleEndian.PutUint16(psh[0:], cid)
		binary.LittleEndian.PutUint32(psh[8:], 8192)
		f.sendRaw(append(rawPDU(pdu.TypeC2HData, pdu.FlagSuccess, 24, 24, 24+8192, psh), make([]byte, 8192)...))
	}, wantErr: "SUCCESS without LAST"},
	{name: "C2HData DATAL differs from the PDU", script: func(f *fakeCtrl, cid uint16) {
		psh := make([]byte, 16)
		binary.LittleEndian.PutUint16(psh[0:], cid)
		binary.LittleEndian.PutUint32(psh[8:], 8192)
		f.sendRaw(append(rawPDU(pdu.TypeC2HData, pdu.FlagLast, 24, 24, 24+4096, psh), make([]byte, 4096)...))
	}, wantErr: "DATAL 8192"},
	// Identity: every PDU names a command in flight.
	{name: "CapsuleResp for a CID not in flight", script: func(f *fakeCtrl, cid uint16) {
		f.sendResp(cid^1, 0, 0)
	}, wantErr: "not in flight"},
	{name: "CapsuleResp for an old generation", script: func(f *fakeCtrl, cid uint16) {
		f.sendResp(cid^0x1000, 0, 0)
	}, wantErr: "generation mismatch"},
	{name: "C2HData for a CID not in flight", script: func(f *fakeCtrl, cid uint16) {
		f.sendC2H(cid^1, 0, make([]byte, 512), true, false)
	}, wantErr: "not in flight"},
	{name: "CID tag out of range", script: func(f *fakeCtrl, cid uint16) {
		f.sendResp(0x0FFF, 0, 0)
	}, wantErr: "out of range"},
	// R2T.
	{name: "R2T for a read", script: func(f *fakeCtrl, cid uint16) { f.sendR2T(cid, 1, 0, 512) }, wantErr: "no data to send"},
	{name: "R2TL 0", write: true, script: func(f *fakeCtrl, cid uint16) { f.sendR2T(cid, 1, 0, 0) }, wantErr: "R2TL 0"},
	{name: "R2T beyond the length", write: true, script: func(f *fakeCtrl, cid uint16) { f.sendR2T(cid, 1, 4096, 8192) }, wantErr: "exceed"},
	{name: "R2T going back", write: true, script: func(f *fakeCtrl, cid uint16) {
		f.sendR2T(cid, 1, 0, 4096)
		f.wantH2C()
		f.sendR2T(cid, 1, 2048, 1024)
	}, wantErr: "below"},
	// Framing.
	{name: "PDU type a host never receives", script: func(f *fakeCtrl, cid uint16) {
		if err := f.w.ICResp(pdu.ICResp{MaxH2CData: 4096}); err != nil {
			f.t.Fatal(err)
		}
	}, wantErr: "unexpected PDU type ICResp"},
	{name: "unknown PDU type", script: func(f *fakeCtrl, cid uint16) {
		f.sendRaw(rawPDU(0x7F, 0, 8, 0, 8, nil))
	}, wantErr: "unknown PDU type"},
	{name: "CapsuleResp with wrong HLEN", script: func(f *fakeCtrl, cid uint16) {
		f.sendRaw(rawPDU(pdu.TypeCapsuleResp, 0, 32, 0, 32, nil))
	}, wantErr: "HLEN"},
	{name: "DDGSTF without data digest", script: func(f *fakeCtrl, cid uint16) {
		psh := make([]byte, 16)
		binary.LittleEndian.PutUint16(psh[0:], cid)
		binary.LittleEndian.PutUint32(psh[8:], 8192)
		f.sendRaw(append(rawPDU(pdu.TypeC2HData, pdu.FlagDDGST|pdu.FlagLast, 24, 24, 24+8192+4, psh), make([]byte, 8196)...))
	}, wantErr: "DDGSTF"},
	{name: "C2HTermReq", script: func(f *fakeCtrl, cid uint16) {
		if err := f.w.TermReq(pdu.TypeC2HTermReq, pdu.TermReq{FES: pdu.FESSequenceError, Header: make([]byte, 24)}); err != nil {
			f.t.Fatal(err)
		}
	}, wantErr: "C2HTermReq"},
	{name: "connection closed mid-data", script: func(f *fakeCtrl, cid uint16) {
		f.sendC2H(cid, 0, make([]byte, 4096), false, false)
		f.conn.Close()
	}, wantErr: "receive"},
	// Not fatal: the command itself fails, the queue stays.
	{name: "error status after partial data", script: func(f *fakeCtrl, cid uint16) {
		f.sendC2H(cid, 0, make([]byte, 4096), false, false)
		f.sendResp(cid, nvme.StatusDataTransferError, 0)
	}, wantStatus: nvme.StatusDataTransferError},
	{name: "write: error status before any R2T", write: true, script: func(f *fakeCtrl, cid uint16) {
		f.sendResp(cid, nvme.StatusANAInaccessible, 0)
	}, wantStatus: nvme.StatusANAInaccessible},
}

// TestLyingTarget runs the lying-target matrix: for each lie, an 8 KiB read
// (or write) whose buffer starts as 0xEE; a fatal lie must fail the command
// with ErrQueueDead and a *pdu.ProtocolError or the cause named, never
// complete it with success.
func TestLyingTarget(t *testing.T) {
	for _, tt := range lyingTargetMatrix {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCtrl(t)
			q := connect(t, f, Config{})
			cmd := readCmd(1, 0, 16)
			if tt.write {
				cmd = writeCmd(1, 0, 16)
			}
			buf := bytes.Repeat([]byte{0xEE}, 8192)
			ch := goExec(context.Background(), q, cmd, buf)
			c, _ := f.wantCmd()
			tt.script(f, c.CID)
			r := await(t, ch)
			if tt.wantErr == "" {
				if r.err != nil || r.cqe.Status != tt.wantStatus {
					t.Fatalf("Exec = status %#x, %v; want status %#x", uint16(r.cqe.Status), r.err, uint16(tt.wantStatus))
				}
				select {
				case <-q.Dead():
					t.Fatalf("queue died: %v", q.Err())
				default:
				}
				return
			}
			if !isQueueDead(r.err) || !strings.Contains(r.err.Error(), tt.wantErr) {
				t.Fatalf("Exec = status %#x, %v; want queue dead with %q", uint16(r.cqe.Status), r.err, tt.wantErr)
			}
			var pe *pdu.ProtocolError
			if strings.Contains(tt.name, "closed") || strings.Contains(tt.name, "TermReq") {
				return
			}
			if !errors.As(q.Err(), &pe) {
				t.Errorf("Err() = %v, want a *pdu.ProtocolError", q.Err())
			}
		})
	}
}
