package host

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/mpathfs/mpathfs/nvme"
	"github.com/mpathfs/mpathfs/nvme/fabrics"
)

// Namespace scan limits: the scan stops at NN (NSIDs are 1..NN) and at
// maxScanNamespaces, whatever the Active Namespace ID list claims.
const maxScanNamespaces = 4096

// maxBlockSize is the largest logical block size accepted: the block layer's
// BLK_MAX_BLOCK_SIZE (64 KiB; Linux before 6.15 or without THP: PAGE_SIZE).
const maxBlockSize = 64 << 10

// scan lists the active namespaces (Identify CNS 0x02, paging while a page
// is full, up to NN and maxScanNamespaces), then per NSID reads the
// identification descriptors (CNS 0x03, if VS >= 1.3; an error skips the
// namespace, as in Linux) and Identify Namespace (CNS 0x00; NCAP 0 means not
// present). It stops when ctx is done. Caller holds c.scanMu.
func (c *Controller) scan(ctx context.Context, a *assoc) ([]Namespace, error) {
	buf := make([]byte, nvme.IdentifyDataSize)
	nsids, err := c.activeNSIDs(ctx, a, buf)
	if err != nil {
		return nil, err
	}
	out := make([]Namespace, 0, len(nsids))
	descs := a.vs >= fabrics.MakeVS(1, 3, 0)
	for _, nsid := range nsids {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("nvme host: namespace scan: %w", err)
		}
		var ids nvme.NamespaceIDs
		if descs {
			cmd := nvme.NewIdentify(nvme.CNSNSDescList, nsid, 0, 0)
			if _, err := c.adminCmd(ctx, a, &cmd, buf); err != nil {
				if isAborted(err) || ctx.Err() != nil {
					return nil, err
				}
				c.rlog.Warn("identify namespace descriptors failed, skipping namespace", "nsid", nsid, "error", err)
				continue
			}
			var err error
			if ids, err = nvme.ParseNSDescriptors(buf); err != nil {
				c.rlog.Warn("bad namespace descriptors, skipping namespace", "nsid", nsid, "error", err)
				continue
			}
		}
		cmd := nvme.NewIdentify(nvme.CNSNamespace, nsid, 0, 0)
		if _, err := c.adminCmd(ctx, a, &cmd, buf); err != nil {
			if isAborted(err) || ctx.Err() != nil {
				return nil, err
			}
			c.rlog.Warn("identify namespace failed", "nsid", nsid, "error", err)
			continue
		}
		info, err := nvme.ParseIdentifyNamespace(buf)
		if err != nil {
			c.rlog.Warn("bad identify namespace", "nsid", nsid, "error", err)
			continue
		}
		if info.NCAP == 0 {
			continue // not present (Linux treats it as removed)
		}
		if ids.EUI64 == ([8]byte{}) {
			ids.EUI64 = info.EUI64
		}
		if ids.NGUID == ([16]byte{}) {
			ids.NGUID = info.NGUID
		}
		if err := checkGeometry(info); err != nil {
			c.rlog.Warn("unsupported namespace geometry, skipping namespace", "nsid", nsid, "error", err)
			continue
		}
		bs := info.BlockSize()
		blocks := info.NSZE
		if ms := info.LBAF[info.FormatIndex()].MS; ms != 0 {
			// Linux over TCP has no metadata transfer (no
			// NVME_F_METADATA_SUPPORTED): such a namespace keeps its
			// disk with capacity 0 (nvme_init_integrity fails). It
			// would keep a PI-only format (PRACT) usable; we do not.
			c.rlog.Warn("metadata-formatted namespace is not usable over TCP: capacity 0", "nsid", nsid, "metadata_bytes", ms)
			blocks = 0
		}
		out = append(out, Namespace{
			NSID: nsid, IDs: ids, Info: info, BlockSize: bs, Blocks: blocks,
			ANAGroup: info.ANAGRPID, Shared: info.NMIC&nvme.NMICShared != 0,
		})
	}
	return out, nil
}

