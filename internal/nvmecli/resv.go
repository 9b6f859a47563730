package nvmecli

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/mpathfs/mpathfs/nvme"
)

// What nvme-cli 2.3 prints when resv-register, resv-acquire and
// resv-release succeed.
const (
	ResvRegisterSuccess = "NVME Reservation  success"
	ResvAcquireSuccess  = "NVME Reservation Acquire success"
	ResvReleaseSuccess  = "NVME Reservation Release success"
)

// WriteResvReport prints Reservation Report data (the extended data
// structure, as resv_report holds it) as nvme-cli 2.3's
// "nvme resv-report --eds" does (checked against the binary in
// resv_test.go): the normal text or, with json, its json-c document.
func WriteResvReport(w io.Writer, data []byte, json bool) error {
	if len(data) < nvme.ResvStatusHeaderSize {
		return fmt.Errorf("reservation report: %d bytes, want at least %d: %w", len(data), nvme.ResvStatusHeaderSize, nvme.ErrShort)
	}
	le := binary.LittleEndian
	gen, rtype, ptpls := le.Uint32(data[0:]), data[4], data[9]
	regctl := int(le.Uint16(data[5:]))
	// nvme-cli: "if status buffer was too small, don't loop past the end".
	entries := min(regctl, (len(data)-nvme.ResvStatusHeaderSize)/nvme.ResvStatusEntrySize)
	entry := func(i int) []byte { return data[nvme.ResvStatusHeaderSize+i*nvme.ResvStatusEntrySize:] }
	var b strings.Builder
	if json {
		root := jobject{}
		root.add("gen", int64(gen))
		root.add("rtype", int64(rtype))
		root.add("regctl", int64(regctl))
		root.add("ptpls", int64(ptpls))
		rcs := jarray{}
		for i := 0; i < entries; i++ {
			e := entry(i)
			rc := jobject{}
			rc.add("cntlid", int64(le.Uint16(e[0:])))
			rc.add("rcsts", int64(e[2]))
			rc.add("rkey", le.Uint64(e[8:]))
			rc.add("hostid", fmt.Sprintf("%x", e[16:32]))
			rcs = append(rcs, rc)
		}
		root.add("regctlext", rcs)
		writeJSON(&b, root)
	} else {
		fmt.Fprintf(&b, "\nNVME Reservation status:\n\n")
		fmt.Fprintf(&b, "gen       : %d\n", int32(gen))
		fmt.Fprintf(&b, "rtype     : %d\n", rtype)
		fmt.Fprintf(&b, "regctl    : %d\n", regctl)
		fmt.Fprintf(&b, "ptpls     : %d\n", ptpls)
		for i := 0; i < entries; i++ {
			e := entry(i)
			fmt.Fprintf(&b, "regctlext[%d] :\n", i)
			fmt.Fprintf(&b, "  cntlid     : %x\n", le.Uint16(e[0:]))
			fmt.Fprintf(&b, "  rcsts      : %x\n", e[2])
			fmt.Fprintf(&b, "  rkey       : %x\n", le.Uint64(e[8:]))
			fmt.Fprintf(&b, "  hostid     : %x\n", e[16:32]) // "%02x" per byte

		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
