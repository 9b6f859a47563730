package fusefs

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/internal/hugemem"
	"github.com/mpathfs/mpathfs/internal/plug"
)

// AsyncBlockDevice is the optional BlockDevice capability behind the
// asynchronous data path: an I/O started without a goroutine waiting for
// it.
type AsyncBlockDevice interface {
	// StartIO starts a read into p (or a write of p) at off, both block
	// aligned and within Size, and returns at once; done.Complete follows
	// exactly once with what ReadAt or WriteAt would have returned, and p
	// is not touched after it. It reports false, having started nothing,
	// when the I/O cannot start at once; the caller then uses ReadAt or
	// WriteAt. ctx bounds the waits of a started I/O that must be retried
	// or failed over. pl, if not nil, lets the device hold the I/O back
	// until pl.Unplug, to send it with others (see package plug).
	StartIO(ctx context.Context, write bool, p []byte, off int64, done Completer, pl *plug.Plug) bool
}

// Completer receives the result of an AsyncBlockDevice I/O: Complete is
// called exactly once and must not block. It is an alias, so that devices
// can implement AsyncBlockDevice without importing this package.
type Completer = interface{ Complete(err error) }

// FUSE opcodes the device loop looks at (linux/fuse.h).
const (
	opLookup    = 1
	opSymlink   = 6
	opMknod     = 8
	opMkdir     = 9
	opLink      = 13
	opRead      = 15
	opWrite     = 16
	opCreate    = 35
	opInterrupt = 36
	opTmpfile   = 51
)

// Wire sizes (linux/fuse.h).
const (
	inHeaderSize  = int(unsafe.Sizeof(fuse.InHeader{}))
	outHeaderSize = int(unsafe.Sizeof(fuse.OutHeader{}))
	readInSize    = int(unsafe.Sizeof(fuse.ReadIn{}))
	writeInSize   = int(unsafe.Sizeof(fuse.WriteIn{}))
	writeOutSize  = int(unsafe.Sizeof(fuse.WriteOut{}))
	// entryIno is where fuse_entry_out.attr.ino sits in an entry reply:
	// the header, then nodeid, generation, entry_valid, attr_valid and
	// their two nanosecond fields.
	entryNodeID = outHeaderSize
	entryIno    = outHeaderSize + 40
)

// smallIO is the largest READ or WRITE served from a request's own
// buffer; larger ones keep the /dev/fuse read buffer they arrived in.
const smallIO = 64 << 10

// devLoop serves /dev/fuse itself: namespace READs and WRITEs that a
// device can start asynchronously are answered from the device's
// completion (no goroutine waits for them); every other request goes to
// go-fuse's protocol server on a goroutine of its own. It is the mount's
// data path unless Options.GoFuseLoop is set.
type devLoop struct {
	fd  *os.File
	raw int
	// nb is a clone of fd (FUSE_DEV_IOC_CLONE) opened O_NONBLOCK: a reader
	// with commands held takes a pending request through it without
	// blocking. A request is answered on the descriptor it was read from
	// (the kernel keeps its processing list per descriptor).
	nb      int
	ps      *fuse.ProtocolServer
	root    *Root
	log     hclog.Logger
	bufSize int

	ctx    context.Context
	cancel context.CancelFunc

	// big holds the /dev/fuse read buffers (*[]byte of bufSize), each on
	// a huge page of its own (hugemem.Buf): a 1 MiB I/O is copied in or
	// out of it by FUSE and by the socket, page by page.
	big  sync.Pool
	reqs sync.Pool // *fastReq

	// nodes maps the kernel's node IDs of namespace files to their
	// blockIO, learnt from go-fuse's entry replies before the kernel sees
	// them. Copy on write: read on every READ and WRITE, written on a
	// lookup that changes it.
	nodes   atomic.Pointer[map[uint64]*blockIO]
	nodesMu sync.Mutex

	// plug holds the commands of I/Os started while more requests are
	// pending on /dev/fuse, so that they leave in one socket write per
	// queue; a reader whose non-blocking read finds nothing pending
	// unplugs, whichever reader held them. busy counts started I/Os not
	// yet completed: the first I/O of an idle mount is never held.
	plug plug.Plug
	busy atomic.Int32

	active  sync.WaitGroup // requests not yet answered
	readers sync.WaitGroup
	done    chan struct{}
}

// fastReq is one READ or WRITE on the asynchronous path.
type fastReq struct {
	l      *devLoop
	io     *blockIO
	unique uint64
	fd     int // the descriptor the request was read from
	write  bool
	off    int64
	data   []byte  // the I/O's bytes, within buf
	buf    []byte  // reply: out header, then read data
	big    *[]byte // the read buffer buf lies in, if not small
	stripe [3]int  // aligned-write stripes held (blockIO.enter)
	hdr    [outHeaderSize + writeOutSize]byte
	small  [outHeaderSize + smallIO]byte
}

