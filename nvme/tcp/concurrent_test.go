package tcp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/mpathfs/mpathfs/nvme"
)

// startRAM serves a RAM controller on loopback TCP and dials a queue to it.
// The controller's error (nil on a clean end) arrives on the channel after
// the queue is closed.
func startRAM(t testing.TB, cfg Config, size int, maxH2C uint32, setup func(*ramCtrl)) (*Queue, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback TCP: %v", err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		s := newRAMCtrl(c, size)
		if setup != nil {
			setup(s)
		}
		if err := s.handshake(maxH2C); err != nil {
			errc <- fmt.Errorf("handshake: %w", err)
			return
		}
		errc <- s.serve()
	}()
	cfg.Addr = ln.Addr().String()
	q, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q, errc
}

// TestConcurrent64: 64 goroutines each write and read back their own
// region with sizes covering in-capsule, a single H2CData and R2T windows
// split at MAXH2CDATA, through a queue shallower than the goroutine count
// so tag waits and recycling are exercised; with and without digests.
func TestConcurrent64(t *testing.T) {
	const (
		workers = 64
		iters   = 25
		region  = 64 << 10
	)
	sizes := []int{512, 4096, 8192, 24 << 10, 64 << 10}
	for _, digests := range []bool{false, true} {
		t.Run(fmt.Sprintf("digests=%v", digests), func(t *testing.T) {
			cfg := Config{Depth: 31, InCapsuleMax: 4096, HdrDigest: digests, DataDigest: digests}
			q, errc := startRAM(t, cfg, workers*region, 16384, func(s *ramCtrl) { s.c2hSize = 20000 })
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					wbuf := make([]byte, region)
					rbuf := make([]byte, region)
					base := uint64(w * region / ramBlock)
					for i := range iters {
						n := sizes[(w+i)%len(sizes)]
						for j := range wbuf[:n] {
							wbuf[j] = byte(w*31 + i*7 + j)
						}
						cqe, err := q.Exec(context.Background(), ptr(writeCmd(1, base, uint32(n/ramBlock))), wbuf[:n])
						if err != nil || cqe.Status != 0 {
							errs <- fmt.Errorf("worker %d write %d: %v %v", w, i, cqe.Status, err)
							return
						}
						cqe, err = q.Exec(context.Background(), ptr(readCmd(1, base, uint32(n/ramBlock))), rbuf[:n])
						if err != nil || cqe.Status != 0 {
							errs <- fmt.Errorf("worker %d read %d: %v %v", w, i, cqe.Status, err)
							return
						}
						if !bytes.Equal(rbuf[:n], wbuf[:n]) {
							errs <- fmt.Errorf("worker %d iteration %d: read back differs (%d bytes)", w, i, n)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if q.Inflight() != 0 {
				t.Errorf("Inflight = %d", q.Inflight())
			}
			q.Close()
			if err := <-errc; err != nil {
				t.Errorf("controller: %v", err)
			}
		})
	}
}

// TestConcurrentSuccessFlag: many concurrent reads completed by C2HData
// with SUCCESS only.
func TestConcurrentSuccessFlag(t *testing.T) {
	q, errc := startRAM(t, Config{Depth: 8}, 1<<20, 4096, func(s *ramCtrl) {
		s.success = true
		for i := range s.disk {
			s.disk[i] = byte(i / ramBlock)
		}
	})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			for i := range 50 {
				lba := uint64((w*50 + i) % 2040)
				cqe, err := q.Exec(context.Background(), ptr(readCmd(1, lba, 8)), buf)
				if err != nil || cqe.Status != 0 {
					t.Errorf("read: %v %v", cqe.Status, err)
					return
				}
				if buf[0] != byte(lba) || buf[4095] != byte(lba+7) {
					t.Errorf("lba %d: got %d..%d", lba, buf[0], buf[4095])
					return
				}
			}
		}()
	}
	wg.Wait()
	q.Close()
	if err := <-errc; err != nil {
		t.Errorf("controller: %v", err)
	}
}

func ptr(c nvme.Command) *nvme.Command { return &c }