// checkGeometry refuses what the block layer refuses (blk_validate_block_size:
// a power of two from 512 bytes to maxBlockSize; Linux keeps such a namespace
// with capacity 0) and a capacity NSZE × block size beyond int64.
func checkGeometry(info *nvme.IdentifyNamespace) error {
	ds := info.LBAF[info.FormatIndex()].LBADS
	if ds < 9 || ds >= 32 || 1<<ds > maxBlockSize {
		return fmt.Errorf("LBA data size 2^%d bytes outside 512..%d", ds, maxBlockSize)
	}
	if hi, lo := bits.Mul64(info.NSZE, 1<<ds); hi != 0 || lo > math.MaxInt64 {
		return fmt.Errorf("capacity of %d blocks of %d bytes overflows", info.NSZE, 1<<ds)
	}
	return nil
}

// activeNSIDs reads the Active Namespace ID list: strictly ascending NSIDs
// up to NN (when reported) and at most maxScanNamespaces of them.
func (c *Controller) activeNSIDs(ctx context.Context, a *assoc, buf []byte) ([]uint32, error) {
	nn := a.id.NN
	var nsids []uint32
	for prev := uint32(0); ; {
		cmd := nvme.NewIdentify(nvme.CNSActiveNSList, prev, 0, 0)
		if _, err := c.adminCmd(ctx, a, &cmd, buf); err != nil {
			return nil, fmt.Errorf("nvme host: active namespace list: %w", err)
		}
		page := nvme.ParseNSIDList(buf)
		for _, id := range page {
			switch {
			case id <= prev: // not ascending: stop rather than loop
				return nsids, nil
			case nn != 0 && id > nn:
				c.log.Warn("active namespace list goes beyond NN, ignoring the rest", "nsid", id, "nn", nn)
				return nsids, nil
			case len(nsids) == maxScanNamespaces:
				c.log.Warn("too many namespaces, ignoring the rest", "limit", maxScanNamespaces)
				return nsids, nil
			}
			nsids = append(nsids, id)
			prev = id
		}
		if len(page) < maxNSIDsPerPage {
			return nsids, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("nvme host: active namespace list: %w", err)
		}
	}
}

func isAborted(err error) bool {
	var ae *AbortedError
	return errors.As(err, &ae)
}

// readANA reads the ANA log (LID 0x0C, NSID all, RAE 0: re-enables the ANA
// AEN) and parses it with Linux's checks.
func (c *Controller) readANA(ctx context.Context, a *assoc) (*nvme.ANALog, error) {
	buf := make([]byte, a.anaLogSize)
	cmd := nvme.NewGetLogPage(nvme.LogANA, nvme.NSIDAll, 0, false, 0, uint32(len(buf)))
	if _, err := c.adminCmd(ctx, a, &cmd, buf); err != nil {
		return nil, fmt.Errorf("nvme host: ANA log: %w", err)
	}
	log, err := nvme.ParseANALog(buf, a.id.ANAGRPMAX)
	if err != nil {
		return nil, fmt.Errorf("nvme host: ANA log: %w", err)
	}
	return log, nil
}

func anaMap(log *nvme.ANALog) map[uint32]nvme.ANAState {
	m := make(map[uint32]nvme.ANAState, len(log.Groups))
	for _, g := range log.Groups {
		m[g.ID] = g.State
	}
	return m
}

// anaGroupOf maps each NSID the ANA log lists to its group.
func anaGroupOf(log *nvme.ANALog) map[uint32]uint32 {
	m := map[uint32]uint32{}
	for _, g := range log.Groups {
		for _, nsid := range g.NSIDs {
			m[nsid] = g.ID
		}
	}
	return m
}

// applyANAGroups moves namespaces to the group the ANA log lists them in.
func applyANAGroups(ns []Namespace, groupOf map[uint32]uint32) {
	for i := range ns {
		g, ok := groupOf[ns[i].NSID]
		if ok {
			ns[i].ANAGroup = g
		}
		ns[i].ANAListed = ok
	}
}