func newDevLoop(fd *os.File, nb int, ps *fuse.ProtocolServer, root *Root, maxWrite int, log hclog.Logger) *devLoop {
	l := &devLoop{fd: fd, raw: int(fd.Fd()), nb: nb, ps: ps, root: root, log: log, done: make(chan struct{})}
	// The kernel wants room for the largest WRITE (headers + max_write)
	// and at least FUSE_MIN_READ_BUFFER.
	l.bufSize = max(maxWrite+inHeaderSize+writeInSize+4096, 8192)
	l.big.New = func() any { return hugemem.Buf(l.bufSize) }
	l.reqs.New = func() any { return &fastReq{l: l} }
	l.ctx, l.cancel = context.WithCancel(context.Background())
	empty := map[uint64]*blockIO{}
	l.nodes.Store(&empty)
	return l
}

// start runs n reader goroutines.
func (l *devLoop) start(n int) {
	l.readers.Add(n)
	for range n {
		go l.read()
	}
	go func() {
		l.readers.Wait()
		l.cancel() // waits of started I/O end: nobody is listening
		l.active.Wait()
		_ = syscall.Close(l.nb)
		_ = l.fd.Close()
		close(l.done)
	}()
}

// read is one reader goroutine: it reads requests until the connection
// ends (ENODEV at unmount or abort).
func (l *devLoop) read() {
	defer l.readers.Done()
	defer l.plug.Unplug()
	bp := l.big.Get().(*[]byte)
	for {
		// Held commands go out before this reader may block: it takes a
		// pending request without blocking, and unplugs when there is
		// none.
		fd := l.raw
		var n int
		var err error
		if l.plug.Held() {
			fd = l.nb
			n, err = syscall.Read(fd, *bp)
			if err == syscall.EAGAIN {
				l.plug.Unplug()
				fd = l.raw
				n, err = syscall.Read(fd, *bp)
			}
		} else {
			n, err = syscall.Read(fd, *bp)
		}
		switch {
		case err == nil:
		case errors.Is(err, syscall.EINTR), errors.Is(err, syscall.EAGAIN):
			continue
		case errors.Is(err, syscall.ENOENT): // the request was interrupted meanwhile
			continue
		case errors.Is(err, syscall.ENODEV):
			l.big.Put(bp)
			return
		default:
			l.log.Error("read /dev/fuse", "error", err)
			l.big.Put(bp)
			return
		}
		if n < inHeaderSize {
			l.log.Error("short FUSE request", "bytes", n)
			continue
		}
		if started, kept := l.fast(bp, n, fd); started {
			if kept {
				bp = l.big.Get().(*[]byte)
			}
			continue
		}
		// Everything else, INTERRUPT included: go-fuse cancels a request
		// of its own; an interrupt of a READ or WRITE on the asynchronous
		// path is dropped (those I/Os are not cancelled, as a block
		// device's queued bio is not).
		l.active.Add(1)
		go l.slow(bp, n, fd)
		bp = l.big.Get().(*[]byte)
	}
}

// slow answers one request through go-fuse's protocol server.
func (l *devLoop) slow(bp *[]byte, n, fd int) {
	defer l.active.Done()
	in := *bp
	h := *(*fuse.InHeader)(unsafe.Pointer(&in[0]))
	out := l.big.Get().(*[]byte)
	defer l.big.Put(out)
	w, st := l.ps.HandleRequest([][]byte{in[:n]}, [][]byte{*out})
	l.big.Put(bp)
	if !st.Ok() {
		l.log.Error("FUSE request failed in go-fuse", "opcode", h.Opcode, "status", st)
		w = l.errorReply(*out, h.Unique, syscall.EIO)
	}
	if w == 0 || h.Opcode == opInterrupt {
		// No reply (FORGET). An INTERRUPT's only reply is EAGAIN, for a
		// request go-fuse does not know (yet, or at all: the asynchronous
		// path's): the kernel would re-send the interrupt at once, for as
		// long as the request lasts. Without it the request just runs on.
		return
	}
	reply := (*out)[:w]
	switch h.Opcode {
	case opLookup, opSymlink, opMknod, opMkdir, opLink, opCreate, opTmpfile:
		l.learn(reply)
	}
	l.writeReply(fd, reply)
}

func (l *devLoop) errorReply(b []byte, unique uint64, errno syscall.Errno) int {
	oh := (*fuse.OutHeader)(unsafe.Pointer(&b[0]))
	*oh = fuse.OutHeader{Length: uint32(outHeaderSize), Status: -int32(errno), Unique: unique}
	return outHeaderSize
}

// writeReply sends one reply; ENOENT means the kernel no longer waits for
// it (interrupted, or the connection ended).
func (l *devLoop) writeReply(fd int, b []byte) {
	for {
		_, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil && err != syscall.ENOENT && err != syscall.ENODEV {
			l.log.Error("write /dev/fuse", "error", err)
		}
		return
	}
}

