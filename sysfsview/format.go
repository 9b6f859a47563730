package sysfsview

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// This file holds the kernel's value formats (printk %pU, %ph, %pbl, the
// block-layer stat line) and input parsers (sysfs_streq, kstrto*), so every
// attribute prints and parses byte for byte as Linux does.

// StoreError is a rejected attribute write. Errno is what a kernel sysfs store
// returns for the same input (EINVAL, ERANGE, ...).
type StoreError struct {
	Value string
	Code  syscall.Errno
}

func (e *StoreError) Error() string { return fmt.Sprintf("value %q: %v", e.Value, e.Code) }

// Errno returns the errno the write fails with.
func (e *StoreError) Errno() syscall.Errno { return e.Code }

func invalid(v string) error { return &StoreError{Value: v, Code: syscall.EINVAL} }

// cstr cuts s at the first NUL: sysfs stores see a C string.
func cstr(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// sysfsStreq is the kernel's sysfs_streq: equal, allowing one trailing "\n" on either side.
func sysfsStreq(a, b string) bool {
	return a == b || a == b+"\n" || a+"\n" == b
}

// formatUUID is printk's %pU: 16 bytes in order, lower-case, 8-4-4-4-12.
func formatUUID(b [16]byte) string {
	var buf [36]byte
	hex.Encode(buf[0:8], b[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], b[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], b[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], b[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:36], b[10:16])
	return string(buf[:])
}

// formatHexSpaced is printk's %*ph: bytes as lower-case hex separated by spaces.
func formatHexSpaced(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(hex.EncodeToString([]byte{c}))
	}
	return sb.String()
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// fixedField is "%.*s" over a fixed-width identify field: at most width bytes,
// stopping at a NUL; space padding is kept.
func fixedField(s string, width int) string {
	s = cstr(s)
	if len(s) > width {
		s = s[:width]
	}
	return s
}

// trimIDField drops trailing spaces and NULs, as wwid_show does for serial and model.
func trimIDField(s string, width int) string {
	if len(s) > width {
		s = s[:width]
	}
	return strings.TrimRight(s, " \x00")
}

// formatNodeList is printk's %*pbl (bitmap list): sorted ranges like "0-1,3".
func formatNodeList(nodes []int) string {
	if len(nodes) == 0 {
		return ""
	}
	max := 0
	for _, n := range nodes {
		if n > max {
			max = n
		}
	}
	set := make([]bool, max+1)
	for _, n := range nodes {
		if n >= 0 {
			set[n] = true
		}
	}
	var sb strings.Builder
	for i := 0; i <= max; i++ {
		if !set[i] {
			continue
		}
		j := i
		for j+1 <= max && set[j+1] {
			j++
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(i))
		if j > i {
			sb.WriteByte('-')
			sb.WriteString(strconv.Itoa(j))
		}
		i = j
	}
	return sb.String()
}

// FormatStat renders s as block/genhd.c part_stat_show does: 17 fields,
// "%8lu %8lu %8llu %8u ..." (merges are always 0; %8u fields are 32-bit).
func FormatStat(s IOStat) string {
	u := func(v uint64) uint64 { return uint64(uint32(v)) }
	return fmt.Sprintf("%8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d\n",
		s.ReadIOs, 0, s.ReadSectors, u(s.ReadTicksMs),
		s.WriteIOs, 0, s.WriteSectors, u(s.WriteTicksMs),
		u(s.InFlight), u(s.IOTicksMs), u(s.TimeInQueueMs),
		s.DiscardIOs, 0, s.DiscardSectors, u(s.DiscardTicksMs),
		s.FlushIOs, u(s.FlushTicksMs))
}

// FormatInflight renders the requests in flight as part_inflight_show does:
// reads and writes, "%8u %8u\n".
func FormatInflight(s IOStat) string {
	return fmt.Sprintf("%8d %8d\n", uint32(s.InFlightRW[0]), uint32(s.InFlightRW[1]))
}

// parseUint is the kernel's _parse_integer_fixup_radix + _parse_integer + the
// kstrtoull tail rule (one trailing "\n" allowed). It reports EINVAL or ERANGE.
func parseUint(s string, base int) (uint64, syscall.Errno) {
	if base == 0 {
		switch {
		case len(s) >= 3 && s[0] == '0' && s[1]|0x20 == 'x' && isHex(s[2]):
			base = 16
		case len(s) >= 1 && s[0] == '0':
			base = 8
		default:
			base = 10
		}
	}
	if base == 16 && len(s) >= 2 && s[0] == '0' && s[1]|0x20 == 'x' {
		s = s[2:]
	}
	var acc uint64
	n := 0
	overflow := false
	for ; n < len(s); n++ {
		d := digitVal(s[n])
		if d >= base {
			break
		}
		if acc > (^uint64(0)-uint64(d))/uint64(base) {
			overflow = true
		}
		acc = acc*uint64(base) + uint64(d)
	}
	if n == 0 {
		return 0, syscall.EINVAL
	}
	if overflow {
		return 0, syscall.ERANGE
	}
	rest := s[n:]
	if len(rest) > 0 && rest[0] == '\n' {
		rest = rest[1:]
	}
	if rest != "" {
		return 0, syscall.EINVAL
	}
	return acc, 0
}

func isHex(c byte) bool { return digitVal(c) < 16 }

func digitVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		return int(c|0x20-'a') + 10
	}
	return 99
}

// kstrtoull: optional leading '+'.
func kstrtoull(s string, base int) (uint64, syscall.Errno) {
	s = cstr(s)
	if strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	return parseUint(s, base)
}

// kstrtouint is kstrtoull limited to 32 bits (kstrtou32 is the same).
func kstrtouint(s string, base int) (uint32, syscall.Errno) {
	v, e := kstrtoull(s, base)
	if e != 0 {
		return 0, e
	}
	if v > 1<<32-1 {
		return 0, syscall.ERANGE
	}
	return uint32(v), 0
}

// kstrtoint: optional sign, 32-bit signed range.
func kstrtoint(s string, base int) (int32, syscall.Errno) {
	s = cstr(s)
	var v int64
	if strings.HasPrefix(s, "-") {
		u, e := parseUint(s[1:], base)
		if e != 0 {
			return 0, e
		}
		if u > 1<<31 {
			return 0, syscall.ERANGE
		}
		v = -int64(u)
	} else {
		u, e := kstrtoull(s, base)
		if e != 0 {
			return 0, e
		}
		if u > 1<<31-1 {
			return 0, syscall.ERANGE
		}
		v = int64(u)
	}
	return int32(v), 0
}