// refreshANA re-reads the ANA log of a (the live association) and applies
// it: per-group states, the namespaces' ANAState and ANAListed, and an
// ANAChanged event.
func (c *Controller) refreshANA(ctx context.Context, a *assoc) error {
	if !a.anaUsed {
		return nil
	}
	c.scanMu.Lock()
	defer c.scanMu.Unlock()
	log, err := c.readANA(ctx, a)
	if err != nil {
		return err
	}
	states := anaMap(log)
	groupOf := anaGroupOf(log)
	c.mu.Lock()
	if c.assoc != a {
		c.mu.Unlock()
		return nil
	}
	for g, s := range states {
		if c.ana[g] != s {
			c.log.Info(fmt.Sprintf("ANA group %d: %s.", g, s))
		}
	}
	c.ana = states
	list := append([]Namespace(nil), c.namespaces...)
	for i := range list {
		g, ok := groupOf[list[i].NSID]
		if ok {
			list[i].ANAGroup = g
		}
		list[i].ANAListed = ok
	}
	c.installNamespacesLocked(list, nil)
	c.updateANATTLocked(a)
	c.mu.Unlock()
	// Every successful read is announced, changed or not: it is what
	// clears the ANA-pending mark of the namespaces it lists
	// (nvme_update_ns_ana_state).
	c.pushEvent(ANAChanged)
	return nil
}

// readChangedNS reads (and so clears) the Changed Namespace List log.
func (c *Controller) readChangedNS(ctx context.Context, a *assoc) {
	buf := make([]byte, nvme.IdentifyDataSize)
	cmd := nvme.NewGetLogPage(nvme.LogChangedNS, nvme.NSIDAll, 0, false, 0, uint32(len(buf)))
	if _, err := c.adminCmd(ctx, a, &cmd, buf); err != nil {
		c.log.Warn("reading changed ns log failed", "error", err)
	}
}

// rescan scans a (the live association) and installs the result, with a
// NamespacesChanged event if it differs.
func (c *Controller) rescan(ctx context.Context, a *assoc) error {
	c.scanMu.Lock()
	defer c.scanMu.Unlock()
	list, err := c.scan(ctx, a)
	if err != nil {
		return err
	}
	if a.anaUsed {
		if log, err := c.readANA(ctx, a); err == nil {
			applyANAGroups(list, anaGroupOf(log))
		}
	}
	c.mu.Lock()
	if c.assoc != a {
		c.mu.Unlock()
		return nil
	}
	changed := c.installNamespacesLocked(list, nil)
	c.mu.Unlock()
	if changed {
		c.pushEvent(NamespacesChanged)
	}
	return nil
}

// live returns the current association if the controller accepts
// commands (LIVE or DELETING), else nvme.StatusHostPathError.
func (c *Controller) live() (*assoc, error) {
	a := c.cur.Load()
	if s := c.State(); a == nil || (s != StateLive && s != StateDeleting) {
		return nil, nvme.StatusHostPathError
	}
	return a, nil
}

// RefreshANA re-reads the ANA log (what Linux does after an ANA error
// status).
func (c *Controller) RefreshANA(ctx context.Context) error {
	a, err := c.live()
	if err != nil {
		return err
	}
	return c.refreshANA(ctx, a)
}

// QueueANARead schedules an ANA log re-read on the live association
// (ana_work). Calls coalesce: while a read is pending, more requests add
// nothing. The result arrives as an ANAChanged event.
func (c *Controller) QueueANARead() {
	if a := c.cur.Load(); a != nil && a.anaUsed {
		kick(a.anaKick)
	}
}

// Rescan re-scans the namespaces (sysfs rescan_controller).
func (c *Controller) Rescan(ctx context.Context) error {
	a, err := c.live()
	if err != nil {
		return err
	}
	return c.rescan(ctx, a)
}

// updateANATTLocked runs the ANATT timer (nvme_update_ana_state): while
// some group is in change state, a timer of 2×ANATT seconds; if it expires
// the controller is reset. Called with c.mu held.
func (c *Controller) updateANATTLocked(a *assoc) {
	if !a.anaUsed {
		return
	}
	inChange := false
	for _, s := range c.ana {
		if s == nvme.ANAChange {
			inChange = true
		}
	}
	switch {
	case inChange:
		// mod_timer: every log read that still shows a group in change
		// re-arms the timer for a full 2×ANATT.
		if a.anatt != nil {
			a.anatt.Stop()
		}
		d := 2 * time.Duration(a.id.ANATT) * time.Second
		a.anatt = c.clk.AfterFunc(d, func() {
			c.log.Warn("ANATT timeout, resetting controller.")
			c.resetAsync(a, errors.New("ANATT timeout"), nil)
		})
	case !inChange && a.anatt != nil:
		a.anatt.Stop()
		a.anatt = nil
	}
}
