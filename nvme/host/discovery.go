package host

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// Discovery log reading limits (libnvme: 10 retries on a changing GENCTR;
// entries read in chunks of at most 4 KiB).
const (
	discoveryRetries   = 10
	discoveryChunk     = 4096
	discoveryHeaderLen = 20
	// maxDiscoveryRecords bounds the allocation a bogus NUMREC can cause.
	maxDiscoveryRecords = 4096
)

func discoveryOptions(opts fabrics.Options, persistent bool) fabrics.Options {
	if opts.TrSvcID == "" {
		opts.TrSvcID = DefaultDiscoveryPort
	}
	if opts.SubsysNQN == "" {
		opts.SubsysNQN = nvme.DiscoveryNQN
	}
	opts.Discovery = true
	if !persistent {
		opts.KeepAliveTmo = 0
	} else if opts.KeepAliveTmo <= 0 {
		opts.KeepAliveTmo = fabrics.DefaultKATO
	}
	return opts
}

// Discover connects to a discovery controller (trsvcid 8009 and the
// well-known discovery NQN unless opts say otherwise, KATO 0), reads the
// discovery log and disconnects.
func Discover(ctx context.Context, opts fabrics.Options, log hclog.Logger, o ...Option) (*nvme.DiscoveryLog, error) {
	c, err := Connect(ctx, discoveryOptions(opts, false), log, o...)
	if err != nil {
		return nil, err
	}
	dl, err := c.DiscoveryLog(ctx)
	if cerr := c.Close(ctx); err == nil && cerr != nil {
		c.log.Debug("closing discovery controller", "error", cerr)
	}
	return dl, err
}

// DiscoverPersistent connects a persistent discovery controller (keep-alive
// on, discovery-log-change AEN enabled) and calls fn with the discovery
// log once connected and after every discovery-log-change AEN (fn runs on
// the controller's worker goroutine). Close the returned controller to
// stop.
func DiscoverPersistent(ctx context.Context, opts fabrics.Options, log hclog.Logger, fn func(*nvme.DiscoveryLog, error), o ...Option) (*Controller, error) {
	c, err := newController(discoveryOptions(opts, true), log, o)
	if err != nil {
		return nil, err
	}
	c.onDiscovery = func() {
		a := c.cur.Load()
		if a == nil {
			return
		}
		fn(c.discoveryLog(a.ctx, a))
	}
	if err := c.connectFirst(ctx); err != nil {
		return nil, err
	}
	fn(c.DiscoveryLog(ctx))
	return c, nil
}

// DiscoveryLog reads the discovery log the libnvme way: header (RAE=1),
// entries in chunks of at most 4 KiB (RAE=1 except on the last), header
// again; retried while GENCTR changes.
func (c *Controller) DiscoveryLog(ctx context.Context) (*nvme.DiscoveryLog, error) {
	a, err := c.live()
	if err != nil {
		return nil, err
	}
	return c.discoveryLog(ctx, a)
}

func (c *Controller) discoveryLog(ctx context.Context, a *assoc) (*nvme.DiscoveryLog, error) {
	hdr := make([]byte, discoveryHeaderLen)
	readHdr := func(rae bool) (genctr, numrec uint64, recfmt uint16, err error) {
		cmd := nvme.NewGetLogPage(nvme.LogDiscovery, 0, 0, rae, 0, discoveryHeaderLen)
		if _, err := c.adminCmd(ctx, a, &cmd, hdr); err != nil {
			return 0, 0, 0, fmt.Errorf("nvme host: discovery log header: %w", err)
		}
		return nvme.ParseDiscoveryLogHeader(hdr)
	}
	for try := 0; try < discoveryRetries; try++ {
		genctr, numrec, recfmt, err := readHdr(true)
		if err != nil {
			return nil, err
		}
		if numrec > maxDiscoveryRecords {
			return nil, fmt.Errorf("nvme host: discovery log: %d records is too many", numrec)
		}
		var entries []nvme.DiscoveryLogEntry
		if numrec > 0 {
			buf := make([]byte, int(numrec)*nvme.DiscoveryLogEntrySize)
			for off := 0; off < len(buf); off += discoveryChunk {
				n := min(discoveryChunk, len(buf)-off)
				last := off+n == len(buf)
				cmd := nvme.NewGetLogPage(nvme.LogDiscovery, 0, 0, !last, uint64(nvme.DiscoveryLogHeaderSize+off), uint32(n))
				if _, err := c.adminCmd(ctx, a, &cmd, buf[off:off+n]); err != nil {
					return nil, fmt.Errorf("nvme host: discovery log entries: %w", err)
				}
			}
			if entries, err = nvme.ParseDiscoveryLogEntries(buf, int(numrec)); err != nil {
				return nil, err
			}
		}
		genctr2, _, _, err := readHdr(numrec != 0)
		if err != nil {
			return nil, err
		}
		if genctr2 == genctr {
			return &nvme.DiscoveryLog{GenCtr: genctr, NumRec: numrec, RecFmt: recfmt, Entries: entries}, nil
		}
		c.log.Debug("discovery log changed while reading, retrying", "genctr", genctr, "now", genctr2)
	}
	return nil, fmt.Errorf("nvme host: discovery log kept changing (%d tries)", discoveryRetries)
}