// learn records the node ID of an entry reply: a namespace file's maps to
// its blockIO, anything else is dropped from the map.
func (l *devLoop) learn(reply []byte) {
	oh := (*fuse.OutHeader)(unsafe.Pointer(&reply[0]))
	if oh.Status != 0 || len(reply) < entryIno+8 {
		return
	}
	id := *(*uint64)(unsafe.Pointer(&reply[entryNodeID]))
	ino := *(*uint64)(unsafe.Pointer(&reply[entryIno]))
	io := l.root.blockIOByIno(ino)
	l.nodesMu.Lock()
	defer l.nodesMu.Unlock()
	cur := *l.nodes.Load()
	if cur[id] == io {
		return
	}
	next := make(map[uint64]*blockIO, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	if io != nil {
		next[id] = io
	} else {
		delete(next, id)
	}
	l.nodes.Store(&next)
}

// fast starts a namespace READ or WRITE asynchronously; it reports false
// for anything it leaves to go-fuse, and whether the started request kept
// bp (a large I/O's data lives there).
func (l *devLoop) fast(bp *[]byte, n, fd int) (started, kept bool) {
	in := (*bp)[:n]
	h := (*fuse.InHeader)(unsafe.Pointer(&in[0]))
	write := h.Opcode == opWrite
	if !write && h.Opcode != opRead {
		return false, false
	}
	io := (*l.nodes.Load())[h.NodeId]
	if io == nil {
		return false, false
	}
	dev, ok := io.dev.(AsyncBlockDevice)
	if !ok {
		return false, false
	}
	var off int64
	var size int
	if write {
		if n < writeInSize {
			return false, false
		}
		wi := (*fuse.WriteIn)(unsafe.Pointer(&in[0]))
		off, size = int64(wi.Offset), int(wi.Size)
		if n != writeInSize+size {
			return false, false
		}
	} else {
		if n < readInSize {
			return false, false
		}
		ri := (*fuse.ReadIn)(unsafe.Pointer(&in[0]))
		off, size = int64(ri.Offset), int(ri.Size)
		if outHeaderSize+size > len(*bp) {
			return false, false
		}
	}
	if size == 0 || off < 0 || off%io.bs != 0 || int64(size)%io.bs != 0 || off+int64(size) > io.dev.Size() {
		return false, false // edges, the end of the device: go-fuse's blockIO path
	}
	r := l.reqs.Get().(*fastReq)
	r.io, r.unique, r.fd, r.write, r.off, r.big = io, h.Unique, fd, write, off, nil
	switch {
	case size <= smallIO:
		r.buf = r.small[:outHeaderSize+size]
		if write {
			copy(r.buf[outHeaderSize:], in[writeInSize:])
		}
	case write:
		r.big = bp
		r.buf = in[writeInSize-outHeaderSize:]
	default:
		r.big = bp
		r.buf = (*bp)[:outHeaderSize+size]
	}
	r.data = r.buf[outHeaderSize : outHeaderSize+size]
	if write {
		var ok bool
		if r.stripe, ok = io.enter(off, int64(size)); !ok {
			r.decline()
			return false, false // an RMW of these blocks is in flight: go-fuse orders it
		}
	}
	kept = r.big != nil // r may be recycled once StartIO returns
	l.active.Add(1)
	var pl *plug.Plug
	if l.busy.Add(1) > 1 {
		pl = &l.plug
	}
	if !dev.StartIO(l.ctx, write, r.data, off, r, pl) {
		l.busy.Add(-1)
		if write {
			io.leave(r.stripe[0], r.stripe[1], r.stripe[2])
		}
		l.active.Done()
		r.decline()
		return false, false
	}
	return true, kept
}

// decline recycles a request that was not started: the read buffer stays
// with the reader, which hands the request to go-fuse in it.
func (r *fastReq) decline() {
	r.big = nil
	r.release()
}

// Complete implements Completer: the reply goes out from here.
func (r *fastReq) Complete(err error) {
	l := r.l
	if r.write {
		r.io.leave(r.stripe[0], r.stripe[1], r.stripe[2])
	}
	var reply []byte
	if err != nil {
		l.log.Debug("I/O failed", "write", r.write, "off", r.off, "len", len(r.data), "error", err)
		reply = r.hdr[:l.errorReply(r.hdr[:], r.unique, ToErrno(err))]
	} else if r.write {
		oh := (*fuse.OutHeader)(unsafe.Pointer(&r.hdr[0]))
		*oh = fuse.OutHeader{Length: uint32(outHeaderSize + writeOutSize), Unique: r.unique}
		*(*fuse.WriteOut)(unsafe.Pointer(&r.hdr[outHeaderSize])) = fuse.WriteOut{Size: uint32(len(r.data))}
		reply = r.hdr[:]
	} else {
		oh := (*fuse.OutHeader)(unsafe.Pointer(&r.buf[0]))
		*oh = fuse.OutHeader{Length: uint32(len(r.buf)), Unique: r.unique}
		reply = r.buf
	}
	l.writeReply(r.fd, reply)
	r.release()
	l.busy.Add(-1)
	l.active.Done()
}

func (r *fastReq) release() {
	if r.big != nil {
		r.l.big.Put(r.big)
	}
	r.io, r.data, r.buf, r.big = nil, nil, nil, nil
	r.l.reqs.Put(r)
}

// wait blocks until the loop ended and every request was answered.
func (l *devLoop) wait() { <-l.done }
